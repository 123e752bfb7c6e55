//! The layers composed in the recommended order, sharing one classifier.
//!
//! ```text
//!   request
//!      │
//!   total deadline     the caller's patience: nothing below may outlast it
//!   retry + budget     decides whether another attempt is worth it, and waits
//!   circuit breaker    fails fast while the dependency is down, probes when it may be back
//!   rate limit         local quota, and the server's 429s pause every clone
//!   bulkhead           calls in flight, fixed or adaptive (none unless configured)
//!   attempt timeout    one attempt's limit, so a hung call becomes a retryable failure
//!      │
//!   client (any tower::Service)
//! ```
//!
//! Why this order:
//! - **Retry above the breaker**: every attempt, retries included, passes the breaker, so a
//!   dead dependency trips it within a few calls, and once it is open a retry is refused at
//!   once without reaching the dependency. The refusal says when the next probe is due (it
//!   classifies as [`Refused`](crate::classify::Class::Refused) with that delay), so retry
//!   waits for it or gives up at once when that is further off than it may wait. A breaker
//!   above retry would see one outcome per request, after all of its retries: it would trip
//!   later, and until then each request would hit the dead dependency `max_attempts` times.
//! - **Breaker above the rate limiter**: a rejected call never spends quota, and time spent
//!   waiting for quota is not counted as the dependency's latency.
//! - **Rate limit above the attempt timeout**: waiting for quota is not the dependency being
//!   slow, so it must not use up an attempt's time.
//! - **Bulkhead between the rate limiter and the attempt timeout**
//!   ([`StackBuilder::bulkhead`]): a call refused by the breaker or held by the rate limiter
//!   holds no permit, and an adaptive limit measures the dependency alone and hears its
//!   timeouts (below it) as [`TimedOut`](crate::classify::Class::TimedOut).
//! - **Total deadline on top**: it bounds everything, retries and waits included; retry also
//!   knows it, so it stops instead of sleeping into it.
//!
//! One [`Classify`] policy, written for your client's own response
//! and error types, is shared by every layer: riprap lifts it through each layer's error
//! wrapper with [`Through`]. Errors come out flattened into one [`StackError`], which carries
//! that classifier's verdict on the final failure.
//!
//! ## Presets and types
//!
//! [`StackBuilder::new`] starts from riprap's defaults; [`StackBuilder::llm_api`],
//! [`StackBuilder::object_store`] and [`StackBuilder::database`] start from a preset whose
//! every knob can be changed. A built stack wraps a client in a long type; the aliases
//! [`LlmStack`], [`ObjectStoreStack`], [`DatabaseStack`] and [`DefaultStack`] name it, so a
//! stacked client can be a struct field. For app state shared across handlers, a
//! `tower::util::BoxCloneService` erases it:
//!
//! ```
//! use std::time::Duration;
//! use riprap::classify::ByError;
//! use riprap::stack::{DefaultStack, StackBuilder, StackError};
//! use tower::util::BoxCloneService;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! type Lookup = fn(u32) -> std::future::Ready<Result<String, std::io::Error>>;
//!
//! struct AppState {
//!     // Named with the preset's alias...
//!     users: DefaultStack<tower::util::ServiceFn<Lookup>, ByError>,
//!     // ...or erased, when the type does not matter.
//!     orders: BoxCloneService<u32, String, StackError<std::io::Error>>,
//! }
//!
//! # fn main() -> Result<(), riprap::ConfigError> {
//! let stack = StackBuilder::new(ByError).attempt_timeout(Duration::from_secs(2)).build()?;
//! let lookup: Lookup = |id| std::future::ready(Ok(format!("user {id}")));
//! let state = AppState {
//!     users: stack.layer(service_fn(lookup)),
//!     orders: BoxCloneService::new(stack.layer(service_fn(lookup))),
//! };
//! # drop(state);
//! # Ok(()) }
//! ```
//!
//! ## Clients as they are
//!
//! - **Requests that are not `Clone`**: the retry layer copies a request before each retry;
//!   `reqwest::Request` is copied with `retry::TryClone` (feature
//!   `reqwest`), `.clone_requests(TryClone)`, which sends a streamed body once and never
//!   retries it. Any [`CloneRequest`] policy and any backoff
//!   type fit.
//! - **Failures that arrive as responses**: an HTTP 503 arrives as `Ok(response)`. By default
//!   the stack hands the last response back as `Ok`, as `tower::retry` does, whatever its
//!   class. With [`responses_as_errors`](StackBuilder::responses_as_errors), a response the
//!   stack gave up on comes back as a [`StackError`] whose [`Failure::Response`] holds it,
//!   body still readable, with the attempts made and the classifier's verdict.
//! - **A stack under a resumable stream**: a [`StackError`] classifies by its verdict on the
//!   final failure, so a [`Resumable`](crate::stream::Resumable) over a stacked source
//!   reconnects after a transient give-up and ends on a permanent one.
//!
//! ```
//! use std::time::Duration;
//! use riprap::classify::ByError;
//! use riprap::stack::{Failure, StackBuilder};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let stack = StackBuilder::new(ByError)
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
use tower_service::Service;

pub use error::{Failure, StackError};
pub use service::{AsErrors, AsOk, Classifying, ResponseFuture, StackService};

use crate::backoff::{BackoffPolicy, MakeBackoff};
use crate::breaker::{
    AnyOf, BreakerBuilder, CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService,
    ConsecutiveFailures, CountWindow, TimeWindow, TripPolicy,
};
use crate::budget::{Budget, RatioBudget};
use crate::bulkhead::{Bulkhead, BulkheadBuilder, BulkheadLayer, BulkheadService, Priority};
use crate::classify::{ByError, Classify, Through};
use crate::error::ConfigError;
use crate::events::{Listener, SharedListener};
use crate::ratelimit::{
    Cost, NoSignal, RateLimit, RateLimitConfig, RateLimitConfigBuilder, RateLimitLayer,
    RateLimiter, ReadSignal, UnitCost,
};
use crate::retry::{ByClone, CloneRequest, Retry, RetryConfig, RetryLayer};
use crate::timeout::{Timeout, TimeoutLayer};

/// Builder for a [`StackLayer`]; see the [module docs](self). [`build`](Self::build) checks
/// that the layers agree with each other.
///
/// The type parameters are the stack's policies: classifier `C`, trip policy `T`, request cost
/// `W`, header signal `H`, retry budget `B`, backoff `D`, request copying `R`, and whether
/// failing responses come back as errors, `M`. Each setter that changes a policy changes its
/// letter; the defaults are riprap's.
#[must_use = "a builder does nothing until `build()` is called"]
pub struct StackBuilder<
    C,
    T = ConsecutiveFailures,
    W = UnitCost,
    H = NoSignal,
    B = RatioBudget,
    D = BackoffPolicy,
    R = ByClone,
    M = AsOk,
> {
    classifier: C,
    retry: RetryConfig<ByError, D, B>,
    requests: R,
    breaker: BreakerBuilder<T>,
    limit: (W, H),
    mode: M,
    knobs: Knobs,
}

crate::knobs::knobs! {
    /// The knobs that are plain values, grouped so that a setter changing a policy's type moves
    /// them in one piece. [`StackSpec`] is written from the same list.
    struct Knobs;

    impl<C, T, W, H, B, D, R, M> StackBuilder<C, T, W, H, B, D, R, M>;

    /// A [stack](self) as plain data: deadlines plus each layer's spec (feature `serde`).
    /// Absent parts keep the defaults of [`StackBuilder::new`].
    ///
    /// ```
    /// use riprap::classify::ByError;
    /// use riprap::stack::StackSpec;
    ///
    /// let spec: StackSpec = toml::from_str(r#"
    ///     total_deadline = "30s"
    ///     attempt_timeout = "5s"
    ///
    ///     [retry]
    ///     max_attempts = 4
    ///
    ///     [breaker]
    ///     consecutive_failures = 10
    ///     open_for = "15s"
    ///
    ///     [rate_limit]
    ///     requests = { rate = 600, per = "1m" }
    /// "#)?;
    /// let stack = spec.builder(ByError)?.build()?;
    /// # let _ = stack;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct StackSpec;

    /// The most a logical request may take, retries and waits included.
    total_deadline: Option<Duration> = None,

    /// The most one attempt may take; a slower attempt fails as
    /// [`TimedOut`](crate::classify::Class::TimedOut) and may be retried.
    attempt_timeout: Option<Duration> = None,

    /// The retry layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<crate::retry::RetrySpec>,

    /// The circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<crate::breaker::BreakerSpec>,

    /// The rate limiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::ratelimit::RateLimitSpec>,

    manual rate_limit: RateLimitConfigBuilder = RateLimitConfig::builder(),

    /// The bulkhead, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulkhead: Option<crate::bulkhead::BulkheadSpec>,

    manual bulkhead: Option<BulkheadBuilder> = None,

    manual listener: Option<SharedListener> = None,
}

impl<C> StackBuilder<C> {
    /// A stack classifying outcomes with `classifier`, with riprap's default layers: 3 attempts
    /// with full-jitter backoff and a 20 % retry budget, a breaker tripping after 5
    /// consecutive failures, no local quota (server throttles still pause every clone), and
    /// no deadlines until you set them.
    pub fn new(classifier: C) -> Self {
        StackBuilder {
            classifier,
            retry: RetryConfig::new(),
            requests: ByClone,
            breaker: CircuitBreaker::builder(),
            limit: (UnitCost, NoSignal),
            mode: AsOk,
            knobs: Knobs::default(),
        }
    }
}

impl<C> StackBuilder<C, AnyOf<ConsecutiveFailures, TimeWindow>> {
    /// An LLM API: slow calls, strict per-minute quotas, `Retry-After` on every 429.
    ///
    /// Total deadline 120 s and attempt timeout 60 s (a long completion is normal; a hung
    /// connection is not); [`RetryConfig::llm_api`] (3 attempts, 0.5–8 s full jitter, server
    /// delays sat out up to 60 s); [`BreakerBuilder::llm_api`] (5 consecutive failures or half
    /// of a minute's calls, open 15 s growing to 2 min, one probe). Set your quotas with
    /// [`StackBuilder::rate_limit`] and read the provider's headers with
    /// [`StackBuilder::read_signal`].
    pub fn llm_api(classifier: C) -> Self {
        StackBuilder::new(classifier)
            .total_deadline(Duration::from_secs(120))
            .attempt_timeout(Duration::from_secs(60))
            .retry(RetryConfig::llm_api())
            .breaker(BreakerBuilder::llm_api())
    }

    /// A database: short calls, a connection pool to protect, serialization failures to retry.
    ///
    /// Total deadline 10 s, attempt timeout 2 s; [`RetryConfig::database`] (4 attempts,
    /// 20 ms–1 s); [`BreakerBuilder::database`].
    pub fn database(classifier: C) -> Self {
        StackBuilder::new(classifier)
            .total_deadline(Duration::from_secs(10))
            .attempt_timeout(Duration::from_secs(2))
            .retry(RetryConfig::database())
            .breaker(BreakerBuilder::database())
    }
}

impl<C> StackBuilder<C, CountWindow> {
    /// An object store: many parallel reads, tail latency, occasional 503 SlowDown.
    ///
    /// Total deadline 180 s, attempt timeout 30 s; [`RetryConfig::object_store`] (5 attempts,
    /// 100 ms–15 s); [`BreakerBuilder::object_store`] (failure or slow-call rate over the last
    /// 200 calls, open 5 s growing to 60 s).
    pub fn object_store(classifier: C) -> Self {
        StackBuilder::new(classifier)
            .total_deadline(Duration::from_secs(180))
            .attempt_timeout(Duration::from_secs(30))
            .retry(RetryConfig::object_store())
            .breaker(BreakerBuilder::object_store())
    }
}

impl<C, T, W, H, B, D, R, M> StackBuilder<C, T, W, H, B, D, R, M> {
    /// Report every layer's events to `listener`: the retry layer's, the breaker's and the
    /// rate limiter's, whatever preset the stack started from (it replaces a listener set on
    /// one of the layers' own configs).
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.knobs.listener = Some(Arc::new(listener));
        self
    }

    /// The retry knobs (attempts, backoff, budget, the longest server delay sat out, seed,
    /// listener). Its classifier is replaced by the stack's; how requests are copied is the
    /// stack's own knob, [`clone_requests`](Self::clone_requests), so it holds whichever of
    /// the two is set first.
    pub fn retry<B2, D2>(
        self,
        retry: RetryConfig<ByError, D2, B2>,
    ) -> StackBuilder<C, T, W, H, B2, D2, R, M> {
        StackBuilder {
            classifier: self.classifier,
            retry,
            requests: self.requests,
            breaker: self.breaker,
            limit: self.limit,
            mode: self.mode,
            knobs: self.knobs,
        }
    }

    /// How requests are copied for retries: `retry::TryClone` for
    /// `reqwest::Request` (feature `reqwest`), or any
    /// [`CloneRequest`]. Default: `Clone`.
    pub fn clone_requests<R2>(self, requests: R2) -> StackBuilder<C, T, W, H, B, D, R2, M> {
        StackBuilder {
            classifier: self.classifier,
            retry: self.retry,
            requests,
            breaker: self.breaker,
            limit: self.limit,
            mode: self.mode,
            knobs: self.knobs,
        }
    }

    /// The circuit breaker's knobs.
    pub fn breaker<T2>(self, breaker: BreakerBuilder<T2>) -> StackBuilder<C, T2, W, H, B, D, R, M> {
        StackBuilder {
            classifier: self.classifier,
            retry: self.retry,
            requests: self.requests,
            breaker,
            limit: self.limit,
            mode: self.mode,
            knobs: self.knobs,
        }
    }

    /// The rate limiter's knobs (local quotas, max wait, server-signal handling).
    pub fn rate_limit(mut self, rate_limit: RateLimitConfigBuilder) -> Self {
        self.knobs.rate_limit = rate_limit;
        self
    }

    /// Limit the calls in flight with a bulkhead (fixed or adaptive), between the rate limiter
    /// and the attempt timeout; by default there is none.
    ///
    /// ```
    /// use riprap::bulkhead::{Bulkhead, Gradient};
    /// use riprap::classify::ByError;
    /// use riprap::stack::StackBuilder;
    ///
    /// let stack = StackBuilder::new(ByError)
    ///     .bulkhead(Bulkhead::builder().adaptive(Gradient::builder().build()?))
    ///     .build()?;
    /// assert!(stack.bulkhead().metrics().limit > 0);
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn bulkhead(mut self, bulkhead: BulkheadBuilder) -> Self {
        self.knobs.bulkhead = Some(bulkhead);
        self
    }

    /// The cost of a request against the cost quota (e.g. estimated LLM tokens).
    pub fn cost<W2>(self, cost: W2) -> StackBuilder<C, T, W2, H, B, D, R, M> {
        StackBuilder {
            classifier: self.classifier,
            retry: self.retry,
            requests: self.requests,
            breaker: self.breaker,
            limit: (cost, self.limit.1),
            mode: self.mode,
            knobs: self.knobs,
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
    pub fn read_signal<H2>(self, signal: H2) -> StackBuilder<C, T, W, H2, B, D, R, M> {
        StackBuilder {
            classifier: self.classifier,
            retry: self.retry,
            requests: self.requests,
            breaker: self.breaker,
            limit: (self.limit.0, signal),
            mode: self.mode,
            knobs: self.knobs,
        }
    }

    /// Hand back a response the stack gave up on (a 503 after the last attempt, a 400 at
    /// once) as a [`StackError`] with [`Failure::Response`], instead of as `Ok`. The response
    /// keeps its body, and the error its attempts and the classifier's verdict.
    ///
    /// ```
    /// use riprap::classify::{classify_fn, Class};
    /// use riprap::stack::{Failure, StackBuilder};
    /// use tower::{Layer, ServiceExt, service_fn};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let by_status = classify_fn(|out: Result<&u16, &std::io::Error>| match out {
    ///     Ok(s) if *s >= 500 => Class::Transient,
    ///     Ok(s) if *s >= 400 => Class::Permanent,
    ///     Ok(_) => Class::Success,
    ///     Err(_) => Class::Transient,
    /// });
    /// let stack = StackBuilder::new(by_status).responses_as_errors().build()?;
    /// let client = service_fn(|_: ()| async { Ok::<u16, std::io::Error>(400) });
    /// let err = stack.layer(client).oneshot(()).await.unwrap_err();
    /// assert!(matches!(err.failure(), Failure::Response(400)));
    /// assert_eq!(err.class(), Class::Permanent);
    /// assert_eq!(err.attempts(), Some(1)); // a 400 is never retried
    /// # Ok(()) }
    /// ```
    pub fn responses_as_errors(self) -> StackBuilder<C, T, W, H, B, D, R, AsErrors> {
        StackBuilder {
            classifier: self.classifier,
            retry: self.retry,
            requests: self.requests,
            breaker: self.breaker,
            limit: self.limit,
            mode: AsErrors,
            knobs: self.knobs,
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
    /// use riprap::stack::StackBuilder;
    ///
    /// let err = StackBuilder::new(ByError)
    ///     .total_deadline(Duration::from_secs(1))
    ///     .attempt_timeout(Duration::from_secs(2))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.knob(), "stack.attempt_timeout");
    /// ```
    #[allow(clippy::type_complexity)] // every policy of the stack, named once
    pub fn build(self) -> Result<StackLayer<C, T, W, H, B, D, R, M>, ConfigError>
    where
        C: Clone,
        T: TripPolicy,
        B: Budget,
        D: MakeBackoff,
    {
        let knobs = self.knobs;
        let (attempts, retry_deadline, worst) = {
            let (attempts, deadline, backoff) = self.retry.plan();
            let retries = attempts.saturating_sub(1);
            (
                attempts,
                deadline,
                backoff.and_then(|p| p.max_total_delay(retries)),
            )
        };
        let mut retry = self.retry.clone_requests(self.requests);
        if let Some(total) = knobs.total_deadline {
            if total.is_zero() {
                return Err(ConfigError::new(
                    "stack.total_deadline",
                    "must be greater than zero",
                ));
            }
            if let Some(attempt) = knobs.attempt_timeout.filter(|a| *a >= total) {
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
        if knobs.attempt_timeout.is_some_and(|a| a.is_zero()) {
            return Err(ConfigError::new(
                "stack.attempt_timeout",
                "must be greater than zero",
            ));
        }
        let classifier = self.classifier;
        let (mut breaker, mut rate_limit) = (self.breaker, knobs.rate_limit);
        let mut bulkhead = knobs.bulkhead;
        if let Some(listener) = knobs.listener {
            retry = retry.listener(Arc::clone(&listener));
            breaker = breaker.listener(Arc::clone(&listener));
            bulkhead = bulkhead.map(|b| b.listener(Arc::clone(&listener)));
            rate_limit = rate_limit.listener(listener);
        }
        let retry = retry
            .classifier(Through(Through(Through(Through(classifier.clone())))))
            .build()?;
        let bulkhead =
            bulkhead.map_or_else(|| Ok(Bulkhead::unlimited()), BulkheadBuilder::build)?;
        let breaker = breaker.build()?;
        let limiter = RateLimiter::new(rate_limit.build()?);
        Ok(StackLayer {
            classifier,
            total: knobs
                .total_deadline
                .map_or_else(TimeoutLayer::unlimited, TimeoutLayer::new),
            attempt: knobs
                .attempt_timeout
                .map_or_else(TimeoutLayer::unlimited, TimeoutLayer::new),
            retry,
            breaker,
            limiter,
            bulkhead,
            limit: self.limit,
            mode: self.mode,
        })
    }
}

/// The classifier each layer uses: yours, lifted through the error wrappers below it.
type AtBulkhead<C> = Through<C>;
type AtRateLimit<C> = Through<Through<C>>;
type AtBreaker<C> = Through<Through<Through<C>>>;
type AtRetry<C> = Through<Through<Through<Through<C>>>>;

/// The service stack a [`StackLayer`] puts around a client `S`, before error flattening.
pub type Layers<S, C, T, W, H, B = RatioBudget, D = BackoffPolicy, R = ByClone> = Timeout<
    Retry<
        CircuitBreakerService<
            RateLimit<
                BulkheadService<Timeout<S>, Bulkhead, Priority, AtBulkhead<C>>,
                RateLimiter,
                W,
                AtRateLimit<C>,
                H,
            >,
            T,
            AtBreaker<C>,
        >,
        AtRetry<C>,
        D,
        B,
        R,
    >,
>;

/// A client `S` behind a stack with every policy named: what [`StackLayer::layer`] returns.
pub type Stacked<S, C, T, W, H, B, D, R, M> = StackService<Layers<S, C, T, W, H, B, D, R>, C, M>;

/// A client behind [`StackBuilder::new`]'s stack, with header signal `H` (default none),
/// request copying `R` (default `Clone`), and `M` = [`AsErrors`] after
/// [`responses_as_errors`](StackBuilder::responses_as_errors) (default [`AsOk`]).
pub type DefaultStack<S, C, H = NoSignal, R = ByClone, M = AsOk> =
    Stacked<S, C, ConsecutiveFailures, UnitCost, H, RatioBudget, BackoffPolicy, R, M>;

/// A client behind [`StackBuilder::llm_api`]'s stack, with header signal `H` (default none),
/// request copying `R` (default `Clone`), request cost `W` (default one unit), and `M` =
/// [`AsErrors`] after [`responses_as_errors`](StackBuilder::responses_as_errors).
///
/// ```
/// # #[cfg(feature = "reqwest")] {
/// use riprap::classify::HttpStatus;
/// use riprap::ratelimit::HeaderSignal;
/// use riprap::retry::TryClone;
/// use riprap::stack::LlmStack;
///
/// /// An app's client for its LLM provider, as a struct field.
/// struct Provider {
///     http: LlmStack<reqwest::Client, HttpStatus, HeaderSignal, TryClone>,
/// }
/// # }
/// ```
pub type LlmStack<S, C, H = NoSignal, R = ByClone, W = UnitCost, M = AsOk> =
    Stacked<S, C, AnyOf<ConsecutiveFailures, TimeWindow>, W, H, RatioBudget, BackoffPolicy, R, M>;

/// A client behind [`StackBuilder::object_store`]'s stack (parameters as for [`DefaultStack`]).
pub type ObjectStoreStack<S, C, H = NoSignal, R = ByClone, M = AsOk> =
    Stacked<S, C, CountWindow, UnitCost, H, RatioBudget, BackoffPolicy, R, M>;

/// A client behind [`StackBuilder::database`]'s stack (parameters as for [`DefaultStack`]).
pub type DatabaseStack<S, C, R = ByClone, M = AsOk> = Stacked<
    S,
    C,
    AnyOf<ConsecutiveFailures, TimeWindow>,
    UnitCost,
    NoSignal,
    RatioBudget,
    BackoffPolicy,
    R,
    M,
>;

/// Every layer, built and validated; apply it to a client with [`Layer::layer`].
///
/// Cloning the layer shares the breaker, the budget and the limiter: every service it makes
/// protects the same dependency.
#[derive(Clone)]
pub struct StackLayer<
    C,
    T = ConsecutiveFailures,
    W = UnitCost,
    H = NoSignal,
    B = RatioBudget,
    D = BackoffPolicy,
    R = ByClone,
    M = AsOk,
> {
    classifier: C,
    total: TimeoutLayer,
    attempt: TimeoutLayer,
    retry: RetryLayer<AtRetry<C>, D, B, R>,
    breaker: CircuitBreaker<T>,
    limiter: RateLimiter,
    bulkhead: Bulkhead,
    limit: (W, H),
    mode: M,
}

impl<C, T, W, H, B, D, R, M> StackLayer<C, T, W, H, B, D, R, M> {
    /// The shared bulkhead, for its limit and metrics (unlimited unless configured).
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    /// The shared circuit breaker, for its state, metrics and manual control.
    pub fn breaker(&self) -> &CircuitBreaker<T> {
        &self.breaker
    }

    /// The shared rate limiter, for its gate and current rate.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The shared retry budget.
    pub fn budget(&self) -> &B {
        self.retry.budget()
    }

    /// Put `client` behind every layer, as [`Layer::layer`] does, checking first that the
    /// stack's policies fit the client: the classifier its responses and errors, the copy
    /// policy its requests, the cost and signal readers its requests and responses. A misfit
    /// is reported here, naming the policy and the fix, rather than as an unsatisfied bound
    /// on the composed service's long type at its first call.
    ///
    /// With `reqwest::Client` and the default copy policy, rustc says: "riprap cannot copy a
    /// `reqwest::Request` to send it again with `ByClone`", notes that a request that is not
    /// `Clone` needs its own copy policy, and that `TryClone` implements
    /// `CloneRequest<reqwest::Request>` (`tests/ui/reqwest_request_needs_try_clone.stderr`
    /// holds the whole message, checked in CI).
    #[allow(clippy::type_complexity)]
    pub fn layer<S, Req>(&self, client: S) -> Stacked<S, C, T, W, H, B, D, R, M>
    where
        S: Service<Req> + Clone,
        R: CloneRequest<Req>,
        C: Classify<S::Response, S::Error> + Clone,
        W: Cost<Req> + Clone,
        H: ReadSignal<S::Response> + Clone,
        T: TripPolicy,
        M: Clone,
    {
        <Self as Layer<S>>::layer(self, client)
    }
}

impl<C, T, W, H, B, D, R, M> std::fmt::Debug for StackLayer<C, T, W, H, B, D, R, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackLayer")
            .field("total", &self.total.limit())
            .field("attempt", &self.attempt.limit())
            .finish_non_exhaustive()
    }
}

impl<S, C, T, W, H, B, D, R, M> Layer<S> for StackLayer<C, T, W, H, B, D, R, M>
where
    S: Clone,
    C: Clone,
    T: TripPolicy,
    W: Clone,
    H: Clone,
    M: Clone,
{
    type Service = Stacked<S, C, T, W, H, B, D, R, M>;

    fn layer(&self, client: S) -> Self::Service {
        let attempt = self.attempt.layer(client);
        let bulkheaded = BulkheadLayer::new(self.bulkhead.clone())
            .classifier(Through(self.classifier.clone()))
            .layer(attempt);
        let limited = RateLimitLayer::new(self.limiter.clone())
            .cost(self.limit.0.clone())
            .classifier(Through(Through(self.classifier.clone())))
            .read_signal(self.limit.1.clone())
            .layer(bulkheaded);
        let guarded = CircuitBreakerLayer::new(self.breaker.clone())
            .classifier(Through(Through(Through(self.classifier.clone()))))
            .layer(limited);
        StackService::new(
            self.total.layer(Layer::layer(&self.retry, guarded)),
            self.classifier.clone(),
            self.mode.clone(),
        )
    }
}
