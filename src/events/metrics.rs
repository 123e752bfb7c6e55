//! Counters and histograms through the `metrics` facade (feature `metrics`).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Label, SharedString, Unit};

use super::{Event, Listener};
use crate::breaker::{BreakerEvent, BreakerState, Rejected};
use crate::cache::CacheEvent;
use crate::classify::Class;
use crate::ratelimit::{LimitedBy, RateLimitEvent};
use crate::retry::{GiveUp, RetryEvent};
use crate::stream::{Offset, StreamEvent};

/// Publishes every layer's events as counters and histograms through the
/// [`metrics`](https://docs.rs/metrics) facade, to whichever recorder (Prometheus,
/// StatsD, ...) the application installed.
///
/// Like a [`Forward`](super::Forward), it is a [`Listener`] of every layer's events (and of
/// [`Event`]s), so one value serves a whole stack; clones share their series. Every series is
/// labelled `name` with the name given to [`new`](Self::new); other labels take a few fixed
/// values (a class, a reason, a state), never anything from a request. The names, labels and
/// units are in the [events guide](super#metrics).
///
/// Each series is registered with the recorder at its first event (so install the recorder
/// first) and its handle kept: after that, an event costs one load and the recorder's own
/// increment, and allocates nothing.
///
/// ```
/// use std::sync::Arc;
/// use riprap::breaker::CircuitBreaker;
/// use riprap::events::MetricsListener;
/// use riprap::retry::RetryConfig;
///
/// let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// let snapshotter = recorder.snapshotter();
/// metrics::with_local_recorder(&recorder, || {
///     let metrics = MetricsListener::new("llm");
///     let _retry = RetryConfig::new().listener(metrics.clone()).build().unwrap();
///     let breaker = CircuitBreaker::builder().listener(Arc::new(metrics)).build().unwrap();
///     breaker.force_open();
/// });
///
/// let snapshot = snapshotter.snapshot().into_vec();
/// let (key, _, _, value) = &snapshot[0];
/// assert_eq!(key.key().name(), "riprap_breaker_transitions_total");
/// let labels: Vec<_> = key.key().labels().map(|l| (l.key(), l.value())).collect();
/// assert_eq!(labels, [("name", "llm"), ("from", "closed"), ("to", "isolated")]);
/// assert_eq!(*value, metrics_util::debugging::DebugValue::Counter(1));
/// ```
#[derive(Clone)]
pub struct MetricsListener {
    series: Arc<Series>,
}

const CLASSES: usize = 6;
const GIVE_UPS: usize = 8;
const STATES: usize = 6;
const REJECTIONS: usize = 3;
const LIMITS: usize = 4;

type Counters<const N: usize> = [OnceLock<Counter>; N];

fn counters<const N: usize>() -> Counters<N> {
    std::array::from_fn(|_| OnceLock::new())
}

/// Every handle, registered on first use. Arrays are indexed by the label's value.
struct Series {
    name: Arc<str>,
    retry_attempts: Counters<CLASSES>,
    retry_giveups: Counters<GIVE_UPS>,
    retry_delay: OnceLock<Histogram>,
    breaker_transitions: Counters<{ STATES * STATES }>,
    breaker_rejections: Counters<REJECTIONS>,
    breaker_would_trip: OnceLock<Counter>,
    breaker_open: OnceLock<Histogram>,
    ratelimit_waits: OnceLock<Counter>,
    ratelimit_wait: OnceLock<Histogram>,
    ratelimit_rejections: Counters<LIMITS>,
    ratelimit_gate_closed: OnceLock<Counter>,
    ratelimit_gate_pause: OnceLock<Histogram>,
    ratelimit_gate_reopened: OnceLock<Counter>,
    ratelimit_pacing: OnceLock<Counter>,
    ratelimit_rate_changes: Counters<2>,
    cache_hits: OnceLock<Counter>,
    cache_stale_hits: OnceLock<Counter>,
    cache_negative_hits: OnceLock<Counter>,
    cache_misses: OnceLock<Counter>,
    cache_loads: OnceLock<Counter>,
    cache_load: OnceLock<Histogram>,
    cache_load_errors: Counters<CLASSES>,
    cache_stale_if_error: OnceLock<Counter>,
    cache_batch_loads: OnceLock<Counter>,
    cache_batch_keys: OnceLock<Counter>,
    cache_batch_load: OnceLock<Histogram>,
    cache_batch_errors: Counters<CLASSES>,
    cache_refresh_dropped: OnceLock<Counter>,
    cache_overloaded: OnceLock<Counter>,
    cache_evictions: OnceLock<Counter>,
    cache_inserts: OnceLock<Counter>,
    cache_invalidations: OnceLock<Counter>,
    stream_loads: Counters<2>,
    stream_reconnects: Counters<CLASSES>,
    stream_reconnect_delay: OnceLock<Histogram>,
    stream_gaps: OnceLock<Counter>,
    stream_giveups: OnceLock<Counter>,
    stream_commits: OnceLock<Counter>,
}

/// Every metric: name, unit, description. Counters count; every histogram is in seconds.
const DESCRIPTIONS: &[(&str, Unit, &str)] = &[
    (
        "riprap_retry_attempts_total",
        Unit::Count,
        "Attempts made by the retry layer, by the classifier's verdict",
    ),
    (
        "riprap_retry_giveups_total",
        Unit::Count,
        "Requests the retry layer stopped retrying without a success, by reason",
    ),
    (
        "riprap_retry_delay_seconds",
        Unit::Seconds,
        "Waits scheduled before a retry",
    ),
    (
        "riprap_breaker_transitions_total",
        Unit::Count,
        "Circuit breaker state changes",
    ),
    (
        "riprap_breaker_rejections_total",
        Unit::Count,
        "Calls a circuit breaker refused, by the state that refused them",
    ),
    (
        "riprap_breaker_would_trip_total",
        Unit::Count,
        "Times a disabled (metrics-only) breaker would have opened",
    ),
    (
        "riprap_breaker_open_seconds",
        Unit::Seconds,
        "How long a breaker stays open each time it opens",
    ),
    (
        "riprap_ratelimit_waits_total",
        Unit::Count,
        "Requests that waited for capacity and were let through",
    ),
    (
        "riprap_ratelimit_wait_seconds",
        Unit::Seconds,
        "How long those requests waited",
    ),
    (
        "riprap_ratelimit_rejections_total",
        Unit::Count,
        "Requests the rate limiter refused, by what held them back",
    ),
    (
        "riprap_ratelimit_gate_closed_total",
        Unit::Count,
        "Times a server signal closed (or extended) the shared gate",
    ),
    (
        "riprap_ratelimit_gate_pause_seconds",
        Unit::Seconds,
        "How long each closing keeps the gate shut",
    ),
    (
        "riprap_ratelimit_gate_reopened_total",
        Unit::Count,
        "Times the gate reopened",
    ),
    (
        "riprap_ratelimit_pacing_total",
        Unit::Count,
        "Times the server's remaining quota set a pacing interval",
    ),
    (
        "riprap_ratelimit_rate_changes_total",
        Unit::Count,
        "Adaptive rate cuts and recoveries",
    ),
    (
        "riprap_cache_hits_total",
        Unit::Count,
        "Reads answered with a fresh entry",
    ),
    (
        "riprap_cache_stale_hits_total",
        Unit::Count,
        "Reads answered with an entry due for refresh",
    ),
    (
        "riprap_cache_negative_hits_total",
        Unit::Count,
        "Reads answered with a remembered permanent failure",
    ),
    (
        "riprap_cache_misses_total",
        Unit::Count,
        "Reads that found nothing usable",
    ),
    (
        "riprap_cache_loads_total",
        Unit::Count,
        "Per-key loads that succeeded",
    ),
    (
        "riprap_cache_load_seconds",
        Unit::Seconds,
        "How long successful per-key loads took",
    ),
    (
        "riprap_cache_load_errors_total",
        Unit::Count,
        "Per-key loads that failed, by the classifier's verdict",
    ),
    (
        "riprap_cache_stale_if_error_total",
        Unit::Count,
        "Reads answered with an expired entry because the load failed",
    ),
    (
        "riprap_cache_batch_loads_total",
        Unit::Count,
        "Batch loads that returned",
    ),
    (
        "riprap_cache_batch_keys_total",
        Unit::Count,
        "Keys stored by batch loads",
    ),
    (
        "riprap_cache_batch_load_seconds",
        Unit::Seconds,
        "How long batch loads took",
    ),
    (
        "riprap_cache_batch_errors_total",
        Unit::Count,
        "Batch loads that failed, by the classifier's verdict",
    ),
    (
        "riprap_cache_refresh_dropped_total",
        Unit::Count,
        "Keys due for refresh that found the batch queue full",
    ),
    (
        "riprap_cache_overloaded_total",
        Unit::Count,
        "Misses turned away because too many loads were in flight",
    ),
    (
        "riprap_cache_evictions_total",
        Unit::Count,
        "Entries evicted to stay within capacity",
    ),
    (
        "riprap_cache_inserts_total",
        Unit::Count,
        "Values stored with insert",
    ),
    (
        "riprap_cache_invalidations_total",
        Unit::Count,
        "Calls to invalidate and invalidate_all",
    ),
    (
        "riprap_stream_loads_total",
        Unit::Count,
        "Stream starts that loaded a checkpoint, by whether one was committed",
    ),
    (
        "riprap_stream_reconnects_total",
        Unit::Count,
        "Stream reconnects scheduled, by the classifier's verdict on the failure",
    ),
    (
        "riprap_stream_reconnect_delay_seconds",
        Unit::Seconds,
        "Waits scheduled before a stream reconnects",
    ),
    (
        "riprap_stream_gaps_total",
        Unit::Count,
        "Jumps in dense offsets: items the source never delivered",
    ),
    (
        "riprap_stream_giveups_total",
        Unit::Count,
        "Streams that ran out of reconnects",
    ),
    (
        "riprap_stream_commits_total",
        Unit::Count,
        "Positions durably committed to an offset store",
    ),
];

const TARGET: &str = "riprap::events";

impl MetricsListener {
    /// A listener labelling every series `name = name`: the dependency or stack it watches
    /// (`"llm"`, `"orders-db"`). Give each stack its own.
    ///
    /// ```
    /// let metrics = riprap::events::MetricsListener::new("orders-db");
    /// assert_eq!(metrics.name(), "orders-db");
    /// ```
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        MetricsListener {
            series: Arc::new(Series {
                name: name.into(),
                retry_attempts: counters(),
                retry_giveups: counters(),
                retry_delay: OnceLock::new(),
                breaker_transitions: counters(),
                breaker_rejections: counters(),
                breaker_would_trip: OnceLock::new(),
                breaker_open: OnceLock::new(),
                ratelimit_waits: OnceLock::new(),
                ratelimit_wait: OnceLock::new(),
                ratelimit_rejections: counters(),
                ratelimit_gate_closed: OnceLock::new(),
                ratelimit_gate_pause: OnceLock::new(),
                ratelimit_gate_reopened: OnceLock::new(),
                ratelimit_pacing: OnceLock::new(),
                ratelimit_rate_changes: counters(),
                cache_hits: OnceLock::new(),
                cache_stale_hits: OnceLock::new(),
                cache_negative_hits: OnceLock::new(),
                cache_misses: OnceLock::new(),
                cache_loads: OnceLock::new(),
                cache_load: OnceLock::new(),
                cache_load_errors: counters(),
                cache_stale_if_error: OnceLock::new(),
                cache_batch_loads: OnceLock::new(),
                cache_batch_keys: OnceLock::new(),
                cache_batch_load: OnceLock::new(),
                cache_batch_errors: counters(),
                cache_refresh_dropped: OnceLock::new(),
                cache_overloaded: OnceLock::new(),
                cache_evictions: OnceLock::new(),
                cache_inserts: OnceLock::new(),
                cache_invalidations: OnceLock::new(),
                stream_loads: counters(),
                stream_reconnects: counters(),
                stream_reconnect_delay: OnceLock::new(),
                stream_gaps: OnceLock::new(),
                stream_giveups: OnceLock::new(),
                stream_commits: OnceLock::new(),
            }),
        }
    }

    /// The `name` label of every series.
    ///
    /// ```
    /// assert_eq!(riprap::events::MetricsListener::new("llm").name(), "llm");
    /// ```
    pub fn name(&self) -> &str {
        &self.series.name
    }

    /// Describe every metric (unit and help text) to the installed recorder, for exporters
    /// that print them, such as Prometheus's `# HELP` lines. Call it once after installing
    /// the recorder.
    ///
    /// ```
    /// let recorder = metrics_util::debugging::DebuggingRecorder::new();
    /// let snapshotter = recorder.snapshotter();
    /// metrics::with_local_recorder(&recorder, riprap::events::MetricsListener::describe);
    /// # drop(snapshotter);
    /// ```
    pub fn describe() {
        for &(name, unit, help) in DESCRIPTIONS {
            if unit == Unit::Seconds {
                metrics::describe_histogram!(name, unit, help);
            } else {
                metrics::describe_counter!(name, unit, help);
            }
        }
    }
}

impl fmt::Debug for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsListener")
            .field("name", &self.series.name)
            .finish_non_exhaustive()
    }
}

impl Series {
    fn labels(&self, extra: &[(&'static str, &'static str)]) -> Vec<Label> {
        let mut labels = Vec::with_capacity(1 + extra.len());
        labels.push(Label::new(
            "name",
            SharedString::from_shared(Arc::clone(&self.name)),
        ));
        labels.extend(extra.iter().map(|&(k, v)| Label::from_static_parts(k, v)));
        labels
    }

    #[inline]
    fn count(
        &self,
        slot: &OnceLock<Counter>,
        metric: &'static str,
        extra: &[(&'static str, &'static str)],
        n: u64,
    ) {
        slot.get_or_init(|| metrics::counter!(target: TARGET, metric, self.labels(extra)))
            .increment(n);
    }

    #[inline]
    fn record(&self, slot: &OnceLock<Histogram>, metric: &'static str, d: Duration) {
        slot.get_or_init(|| metrics::histogram!(target: TARGET, metric, self.labels(&[])))
            .record(d.as_secs_f64());
    }
}

fn class_index(class: &Class) -> usize {
    match class {
        Class::Success => 0,
        Class::Transient => 1,
        Class::Throttled { .. } => 2,
        Class::Permanent => 3,
        Class::TimedOut => 4,
        _ => 5,
    }
}

fn give_up_index(reason: GiveUp) -> usize {
    match reason {
        GiveUp::Permanent => 0,
        GiveUp::AttemptsExhausted => 1,
        GiveUp::BackoffExhausted => 2,
        GiveUp::BudgetRefused => 3,
        GiveUp::Deadline => 4,
        GiveUp::NotRetryable => 5,
        GiveUp::NotReady => 6,
        _ => 7,
    }
}

fn state_index(state: BreakerState) -> usize {
    match state {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
        BreakerState::Isolated => 3,
        BreakerState::ForcedClosed => 4,
        BreakerState::Disabled => 5,
    }
}

fn rejection_index(rejected: Rejected) -> usize {
    match rejected {
        Rejected::Open { .. } => 0,
        Rejected::HalfOpen => 1,
        Rejected::Isolated => 2,
    }
}

fn limit_index(by: Option<LimitedBy>) -> (usize, &'static str) {
    match by {
        Some(LimitedBy::Quota) => (0, "quota"),
        Some(LimitedBy::Server) => (1, "server"),
        Some(LimitedBy::Adaptive) => (2, "adaptive"),
        None => (3, "cost"),
    }
}

impl Listener<RetryEvent> for MetricsListener {
    fn on_event(&self, event: &RetryEvent) {
        let s = &*self.series;
        match *event {
            RetryEvent::Attempt { class, delay, .. } => {
                s.count(
                    &s.retry_attempts[class_index(&class)],
                    "riprap_retry_attempts_total",
                    &[("class", class.as_str())],
                    1,
                );
                if let Some(delay) = delay {
                    s.record(&s.retry_delay, "riprap_retry_delay_seconds", delay);
                }
            }
            RetryEvent::GaveUp { reason, .. } => s.count(
                &s.retry_giveups[give_up_index(reason)],
                "riprap_retry_giveups_total",
                &[("reason", reason.as_str())],
                1,
            ),
        }
    }
}

impl Listener<BreakerEvent> for MetricsListener {
    fn on_event(&self, event: &BreakerEvent) {
        let s = &*self.series;
        match event {
            BreakerEvent::Transition {
                from, to, open_for, ..
            } => {
                s.count(
                    &s.breaker_transitions[state_index(*from) * STATES + state_index(*to)],
                    "riprap_breaker_transitions_total",
                    &[("from", from.as_str()), ("to", to.as_str())],
                    1,
                );
                if let Some(d) = open_for {
                    s.record(&s.breaker_open, "riprap_breaker_open_seconds", *d);
                }
            }
            BreakerEvent::WouldTrip { .. } => s.count(
                &s.breaker_would_trip,
                "riprap_breaker_would_trip_total",
                &[],
                1,
            ),
            BreakerEvent::Rejected { rejected, .. } => s.count(
                &s.breaker_rejections[rejection_index(*rejected)],
                "riprap_breaker_rejections_total",
                &[("reason", rejected.as_str())],
                1,
            ),
        }
    }
}

impl Listener<RateLimitEvent> for MetricsListener {
    fn on_event(&self, event: &RateLimitEvent) {
        let s = &*self.series;
        match *event {
            RateLimitEvent::Waited { waited } => {
                s.count(&s.ratelimit_waits, "riprap_ratelimit_waits_total", &[], 1);
                s.record(&s.ratelimit_wait, "riprap_ratelimit_wait_seconds", waited);
            }
            RateLimitEvent::Rejected { by } => {
                let (i, by) = limit_index(by);
                s.count(
                    &s.ratelimit_rejections[i],
                    "riprap_ratelimit_rejections_total",
                    &[("by", by)],
                    1,
                );
            }
            RateLimitEvent::GateClosed { reopens_in } => {
                s.count(
                    &s.ratelimit_gate_closed,
                    "riprap_ratelimit_gate_closed_total",
                    &[],
                    1,
                );
                s.record(
                    &s.ratelimit_gate_pause,
                    "riprap_ratelimit_gate_pause_seconds",
                    reopens_in,
                );
            }
            RateLimitEvent::GateReopened => s.count(
                &s.ratelimit_gate_reopened,
                "riprap_ratelimit_gate_reopened_total",
                &[],
                1,
            ),
            RateLimitEvent::Pacing { .. } => {
                s.count(&s.ratelimit_pacing, "riprap_ratelimit_pacing_total", &[], 1)
            }
            RateLimitEvent::RateDecreased { .. } => s.count(
                &s.ratelimit_rate_changes[0],
                "riprap_ratelimit_rate_changes_total",
                &[("direction", "decreased")],
                1,
            ),
            RateLimitEvent::RateRecovered { .. } => s.count(
                &s.ratelimit_rate_changes[1],
                "riprap_ratelimit_rate_changes_total",
                &[("direction", "recovered")],
                1,
            ),
        }
    }
}

impl Listener<CacheEvent> for MetricsListener {
    fn on_event(&self, event: &CacheEvent) {
        let s = &*self.series;
        let (slot, metric) = match *event {
            CacheEvent::Hit => (&s.cache_hits, "riprap_cache_hits_total"),
            CacheEvent::StaleHit => (&s.cache_stale_hits, "riprap_cache_stale_hits_total"),
            CacheEvent::NegativeHit => (&s.cache_negative_hits, "riprap_cache_negative_hits_total"),
            CacheEvent::Miss => (&s.cache_misses, "riprap_cache_misses_total"),
            CacheEvent::Loaded { took } => {
                s.record(&s.cache_load, "riprap_cache_load_seconds", took);
                (&s.cache_loads, "riprap_cache_loads_total")
            }
            CacheEvent::LoadFailed { class } => {
                let slot = &s.cache_load_errors[class_index(&class)];
                let labels = [("class", class.as_str())];
                return s.count(slot, "riprap_cache_load_errors_total", &labels, 1);
            }
            CacheEvent::StaleIfError => {
                (&s.cache_stale_if_error, "riprap_cache_stale_if_error_total")
            }
            CacheEvent::BatchLoaded { stored, took, .. } => {
                let stored = u64::try_from(stored).unwrap_or(u64::MAX);
                s.count(
                    &s.cache_batch_keys,
                    "riprap_cache_batch_keys_total",
                    &[],
                    stored,
                );
                s.record(&s.cache_batch_load, "riprap_cache_batch_load_seconds", took);
                (&s.cache_batch_loads, "riprap_cache_batch_loads_total")
            }
            CacheEvent::BatchFailed { class, .. } => {
                let slot = &s.cache_batch_errors[class_index(&class)];
                let labels = [("class", class.as_str())];
                return s.count(slot, "riprap_cache_batch_errors_total", &labels, 1);
            }
            CacheEvent::RefreshDropped => (
                &s.cache_refresh_dropped,
                "riprap_cache_refresh_dropped_total",
            ),
            CacheEvent::Overloaded => (&s.cache_overloaded, "riprap_cache_overloaded_total"),
            CacheEvent::Evicted => (&s.cache_evictions, "riprap_cache_evictions_total"),
            CacheEvent::Inserted => (&s.cache_inserts, "riprap_cache_inserts_total"),
            CacheEvent::Invalidated | CacheEvent::InvalidatedAll => {
                (&s.cache_invalidations, "riprap_cache_invalidations_total")
            }
        };
        s.count(slot, metric, &[], 1);
    }
}

impl Series {
    // Generic over the offset so that typed events and `Event::Stream`'s erased ones share
    // one body; no offset ever becomes a label.
    fn stream<O>(&self, event: &StreamEvent<O>) {
        match event {
            StreamEvent::Loaded { position } => {
                let (i, from) = match position {
                    Some(_) => (0, "committed"),
                    None => (1, "start"),
                };
                self.count(
                    &self.stream_loads[i],
                    "riprap_stream_loads_total",
                    &[("from", from)],
                    1,
                );
            }
            StreamEvent::Reconnecting { delay, class, .. } => {
                self.count(
                    &self.stream_reconnects[class_index(class)],
                    "riprap_stream_reconnects_total",
                    &[("class", class.as_str())],
                    1,
                );
                self.record(
                    &self.stream_reconnect_delay,
                    "riprap_stream_reconnect_delay_seconds",
                    *delay,
                );
            }
            StreamEvent::Gap { .. } => {
                self.count(&self.stream_gaps, "riprap_stream_gaps_total", &[], 1)
            }
            StreamEvent::GaveUp { .. } => {
                self.count(&self.stream_giveups, "riprap_stream_giveups_total", &[], 1)
            }
            StreamEvent::Committed { .. } => {
                self.count(&self.stream_commits, "riprap_stream_commits_total", &[], 1)
            }
        }
    }
}

impl<O: Offset> Listener<StreamEvent<O>> for MetricsListener {
    fn on_event(&self, event: &StreamEvent<O>) {
        self.series.stream(event);
    }
}

/// Records each [`Event`] as its layer's event, under this listener's own name (the
/// forward's name is not used: series labels must not depend on who delivered the event).
impl<'a> Listener<Event<'a>> for MetricsListener {
    fn on_event(&self, event: &Event<'a>) {
        match *event {
            Event::Retry { event, .. } => self.on_event(event),
            Event::Breaker { event, .. } => self.on_event(event),
            Event::RateLimit { event, .. } => self.on_event(event),
            Event::Cache { event, .. } => self.on_event(event),
            Event::Stream { event, .. } => self.series.stream(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use metrics_util::debugging::DebuggingRecorder;

    use super::*;

    /// At least one event feeding each metric.
    fn one_of_each(m: &MetricsListener) {
        let d = Duration::from_millis(5);
        m.on_event(&RetryEvent::Attempt {
            attempt: 1,
            class: Class::Transient,
            delay: Some(d),
        });
        m.on_event(&RetryEvent::GaveUp {
            attempts: 1,
            reason: GiveUp::Deadline,
        });
        m.on_event(&BreakerEvent::Transition {
            name: None,
            from: BreakerState::Closed,
            to: BreakerState::Open,
            open_for: Some(d),
            generation: 1,
        });
        m.on_event(&BreakerEvent::WouldTrip { name: None });
        m.on_event(&BreakerEvent::Rejected {
            name: None,
            rejected: Rejected::Isolated,
        });
        for e in [
            RateLimitEvent::GateClosed { reopens_in: d },
            RateLimitEvent::GateReopened,
            RateLimitEvent::Pacing {
                interval: d,
                lasts: d,
            },
            RateLimitEvent::Waited { waited: d },
            RateLimitEvent::Rejected { by: None },
            RateLimitEvent::RateDecreased { rate: 1.0 },
        ] {
            m.on_event(&e);
        }
        for e in [
            CacheEvent::Hit,
            CacheEvent::StaleHit,
            CacheEvent::NegativeHit,
            CacheEvent::Miss,
            CacheEvent::Loaded { took: d },
            CacheEvent::LoadFailed {
                class: Class::Permanent,
            },
            CacheEvent::StaleIfError,
            CacheEvent::BatchLoaded {
                keys: 3,
                stored: 2,
                took: d,
            },
            CacheEvent::BatchFailed {
                keys: 3,
                class: Class::Transient,
            },
            CacheEvent::RefreshDropped,
            CacheEvent::Overloaded,
            CacheEvent::Evicted,
            CacheEvent::Inserted,
            CacheEvent::InvalidatedAll,
        ] {
            m.on_event(&e);
        }
        for e in [
            StreamEvent::Loaded { position: Some(3) },
            StreamEvent::Reconnecting {
                after: Some(3),
                attempt: 1,
                delay: d,
                class: Class::Transient,
            },
            StreamEvent::Gap {
                expected: 4,
                found: 6,
            },
            StreamEvent::GaveUp {
                attempts: 2,
                reason: GiveUp::AttemptsExhausted,
            },
            StreamEvent::Committed { position: 6u64 },
        ] {
            m.on_event(&e);
        }
    }

    #[test]
    fn every_metric_published_is_described_and_in_the_guide() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || one_of_each(&MetricsListener::new("x")));
        let published: BTreeSet<String> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, ..)| key.key().name().to_string())
            .collect();
        let described: BTreeSet<String> =
            DESCRIPTIONS.iter().map(|(n, ..)| n.to_string()).collect();
        assert_eq!(published, described);
        let guide = include_str!("mod.rs");
        for name in &described {
            assert!(
                guide.contains(&format!("`{name}`")),
                "{name} not in the guide"
            );
        }
    }

    #[test]
    fn histograms_are_in_seconds_and_counters_count() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            MetricsListener::describe();
            one_of_each(&MetricsListener::new("x"));
        });
        for (key, unit, help, value) in snapshotter.snapshot().into_vec() {
            let name = key.key().name();
            let histogram = matches!(value, metrics_util::debugging::DebugValue::Histogram(_));
            assert_eq!(histogram, name.ends_with("_seconds"), "{name}");
            assert_eq!(!histogram, name.ends_with("_total"), "{name}");
            let expected = if histogram {
                Unit::Seconds
            } else {
                Unit::Count
            };
            assert_eq!(unit, Some(expected), "{name}");
            assert!(help.is_some(), "{name}");
        }
    }
}
