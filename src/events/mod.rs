//! Watching the layers work: one listener API, one event type, one `tracing` scheme, metrics.
//!
//! Every layer reports what it does three ways:
//!
//! - its own event type ([`RetryEvent`](crate::retry::RetryEvent),
//!   [`BreakerEvent`](crate::breaker::BreakerEvent),
//!   [`RateLimitEvent`](crate::ratelimit::RateLimitEvent),
//!   [`CacheEvent`](crate::cache::CacheEvent), [`StreamEvent`](crate::stream::StreamEvent),
//!   [`BulkheadEvent`](crate::bulkhead::BulkheadEvent), [`HedgeEvent`](crate::hedge::HedgeEvent),
//!   [`FallbackEvent`](crate::fallback::FallbackEvent)),
//!   delivered as an [`Event`] to the [`Listener`] given to its builder's `.listener(..)`;
//! - `tracing` events and spans, named by one scheme ([below](#tracing)), emitted by the
//!   layer itself;
//! - with the `metrics` feature, counters and histograms through the `metrics` facade, by
//!   giving the layers a `MetricsListener` ([below](#metrics)).
//!
//! ## One listener for the whole stack
//!
//! Every layer takes its listener the same way, `.listener(impl Listener)`, and hands it the
//! same [`Event`]: the layer's own event, borrowed, which [`Event::downcast_ref`] gives back
//! typed. So one value watches a whole stack, and
//! [`StackBuilder::listener`](crate::stack::StackBuilder::listener) passes it to every layer
//! of a preset. A listener is called inline, on the request path: keep it cheap (increment a
//! counter, push to a channel). Delivering an event allocates nothing.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use riprap::breaker::{BreakerEvent, CircuitBreaker};
//! use riprap::events::{Event, ListenerExt};
//! use riprap::ratelimit::{RateLimitConfig, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! let events = (move |e: &Event<'_>| {
//!     let line = match e.downcast_ref() {
//!         Some(BreakerEvent::Transition { to, .. }) => format!("breaker {to}"),
//!         _ => format!("{}.{}", e.layer(), e.kind()),
//!     };
//!     sink.lock().unwrap().push(format!("{} {line}", e.name().unwrap_or("-")));
//! })
//! .named("llm");
//!
//! let breaker = CircuitBreaker::builder().listener(events.clone()).build()?;
//! let limiter = RateLimiter::new(
//!     RateLimitConfig::builder()
//!         .requests(1, Duration::from_secs(1))
//!         .listener(events.clone())
//!         .build()?,
//! );
//! breaker.force_open();
//! limiter.acquire(1).await?;
//! limiter.acquire(1).await?; // waits a second for the quota
//!
//! assert_eq!(seen.lock().unwrap().as_slice(), ["llm breaker isolated", "llm ratelimit.waited"]);
//! # Ok(()) }
//! ```
//!
//! A layer's event implements [`LayerEvent`]: its layer, its kind, and the metrics it feeds.
//! That is all a consumer needs, so adding an event or a layer touches that layer's folder
//! only: this module, the metrics exporter and the stack know no layer's events.
//!
//! ## Tracing
//!
//! Every layer logs under the target `riprap::<layer>` (header parsing under
//! `riprap::classify`), so `RUST_LOG=riprap=info` shows what an operator should see and
//! `RUST_LOG=riprap::retry=debug` opens one layer up. Spans are named `riprap.<layer>` (or
//! `riprap.<layer>.<what>`), so they group by layer in a trace viewer. Every event carries an
//! `event` field with the same snake_case name as [`Event::kind`] and the metric it feeds;
//! durations are whole milliseconds in `_ms` fields; classes, reasons and states are the
//! `as_str` names of their types, as in metric labels.
//!
//! Levels follow one rule: **the success path is silent at `info`**. State changes an
//! operator acts on are `info`; giving up on a request (a retry layer out of attempts,
//! budget or time, a rate limiter refusing, a cache turning a miss away), a circuit opening
//! and a background refresh failing are `warn`; per-request detail is `debug` (`trace` for
//! the hottest paths: first-try successes and cache reads). Per-call refusals caused by a
//! state already logged (calls rejected by an open breaker) stay at `debug`, so an incident
//! produces one warning, not one per request.
//!
//! Each layer's module guide lists its own events, levels and fields (for example
//! [retry](crate::retry#observing), [breaker](crate::breaker#observability),
//! [rate limit](crate::ratelimit#observing), [cache](crate::cache#observing),
//! [stream](crate::stream#watching-it), [bulkhead](crate::bulkhead#observing),
//! [hedge](crate::hedge#observing), [fallback](crate::fallback#observing)). Header parsing logs under `riprap::classify`:
//! `ignoring malformed rate-limit header value` at debug, with `event="malformed_header"`,
//! `header` and `value` (its first 64 bytes, escaped).
//!
//! A breaker's `name` is its own (set with
//! [`BreakerBuilder::name`](crate::breaker::BreakerBuilder::name); a keyed breaker's is its
//! key). The retry span is opened only when `debug` is enabled for some target, so the
//! success path pays for no span otherwise; events made inside it (by the layers below)
//! nest under it in a trace viewer. Every macro checks its level before computing a field,
//! so a disabled event formats nothing. A stream's offsets (`position`, `after`, `expected`,
//! `found`) are logged in their `Debug` form.
//!
//! ## Metrics
//!
//! With the `metrics` feature, `MetricsListener` turns every layer's events into series
//! through the `metrics` facade. All carry a `name` label (the listener's name); other labels
//! take only fixed values, never request data, so the number of series is bounded. Series
//! appear at their first event. Counters end in `_total`; histograms end in `_seconds` and are
//! in seconds. Each layer's module guide lists its series; an event names the series it feeds
//! through [`LayerEvent::measure`], so another exporter can implement [`Measure`] and get the
//! same numbers.
//!
//! Useful ratios: each logical request ends in one successful attempt or one give-up, so
//! retry amplification is `attempts_total` over the sum of `attempts_total{class="success"}`
//! and `giveups_total`; the cache hit ratio is hits plus stale hits over those and misses.
//! A breaker's current state, a cache's size and a stream's per-item counts (delivered,
//! replays dropped, commit lag) are not events: read them from
//! [`CircuitBreaker::metrics`](crate::breaker::CircuitBreaker::metrics),
//! [`Cache::metrics`](crate::cache::Cache::metrics) and
//! [`StreamStats::snapshot`](crate::stream::StreamStats::snapshot) (a keyed breaker shares
//! one listener across keys, so a state gauge fed by events would mix them; a per-item event
//! would cost the stream's hot path).
//!
//! A cache hit through `MetricsListener` costs the recorder's counter increment on top of the
//! cache's own per-thread count; for a very hot cache, export
//! [`Cache::metrics`](crate::cache::Cache::metrics) periodically instead and leave hits out
//! of the listener.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use riprap::events::{Event, Listener};
//! use riprap::retry::RetryEvent;
//!
//! /// Counts retries scheduled.
//! #[derive(Default)]
//! struct Retries(AtomicU64);
//!
//! impl Listener for Retries {
//!     fn on_event(&self, event: &Event<'_>) {
//!         if let Some(RetryEvent::Attempt { delay: Some(_), .. }) = event.downcast_ref() {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

mod event;
mod measure;
#[cfg(feature = "metrics")]
mod metrics;

pub use event::{Event, LayerEvent};
pub use measure::{Measure, Metric, MetricKind};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::MetricsListener;

/// Hears every layer's [`Event`]s. Implemented for every `Fn(&Event<'_>) + Send + Sync`.
///
/// Called inline on the request path: keep it cheap.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a riprap listener",
    label = "expected a `riprap::events::Listener`",
    note = "implement `Listener` for it, pass a closure `|event: &riprap::events::Event<'_>| ...`, or hear one layer's events typed with `riprap::events::only(|e: &BreakerEvent| ...)`"
)]
pub trait Listener: Send + Sync + 'static {
    /// One event happened.
    fn on_event(&self, event: &Event<'_>);
}

impl<F> Listener for F
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    #[inline]
    fn on_event(&self, event: &Event<'_>) {
        self(event)
    }
}

impl<L: Listener + ?Sized> Listener for Arc<L> {
    #[inline]
    fn on_event(&self, event: &Event<'_>) {
        (**self).on_event(event)
    }
}

/// A listener as layers store it: shared, chosen at run time.
pub type SharedListener = Arc<dyn Listener>;

/// Combinators for every [`Listener`].
pub trait ListenerExt: Listener + Sized {
    /// Tag every event with `name` (the dependency, say: `"llm"`, `"orders-db"`), so one
    /// listener can tell several stacks apart.
    ///
    /// ```
    /// use riprap::events::{Event, ListenerExt};
    ///
    /// let events = (|e: &Event<'_>| assert_eq!(e.name(), Some("orders-db"))).named("orders-db");
    /// assert_eq!(events.name(), "orders-db");
    /// ```
    fn named(self, name: impl Into<Arc<str>>) -> Named<Self> {
        Named {
            name: name.into(),
            inner: Arc::new(self),
        }
    }
}

impl<L: Listener> ListenerExt for L {}

/// A listener that tags every event with a name; see [`ListenerExt::named`]. Clones share the
/// listener and the name.
pub struct Named<L> {
    name: Arc<str>,
    inner: Arc<L>,
}

impl<L> Named<L> {
    /// The name events are tagged with.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<L> Clone for Named<L> {
    fn clone(&self) -> Self {
        Named {
            name: Arc::clone(&self.name),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<L> fmt::Debug for Named<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<L: Listener> Listener for Named<L> {
    #[inline]
    fn on_event(&self, event: &Event<'_>) {
        self.inner.on_event(&event.with_name(&self.name))
    }
}

/// A listener of one layer's events only: `f` hears every event of type `E`, typed, and
/// nothing else.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use riprap::events;
/// use riprap::retry::{RetryConfig, RetryEvent};
///
/// let gave_up = Arc::new(AtomicU32::new(0));
/// let counter = Arc::clone(&gave_up);
/// let layer = RetryConfig::new()
///     .listener(events::only(move |e: &RetryEvent| {
///         if let RetryEvent::GaveUp { .. } = e {
///             counter.fetch_add(1, Ordering::Relaxed);
///         }
///     }))
///     .build()?;
/// # drop(layer);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
pub fn only<E, F>(f: F) -> Only<E, F>
where
    E: LayerEvent,
    F: Fn(&E) + Send + Sync + 'static,
{
    Only {
        f,
        _event: PhantomData,
    }
}

/// A listener of one event type; see [`only`].
pub struct Only<E, F> {
    f: F,
    _event: PhantomData<fn(&E)>,
}

impl<E, F: Clone> Clone for Only<E, F> {
    fn clone(&self) -> Self {
        Only {
            f: self.f.clone(),
            _event: PhantomData,
        }
    }
}

impl<E, F> fmt::Debug for Only<E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Only")
            .field("event", &std::any::type_name::<E>())
            .finish_non_exhaustive()
    }
}

impl<E, F> Listener for Only<E, F>
where
    E: LayerEvent,
    F: Fn(&E) + Send + Sync + 'static,
{
    #[inline]
    fn on_event(&self, event: &Event<'_>) {
        if let Some(e) = event.downcast_ref::<E>() {
            (self.f)(e)
        }
    }
}

/// An optional listener inside a config that is otherwise plain data: equal to any other and
/// printed without its contents, so configs keep deriving `PartialEq` and `Debug`.
#[derive(Clone, Default)]
pub(crate) struct ListenerSlot(pub(crate) Option<SharedListener>);

impl ListenerSlot {
    pub(crate) fn set(listener: impl Listener) -> Self {
        ListenerSlot(Some(Arc::new(listener)))
    }
}

impl PartialEq for ListenerSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl fmt::Debug for ListenerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

/// Deliver `event` to `listener`, if there is one.
#[inline]
pub(crate) fn deliver(listener: Option<&SharedListener>, event: &dyn LayerEvent) {
    if let Some(l) = listener {
        l.on_event(&Event::new(event));
    }
}

/// Whole milliseconds, saturating: what a trace viewer shows and filters on, in every layer's
/// `_ms` fields.
#[inline]
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
