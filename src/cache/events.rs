//! What the cache reports: events for listeners and `tracing`, counters for snapshots.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::classify::Class;
use crate::events::{self, LayerEvent, Measure, Metric, SharedListener, ms};

/// Something the cache did. Emitted through `tracing` (target `riprap::cache`; the
/// [module guide](super#observing) lists levels, fields and metrics) and to the config's
/// [`listener`](super::CacheConfigBuilder::listener).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use riprap::cache::{Cache, CacheConfig, CacheEvent};
/// use riprap::events::Event;
///
/// let seen: Arc<Mutex<Vec<CacheEvent>>> = Arc::default();
/// let sink = Arc::clone(&seen);
/// let config = CacheConfig::builder()
///     .listener(move |e: &Event<'_>| {
///         sink.lock().unwrap().extend(e.downcast_ref::<CacheEvent>().copied())
///     })
///     .build()?;
/// let cache: Cache<u32, &str, ()> = Cache::new(config);
/// cache.insert(1, "one");
/// assert_eq!(cache.get(&1), Some("one"));
/// assert_eq!(*seen.lock().unwrap(), [CacheEvent::Inserted, CacheEvent::Hit]);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A read found a fresh entry.
    Hit,
    /// A read found an entry past `refresh_after`: served, and a refresh was started.
    StaleHit,
    /// A read found a remembered permanent failure (negative caching).
    NegativeHit,
    /// A read found nothing usable and waits for a load.
    Miss,
    /// A per-key load succeeded.
    Loaded {
        /// How long the loader took.
        took: Duration,
    },
    /// A per-key load failed, or succeeded with a response the classifier did not accept.
    LoadFailed {
        /// The classifier's verdict.
        class: Class,
    },
    /// A load failed and a read was answered with an expired entry within `stale_if_error`.
    StaleIfError,
    /// A batch load returned.
    BatchLoaded {
        /// Keys asked for.
        keys: usize,
        /// Keys in the response that were stored.
        stored: usize,
        /// How long the batch loader took.
        took: Duration,
    },
    /// A batch load failed; its keys stay as they were.
    BatchFailed {
        /// Keys asked for.
        keys: usize,
        /// The classifier's verdict.
        class: Class,
    },
    /// A key due for refresh found the batch queue full (it is queued again by a later read).
    RefreshDropped,
    /// A miss found `max_in_flight` keys already loading and was turned away.
    Overloaded,
    /// An entry was evicted to stay within capacity.
    Evicted,
    /// `insert` stored a value.
    Inserted,
    /// `invalidate` removed a key.
    Invalidated,
    /// `invalidate_all` emptied the cache.
    InvalidatedAll,
}

impl CacheEvent {
    /// A short name for logs and metric labels, e.g. `"stale_hit"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheEvent::Hit => "hit",
            CacheEvent::StaleHit => "stale_hit",
            CacheEvent::NegativeHit => "negative_hit",
            CacheEvent::Miss => "miss",
            CacheEvent::Loaded { .. } => "loaded",
            CacheEvent::LoadFailed { .. } => "load_failed",
            CacheEvent::StaleIfError => "stale_if_error",
            CacheEvent::BatchLoaded { .. } => "batch_loaded",
            CacheEvent::BatchFailed { .. } => "batch_failed",
            CacheEvent::RefreshDropped => "refresh_dropped",
            CacheEvent::Overloaded => "overloaded",
            CacheEvent::Evicted => "evicted",
            CacheEvent::Inserted => "inserted",
            CacheEvent::Invalidated => "invalidated",
            CacheEvent::InvalidatedAll => "invalidated_all",
        }
    }

    fn counter(&self) -> usize {
        match self {
            CacheEvent::Hit => HITS,
            CacheEvent::StaleHit => STALE_HITS,
            CacheEvent::NegativeHit => NEGATIVE_HITS,
            CacheEvent::Miss => MISSES,
            CacheEvent::Loaded { .. } => LOADS,
            CacheEvent::LoadFailed { .. } => LOAD_ERRORS,
            CacheEvent::StaleIfError => STALE_IF_ERROR,
            CacheEvent::BatchLoaded { .. } => BATCH_LOADS,
            CacheEvent::BatchFailed { .. } => BATCH_ERRORS,
            CacheEvent::RefreshDropped => REFRESH_DROPPED,
            CacheEvent::Overloaded => OVERLOADED,
            CacheEvent::Evicted => EVICTIONS,
            CacheEvent::Inserted => INSERTS,
            CacheEvent::Invalidated | CacheEvent::InvalidatedAll => INVALIDATIONS,
        }
    }
}

impl fmt::Display for CacheEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const HITS: usize = 0;
const STALE_HITS: usize = 1;
const NEGATIVE_HITS: usize = 2;
const MISSES: usize = 3;
const LOADS: usize = 4;
const LOAD_ERRORS: usize = 5;
const STALE_IF_ERROR: usize = 6;
const BATCH_LOADS: usize = 7;
const BATCH_ERRORS: usize = 8;
const BATCH_KEYS: usize = 9;
const REFRESH_DROPPED: usize = 10;
const OVERLOADED: usize = 11;
const EVICTIONS: usize = 12;
const INSERTS: usize = 13;
const INVALIDATIONS: usize = 14;
const COUNTERS: usize = 15;

/// A snapshot of a cache's counters since it was made.
///
/// ```
/// use riprap::cache::{Cache, CacheConfig};
///
/// let cache: Cache<u32, u32, ()> = Cache::new(CacheConfig::builder().build()?);
/// cache.insert(1, 10);
/// cache.get(&1);
/// cache.get(&2);
/// let m = cache.metrics();
/// assert_eq!((m.hits, m.misses, m.entries), (1, 1, 1));
/// assert_eq!(m.hit_ratio(), 0.5);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct CacheMetrics {
    /// Reads answered with a fresh entry.
    pub hits: u64,
    /// Reads answered with an entry due for refresh.
    pub stale_hits: u64,
    /// Reads answered with a remembered permanent failure.
    pub negative_hits: u64,
    /// Reads that found nothing usable.
    pub misses: u64,
    /// Per-key loads that succeeded.
    pub loads: u64,
    /// Per-key loads that failed.
    pub load_errors: u64,
    /// Reads answered with an expired entry because the load failed.
    pub stale_if_error: u64,
    /// Batch loads that returned.
    pub batch_loads: u64,
    /// Batch loads that failed.
    pub batch_errors: u64,
    /// Keys stored by batch loads.
    pub batch_keys: u64,
    /// Keys due for refresh that found the batch queue full.
    pub refresh_dropped: u64,
    /// Misses turned away because `max_in_flight` keys were loading.
    pub overloaded: u64,
    /// Entries evicted for capacity.
    pub evictions: u64,
    /// Values stored with `insert`.
    pub inserts: u64,
    /// Calls to `invalidate` and `invalidate_all`.
    pub invalidations: u64,
    /// Entries held now.
    pub entries: u64,
    /// Keys loading now.
    pub in_flight: u64,
}

impl CacheMetrics {
    /// Hits (fresh or stale) over all reads; 0 before the first read.
    pub fn hit_ratio(&self) -> f64 {
        let hits = self.hits + self.stale_hits + self.negative_hits;
        let reads = hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            hits as f64 / reads as f64
        }
    }
}

const STRIPES: usize = 16;

impl CacheEvent {
    /// Emit the event through `tracing`.
    #[inline]
    pub(crate) fn trace(&self) {
        const T: &str = "riprap::cache";
        match *self {
            CacheEvent::Hit => tracing::trace!(target: T, event = "hit", "hit"),
            CacheEvent::StaleHit => {
                tracing::trace!(target: T, event = "stale_hit", "stale hit, refreshing")
            }
            CacheEvent::NegativeHit => {
                tracing::trace!(target: T, event = "negative_hit", "negative hit")
            }
            CacheEvent::Miss => tracing::trace!(target: T, event = "miss", "miss"),
            CacheEvent::Evicted => tracing::trace!(target: T, event = "evicted", "evicted"),
            CacheEvent::Loaded { took } => {
                tracing::debug!(target: T, event = "loaded", took_ms = ms(took), "loaded")
            }
            CacheEvent::LoadFailed { class } => {
                tracing::debug!(target: T, event = "load_failed", class = class.as_str(), "load failed")
            }
            CacheEvent::StaleIfError => {
                tracing::debug!(target: T, event = "stale_if_error", "served stale after a failed load")
            }
            CacheEvent::BatchLoaded { keys, stored, took } => {
                tracing::debug!(target: T, event = "batch_loaded", keys, stored, took_ms = ms(took), "batch loaded")
            }
            CacheEvent::BatchFailed { keys, class } => {
                // A background refresh: nobody else sees this error.
                tracing::warn!(target: T, event = "batch_failed", keys, class = class.as_str(), "batch refresh failed")
            }
            CacheEvent::RefreshDropped => {
                tracing::debug!(target: T, event = "refresh_dropped", "refresh dropped: queue full")
            }
            CacheEvent::Overloaded => {
                tracing::warn!(target: T, event = "overloaded", "miss turned away: too many loads in flight")
            }
            CacheEvent::Inserted => tracing::debug!(target: T, event = "inserted", "inserted"),
            CacheEvent::Invalidated => {
                tracing::debug!(target: T, event = "invalidated", "invalidated")
            }
            CacheEvent::InvalidatedAll => {
                tracing::debug!(target: T, event = "invalidated_all", "invalidated all")
            }
        }
    }
}

macro_rules! counter {
    ($name:ident, $metric:literal, $help:literal) => {
        static $name: Metric = Metric::counter($metric, $help, &[], 1);
    };
}

counter!(HITS_M, "riprap_cache_hits_total", "Fresh cache hits");
counter!(
    STALE_HITS_M,
    "riprap_cache_stale_hits_total",
    "Cache hits due for refresh (a refresh was started)"
);
counter!(
    NEGATIVE_HITS_M,
    "riprap_cache_negative_hits_total",
    "Remembered permanent failures served from the cache"
);
counter!(
    MISSES_M,
    "riprap_cache_misses_total",
    "Cache reads that found nothing usable"
);
counter!(
    LOADS_M,
    "riprap_cache_loads_total",
    "Per-key cache loads that succeeded"
);
counter!(
    STALE_IF_ERROR_M,
    "riprap_cache_stale_if_error_total",
    "Expired entries served because a load failed"
);
counter!(
    BATCH_LOADS_M,
    "riprap_cache_batch_loads_total",
    "Batch loads that returned"
);
counter!(
    BATCH_KEYS_M,
    "riprap_cache_batch_keys_total",
    "Keys stored by batch loads"
);
counter!(
    REFRESH_DROPPED_M,
    "riprap_cache_refresh_dropped_total",
    "Keys due for refresh that found the refresh queue full"
);
counter!(
    OVERLOADED_M,
    "riprap_cache_overloaded_total",
    "Misses turned away at max_in_flight"
);
counter!(
    EVICTIONS_M,
    "riprap_cache_evictions_total",
    "Cache entries evicted for capacity"
);
counter!(
    INSERTS_M,
    "riprap_cache_inserts_total",
    "Cache insert calls"
);
counter!(
    INVALIDATIONS_M,
    "riprap_cache_invalidations_total",
    "Cache invalidate and invalidate_all calls"
);
static LOAD_M: Metric = Metric::histogram(
    "riprap_cache_load_seconds",
    "Duration of per-key cache loads that succeeded",
    &[],
    1,
);
static LOAD_ERRORS_M: Metric = Metric::counter(
    "riprap_cache_load_errors_total",
    "Per-key cache loads that failed, by class",
    &["class"],
    Class::CLASSES,
);
static BATCH_LOAD_M: Metric = Metric::histogram(
    "riprap_cache_batch_load_seconds",
    "Duration of batch loads that returned",
    &[],
    1,
);
static BATCH_ERRORS_M: Metric = Metric::counter(
    "riprap_cache_batch_errors_total",
    "Batch loads that failed, by class",
    &["class"],
    Class::CLASSES,
);

impl LayerEvent for CacheEvent {
    fn layer(&self) -> &'static str {
        "cache"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    #[inline]
    fn measure(&self, into: &dyn Measure) {
        let metric = match *self {
            CacheEvent::Hit => &HITS_M,
            CacheEvent::StaleHit => &STALE_HITS_M,
            CacheEvent::NegativeHit => &NEGATIVE_HITS_M,
            CacheEvent::Miss => &MISSES_M,
            CacheEvent::Loaded { took } => {
                into.record(&LOAD_M, 0, &[], took);
                &LOADS_M
            }
            CacheEvent::LoadFailed { class } => {
                return into.count(&LOAD_ERRORS_M, class.ordinal(), &[class.as_str()], 1);
            }
            CacheEvent::StaleIfError => &STALE_IF_ERROR_M,
            CacheEvent::BatchLoaded { stored, took, .. } => {
                let stored = u64::try_from(stored).unwrap_or(u64::MAX);
                into.count(&BATCH_KEYS_M, 0, &[], stored);
                into.record(&BATCH_LOAD_M, 0, &[], took);
                &BATCH_LOADS_M
            }
            CacheEvent::BatchFailed { class, .. } => {
                return into.count(&BATCH_ERRORS_M, class.ordinal(), &[class.as_str()], 1);
            }
            CacheEvent::RefreshDropped => &REFRESH_DROPPED_M,
            CacheEvent::Overloaded => &OVERLOADED_M,
            CacheEvent::Evicted => &EVICTIONS_M,
            CacheEvent::Inserted => &INSERTS_M,
            CacheEvent::Invalidated | CacheEvent::InvalidatedAll => &INVALIDATIONS_M,
        };
        into.count(metric, 0, &[], 1);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Counters striped per thread, each stripe on its own cache lines, so two threads counting
/// hits never write the same line.
#[repr(align(128))]
struct Stripe([AtomicU64; COUNTERS]);

pub(crate) struct Observer {
    stripes: Box<[Stripe]>,
    listener: Option<SharedListener>,
}

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[inline]
fn stripe_index() -> usize {
    STRIPE.with(|s| {
        let i = s.get();
        if i != usize::MAX {
            return i;
        }
        let i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(i);
        i
    })
}

impl Observer {
    pub(crate) fn new(listener: Option<SharedListener>) -> Observer {
        Observer {
            stripes: (0..STRIPES)
                .map(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
            listener,
        }
    }

    #[inline]
    fn count(&self, counter: usize, n: u64) {
        self.stripes[stripe_index()].0[counter].fetch_add(n, Ordering::Relaxed);
    }

    /// The hit path: one uncontended increment, a trace callsite, and the listener if any.
    #[inline]
    pub(crate) fn hit(&self) {
        self.count(HITS, 1);
        CacheEvent::Hit.trace();
        events::deliver(self.listener.as_ref(), &CacheEvent::Hit);
    }

    pub(crate) fn emit(&self, event: CacheEvent) {
        self.count(event.counter(), 1);
        if let CacheEvent::BatchLoaded { stored, .. } = event {
            self.count(BATCH_KEYS, stored as u64);
        }
        event.trace();
        events::deliver(self.listener.as_ref(), &event);
    }

    pub(crate) fn snapshot(&self) -> CacheMetrics {
        let sum = |c: usize| {
            self.stripes
                .iter()
                .map(|s| s.0[c].load(Ordering::Relaxed))
                .fold(0u64, u64::wrapping_add)
        };
        CacheMetrics {
            hits: sum(HITS),
            stale_hits: sum(STALE_HITS),
            negative_hits: sum(NEGATIVE_HITS),
            misses: sum(MISSES),
            loads: sum(LOADS),
            load_errors: sum(LOAD_ERRORS),
            stale_if_error: sum(STALE_IF_ERROR),
            batch_loads: sum(BATCH_LOADS),
            batch_errors: sum(BATCH_ERRORS),
            batch_keys: sum(BATCH_KEYS),
            refresh_dropped: sum(REFRESH_DROPPED),
            overloaded: sum(OVERLOADED),
            evictions: sum(EVICTIONS),
            inserts: sum(INSERTS),
            invalidations: sum(INVALIDATIONS),
            entries: 0,
            in_flight: 0,
        }
    }
}
