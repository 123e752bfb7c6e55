//! Hedging: when the first attempt is slow, send another; the first answer wins.
//!
//! Tail latency is mostly bad luck: a garbage-collection pause, a cold cache, a busy
//! replica. Waiting it out makes a 1-in-20 slow call every user's problem once a page makes
//! twenty calls. A hedge is a second copy of the request, sent after a delay the fast calls
//! never reach; whichever answers first is returned and the other is cancelled. Set the
//! delay at a high percentile of normal latency and only the slow tail pays for a hedge.
//!
//! ```
//! use std::time::Duration;
//! use riprap::hedge::HedgeLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let seen = calls.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(HedgeLayer::builder().delay(Duration::from_millis(50)).build()?)
//!     .service_fn(move |q: &'static str| {
//!         // The first attempt hits a slow replica; the hedge a fast one.
//!         let slow = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
//!         async move {
//!             let ms = if slow { 1_000 } else { 20 };
//!             tokio::time::sleep(Duration::from_millis(ms)).await;
//!             Ok::<_, std::io::Error>(q.len())
//!         }
//!     });
//!
//! let start = tokio::time::Instant::now();
//! assert_eq!(svc.oneshot("hello").await?, 5);
//! assert_eq!(start.elapsed(), Duration::from_millis(70)); // 50 ms delay + 20 ms hedge
//! # Ok(()) }
//! ```
//!
//! ## Semantics (Polly v8's, with a budget)
//!
//! | | riprap | Polly v8 |
//! |---|---|---|
//! | hedges | [`max_hedged_attempts`](HedgeBuilder::max_hedged_attempts), 1 to 10, default 1 | `MaxHedgedAttempts`, the same |
//! | latency mode | [`delay`](HedgeBuilder::delay) (default 2 s): a hedge after the delay without an answer, counted from the last attempt sent | `Delay > 0` |
//! | parallel mode | `delay(Duration::ZERO)`: every hedge at once | `Delay = 0` |
//! | fallback mode | [`on_failure_only`](HedgeBuilder::on_failure_only): one attempt at a time, the next after a failure | `Delay < 0` |
//! | dynamic delay | [`delay_percentile`](HedgeBuilder::delay_percentile): a percentile of recent latencies | `DelayGenerator` |
//! | what is a failure | the [`classifier`](HedgeBuilder::classifier): a transient failure or a timeout sends the next hedge at once | `ShouldHandle` |
//! | the answer | the first success or permanent error; the other attempts are dropped (cancelled) | the first unhandled outcome |
//! | all attempts fail | the original attempt's failure, unless one was throttled | the original attempt's failure |
//! | what pays | the retry [`budget`](HedgeBuilder::budget): a deposit per request, a withdrawal per hedge, a refund for a hedge not sent | nothing |
//! | what may be hedged | what the [copy policy](HedgeBuilder::clone_requests) copies | every request |
//!
//! Two rules riprap adds:
//!
//! - **Never earlier than the server asked.** An attempt throttled (a 429) or refused by a
//!   local layer (an open breaker, a full bulkhead) stops hedging for the request: what is
//!   in flight may still answer, nothing more is sent, and if nothing answers the throttle
//!   is the failure returned, so a retry layer above sees the server's delay.
//! - **Hedges are paid for.** Each hedge withdraws from a [`Budget`](crate::budget::Budget)
//!   shared with the retry layer, so hedges and retries to one dependency together stay
//!   within one ratio of its traffic; a refusal sends no hedge ([`HedgeEvent::BudgetRefused`]).
//!   A hedge waiting for its service to be ready when the answer arrives was never sent, and
//!   its withdrawal goes back.
//!
//! ## Only idempotent requests
//!
//! A hedged request may be executed twice. Hedge only requests that are safe to repeat: the
//! copy policy decides, as for retries ([`CloneRequest`](crate::retry::CloneRequest)); with
//! the `http` feature `retry::IdempotentOnly` copies GET, PUT,
//! DELETE and requests carrying an `Idempotency-Key`. A request that is not copied is sent
//! once, at no extra cost.
//!
//! ## In a tower stack
//!
//! Put hedging **below retry and above the breaker, the rate limiter and the bulkhead**:
//! every hedge passes the breaker and takes its own quota and permit, and a retry layer
//! above retries the hedged request as a whole. Give both the same budget, and turn the
//! hedge layer's own deposits off ([`deposits(false)`](HedgeBuilder::deposits)): the retry
//! layer already deposits once per logical request.
//!
//! ## Cost
//!
//! A request answered before the delay costs a budget deposit, a copy of the request, a
//! clone of the inner service and a timer: no lock and no allocation beyond what the copies
//! allocate. Each hedge sent allocates its attempt. With a percentile delay, each answer is
//! also recorded (an atomic increment and store; every 32nd recomputes the percentile from
//! a copy of the last 256).
//!
//! ## Observing
//!
//! What it does goes to `tracing` (target `riprap::hedge`; levels and fields in
//! [`HedgeEvent`]'s table) and, as [`HedgeEvent`]s, to a [`Listener`](crate::events::Listener) set
//! with [`HedgeBuilder::listener`]. With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_hedge_hedges_total` | counter | `cause` (`slow`, or the failed attempt's class) | hedges sent |
//! | `riprap_hedge_budget_refused_total` | counter | | hedges the retry budget refused to pay for |
//! | `riprap_hedge_won_total` | counter | | requests a hedge answered first |
//!
//! Extra load is `hedges_total` over the requests served.

mod config;
mod events;
mod future;
mod service;
#[cfg(feature = "serde")]
mod spec;
mod tracker;

pub use config::{
    HedgeBuilder, HedgeDelay, HedgeLayer, MAX_HEDGED_ATTEMPTS, PERCENTILE_MIN_SAMPLES,
};
pub use events::{HedgeCause, HedgeEvent};
pub use future::ResponseFuture;
pub use service::Hedge;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::{HedgeSpec, PercentileSpec};
