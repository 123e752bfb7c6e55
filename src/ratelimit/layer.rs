//! [`RateLimitLayer`]: put a [`RateLimiter`] in front of a service.

use std::hash::Hash;

use tower_layer::Layer;

use super::{KeyedRateLimiter, NoSignal, RateLimit, RateLimiter, UnitCost};
use crate::classify::ByError;

/// Chooses the limiter a request goes through: one shared [`RateLimiter`], or one per key
/// with [`ByKey`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot choose a rate limiter for a `{Req}`",
    note = "use a `RateLimiter`, or `RateLimitLayer::keyed(limiters, |req: &{Req}| key)`"
)]
pub trait SelectLimiter<Req> {
    /// The limiter for `request`.
    fn select(&self, request: &Req) -> RateLimiter;

    /// The one limiter every request goes through, if there is one: a long-lived service
    /// then keeps a handle of its own on it (see [`RateLimit`]).
    fn only(&self) -> Option<&RateLimiter> {
        None
    }
}

impl<Req> SelectLimiter<Req> for RateLimiter {
    fn select(&self, _: &Req) -> RateLimiter {
        self.clone()
    }

    fn only(&self) -> Option<&RateLimiter> {
        Some(self)
    }
}

/// One limiter per key of a [`KeyedRateLimiter`], the key computed from each request.
#[derive(Debug, Clone)]
pub struct ByKey<K, F> {
    limiters: KeyedRateLimiter<K>,
    key: F,
}

impl<Req, K, F> SelectLimiter<Req> for ByKey<K, F>
where
    K: Hash + Eq + Clone,
    F: Fn(&Req) -> K,
{
    fn select(&self, request: &Req) -> RateLimiter {
        self.limiters.get(&(self.key)(request))
    }
}

/// Rate-limits requests to the inner service: each waits for capacity (or is refused), and
/// each response's class and headers feed the limiter's gate and adaptive rate.
///
/// ```
/// use std::time::Duration;
/// use riprap::classify::{classify_fn, Class};
/// use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower::BoxError> {
/// let limiter = RateLimiter::new(
///     RateLimitConfig::builder()
///         .requests(500, Duration::from_secs(60))
///         .cost(30_000, Duration::from_secs(60))
///         .build()?,
/// );
/// let svc = ServiceBuilder::new()
///     .layer(
///         RateLimitLayer::new(limiter)
///             .cost(|prompt: &String| prompt.len() as u32 / 4 + 256)
///             .classifier(classify_fn(|out: Result<&u16, &std::io::Error>| match out {
///                 Ok(429) => Class::Throttled { retry_after: None },
///                 _ => Class::Success,
///             })),
///     )
///     .service(service_fn(|_prompt: String| async { Ok::<u16, std::io::Error>(200) }));
///
/// assert_eq!(svc.oneshot("Summarise this page".to_string()).await?, 200);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer<L = RateLimiter, W = UnitCost, C = ByError, R = NoSignal> {
    limiters: L,
    cost: W,
    classifier: C,
    signal: R,
}

impl RateLimitLayer {
    /// Every request goes through `limiter` (shared with its clones) and costs one unit.
    pub fn new(limiter: RateLimiter) -> Self {
        RateLimitLayer {
            limiters: limiter,
            cost: UnitCost,
            classifier: ByError,
            signal: NoSignal,
        }
    }
}

impl<K, F> RateLimitLayer<ByKey<K, F>> {
    /// Each request goes through the limiter of its key, `key(&request)`.
    pub fn keyed(limiters: KeyedRateLimiter<K>, key: F) -> Self {
        RateLimitLayer {
            limiters: ByKey { limiters, key },
            cost: UnitCost,
            classifier: ByError,
            signal: NoSignal,
        }
    }
}

impl<L, W, C, R> RateLimitLayer<L, W, C, R> {
    /// What each request spends from the cost quota; see [`Cost`](super::Cost).
    pub fn cost<W2>(self, cost: W2) -> RateLimitLayer<L, W2, C, R> {
        RateLimitLayer {
            limiters: self.limiters,
            cost,
            classifier: self.classifier,
            signal: self.signal,
        }
    }

    /// The classifier whose [`Class::Throttled`](crate::classify::Class::Throttled) closes the
    /// gate and cuts the adaptive rate, and whose successes let it recover (default
    /// [`ByError`], riprap's one default).
    pub fn classifier<C2>(self, classifier: C2) -> RateLimitLayer<L, W, C2, R> {
        RateLimitLayer {
            limiters: self.limiters,
            cost: self.cost,
            classifier,
            signal: self.signal,
        }
    }

    /// Where responses' rate-limit headers are read from; see [`ReadSignal`](super::ReadSignal).
    pub fn read_signal<R2>(self, signal: R2) -> RateLimitLayer<L, W, C, R2> {
        RateLimitLayer {
            limiters: self.limiters,
            cost: self.cost,
            classifier: self.classifier,
            signal,
        }
    }
}

impl<S, L: Clone, W: Clone, C: Clone, R: Clone> Layer<S> for RateLimitLayer<L, W, C, R> {
    type Service = RateLimit<S, L, W, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(
            inner,
            self.limiters.clone(),
            self.cost.clone(),
            self.classifier.clone(),
            self.signal.clone(),
        )
    }
}
