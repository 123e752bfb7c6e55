//! The shared cache handle and the state behind it.

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use quick_cache::sync::Cache as Store;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};
use tokio::sync::watch;

use super::clock::Clock;
use super::due::DueQueue;
use super::entry::{Entry, Freshness, Slot};
use super::events::Observer;
use super::flight::{Flight, FlightGuard, Flights, Landing, Receiver};
use super::{CacheConfig, CacheEvent, CacheLayer, CacheMetrics};
use crate::backoff::SplitMix64;
use crate::classify::Class;

/// A bounded, shared cache of `K → V` for values loaded by a fallible loader with error `E`.
///
/// Cheap to clone: every clone, and every [`CacheService`](super::CacheService) made from it,
/// shares the same entries, loads in flight and counters. Reads through a `CacheService` load
/// what is missing; [`get`](Cache::get) here only looks.
///
/// ```
/// use std::time::Duration;
/// use riprap::cache::{Cache, CacheConfig};
///
/// let config = CacheConfig::builder()
///     .capacity(1_000)
///     .expire_after(Duration::from_secs(60))
///     .build()?;
/// let cache: Cache<String, u32, std::io::Error> = Cache::new(config);
/// cache.insert("limit".to_string(), 10);
/// assert_eq!(cache.get("limit"), Some(10));
/// cache.invalidate("limit"); // the next read loads it again
/// assert_eq!(cache.get("limit"), None);
/// # Ok::<(), riprap::ConfigError>(())
/// ```
pub struct Cache<K, V, E> {
    pub(crate) inner: Arc<Inner<K, V, E>>,
}

impl<K, V, E> Clone for Cache<K, V, E> {
    fn clone(&self) -> Self {
        Cache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V, E> fmt::Debug for Cache<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner<K, V, E> {
    pub(crate) store: Store<K, Entry<V, E>, UnitWeighter, DefaultHashBuilder, Evictions>,
    pub(crate) flights: Flights<K, V, E>,
    pub(crate) due: DueQueue<K>,
    pub(crate) clock: Clock,
    pub(crate) config: CacheConfig,
    pub(crate) observer: Arc<Observer>,
    stamps: AtomicU64,
    seed: u64,
}

/// Collects the keys quick_cache pushes out during one write. quick_cache reports a value
/// replaced under its own key the same way as an eviction, so `Inner::put` tells them apart.
#[derive(Clone)]
pub(crate) struct Evictions(Arc<Observer>);

impl<K, V, E> Lifecycle<K, Entry<V, E>> for Evictions {
    type RequestState = Vec<K>;

    fn begin_request(&self) -> Self::RequestState {
        Vec::new() // no allocation unless something is pushed out
    }

    fn on_evict(&self, out: &mut Vec<K>, key: K, _entry: Entry<V, E>) {
        out.push(key);
    }

    fn end_request(&self, out: Vec<K>) {
        for _ in out {
            self.0.emit(CacheEvent::Evicted);
        }
    }
}

/// What a miss should do next.
pub(crate) enum Join<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// A load landed while the miss was on its way: use it.
    Ready(Entry<V, E>),
    /// Another caller's load is in flight: wait for it.
    Wait(Receiver<V, E>),
    /// This caller starts the load (and waits for it like everyone else).
    Lead(FlightGuard<K, V, E>, Receiver<V, E>),
    /// `max_in_flight` keys are loading.
    Overloaded,
}

static SEEDS: AtomicUsize = AtomicUsize::new(0);

impl<K, V, E> Cache<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// An empty cache. Freshness is judged by a coarse clock unless configured otherwise or
    /// tokio's clock is paused; see
    /// [`clock_resolution`](super::CacheConfigBuilder::clock_resolution).
    pub fn new(config: CacheConfig) -> Self {
        let observer = Arc::new(Observer::new(config.listener.clone()));
        let store = Store::with(
            config.capacity,
            config.capacity as u64,
            UnitWeighter,
            DefaultHashBuilder::default(),
            Evictions(Arc::clone(&observer)),
        );
        let seed = config.seed.unwrap_or_else(|| {
            SplitMix64::random_seed(SEEDS.fetch_add(1, Ordering::Relaxed) as u64)
        });
        Cache {
            inner: Arc::new(Inner {
                store,
                flights: Flights::new(config.max_in_flight),
                due: DueQueue::new(),
                clock: Clock::new(config.clock_resolution),
                observer,
                stamps: AtomicU64::new(1),
                seed,
                config,
            }),
        }
    }

    /// The value for `key` if the cache holds a usable one, without loading.
    ///
    /// A fresh entry is returned; one past `refresh_after` is returned and, when a
    /// [`BatchRefresher`](super::BatchRefresher) is attached, queued for refresh; an expired
    /// entry, a remembered failure or an absent key give `None`. No lock of riprap's and no
    /// allocation: a quick_cache lookup, one clock reading and a counter increment.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized + ToOwned<Owned = K>,
    {
        let inner = &*self.inner;
        let Some(entry) = inner.store.get(key) else {
            inner.observer.emit(CacheEvent::Miss);
            return None;
        };
        let now = inner.clock.now();
        match (entry.freshness(now), entry.slot) {
            (Freshness::Fresh, Slot::Value(v)) => {
                inner.observer.hit();
                Some(v)
            }
            (Freshness::Stale, Slot::Value(v)) => {
                inner.observer.emit(CacheEvent::StaleHit);
                if now >= entry.retry_at && inner.due.attached() {
                    let seen = (entry.stamp, entry.retry_at);
                    let _ = self.inner.refresh_due(&key.to_owned(), seen, now, false);
                }
                Some(v)
            }
            (Freshness::Expired, _) => {
                inner.observer.emit(CacheEvent::Miss);
                None
            }
            (_, Slot::Missing(_)) => {
                inner.observer.emit(CacheEvent::NegativeHit);
                None
            }
        }
    }

    /// Store `value` for `key` now, fresh for `refresh_after`. A load of `key` already in
    /// flight still answers its waiters but no longer stores its (older) result.
    pub fn insert(&self, key: K, value: V) {
        let inner = &*self.inner;
        let now = inner.clock.now_exact();
        let mut shard = inner.flights.lock(&key);
        shard.remove(&key);
        let entry = inner.entry(Slot::Value(value), now, Duration::ZERO);
        inner.put(key, entry);
        drop(shard);
        inner.observer.emit(CacheEvent::Inserted);
    }

    /// Forget `key`: the next read loads it. A load of `key` already in flight still answers
    /// its waiters but no longer stores its result, so a value read before the invalidation
    /// never comes back after it.
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let mut shard = inner.flights.lock(key);
        shard.remove(key);
        inner.store.remove(key);
        drop(shard);
        inner.observer.emit(CacheEvent::Invalidated);
    }

    /// Forget every key, with the same guarantee as [`invalidate`](Cache::invalidate).
    pub fn invalidate_all(&self) {
        let inner = &*self.inner;
        // Hold every shard so no load can land between forgetting the flights and clearing.
        let mut shards: Vec<_> = inner.flights.lock_all().collect();
        for shard in &mut shards {
            shard.clear();
        }
        inner.store.clear();
        inner.due.clear();
        drop(shards);
        inner.observer.emit(CacheEvent::InvalidatedAll);
    }

    /// A snapshot of the counters, plus the entries held and keys loading now.
    pub fn metrics(&self) -> CacheMetrics {
        let mut m = self.inner.observer.snapshot();
        m.entries = self.inner.store.len() as u64;
        m.in_flight = self.inner.flights.in_flight() as u64;
        m
    }

    /// The config this cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// A [`CacheLayer`] over this cache, for `tower::ServiceBuilder`.
    pub fn layer(&self) -> CacheLayer<K, V, E> {
        CacheLayer::new(self.clone())
    }
}

impl<K, V, E> Inner<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Store `entry`, counting what quick_cache evicted to make room (but not the value it
    /// replaced under `key`).
    pub(crate) fn put(&self, key: K, entry: Entry<V, E>) {
        let evicted = self.store.insert_with_lifecycle(key.clone(), entry);
        self.count_evictions(evicted, &key);
    }

    /// Replace `key`'s entry if it is still cached, keeping its place in the eviction order.
    fn put_existing(&self, key: &K, entry: Entry<V, E>) {
        if let Ok(evicted) = self.store.replace_with_lifecycle(key.clone(), entry, true) {
            self.count_evictions(evicted, key);
        }
    }

    fn count_evictions(&self, evicted: Vec<K>, written: &K) {
        for key in evicted {
            if key != *written {
                self.observer.emit(CacheEvent::Evicted);
            }
        }
    }

    /// A new entry for a value whose load started at `started` and took `took`.
    pub(crate) fn entry(&self, slot: Slot<V, E>, started: u64, took: Duration) -> Entry<V, E> {
        let c = &self.config;
        let stamp = self.stamps.fetch_add(1, Ordering::Relaxed);
        let expire_at = started.saturating_add(c.expire_nanos);
        let mut refresh_at = started.saturating_add(c.refresh_nanos);
        if let Some(beta) = c.early_refresh {
            // XFetch: move the refresh point earlier by took·β·(−ln u). Drawn once per entry
            // instead of once per read, so the hit path stays free of randomness.
            let bits = SplitMix64::new(SplitMix64::mix(self.seed, stamp)).next_u64();
            let u = ((bits >> 11) + 1) as f64 / (1u64 << 53) as f64; // (0, 1]
            let early = took.as_nanos() as f64 * beta * -u.ln();
            let early = early.min(c.refresh_nanos as f64) as u64;
            refresh_at = refresh_at.saturating_sub(early);
        }
        Entry {
            slot,
            stamp,
            refresh_at,
            retry_at: refresh_at,
            expire_at,
        }
    }

    fn negative_entry(&self, slot: Slot<V, E>, started: u64, ttl: u64) -> Entry<V, E> {
        let at = started.saturating_add(ttl);
        Entry {
            slot,
            stamp: self.stamps.fetch_add(1, Ordering::Relaxed),
            refresh_at: at,
            retry_at: at,
            expire_at: at,
        }
    }

    /// A read found `key` due for refresh. Start one unless one is running or queued; with a
    /// batch refresher attached the key is queued, otherwise (if `can_load`) the caller gets
    /// a flight guard and runs the load.
    ///
    /// `seen` is the (stamp, retry_at) the read saw: a refresh is started only if the stored
    /// entry is still that one, so a burst of stale reads starts one refresh. The entry's
    /// `retry_at` is then pushed halfway to its hard deadline, which keeps the reads until
    /// then off the locks and retries a refresh that failed.
    pub(crate) fn refresh_due(
        self: &Arc<Self>,
        key: &K,
        seen: (u64, u64),
        now: u64,
        can_load: bool,
    ) -> Option<FlightGuard<K, V, E>> {
        let batched = self.due.attached();
        if !batched && !can_load {
            return None;
        }
        let mut shard = self.flights.lock(key);
        if shard.contains_key(key) {
            return None;
        }
        let current = self.store.peek(key)?;
        if (current.stamp, current.retry_at) != seen
            || current.freshness(now) != Freshness::Stale
            || now < current.retry_at
        {
            return None;
        }
        let pushed = Entry {
            retry_at: now + current.expire_at.saturating_sub(now).div_ceil(2),
            ..current
        };
        if batched {
            if self.due.push(key.clone()) {
                self.put_existing(key, pushed);
            } else {
                self.observer.emit(CacheEvent::RefreshDropped);
            }
            return None;
        }
        if !self.flights.try_acquire(1) {
            return None;
        }
        self.put_existing(key, pushed);
        let (guard, rx) = self.register(&mut shard, key, now);
        drop(rx);
        Some(guard)
    }

    fn register(
        self: &Arc<Self>,
        shard: &mut super::flight::Shard<K, V, E>,
        key: &K,
        now: u64,
    ) -> (FlightGuard<K, V, E>, Receiver<V, E>) {
        let id = self.flights.next_id();
        let (tx, rx) = watch::channel(None);
        shard.insert(
            key.clone(),
            Flight {
                id,
                rx: Some(rx.clone()),
            },
        );
        let guard = FlightGuard {
            inner: Arc::clone(self),
            key: key.clone(),
            id,
            started: now,
            tx,
            landed: false,
        };
        (guard, rx)
    }

    /// A read found nothing usable for `key`: join its load in flight or lead a new one.
    pub(crate) fn join_or_lead(self: &Arc<Self>, key: &K) -> Join<K, V, E> {
        let mut shard = self.flights.lock(key);
        if let Some(Flight { rx: Some(rx), .. }) = shard.get(key) {
            return Join::Wait(rx.clone());
        }
        // Nobody can wait on a batch flight: this load replaces it, and the batch's (older)
        // result for this key is discarded.
        let now = self.clock.now();
        if let Some(entry) = self.store.peek(key) {
            if entry.freshness(now) != Freshness::Expired {
                return Join::Ready(entry);
            }
        }
        if !self.flights.try_acquire(1) {
            return Join::Overloaded;
        }
        let (guard, rx) = self.register(&mut shard, key, now);
        Join::Lead(guard, rx)
    }

    /// Store a per-key load's outcome if its flight `id` is still `key`'s current one.
    pub(crate) fn land(
        &self,
        key: &K,
        id: u64,
        landing: &Landing<V, E>,
        started: u64,
        took: Duration,
    ) {
        let mut shard = self.flights.lock(key);
        if shard.get(key).is_some_and(|f| f.id == id) {
            shard.remove(key);
            self.store_outcome(key, landing, started, took);
        }
        drop(shard);
        self.observer.emit(match landing.class {
            Class::Success => CacheEvent::Loaded { took },
            class => CacheEvent::LoadFailed { class },
        });
    }

    /// What a load's outcome does to the stored entry. Called under the key's shard lock.
    fn store_outcome(&self, key: &K, landing: &Landing<V, E>, started: u64, took: Duration) {
        let negative = self.config.negative_nanos;
        match (&landing.outcome, landing.class) {
            (Ok(v), Class::Success) => {
                let entry = self.entry(Slot::Value(v.clone()), started, took);
                self.put(key.clone(), entry);
            }
            // The source says this key is gone or invalid: remember that, or at least stop
            // serving what it used to say.
            (Ok(v), Class::Permanent) => match negative {
                Some(ttl) => {
                    let entry = self.negative_entry(Slot::Value(v.clone()), started, ttl);
                    self.put(key.clone(), entry);
                }
                None => {
                    self.store.remove(key);
                }
            },
            (Err(e), Class::Permanent) => match negative {
                Some(ttl) => {
                    let entry = self.negative_entry(Slot::Missing(Arc::clone(e)), started, ttl);
                    self.put(key.clone(), entry);
                }
                None => {
                    self.store.remove(key);
                }
            },
            // Retryable failures leave the stored entry alone: it may serve stale-if-error.
            _ => {}
        }
    }

    /// Store one key of a batch response if `id` is still the key's current flight.
    pub(crate) fn land_batch(
        &self,
        key: K,
        value: V,
        id: u64,
        started: u64,
        took: Duration,
    ) -> bool {
        let mut shard = self.flights.lock(&key);
        let current = shard
            .get(&key)
            .is_some_and(|f| f.id == id && f.rx.is_none());
        if current {
            shard.remove(&key);
            let entry = self.entry(Slot::Value(value), started, took);
            self.put(key, entry);
        }
        current
    }
}
