//! Watching the layers work: listeners, one event type for every layer, `tracing`, metrics.
//!
//! Every layer reports what it does in three ways:
//!
//! - its own event type ([`RetryEvent`](crate::retry::RetryEvent),
//!   [`BreakerEvent`](crate::breaker::BreakerEvent),
//!   [`RateLimitEvent`](crate::ratelimit::RateLimitEvent),
//!   [`CacheEvent`](crate::cache::CacheEvent),
//!   [`StreamEvent`](crate::stream::StreamEvent)), delivered to an optional [`Listener`];
//! - `tracing` events and spans, named by one scheme ([below](#tracing));
//! - with the `metrics` feature, counters and histograms through the `metrics` facade, by
//!   handing a `MetricsListener` to the layers ([below](#metrics)).
//!
//! ## One listener for the whole stack
//!
//! A listener is called inline, on the request path, so each layer takes one of its own
//! event type and nothing is boxed or cloned on the way. To watch a whole stack from one
//! place, [`forward`] wraps a listener of [`Event`] (an enum with one variant per layer,
//! borrowing the layer's event) into a [`Forward`] that every layer accepts:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use riprap::breaker::{BreakerEvent, CircuitBreaker};
//! use riprap::events::{self, Event};
//! use riprap::ratelimit::{RateLimitConfig, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! let events = events::forward(Arc::new(move |e: &Event<'_>| {
//!     if let Event::Breaker { event: BreakerEvent::Transition { to, .. }, .. } = e {
//!         sink.lock().unwrap().push(format!("breaker {to}"));
//!     } else {
//!         sink.lock().unwrap().push(format!("{}.{}", e.layer(), e.kind()));
//!     }
//! }))
//! .named("llm");
//!
//! let breaker = CircuitBreaker::builder().listener(Arc::new(events.clone())).build()?;
//! let limiter = RateLimiter::with_listener(
//!     RateLimitConfig::builder().requests(1, Duration::from_secs(1)).build()?,
//!     Arc::new(events.clone()),
//! );
//! breaker.force_open();
//! limiter.acquire(1).await?;
//! limiter.acquire(1).await?; // waits a second for the quota
//!
//! assert_eq!(seen.lock().unwrap().as_slice(), ["breaker isolated", "ratelimit.waited"]);
//! # Ok(()) }
//! ```
//!
//! Layers that take `impl Listener<_>` (retry, cache) take `events.clone()`; those that
//! take a [`SharedListener`] (breaker, rate limiter, resumable stream) take
//! `Arc::new(events.clone())`. Each
//! is paid once, when the stack is built. Delivering an event through a `Forward` allocates
//! nothing: the [`Event`] is two references on the stack.
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
//! | target | span / message | level | fields |
//! |---|---|---|---|
//! | `riprap::retry` | span `riprap.retry`, one per logical request | debug | `attempts` (recorded when it ends) |
//! | `riprap::retry` | `attempt succeeded` | trace on the first attempt, else debug | `event="attempt"`, `attempt`, `class` |
//! | `riprap::retry` | `attempt failed, retrying` | debug | `event="attempt"`, `attempt`, `class`, `delay_ms` |
//! | `riprap::retry` | `attempt failed` (the last) | debug | `event="attempt"`, `attempt`, `class` |
//! | `riprap::retry` | `gave up` | warn (debug when `reason="permanent"`) | `event="gave_up"`, `attempts`, `reason` |
//! | `riprap::breaker` | `circuit opened` | warn | `event="transition"`, `name`, `state.from`, `state.to`, `open_ms`, `generation` |
//! | `riprap::breaker` | `circuit state changed` (half-open, closed, forced, disabled) | info | `event="transition"`, `name`, `state.from`, `state.to`, `generation` |
//! | `riprap::breaker` | `circuit would have opened (disabled: metrics only)` | warn | `event="would_trip"`, `name` |
//! | `riprap::breaker` | `call rejected` | debug | `event="rejected"`, `name`, `reason` |
//! | `riprap::ratelimit` | span `riprap.ratelimit.wait`, one per request that waits for capacity | debug | `cost` |
//! | `riprap::ratelimit` | `gate closed by the server` | info | `event="gate_closed"`, `reopen_ms` |
//! | `riprap::ratelimit` | `gate reopened` | info | `event="gate_reopened"` |
//! | `riprap::ratelimit` | `adaptive rate cut` / `adaptive rate recovered` | info | `event="rate_decreased"` / `"rate_recovered"`, `rate` (requests per second) |
//! | `riprap::ratelimit` | `request refused` | warn | `event="rejected"`, `by` (`quota`, `server`, `adaptive`, `cost`) |
//! | `riprap::ratelimit` | `waited for capacity` | debug | `event="waited"`, `wait_ms` |
//! | `riprap::ratelimit` | `pacing to the server's remaining quota` | debug | `event="pacing"`, `interval_ms`, `lasts_ms` |
//! | `riprap::ratelimit` | `evicted a key to make room` | debug | `event="key_evicted"` |
//! | `riprap::classify` | `ignoring malformed rate-limit header value` | debug | `event="malformed_header"`, `header`, `value` (its first 64 bytes, escaped) |
//! | `riprap::cache` | `hit`, `stale hit, refreshing`, `negative hit`, `miss`, `evicted` | trace | `event` |
//! | `riprap::cache` | `loaded` | debug | `event="loaded"`, `took_ms` |
//! | `riprap::cache` | `load failed` | debug | `event="load_failed"`, `class` |
//! | `riprap::cache` | `served stale after a failed load`, `refresh dropped: queue full`, `inserted`, `invalidated`, `invalidated all` | debug | `event` |
//! | `riprap::cache` | `batch loaded` | debug | `event="batch_loaded"`, `keys`, `stored`, `took_ms` |
//! | `riprap::cache` | `batch refresh failed` (a background load: nobody else sees its error) | warn | `event="batch_failed"`, `keys`, `class` |
//! | `riprap::cache` | `miss turned away: too many loads in flight` | warn | `event="overloaded"` |
//! | `riprap::stream` | `loaded the committed position` (once per run) | info | `event="loaded"`, `position` |
//! | `riprap::stream` | `source failed or ended, reconnecting` | debug | `event="reconnecting"`, `after`, `attempt`, `delay_ms`, `class` |
//! | `riprap::stream` | `offsets skipped: items lost` | warn | `event="gap"`, `expected`, `found` |
//! | `riprap::stream` | `gave up reconnecting` | warn | `event="gave_up"`, `attempts` |
//! | `riprap::stream` | `committed` | debug | `event="committed"`, `position` |
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
//! With the `metrics` feature, `MetricsListener` turns the events into these series. All
//! carry a `name` label (the listener's name); other labels take only the fixed values shown,
//! never request data, so the number of series is bounded. Series appear at their first
//! event. Histograms are in seconds.
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_retry_attempts_total` | counter | `class` (`success`, `transient`, `throttled`, `permanent`) | attempts, by the classifier's verdict |
//! | `riprap_retry_giveups_total` | counter | `reason` (`permanent`, `attempts_exhausted`, `backoff_exhausted`, `budget_refused`, `deadline`, `not_retryable`, `not_ready`) | requests that stopped without a success |
//! | `riprap_retry_delay_seconds` | histogram | | waits scheduled before a retry |
//! | `riprap_breaker_transitions_total` | counter | `from`, `to` (`closed`, `open`, `half_open`, `isolated`, `forced_closed`, `disabled`) | state changes |
//! | `riprap_breaker_rejections_total` | counter | `reason` (`open`, `half_open`, `isolated`) | calls refused |
//! | `riprap_breaker_would_trip_total` | counter | | would-be trips of a disabled breaker |
//! | `riprap_breaker_open_seconds` | histogram | | how long each opening lasts |
//! | `riprap_ratelimit_waits_total` | counter | | requests that waited, then passed |
//! | `riprap_ratelimit_wait_seconds` | histogram | | how long they waited |
//! | `riprap_ratelimit_rejections_total` | counter | `by` (`quota`, `server`, `adaptive`, `cost`) | requests refused |
//! | `riprap_ratelimit_gate_closed_total` | counter | | server signals that closed or extended the gate |
//! | `riprap_ratelimit_gate_pause_seconds` | histogram | | how long each closing keeps it shut |
//! | `riprap_ratelimit_gate_reopened_total` | counter | | reopenings |
//! | `riprap_ratelimit_pacing_total` | counter | | pacing intervals set from the server's remaining quota |
//! | `riprap_ratelimit_rate_changes_total` | counter | `direction` (`decreased`, `recovered`) | adaptive rate changes |
//! | `riprap_cache_hits_total` | counter | | fresh hits |
//! | `riprap_cache_stale_hits_total` | counter | | hits due for refresh (a refresh was started) |
//! | `riprap_cache_negative_hits_total` | counter | | remembered permanent failures served |
//! | `riprap_cache_misses_total` | counter | | reads that found nothing usable |
//! | `riprap_cache_loads_total` | counter | | per-key loads that succeeded |
//! | `riprap_cache_load_seconds` | histogram | | their duration |
//! | `riprap_cache_load_errors_total` | counter | `class` | per-key loads that failed |
//! | `riprap_cache_stale_if_error_total` | counter | | expired entries served because a load failed |
//! | `riprap_cache_batch_loads_total` | counter | | batch loads that returned |
//! | `riprap_cache_batch_keys_total` | counter | | keys those batches stored |
//! | `riprap_cache_batch_load_seconds` | histogram | | their duration |
//! | `riprap_cache_batch_errors_total` | counter | `class` | batch loads that failed |
//! | `riprap_cache_refresh_dropped_total` | counter | | due keys that found the refresh queue full |
//! | `riprap_cache_overloaded_total` | counter | | misses turned away at `max_in_flight` |
//! | `riprap_cache_evictions_total` | counter | | entries evicted for capacity |
//! | `riprap_cache_inserts_total` | counter | | `insert` calls |
//! | `riprap_cache_invalidations_total` | counter | | `invalidate` and `invalidate_all` calls |
//! | `riprap_stream_loads_total` | counter | `from` (`committed`, `start`) | checkpoint loads at start, by whether a position was committed |
//! | `riprap_stream_reconnects_total` | counter | `class` | reconnects scheduled, by the verdict on the failure (`transient` for an unexpected end) |
//! | `riprap_stream_reconnect_delay_seconds` | histogram | | waits before them |
//! | `riprap_stream_gaps_total` | counter | | jumps in dense offsets (items lost at the source) |
//! | `riprap_stream_giveups_total` | counter | | streams that ran out of reconnects |
//! | `riprap_stream_commits_total` | counter | | positions durably committed |
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
//! use std::sync::{Arc, Mutex};
//! use riprap::events::Listener;
//!
//! #[derive(Debug)]
//! enum Ping { Hello }
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! let listener = move |e: &Ping| sink.lock().unwrap().push(format!("{e:?}"));
//! listener.on_event(&Ping::Hello);
//! assert_eq!(seen.lock().unwrap().as_slice(), ["Hello"]);
//! ```

use std::sync::Arc;

mod event;
mod forward;
#[cfg(feature = "metrics")]
mod metrics;
pub(crate) mod trace;

pub use event::Event;
pub use forward::{Forward, forward};
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use metrics::MetricsListener;

/// Receives a layer's events. Implemented for every `Fn(&E) + Send + Sync`.
///
/// Called inline on the request path: keep it cheap (increment a counter, push to a channel).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use riprap::events::Listener;
/// use riprap::retry::RetryEvent;
///
/// /// Counts retries scheduled.
/// #[derive(Default)]
/// struct Retries(AtomicU64);
///
/// impl Listener<RetryEvent> for Retries {
///     fn on_event(&self, event: &RetryEvent) {
///         if let RetryEvent::Attempt { delay: Some(_), .. } = event {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait Listener<E>: Send + Sync + 'static {
    /// One event happened.
    fn on_event(&self, event: &E);
}

impl<E, F> Listener<E> for F
where
    F: Fn(&E) + Send + Sync + 'static,
{
    fn on_event(&self, event: &E) {
        self(event)
    }
}

/// A shared, type-erased listener of one layer's events, as layers store them.
///
/// ```
/// use std::sync::Arc;
/// use riprap::breaker::{BreakerEvent, CircuitBreaker};
/// use riprap::events::SharedListener;
///
/// let listener: SharedListener<BreakerEvent> = Arc::new(|e: &BreakerEvent| println!("{e:?}"));
/// let breaker = CircuitBreaker::builder().listener(listener).build()?;
/// # Ok::<(), riprap::ConfigError>(())
/// ```
pub type SharedListener<E> = Arc<dyn Listener<E>>;

/// A listener of every layer's [`Event`]s, as a trait object: what [`forward`] takes
/// by default (`Arc<EventListener>`), for a listener chosen at run time.
///
/// ```
/// use std::sync::Arc;
/// use riprap::events::{Event, EventListener};
///
/// let quiet = true;
/// let listener: Arc<EventListener> = if quiet {
///     Arc::new(|_: &Event<'_>| {})
/// } else {
///     Arc::new(|e: &Event<'_>| println!("{e:?}"))
/// };
/// let events = riprap::events::forward(listener);
/// # drop(events);
/// ```
pub type EventListener = dyn for<'a> Listener<Event<'a>>;
