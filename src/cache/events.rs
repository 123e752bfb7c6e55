//! What the cache reports: events for listeners and `tracing`, counters for snapshots.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::classify::Class;
use crate::events::{SharedListener, trace};

/// Something the cache did. Emitted through `tracing` (target `riprap::cache`; the
/// [events guide](crate::events) lists levels and fields) and to the config's
/// [`listener`](super::CacheConfigBuilder::listener).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use riprap::cache::{Cache, CacheConfig, CacheEvent};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let config = CacheConfig::builder()
///     .listener(move |e: &CacheEvent| sink.lock().unwrap().push(*e))
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

/// Counters striped per thread, each stripe on its own cache lines, so two threads counting
/// hits never write the same line.
#[repr(align(128))]
struct Stripe([AtomicU64; COUNTERS]);

pub(crate) struct Observer {
    stripes: Box<[Stripe]>,
    listener: Option<SharedListener<CacheEvent>>,
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
    pub(crate) fn new(listener: Option<SharedListener<CacheEvent>>) -> Observer {
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
        trace::cache(&CacheEvent::Hit);
        if let Some(l) = &self.listener {
            l.on_event(&CacheEvent::Hit);
        }
    }

    pub(crate) fn emit(&self, event: CacheEvent) {
        self.count(event.counter(), 1);
        if let CacheEvent::BatchLoaded { stored, .. } = event {
            self.count(BATCH_KEYS, stored as u64);
        }
        trace::cache(&event);
        if let Some(l) = &self.listener {
            l.on_event(&event);
        }
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
