//! Circuit breakers that fail fast, probe safely and never get stuck.
//!
//! When a dependency is down, callers that keep waiting on it tie up workers and pile load on
//! it, and when it comes back they all hit it at once. A breaker opens after failures, fails
//! fast with a typed error while open ([`Rejected::Open`] says how long until the next
//! probe), and lets a few probes through to decide when to close.
//!
//! ```
//! use std::io;
//! use std::time::Duration;
//! use riprap::breaker::{CircuitBreaker, CircuitBreakerLayer, ConsecutiveFailures, Rejected};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), riprap::ConfigError> {
//! let breaker = CircuitBreaker::builder()
//!     .policy(ConsecutiveFailures::new(3)?)
//!     .open_for(Duration::from_secs(10))
//!     .build()?;
//! let mut svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(breaker.clone()))
//!     .service_fn(|_: ()| async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionRefused)) });
//!
//! for _ in 0..3 {
//!     let _ = svc.ready().await.unwrap().call(()).await;
//! }
//! // Open: the inner service is not called, and the error says when to come back.
//! let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
//! assert_eq!(err.rejection(), Some(Rejected::Open { retry_in: Duration::from_secs(10) }));
//! # Ok(()) }
//! ```
//!
//! ## States
//!
//! - **Closed**: calls pass; the [`TripPolicy`] counts outcomes and decides when to open.
//! - **Open**: calls fail fast with [`Rejected::Open`] for the open duration: fixed
//!   ([`open_for`](BreakerBuilder::open_for)) or growing after every failed probe
//!   ([`open_growing`](BreakerBuilder::open_growing), the default: 5 s doubling to 60 s),
//!   jittered so a fleet of workers does not probe in lockstep.
//! - **Half-open**: the first caller after the open duration becomes a probe; up to
//!   [`half_open_probes`](BreakerBuilder::half_open_probes) probes run at once and the rest
//!   get [`Rejected::HalfOpen`]. [`close_after`](BreakerBuilder::close_after) successes close
//!   the breaker; any failure reopens it, and so does a success slower than the policy's
//!   slow-call threshold ([`TripPolicy::is_slow`]), so slow calls that tripped it cannot
//!   close it again.
//! - Manual: [`force_open`](CircuitBreaker::force_open) (isolate),
//!   [`force_closed`](CircuitBreaker::force_closed), [`disable`](CircuitBreaker::disable)
//!   (metrics only, reporting [`BreakerEvent::WouldTrip`]) and
//!   [`reset`](CircuitBreaker::reset).
//!
//! **It cannot get stuck half-open.** A probe's permit lives in its response future (or in a
//! [`Permit`]); a future dropped at any point hands the permit back without counting a
//! success or a failure, so the next caller probes instead. (resilience4j leaves releasing
//! permits to the caller, and a cancelled probe there holds its slot forever.)
//!
//! ## What counts
//!
//! Outcomes are judged by the shared [`Classify`](crate::classify::Classify) policy (set it
//! with [`CircuitBreakerLayer::classifier`]): a transient failure counts against the
//! dependency; a throttle and a permanent error do not, because the rate limiter and the
//! caller own those ([`count_throttled_as`](BreakerBuilder::count_throttled_as),
//! [`count_permanent_as`](BreakerBuilder::count_permanent_as) change that). Outcomes of calls
//! admitted before a transition are ignored.
//!
//! ## Which trip policy
//!
//! | policy | trips when | use it for |
//! |---|---|---|
//! | [`ConsecutiveFailures`] (default, 5) | n failures in a row | any traffic level; the cheapest; blind to a dependency failing every other call |
//! | [`CountWindow`] | failure (or slow-call) rate over the last N calls reaches a threshold, with at least `min_calls` | steady traffic where "half the last 100 calls" means the same at any hour |
//! | [`TimeWindow`] | the same over the last span of time, in rolling buckets, with a minimum throughput | bursty traffic; "10 % of the last 30 s" |
//! | [`slow_calls`](CountWindowBuilder::slow_calls) on either window | calls slower than a threshold reach a rate | a dependency that degrades by slowing down before it fails |
//!
//! Combine them with [`TripPolicyExt::or`]; a good general choice is
//! `ConsecutiveFailures::new(5)?.or(CountWindow::last(100).min_calls(20).build()?)`: the
//! streak catches a dead dependency at low traffic, the window a sick one at high traffic.
//! Implement [`TripPolicy`] for anything else.
//!
//! The defaults, compared with resilience4j's and Polly's, and why riprap chose differently,
//! are on [`BreakerBuilder`].
//!
//! ## Presets
//!
//! - [`BreakerBuilder::llm_api`]: calls are slow, costly and modest in number, and latency varies by
//!   the length of the answer, so slowness is not judged. 5 consecutive failures or half of
//!   the last 60 s (at least 10 calls); open 15 s growing to 2 min, since provider incidents
//!   last minutes; one probe at a time and two successes to close, because every probe
//!   costs money. A 429 is a throttle and does not count.
//! - [`BreakerBuilder::object_store`]: high request rates and many parallel reads, so a count
//!   window (half of the last 200, at least 50) judges quickly, and 80 % of calls slower than
//!   10 s means the store is degraded even if requests still succeed; open 5 s growing to
//!   60 s; five probes at once because parallel readers need a quick verdict. `SlowDown`
//!   (503) should classify as a throttle.
//! - [`BreakerBuilder::database`]: failures are fast (refused connections) or slow (lock waits,
//!   failover), so 5 consecutive failures, or over the last 10 s (at least 20 calls) half
//!   failed or half slower than 2 s; open 2 s growing to 30 s because failovers finish in
//!   seconds; two probes, three successes to close. Constraint violations are permanent and
//!   never trip it.
//!
//! ## From a config file
//!
//! With the `serde` feature, `BreakerSpec` holds every knob as plain data, read from TOML,
//! YAML or JSON with human durations. The policies listed trip the breaker when any of them
//! does (none listed: 5 consecutive failures), and the field names are the knob names a
//! [`ConfigError`](crate::ConfigError) reports:
//!
//! ```toml
//! consecutive_failures = 5
//! open_base = "2s"          # growing: open_base doubling to open_max; or open_for = "10s"
//! open_max = "30s"
//! half_open_probes = 2
//! close_after = 3
//! count_throttled_as = "ignored"   # "failure", "success" or "ignored"
//! count_permanent_as = "ignored"
//!
//! [count_window]            # and/or [time_window] with span, buckets, min_throughput
//! size = 100
//! min_calls = 20
//! failure_rate = 0.5
//! slow_threshold = "2s"
//! slow_rate = 0.8
//! ```
//!
//! The breaker a spec builds is a `CircuitBreaker<`[`TripPolicies`]`>`: the policies listed,
//! chosen at run time. Code that picks policies from its own settings can use that type
//! without the `serde` feature, with one breaker type whichever policies were chosen.
//!
//! ## In a tower stack
//!
//! - **`poll_ready`**: while open, the service answers `Ready` without polling the inner
//!   service and `call` fails fast; otherwise it polls the inner service. Admission (and any
//!   half-open permit) is decided in `call`, so a caller that polls ready and never calls
//!   leaks nothing. See [`CircuitBreakerService`].
//! - **Retry outside the breaker** (`retry(breaker(service))`): [`BreakerError`] and
//!   [`Rejected`] implement [`Classified`](crate::classify::Classified): an open breaker is
//!   `Refused { retry_after: Some(retry_in) }` (a local refusal, never mistaken for the
//!   server's throttle), so a retry layer waits for the next probe instead of hammering the
//!   breaker, or gives up at once when that is further off than it may wait; an isolated
//!   breaker is `Permanent`. Boxed errors classify the same way through their source chain. Retry
//!   *inside* the breaker counts one outcome per logical request, after the retries.
//! - **Behind `tower::buffer::Buffer`**: the buffer's worker drives one breaker service;
//!   rejections are immediate, so an open breaker drains the queue fast. Put the breaker
//!   *outside* the buffer (`breaker(buffer(service))`) to refuse before queueing at all, and
//!   classify the buffer's boxed errors with [`ByError`](crate::classify::ByError).
//! - **Keyed**: [`KeyedCircuitBreakerLayer`] keeps one breaker per key (host, endpoint,
//!   model, tenant), never shared between keys, within [`KeyLimits`] (a cap, idle expiry,
//!   a byte budget for keys); see [`KeyedBreakers`].
//!
//! ## Cost
//!
//! The closed path takes no lock and allocates nothing: admission is one atomic load, and
//! recording a success with the default policy is two more loads and no write. A clock is
//! read only when the policy needs one (time windows, slow calls). Open-state rejection is a
//! load, a clock read and a counter increment. Transitions take a small lock (they are
//! rare); probes take their permit with one compare-and-swap.
//!
//! ## Observability
//!
//! Every transition and rejection is logged through `tracing` and sent to the optional
//! [`listener`](BreakerBuilder::listener) as a [`BreakerEvent`];
//! [`CircuitBreaker::metrics`] gives a [`BreakerMetrics`] snapshot (state, failure rate, slow
//! rate, calls in window, rejected count, probes). The scheme is the
//! [events guide](crate::events)'s; `name` is the breaker's own (set with
//! [`BreakerBuilder::name`]; a keyed breaker's is its key):
//!
//! | target | message | level | fields |
//! |---|---|---|---|
//! | `riprap::breaker` | `circuit opened` | warn | `event="transition"`, `name`, `state.from`, `state.to`, `open_ms`, `generation` |
//! | `riprap::breaker` | `circuit state changed` (other transitions) | info | `event="transition"`, `name`, `state.from`, `state.to`, `generation` |
//! | `riprap::breaker` | `circuit would have opened (disabled: metrics only)` | warn | `event="would_trip"`, `name` |
//! | `riprap::breaker` | `call rejected` (one per refused call: the opening was logged at warn) | debug | `event="rejected"`, `name`, `reason` |
//!
//! With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_breaker_transitions_total` | counter | `from`, `to` (`closed`, `open`, `half_open`, `isolated`, `forced_closed`, `disabled`) | state changes |
//! | `riprap_breaker_rejections_total` | counter | `reason` (`open`, `half_open`, `isolated`) | calls refused |
//! | `riprap_breaker_would_trip_total` | counter | | would-be trips of a disabled breaker |
//! | `riprap_breaker_open_seconds` | histogram | | how long each opening lasts |
//!
//! A keyed breaker shares one listener across keys, so state is read from
//! [`CircuitBreaker::metrics`], not from a gauge fed by events.

mod config;
mod error;
mod events;
mod future;
mod handle;
mod keyed;
mod layer;
mod policies;
mod policy;
mod service;
#[cfg(feature = "serde")]
mod spec;
mod state;
mod window;

pub use crate::keyed::KeyLimits;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config::BreakerSpec;
pub use config::{BreakerBuilder, Counted, DEFAULT_OPEN_BASE, DEFAULT_OPEN_MAX};
pub use error::{BreakerError, Rejected};
pub use events::{BreakerEvent, BreakerMetrics, BreakerState};
pub use future::ResponseFuture;
pub use handle::{CircuitBreaker, Permit};
pub use keyed::{KeyedBreakers, KeyedCircuitBreakerLayer, KeyedCircuitBreakerService};
pub use layer::CircuitBreakerLayer;
pub use policies::TripPolicies;
pub use policy::{AnyOf, Call, ConsecutiveFailures, PolicyStats, TripPolicy, TripPolicyExt};
pub use service::CircuitBreakerService;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::{CountWindowSpec, TimeWindowSpec};
pub use window::{
    CountWindow, CountWindowBuilder, MAX_BUCKETS, MAX_COUNT_WINDOW, TimeWindow, TimeWindowBuilder,
};

/// Keeps a hot atomic on its own cache line (128 bytes covers adjacent-line prefetching), so
/// counters written on one path do not slow reads of the state word on another.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);
