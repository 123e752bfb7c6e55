//! Retries with backoff, bounded three ways: per request, per process, and by the server.
//!
//! [`RetryLayer`] wraps any `tower::Service`. For each logical request it makes a first
//! attempt, asks the [`Classify`](crate::classify::Classify) policy what the outcome was, and
//! retries [transient](crate::classify::Class::Transient) and
//! [throttled](crate::classify::Class::Throttled) failures, never permanent ones, while:
//!
//! 1. **attempts remain**: `max_attempts` in all, first included (default 3);
//! 2. **the deadline allows it**: with a [`deadline`](RetryConfig::deadline), a retry that
//!    could not start before it is not waited for: the layer stops at once;
//! 3. **the request can be sent again**: a [`CloneRequest`] policy copies it (by `Clone` unless
//!    you say otherwise); with the `http` feature, [`IdempotentOnly`] refuses to replay a POST
//!    that has no `Idempotency-Key`;
//! 4. **the shared [`Budget`](crate::budget::Budget) pays for it**: process-wide, so a fleet
//!    of failing requests cannot multiply the load on a struggling dependency. See
//!    [`budget`](crate::budget) for the arithmetic and the choice of budget.
//!
//! Between attempts it waits the [backoff](crate::backoff) delay, and never less than a delay
//! the server asked for (a `Retry-After`, or an open breaker's time to its next probe): the
//! server's delay is a floor, not a hint. When honouring it would take longer than
//! [`max_retry_after`](RetryConfig::max_retry_after) (60 s by default) or run past the
//! deadline, the layer does not send early and buy another refusal: it gives up at once with
//! [`GiveUp::WaitTooLong`], and [`RetryError::retry_at`] says when the server will take calls
//! again. A throttle without a delay waits the backoff delay.
//!
//! ```
//! use std::time::Duration;
//! use riprap::budget::RatioBudget;
//! use riprap::classify::{classify_fn, Class};
//! use riprap::retry::{GiveUp, RetryConfig};
//! use tower::{Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let budget = RatioBudget::default(); // one per dependency, shared by every layer using it
//! let layer = RetryConfig::llm_api()
//!     .classifier(classify_fn(|out: Result<&u16, &std::io::Error>| match out {
//!         Ok(429) => Class::Throttled { retry_after: Some(Duration::from_secs(20)) },
//!         Ok(s) if *s >= 500 => Class::Transient,
//!         Ok(s) if *s >= 400 => Class::Permanent,
//!         Ok(_) => Class::Success,
//!         Err(_) => Class::Transient,
//!     }))
//!     .budget(budget.clone())
//!     .build()?;
//!
//! let start = tokio::time::Instant::now();
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let mut svc = tower::ServiceBuilder::new().layer(layer).service(service_fn(move |_: ()| {
//!     let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     let status = if n == 0 { 429 } else { 200 };
//!     async move { Ok::<u16, std::io::Error>(status) }
//! }));
//! assert_eq!(svc.ready().await?.call(()).await?, 200);
//! assert_eq!(start.elapsed(), Duration::from_secs(20)); // the server's delay, not the backoff
//! # Ok(()) }
//! ```
//!
//! ## When it gives up
//!
//! An error comes back as a [`RetryError`] saying why ([`GiveUp`]), after how many attempts,
//! with the last attempt's error inside ([`RetryError::into_inner`]). A failure that arrived
//! as `Ok` (an HTTP 503 response that the classifier calls transient) comes back as that last
//! `Ok` response, as with `tower::retry`: the caller still sees the status, headers and body,
//! and the [`RetryEvent::GaveUp`] event says why retrying stopped. A [`RetryError`] classifies
//! itself as permanent, so a retry layer above this one does not retry it again.
//!
//! ## Presets
//!
//! [`RetryConfig::llm_api`], [`RetryConfig::object_store`] and [`RetryConfig::database`] set
//! attempts, backoff and deadline for those dependencies and explain why; every knob can be
//! changed after.
//!
//! ## From a config file
//!
//! With the `serde` feature, `RetrySpec` holds the knobs that are data (attempts, deadline,
//! the longest server delay sat out, backoff, budget) and reads them from TOML, YAML or JSON with human
//! durations; `RetrySpec::config()` gives a [`RetryConfig`] to add the classifier to:
//!
//! ```toml
//! max_attempts = 4
//! deadline = "30s"
//! max_retry_after = "1m"
//! backoff = { base = "250ms", max_delay = "8s" }   # see `BackoffSpec`
//! budget = { ratio_budget = { ratio = 0.1 } }      # see `BudgetSpec`
//! ```
//!
//! ## Observing
//!
//! Each logical request runs in a `riprap.retry` `tracing` span, with an event per attempt and
//! one when it gives up; the same [`RetryEvent`]s go to a
//! [`Listener`](crate::events::Listener) set with [`RetryConfig::listener`]. The scheme is the
//! [events guide](crate::events)'s:
//!
//! | target | span / message | level | fields |
//! |---|---|---|---|
//! | `riprap::retry` | span `riprap.retry`, one per logical request (opened only when `debug` is enabled somewhere) | debug | `attempts` (recorded when it ends) |
//! | `riprap::retry` | `attempt succeeded` | trace on the first attempt, else debug | `event="attempt"`, `attempt`, `class` |
//! | `riprap::retry` | `attempt failed, retrying` | debug | `event="attempt"`, `attempt`, `class`, `delay_ms` |
//! | `riprap::retry` | `attempt failed` (the last) | debug | `event="attempt"`, `attempt`, `class` |
//! | `riprap::retry` | `gave up` | warn (debug when `reason="permanent"`) | `event="gave_up"`, `attempts`, `reason` |
//!
//! With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_retry_attempts_total` | counter | `class` (`success`, `transient`, `timed_out`, `throttled`, `refused`, `permanent`) | attempts, by the classifier's verdict |
//! | `riprap_retry_giveups_total` | counter | `reason` (`permanent`, `attempts_exhausted`, `backoff_exhausted`, `budget_refused`, `deadline`, `wait_too_long`, `not_retryable`, `not_ready`) | requests that stopped without a success |
//! | `riprap_retry_delay_seconds` | histogram | | waits scheduled before a retry |
//!
//! ## Cancellation and cost
//!
//! Dropping a [`ResponseFuture`] at any point leaks nothing: the budget pays for a retry when
//! it is scheduled and the withdrawal is held while the request waits, so a request abandoned
//! mid-backoff hands it back and spends nothing; no task is spawned. On the success path the layer reads no clock (unless a
//! deadline is set), allocates nothing, and touches the budget with one atomic add.
//!
// Without the feature, the link goes to the table of Cargo features.
#![cfg_attr(
    not(feature = "http"),
    doc = "[`IdempotentOnly`]: crate#cargo-features"
)]

use crate::engine::Rules;
use crate::events::SharedListener;

mod config;
mod error;
mod event;
mod future;
mod layer;
mod service;
#[cfg(feature = "serde")]
mod spec;

pub use crate::engine::{DEFAULT_MAX_RETRY_AFTER, GiveUp};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config::RetrySpec;
pub use config::{DEFAULT_MAX_ATTEMPTS, MAX_ATTEMPTS_LIMIT, RetryConfig};
pub use error::{Boxed, RetryError};
pub use event::RetryEvent;
pub use future::ResponseFuture;
pub use layer::RetryLayer;
// How a request is copied for another attempt is shared with hedging and fallback.
#[cfg(feature = "reqwest")]
pub use crate::request::TryClone;
#[cfg(feature = "http")]
pub use crate::request::{AssumeIdempotent, IdempotentOnly};
pub use crate::request::{ByClone, CloneRequest};
pub use service::Retry;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::SpecRetryConfig;

/// Everything the services of one layer share.
pub(crate) struct Shared<C, P, B, R> {
    pub(crate) classifier: C,
    pub(crate) rules: Rules<P, B>,
    pub(crate) requests: R,
    pub(crate) listener: Option<SharedListener>,
}
