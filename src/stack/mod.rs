//! The layers composed in the recommended order, sharing one classifier.
//!
//! ```text
//!   request
//!      │
//!   total deadline     the caller's patience: nothing below may outlast it
//!   retry + budget     decides whether another attempt is worth it, and waits
//!   circuit breaker    fails fast while the dependency is down, probes when it may be back
//!   rate limit         local quota, and the server's 429s pause every clone
//!   attempt timeout    one attempt's limit, so a hung call becomes a retryable failure
//!      │
//!   client (any tower::Service)
//! ```
//!
//! Why this order:
//! - **Retry above the breaker**: every attempt, retries included, passes the breaker, so a
//!   dead dependency trips it within a few calls, and once it is open a retry is refused at
//!   once without reaching the dependency. The refusal says when the next probe is due (it
//!   classifies as throttled with that delay), so retry waits for it or gives up. A breaker
//!   above retry would see one outcome per request, after all of its retries: it would trip
//!   later, and until then each request would hit the dead dependency `max_attempts` times.
//! - **Breaker above the rate limiter**: a rejected call never spends quota, and time spent
//!   waiting for quota is not counted as the dependency's latency.
//! - **Rate limit above the attempt timeout**: waiting for quota is not the dependency being
//!   slow, so it must not use up an attempt's time.
//! - **Total deadline on top**: it bounds everything, retries and waits included; retry also
//!   knows it, so it stops instead of sleeping into it.
//!
//! One [`Classify`](crate::classify::Classify) policy, written for your client's own response and error types, is shared
//! by every layer: riprap lifts it through each layer's error wrapper with
//! [`Through`]. Errors come out flattened into one [`StackError`].
//!
//! ```
//! use std::time::Duration;
//! use riprap::classify::ByError;
//! use riprap::stack::{Failure, Stack};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stack = Stack::builder(ByError)
//!     .total_deadline(Duration::from_secs(30))
//!     .attempt_timeout(Duration::from_secs(5))
//!     .build()?;
//!
//! let client = service_fn(|q: &'static str| async move {
//!     match q {
//!         "bad" => Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
//!         _ => Ok(q.len()),
//!     }
//! });
//! let mut svc = stack.layer(client);
//! assert_eq!(svc.ready().await?.call("hello").await?, 5);
//!
//! let err = svc.ready().await?.call("bad").await.unwrap_err();
//! assert!(matches!(err.failure(), Failure::Inner(_)));
//! assert_eq!(err.attempts(), Some(1)); // permanent: never retried
//! # Ok(()) }
//! ```

mod error;
mod service;
#[cfg(feature = "serde")]
mod spec;

use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

pub use error::{Failure, StackError};
pub use service::{ResponseFuture, StackService};
#[cfg(feature = "serde")]
pub use spec::StackSpec;

use crate::backoff::BackoffPolicy;
use crate::breaker::{
    AnyOf, BreakerBuilder, CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService,
    ConsecutiveFailures, CountWindow, TimeWindow, TripPolicy, presets as breaker_presets,
};
use crate::budget::{Budget, RatioBudget};
use crate::classify::ByError;
use crate::classify::Through;
use crate::error::ConfigError;
use crate::events::{Listener, SharedListener};
use crate::ratelimit::{
    NoSignal, RateLimit, RateLimitConfig, RateLimitConfigBuilder, RateLimitLayer, RateLimiter,
    UnitCost,
};
use crate::retry::{ByClone, Retry, RetryConfig, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};

/// Entry point: [`Stack::builder`] and the presets.
#[derive(Debug, Clone, Copy)]
pub struct Stack;

impl Stack {
    /// A stack classifying outcomes with `classifier`, with riprap's default layers: 3 attempts
    /// with full-jitter backoff and a 20 % retry budget, a breaker tripping after 5
    /// consecutive failures, no local quota (server throttles still pause every clone), and
    /// no deadlines until you set them.
    pub fn builder<C>(classifier: C) -> StackBuilder<C> {
        StackBuilder {
            classifier,
            total_deadline: None,
            attempt_timeout: None,
            retry: RetryConfig::new(),
            breaker: CircuitBreaker::builder(),
            rate_limit: RateLimitConfig::builder(),
            listener: None,
            cost: UnitCost,
            signal: NoSignal,
        }
    }

    /// An LLM API: slow calls, strict per-minute quotas, `Retry-After` on every 429.
    ///
    /// Total deadline 120 s and attempt timeout 60 s (a long completion is normal; a hung
    /// connection is not); [`RetryConfig::llm_api`] (3 attempts, 0.5–8 s full jitter,
    /// `Retry-After` honoured up to 60 s); the LLM breaker preset (5 consecutive failures or
    /// half of a minute's calls, open 15 s growing to 2 min, one probe). Set your quotas with
    /// [`StackBuilder::rate_limit`] and read the provider's headers with
    /// [`StackBuilder::read_signal`].
    pub fn llm_api<C>(classifier: C) -> StackBuilder<C, AnyOf<ConsecutiveFailures, TimeWindow>> {
        Stack::builder(classifier)
            .total_deadline(Duration::from_secs(120))
            .attempt_timeout(Duration::from_secs(60))
            .retry(RetryConfig::llm_api())
            .breaker(breaker_presets::llm_api())
    }

    /// An object store: many parallel reads, tail latency, occasional 503 SlowDown.
    ///
    /// Total deadline 180 s, attempt timeout 30 s; [`RetryConfig::object_store`] (5 attempts,
    /// 100 ms–15 s); the object-store breaker preset (failure or slow-call rate over the last
    /// 200 calls, open 5 s growing to 60 s).
    pub fn object_store<C>(classifier: C) -> StackBuilder<C, CountWindow> {
        Stack::builder(classifier)
            .total_deadline(Duration::from_secs(180))
            .attempt_timeout(Duration::from_secs(30))
            .retry(RetryConfig::object_store())
            .breaker(breaker_presets::object_store())
    }

    /// A database: short calls, a connection pool to protect, serialization failures to retry.
    ///
    /// Total deadline 10 s, attempt timeout 2 s; [`RetryConfig::database`] (4 attempts,
    /// 20 ms–1 s); the database breaker preset.
    pub fn database<C>(classifier: C) -> StackBuilder<C, AnyOf<ConsecutiveFailures, TimeWindow>> {
        Stack::builder(classifier)
            .total_deadline(Duration::from_secs(10))
            .attempt_timeout(Duration::from_secs(2))
            .retry(RetryConfig::database())
            .breaker(breaker_presets::database())
    }
}

/// Builder for a [`StackLayer`]; see the [module docs](self). [`build`](Self::build) checks
/// that the layers agree with each other.
#[must_use = "a builder does nothing until `build()` is called"]
pub struct StackBuilder<C, P = ConsecutiveFailures, W = UnitCost, R = NoSignal, B = RatioBudget> {
    classifier: C,
    total_deadline: Option<Duration>,
    attempt_timeout: Option<Duration>,
    retry: RetryConfig<ByError, BackoffPolicy, B>,
    breaker: BreakerBuilder<P>,
    rate_limit: RateLimitConfigBuilder,
    listener: Option<SharedListener>,
    cost: W,
    signal: R,
}

impl<C, P, W, R, B> StackBuilder<C, P, W, R, B> {
    /// Report every layer's events to `listener`: the retry layer's, the breaker's and the
    /// rate limiter's, whatever preset the stack started from (it replaces a listener set on
    /// one of the layers' own configs).
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// The most a logical request may take, retries and waits included.
    pub fn total_deadline(mut self, d: Duration) -> Self {
        self.total_deadline = Some(d);
        self
    }

    /// The most one attempt may take; a slower attempt fails as transient and may be retried.
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = Some(d);
        self
    }

    /// The retry knobs (attempts, backoff, budget, `Retry-After` ceiling, listener). Its
    /// classifier is replaced by the stack's.
    pub fn retry<B2>(
        self,
        retry: RetryConfig<ByError, BackoffPolicy, B2>,
    ) -> StackBuilder<C, P, W, R, B2> {
        StackBuilder {
            classifier: self.classifier,
            total_deadline: self.total_deadline,
            attempt_timeout: self.attempt_timeout,
            retry,
            breaker: self.breaker,
            rate_limit: self.rate_limit,
            listener: self.listener,
            cost: self.cost,
            signal: self.signal,
        }
    }

    /// The circuit breaker's knobs.
    pub fn breaker<P2>(self, breaker: BreakerBuilder<P2>) -> StackBuilder<C, P2, W, R, B> {
        StackBuilder {
            classifier: self.classifier,
            total_deadline: self.total_deadline,
            attempt_timeout: self.attempt_timeout,
            retry: self.retry,
            breaker,
            rate_limit: self.rate_limit,
            listener: self.listener,
            cost: self.cost,
            signal: self.signal,
        }
    }

    /// The rate limiter's knobs (local quotas, max wait, server-signal handling).
    pub fn rate_limit(mut self, rate_limit: RateLimitConfigBuilder) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// The cost of a request against the cost quota (e.g. estimated LLM tokens).
    pub fn cost<W2>(self, cost: W2) -> StackBuilder<C, P, W2, R, B> {
        StackBuilder {
            classifier: self.classifier,
            total_deadline: self.total_deadline,
            attempt_timeout: self.attempt_timeout,
            retry: self.retry,
            breaker: self.breaker,
            rate_limit: self.rate_limit,
            listener: self.listener,
            cost,
            signal: self.signal,
        }
    }

    /// How to read rate-limit headers from responses, e.g. [`HeaderSignal`] with the `http`
    /// feature.
    ///
    #[cfg_attr(
        feature = "http",
        doc = "[`HeaderSignal`]: crate::ratelimit::HeaderSignal"
    )]
    #[cfg_attr(not(feature = "http"), doc = "[`HeaderSignal`]: crate#cargo-features")]
    pub fn read_signal<R2>(self, signal: R2) -> StackBuilder<C, P, W, R2, B> {
        StackBuilder {
            classifier: self.classifier,
            total_deadline: self.total_deadline,
            attempt_timeout: self.attempt_timeout,
            retry: self.retry,
            breaker: self.breaker,
            rate_limit: self.rate_limit,
            listener: self.listener,
            cost: self.cost,
            signal,
        }
    }

    /// Build every layer and check that they agree:
    ///
    /// - the attempt timeout is shorter than the total deadline (`stack.attempt_timeout`);
    /// - the retry layer's own deadline, if any, is within the total one (`retry.deadline`);
    /// - the worst-case sum of the backoff delays fits inside the total deadline
    ///   (`stack.total_deadline`), or every request would run out of time before its last
    ///   retry.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::classify::ByError;
    /// use riprap::stack::Stack;
    ///
    /// let err = Stack::builder(ByError)
    ///     .total_deadline(Duration::from_secs(1))
    ///     .attempt_timeout(Duration::from_secs(2))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.knob(), "stack.attempt_timeout");
    /// ```
    pub fn build(self) -> Result<StackLayer<C, P, W, R, B>, ConfigError>
    where
        C: Clone,
        P: TripPolicy,
        B: Budget,
    {
        let (attempts, retry_deadline, worst) = {
            let (attempts, deadline, backoff) = self.retry.plan();
            let retries = attempts.saturating_sub(1);
            (
                attempts,
                deadline,
                backoff.map(|p| p.worst_case_total(retries)),
            )
        };
        let mut retry = self.retry;
        if let Some(total) = self.total_deadline {
            if total.is_zero() {
                return Err(ConfigError::new(
                    "stack.total_deadline",
                    "must be greater than zero",
                ));
            }
            if let Some(attempt) = self.attempt_timeout.filter(|a| *a >= total) {
                return Err(ConfigError::new(
                    "stack.attempt_timeout",
                    format!(
                        "must be shorter than the total deadline {total:?} (got {attempt:?}); \
                         otherwise no attempt can ever be retried"
                    ),
                ));
            }
            if let Some(d) = retry_deadline.filter(|d| *d > total) {
                return Err(ConfigError::new(
                    "retry.deadline",
                    format!("must be within the stack's total deadline {total:?} (got {d:?})"),
                ));
            }
            if let Some(worst) = worst {
                if worst >= total {
                    return Err(ConfigError::new(
                        "stack.total_deadline",
                        format!(
                            "{total:?} cannot hold the retries' worst-case backoff of {worst:?} \
                             ({} retries): raise it, or lower retry.max_attempts or \
                             backoff.max_delay",
                            attempts.saturating_sub(1)
                        ),
                    ));
                }
            }
            // Retry must know the deadline, so it stops instead of sleeping into it.
            if retry_deadline.is_none() {
                retry = retry.deadline(total);
            }
        }
        if self.attempt_timeout.is_some_and(|a| a.is_zero()) {
            return Err(ConfigError::new(
                "stack.attempt_timeout",
                "must be greater than zero",
            ));
        }
        let classifier = self.classifier;
        let (mut breaker, mut rate_limit) = (self.breaker, self.rate_limit);
        if let Some(listener) = self.listener {
            retry = retry.listener(Arc::clone(&listener));
            breaker = breaker.listener(Arc::clone(&listener));
            rate_limit = rate_limit.listener(listener);
        }
        let retry = retry
            .classifier(Through(Through(Through(classifier.clone()))))
            .build()?;
        let breaker = breaker.build()?;
        let limiter = RateLimiter::new(rate_limit.build()?);
        Ok(StackLayer {
            classifier,
            total: self
                .total_deadline
                .map_or_else(TimeoutLayer::unlimited, TimeoutLayer::new),
            attempt: self
                .attempt_timeout
                .map_or_else(TimeoutLayer::unlimited, TimeoutLayer::new),
            retry,
            breaker,
            limiter,
            cost: self.cost,
            signal: self.signal,
        })
    }
}

/// The classifier each layer uses: yours, lifted through the error wrappers below it.
type AtRateLimit<C> = Through<C>;
type AtBreaker<C> = Through<Through<C>>;
type AtRetry<C> = Through<Through<Through<C>>>;

/// The service stack a [`StackLayer`] puts around a client `S`, before error flattening.
pub type Layers<S, C, P, W, R, B = RatioBudget> = Timeout<
    Retry<
        CircuitBreakerService<
            RateLimit<Timeout<S>, RateLimiter, W, AtRateLimit<C>, R>,
            P,
            AtBreaker<C>,
        >,
        AtRetry<C>,
        BackoffPolicy,
        B,
        ByClone,
    >,
>;

/// Every layer, built and validated; apply it to a client with [`Layer::layer`].
///
/// Cloning the layer shares the breaker, the budget and the limiter: every service it makes
/// protects the same dependency.
#[derive(Clone)]
pub struct StackLayer<C, P = ConsecutiveFailures, W = UnitCost, R = NoSignal, B = RatioBudget> {
    classifier: C,
    total: TimeoutLayer,
    attempt: TimeoutLayer,
    retry: RetryLayer<AtRetry<C>, BackoffPolicy, B, ByClone>,
    breaker: CircuitBreaker<P>,
    limiter: RateLimiter,
    cost: W,
    signal: R,
}

impl<C, P, W, R, B> StackLayer<C, P, W, R, B> {
    /// The shared circuit breaker, for its state, metrics and manual control.
    pub fn breaker(&self) -> &CircuitBreaker<P> {
        &self.breaker
    }

    /// The shared rate limiter, for its gate and current rate.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }
}

impl<C, P, W, R, B> std::fmt::Debug for StackLayer<C, P, W, R, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackLayer")
            .field("total", &self.total.limit())
            .field("attempt", &self.attempt.limit())
            .finish_non_exhaustive()
    }
}

impl<S, C, P, W, R, B> Layer<S> for StackLayer<C, P, W, R, B>
where
    C: Clone,
    P: TripPolicy,
    W: Clone,
    R: Clone,
{
    type Service = StackService<Layers<S, C, P, W, R, B>>;

    fn layer(&self, client: S) -> Self::Service {
        let attempt = self.attempt.layer(client);
        let limited = RateLimitLayer::new(self.limiter.clone())
            .cost(self.cost.clone())
            .classifier(Through(self.classifier.clone()))
            .read_signal(self.signal.clone())
            .layer(attempt);
        let guarded = CircuitBreakerLayer::new(self.breaker.clone())
            .classifier(Through(Through(self.classifier.clone())))
            .layer(limited);
        StackService::new(self.total.layer(self.retry.layer(guarded)))
    }
}
