//! Bounded per-key state: the map behind keyed breakers and keyed rate limiters.
//!
//! Storage is `quick_cache`'s sharded map with its CLOCK-Pro-like eviction: finding room for
//! a new key is amortised O(1) at any cap (a clock hand moves over a few entries; nothing is
//! scanned), and a hit is one shard read lock and a hash lookup. riprap adds what a keyed
//! layer needs on top: idle expiry on tokio's clock, a byte charge per key, a state that
//! asks not to be evicted (a breaker under an operator's command), and `remove` / `retain`.

use std::cell::RefCell;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, Options, OptionsBuilder, Weighter};
use tokio::time::Instant;

use crate::ConfigError;
use crate::time::nanos;

type Weigh<K> = Arc<dyn Fn(&K) -> usize + Send + Sync>;

/// How many keys a keyed breaker or keyed rate limiter keeps, for how long, and how many
/// bytes of keys.
///
/// Keys come from requests (a host, a tenant, a model), so whoever sends the requests
/// chooses how many there are. Every key gets state of its own, never shared with another
/// key; the limits below bound how much of it is kept, by forgetting the least useful keys.
///
/// - [`new(max_keys)`](Self::new): at most this many keys hold state. A new key beyond it
///   evicts one chosen by use (see *Eviction* below).
/// - [`idle_timeout`](Self::idle_timeout): a key not used for this long is forgotten, as if
///   evicted, measured on tokio's clock (so a paused test clock drives it).
/// - [`max_key_bytes`](Self::max_key_bytes): keys are also charged their size in bytes, so
///   4 KiB keys cannot hold as much memory as `max_keys` small ones.
///
/// # Eviction
///
/// The victim is picked by recency and frequency of use (quick_cache's CLOCK-Pro variant),
/// never by scanning: a key seen once enters a small probation area (about 3 % of the cap)
/// and is the first to go; a key used again is promoted and stays while it keeps being used.
/// A flood of one-off keys therefore recycles the probation area and leaves the keys in
/// steady use alone. What a key's state says (open, spent) does not protect it, so a map
/// full of stale state always has room for a new key. The guarantees, which the tests check
/// against a reference model:
///
/// - the map never holds more than `max_keys` keys (nor, with a byte charge, more than the
///   budget), except for breakers under an operator's command, which are never evicted;
/// - a key is evicted only to make room for a new one, and never the new key itself;
///   without a byte charge, a new key evicts one key, or two when it was itself evicted
///   lately (it then comes back among the frequently used, and room is made there too);
/// - while a shard has room nothing is evicted: the cap is split evenly over up to 4 × cores
///   shards of at least 32 keys each (a single shard up to 62 keys), so with many shards
///   eviction can start a little before `max_keys` keys;
/// - a key used less than `idle_timeout` ago is not expired, and a key unused for
///   `idle_timeout × (1 + 1/32)` is never served its old state: it starts afresh (its memory
///   goes at the next sweep, see [`idle_timeout`](Self::idle_timeout));
/// - a key that is neither evicted, expired nor removed keeps its state.
///
/// ```
/// use std::time::Duration;
/// use riprap::ratelimit::{KeyLimits, KeyedRateLimiter, RateLimitConfig};
///
/// let limits = KeyLimits::new(10_000)
///     .idle_timeout(Duration::from_secs(600))
///     .max_key_bytes(1 << 20, |tenant: &String| tenant.len());
/// let per_tenant = KeyedRateLimiter::with_limits(RateLimitConfig::builder().build()?, limits)?;
/// assert_eq!(per_tenant.max_keys(), 10_000);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
pub struct KeyLimits<K> {
    max_keys: usize,
    idle_timeout: Option<Duration>,
    bytes: Option<(usize, Weigh<K>)>,
}

impl<K> Clone for KeyLimits<K> {
    fn clone(&self) -> Self {
        KeyLimits {
            max_keys: self.max_keys,
            idle_timeout: self.idle_timeout,
            bytes: self.bytes.clone(),
        }
    }
}

impl<K> fmt::Debug for KeyLimits<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLimits")
            .field("max_keys", &self.max_keys)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_key_bytes", &self.bytes.as_ref().map(|(b, _)| b))
            .finish()
    }
}

impl<K> KeyLimits<K> {
    /// At most `max_keys` keys hold state (at least 1, checked when the keyed layer is built).
    pub fn new(max_keys: usize) -> Self {
        KeyLimits {
            max_keys,
            idle_timeout: None,
            bytes: None,
        }
    }

    /// Forget a key once it has not been used for `timeout` (more than zero).
    ///
    /// A lookup never returns state idle for longer than `timeout × (1 + 1/32)`: the key
    /// starts afresh. The last use is recorded only when it moves by more than
    /// `timeout / 32`, so a hot key does not write a shared cache line on every hit; that is
    /// the slack. Idle keys' memory goes in a sweep run once every `max_keys` new keys
    /// (amortised: one sweep visits each key once), or when you call `evict_idle`
    /// ([breakers](crate::breaker::KeyedBreakers::evict_idle),
    /// [limiters](crate::ratelimit::KeyedRateLimiter::evict_idle)).
    ///
    /// Costs every hit one clock reading. Choose it longer than the longest open time of a
    /// breaker, or an open breaker whose key went quiet is forgotten while still open.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Charge each key `weigh(&key)` bytes (what it holds on the heap, say `key.len()` for a
    /// `String`) against `budget` bytes in all, besides the cap on keys.
    ///
    /// Each key is charged at least `budget / max_keys`, so neither bound can be exceeded
    /// (the budget rounded up to a multiple of `max_keys`). `weigh` runs once, when a key is
    /// stored. A key weighing more than half a shard's share of the budget is not stored:
    /// a keyed breaker gives it a fresh breaker on each call (it is never rejected for other
    /// keys, and never trips), and a keyed rate limiter puts every such key on one shared
    /// limiter (they are limited together, never let through unlimited). Bound long keys in
    /// the key function (truncate or hash them) to keep them apart.
    ///
    /// With a byte charge, `max_keys` must be at least 2.
    pub fn max_key_bytes(
        mut self,
        budget: usize,
        weigh: impl Fn(&K) -> usize + Send + Sync + 'static,
    ) -> Self {
        self.bytes = Some((budget, Arc::new(weigh)));
        self
    }
}

/// The knob names a layer reports its `KeyLimits` errors under.
pub(crate) struct Knobs {
    pub(crate) max_keys: &'static str,
    pub(crate) idle_timeout: &'static str,
    pub(crate) max_key_bytes: &'static str,
}

/// State kept per key.
pub(crate) trait KeyState: Clone {
    /// Whether the state must outlive eviction and idle expiry (an operator's command).
    fn pinned(&self) -> bool {
        false
    }

    /// Told when the map pushes this state out to make room (or replaces it when idle).
    fn evicted(&self) {}
}

/// A key's state as stored: bare when nothing is kept beside it (the default, one object
/// per key), or with its weight and last use.
#[derive(Clone)]
pub(crate) enum Stored<V> {
    Bare(V),
    Kept(Arc<Slot<V>>),
}

pub(crate) struct Slot<V> {
    value: V,
    /// The charge against the map's capacity, fixed when stored (quick_cache requires an
    /// entry's weight never to change, whatever the user's weigher does).
    weight: u64,
    /// Nanoseconds since the map's base at the last recorded use (only with idle expiry).
    last_used: AtomicU64,
}

impl<V> Stored<V> {
    #[inline]
    fn value(&self) -> &V {
        match self {
            Stored::Bare(v) => v,
            Stored::Kept(slot) => &slot.value,
        }
    }
}

impl<V: Clone> Stored<V> {
    #[inline]
    fn into_value(self) -> V {
        match self {
            Stored::Bare(v) => v,
            Stored::Kept(slot) => slot.value.clone(),
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct SlotWeight;

impl<K, V> Weighter<K, Stored<V>> for SlotWeight {
    #[inline]
    fn weight(&self, _: &K, stored: &Stored<V>) -> u64 {
        match stored {
            Stored::Bare(_) => 1,
            Stored::Kept(slot) => slot.weight,
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Pins;

impl<K, V: KeyState> Lifecycle<K, Stored<V>> for Pins {
    type RequestState = ();

    fn begin_request(&self) {}

    #[inline]
    fn is_pinned(&self, _: &K, stored: &Stored<V>) -> bool {
        stored.value().pinned()
    }

    fn on_evict(&self, _: &mut (), _: K, stored: Stored<V>) {
        stored.value().evicted();
    }
}

struct Idle {
    base: Instant,
    timeout: u64,
    /// How far the recorded last use may lag the real one.
    slack: u64,
}

/// At most `max_keys` keys, each with its own `V`.
pub(crate) struct KeyMap<K, V> {
    store: Cache<K, Stored<V>, SlotWeight, DefaultHashBuilder, Pins>,
    /// One per shard: taken by a new key's insertion only.
    inserting: Box<[Mutex<()>]>,
    options: Options,
    max_keys: usize,
    weigh: Option<Weigh<K>>,
    /// The least a key is charged: `budget / max_keys` rounded up, or 1.
    floor: u64,
    /// The heaviest entry stored; heavier keys get unkept state.
    max_weight: u64,
    idle: Option<Idle>,
    /// New keys stored since the map was made (counted only with idle expiry).
    inserted: AtomicU64,
}

impl<K, V> KeyMap<K, V>
where
    K: Hash + Eq + Clone,
    V: KeyState,
{
    pub(crate) fn new(limits: &KeyLimits<K>, knobs: &Knobs) -> Result<Self, ConfigError> {
        if limits.max_keys == 0 {
            return Err(ConfigError::new(knobs.max_keys, "must be at least 1"));
        }
        let idle = match limits.idle_timeout {
            None => None,
            Some(d) if d.is_zero() => {
                return Err(ConfigError::new(
                    knobs.idle_timeout,
                    "must be more than zero",
                ));
            }
            Some(d) => {
                let timeout = crate::error::check_duration(knobs.idle_timeout, d)?;
                Some(Idle {
                    base: Instant::now(),
                    timeout,
                    slack: timeout / 32,
                })
            }
        };
        let keys = limits.max_keys as u64;
        let (floor, capacity) = match &limits.bytes {
            None => (1, keys),
            Some((budget, _)) => {
                if *budget == 0 {
                    return Err(ConfigError::new(knobs.max_key_bytes, "must be at least 1"));
                }
                if limits.max_keys < 2 {
                    return Err(ConfigError::new(
                        knobs.max_keys,
                        "must be at least 2 with a byte budget for keys",
                    ));
                }
                let floor = (*budget as u64).div_ceil(keys).max(1);
                (floor, floor.saturating_mul(keys))
            }
        };
        let options = OptionsBuilder::new()
            .estimated_items_capacity(limits.max_keys)
            .weight_capacity(capacity)
            .build()
            .map_err(|e| ConfigError::new(knobs.max_keys, e.to_string()))?;
        let store = Cache::with_options(
            options.clone(),
            SlotWeight,
            DefaultHashBuilder::default(),
            Pins,
        );
        // Half a shard: well inside what quick_cache admits (97 % of a shard), and never less
        // than the floor (a shard holds at least two floors' worth, see `new`'s checks).
        let max_weight = if limits.bytes.is_some() {
            (store.shard_capacity() / 2).max(floor)
        } else {
            u64::MAX
        };
        Ok(KeyMap {
            inserting: (0..store.num_shards()).map(|_| Mutex::new(())).collect(),
            store,
            options,
            max_keys: limits.max_keys,
            weigh: limits.bytes.as_ref().map(|(_, w)| Arc::clone(w)),
            floor,
            max_weight,
            idle,
            inserted: AtomicU64::new(0),
        })
    }

    /// An empty map with the same limits, for another kind of state.
    pub(crate) fn empty_like<W: KeyState>(&self) -> KeyMap<K, W> {
        KeyMap {
            store: Cache::with_options(
                self.options.clone(),
                SlotWeight,
                DefaultHashBuilder::default(),
                Pins,
            ),
            inserting: (0..self.inserting.len()).map(|_| Mutex::new(())).collect(),
            options: self.options.clone(),
            max_keys: self.max_keys,
            weigh: self.weigh.clone(),
            floor: self.floor,
            max_weight: self.max_weight,
            idle: self.idle.as_ref().map(|idle| Idle {
                base: Instant::now(),
                timeout: idle.timeout,
                slack: idle.slack,
            }),
            inserted: AtomicU64::new(0),
        }
    }

    /// Nanoseconds on the map's clock; read only when idle expiry needs it.
    #[inline]
    fn now(&self) -> u64 {
        match &self.idle {
            Some(idle) => nanos(Instant::now().saturating_duration_since(idle.base)),
            None => 0,
        }
    }

    #[inline]
    fn expired(&self, stored: &Stored<V>, now: u64) -> bool {
        match (&self.idle, stored) {
            (Some(idle), Stored::Kept(slot)) => {
                now.saturating_sub(slot.last_used.load(Relaxed))
                    >= idle.timeout.saturating_add(idle.slack)
                    && !slot.value.pinned()
            }
            _ => false,
        }
    }

    #[inline]
    fn touch(&self, stored: &Stored<V>, now: u64) {
        if let (Some(idle), Stored::Kept(slot)) = (&self.idle, stored) {
            // Write only when it moved by more than the slack: readers of a hot key then
            // share its cache line instead of bouncing it between cores.
            let last = slot.last_used.load(Relaxed);
            if now.saturating_sub(last) > idle.slack {
                slot.last_used.store(now, Relaxed);
            }
        }
    }

    /// The state of `key`, made by `make` if it has none. `None` when the key is too heavy
    /// to keep (see [`KeyLimits::max_key_bytes`]): the caller decides what it gets instead.
    #[inline]
    pub(crate) fn get_or_insert(&self, key: &K, make: impl FnOnce() -> V) -> Option<V> {
        let now = self.now();
        if let Some(stored) = self.store.get(key) {
            if !self.expired(&stored, now) {
                self.touch(&stored, now);
                return Some(stored.into_value());
            }
        }
        self.insert(key, now, make)
    }

    #[inline(never)]
    fn insert(&self, key: &K, now: u64, make: impl FnOnce() -> V) -> Option<V> {
        let weight = match &self.weigh {
            None => 1,
            Some(weigh) => (weigh(key) as u64).max(self.floor),
        };
        if weight > self.max_weight {
            return None;
        }
        // Made before taking any lock, so the locks are held only to store it.
        let value = make();
        let fresh = if self.idle.is_some() || self.weigh.is_some() {
            Stored::Kept(Arc::new(Slot {
                value: value.clone(),
                weight,
                last_used: AtomicU64::new(now),
            }))
        } else {
            Stored::Bare(value.clone())
        };
        {
            // Serialise first uses of one key, so racing callers share one state; the lock
            // covers the shard, whose write lock `insert` takes anyway.
            let stripe = self
                .store
                .shard_index(key)
                .checked_rem(self.inserting.len())
                .unwrap_or(0);
            let _one_at_a_time = self
                .inserting
                .get(stripe)
                .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner));
            if let Some(stored) = self.store.get(key) {
                if !self.expired(&stored, now) {
                    // Another caller stored this key first: share its state.
                    self.touch(&stored, now);
                    return Some(stored.into_value());
                }
            }
            // A new key: quick_cache makes room first, then stores it. A key it evicted
            // lately (a "ghost") comes back among the frequently used, and room is made
            // after, which can evict the key just stored; then it is stored again, as new.
            // An expired entry is replaced in place.
            self.store.insert(key.clone(), fresh.clone());
            if !self.store.contains_key(key) {
                self.store.insert(key.clone(), fresh);
            }
        };
        if let Some(idle) = &self.idle {
            let n = self.inserted.fetch_add(1, Relaxed).wrapping_add(1);
            if n % (self.max_keys as u64) == 0 {
                let now = nanos(Instant::now().saturating_duration_since(idle.base));
                self.sweep(now);
            }
        }
        Some(value)
    }

    fn sweep(&self, now: u64) {
        self.store.retain(|_, stored| !self.expired(stored, now));
    }

    /// Drop every key idle for longer than the idle timeout.
    pub(crate) fn evict_idle(&self) {
        if self.idle.is_some() {
            self.sweep(self.now());
        }
    }

    /// The state of `key` without counting a use.
    pub(crate) fn peek(&self, key: &K) -> Option<V> {
        let stored = self.store.peek(key)?;
        (!self.expired(&stored, self.now())).then(|| stored.into_value())
    }

    /// Forget `key`; its state, if it had live state.
    pub(crate) fn remove(&self, key: &K) -> Option<V> {
        let (_, stored) = self.store.remove(key)?;
        (!self.expired(&stored, self.now())).then(|| stored.into_value())
    }

    /// Keep only the keys for which `keep` says so (idle ones go too). Takes each shard's
    /// write lock in turn: `keep` must not use this map.
    pub(crate) fn retain(&self, keep: impl FnMut(&K, &V) -> bool) {
        let now = self.now();
        let keep = RefCell::new(keep);
        self.store.retain(|k, stored| {
            !self.expired(stored, now) && (keep.borrow_mut())(k, stored.value())
        });
    }

    /// Every live key with its state.
    pub(crate) fn snapshot(&self) -> Vec<(K, V)> {
        let now = self.now();
        self.store
            .iter()
            .filter(|(_, stored)| !self.expired(stored, now))
            .map(|(k, stored)| (k, stored.into_value()))
            .collect()
    }

    /// Keys stored, including idle ones not yet swept.
    pub(crate) fn len(&self) -> usize {
        self.store.len()
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }
}

impl<K: Hash + Eq + Clone, V: KeyState> fmt::Debug for KeyMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMap")
            .field("len", &self.store.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}
