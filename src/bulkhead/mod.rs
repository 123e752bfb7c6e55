//! Bulkheads: a limit on calls in flight, a bounded queue served by priority, and a limit
//! that can find itself from measured latency.
//!
//! A dependency that slows down holds every caller's worker while it does; a caller with
//! no limit keeps sending, the dependency's queue grows, and everyone waits. A
//! [`Bulkhead`] caps the calls in flight. A caller that finds every permit taken waits in a
//! bounded queue (or is refused at once), and is told why with a typed [`Rejected`], a
//! **local refusal** ([`Class::Refused`](crate::classify::Class::Refused)): budgets,
//! breakers and listeners never mistake it for the server's throttle.
//!
//! ```
//! use std::time::Duration;
//! use riprap::bulkhead::{Bulkhead, BulkheadLayer, Rejected};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let bulkhead = Bulkhead::builder().max_concurrent(2).build()?; // no queue: fail fast
//! let mut svc = ServiceBuilder::new()
//!     .layer(BulkheadLayer::new(bulkhead.clone()))
//!     .service_fn(|_: ()| async {
//!         tokio::time::sleep(Duration::from_secs(1)).await;
//!         Ok::<_, std::io::Error>(())
//!     });
//!
//! let a = svc.ready().await?.call(());
//! let b = svc.ready().await?.call(());
//! let refused = svc.ready().await?.call(()).await.unwrap_err();
//! assert_eq!(refused.rejection(), Some(Rejected::Full));
//! let _ = tokio::join!(a, b);
//! assert_eq!(bulkhead.in_flight(), 0);
//! # Ok(()) }
//! ```
//!
//! ## The queue
//!
//! - **Bounded, with a timeout**: [`max_queue`](BulkheadBuilder::max_queue) callers wait at
//!   most [`queue_timeout`](BulkheadBuilder::queue_timeout) each; beyond either, a typed
//!   rejection ([`Rejected::Full`], [`Rejected::QueueTimeout`]).
//! - **Priorities**: strict classes ([`Priority::HIGH`], [`NORMAL`](Priority::NORMAL),
//!   [`LOW`](Priority::LOW), up to 8), most urgent first, arrival order within a class. When
//!   the queue is full, an urgent caller takes the place of the youngest caller of the least
//!   urgent waiting class ([`Rejected::Displaced`]), so the low class absorbs the overload.
//! - **Starvation guard**: a waiting class is passed over at most
//!   [`max_bypass`](BulkheadBuilder::max_bypass) times in a row before it goes first; with
//!   `n` classes, never more than `max_bypass + n − 1` times. The bound is a count of
//!   permits, not a time, so it holds whatever the latency and is checked by a property
//!   test against a model.
//! - **Shedding by age** ([`shed_by_age`](BulkheadBuilder::shed_by_age), after CoDel): a
//!   queue in which every caller admitted over an interval had waited past a target is
//!   standing, not absorbing a burst; callers older than the interval are shed
//!   ([`Rejected::Shed`]) instead of being served after their own callers gave up.
//!
//! **Why strict classes with a guard, not weights.** The incident behind this: a suspicious
//! transaction to review waited behind a batch job in one queue. Weighted fair queueing
//! would still make the urgent item wait whenever the batch class holds credit; strict
//! classes serve it at the next free permit, and the guard (one permit in `max_bypass + n`
//! at worst) keeps the batch moving under any load of urgent work, with a bound that can be
//! proved rather than tuned. Weights are what `max_bypass` approximates if you need them:
//! `max_bypass(0)` serves the waiting classes in turn.
//!
//! ## Cancellation
//!
//! Permits are RAII: a [`Permit`] goes back when dropped. A caller dropped while it waits
//! leaves the queue; a permit granted to it between its last poll and its drop is handed on
//! to the next waiter. A response future dropped mid-call gives its permit back. Property
//! tests drop futures at random points and check that no permit leaks, and a loom model
//! checks the permit counter under every interleaving.
//!
//! ## Adaptive limit
//!
//! [`adaptive`](BulkheadBuilder::adaptive) replaces the fixed limit with one found from what
//! the calls measure: [`Gradient`], [`Vegas`] or [`Aimd`] (see the [adaptive guide](adaptive)).
//! The layer classifies each outcome with its classifier
//! ([`classifier`](BulkheadLayer::classifier), default [`ByError`](crate::classify::ByError)):
//! a throttle (429) or a timeout shrinks the limit, a success or a permanent error is a
//! latency sample, and other failures do not count.
//!
//! ## Keyed
//!
//! [`KeyedBulkheads`] keeps one bulkhead per tenant or model, capped, forgetting idle ones;
//! [`BulkheadLayer::keyed`] picks the key per request.
//!
//! ## From a config file
//!
//! With the `serde` feature, `BulkheadSpec` holds every knob as data:
//!
//! ```toml
//! max_concurrent = 32          # or an adaptive table, below
//! max_queue = 200
//! queue_timeout = "2s"
//! priorities = 3
//! max_bypass = 8
//! shed = { target = "50ms", interval = "500ms" }
//!
//! # [adaptive.gradient]       # or vegas = { alpha = 2, beta = 4 }, aimd = { slow = "2s" }
//! # initial = 20
//! # max = 200
//! ```
//!
//! ## In a tower stack
//!
//! Put the bulkhead **below retry, the breaker and the rate limiter, above the attempt
//! timeout**: every attempt takes a permit (a retry waits for one like any call); a call
//! refused by the breaker or held by the rate limiter holds no permit; and the attempt
//! timeout below it turns a hung call into a [`TimedOut`](crate::classify::Class::TimedOut)
//! that the adaptive limit hears. [`stack`](crate::stack) does this for you.
//!
//! ## Cost
//!
//! Taking and giving back a free permit is one compare-and-swap each, with no lock and no
//! allocation; a caller that waits takes the queue lock and allocates its place. With an
//! adaptive limit, each call also reads the clock twice and updates the algorithm under a
//! lock that a latency sample skips when it is contended.
//!
//! ## Observing
//!
//! What it does goes to `tracing` (target `riprap::bulkhead`; levels and fields in
//! [`BulkheadEvent`]'s table) and, as [`BulkheadEvent`]s, to a [`Listener`](crate::events::Listener) set
//! with [`BulkheadBuilder::listener`]. With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_bulkhead_rejections_total` | counter | `reason` (`full`, `queue_timeout`, `shed`, `displaced`) | calls turned away |
//! | `riprap_bulkhead_wait_seconds` | histogram | | how long calls that got a permit waited for it |
//! | `riprap_bulkhead_limit_changes_total` | counter | `cause` (`congestion`, `latency`) | adaptive limit moves (a throttle or timeout, or measured latency) |
//! | `riprap_bulkhead_shedding_total` | counter | | episodes of shedding by queue age |
//!
//! The limit, the calls in flight and the callers waiting are state, not events: read them
//! from [`Bulkhead::metrics`].

pub mod adaptive;
mod config;
mod error;
mod events;
mod future;
mod handle;
mod keyed;
mod layer;
mod queue;
mod service;
#[cfg(feature = "serde")]
mod spec;
mod state;

pub use adaptive::{
    Aimd, AimdBuilder, Gradient, GradientBuilder, LimitAlgorithm, Sample, Vegas, VegasBuilder,
};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use adaptive::{AimdSpec, GradientSpec, VegasSpec};
pub use config::{BulkheadBuilder, DEFAULT_MAX_CONCURRENT, Priority};
pub use error::{BulkheadError, Rejected};
pub use events::{BulkheadEvent, BulkheadMetrics};
pub use future::ResponseFuture;
pub use handle::Bulkhead;
pub use keyed::KeyedBulkheads;
pub use layer::{BulkheadLayer, ByKey, Prioritize, SelectBulkhead};
pub use queue::MAX_PRIORITIES;
pub use service::BulkheadService;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::{AdaptiveSpec, BulkheadSpec, ShedSpec};
pub use state::{Acquire, MAX_PERMITS, Permit};
