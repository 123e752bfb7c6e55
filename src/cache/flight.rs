//! Single-flight: one load per key at a time, whoever asks.
//!
//! A load runs in its own spawned task and its result is published on a `tokio::sync::watch`
//! channel that every waiter subscribes to. The caller that started it is just the first
//! waiter: dropping it drops a receiver, not the load, so the others are never stranded and
//! the work is not wasted (quick_cache's placeholders instead hand the turn to the next
//! waiter, which restarts the load from scratch). If the task itself dies (the loader
//! panics, the runtime shuts down) its sender is dropped and every waiter wakes with
//! [`CacheError::Abandoned`](super::CacheError::Abandoned).
//!
//! The map of loads in flight is sharded behind short `std` mutexes, touched only on misses,
//! refreshes and writes, and bounded by `max_in_flight`. The same locks order writes against
//! landing loads: `invalidate` and `insert` remove the key's flight under its shard lock, and
//! a load stores its result only if its flight is still the key's current one, so a load that
//! raced an invalidation never overwrites the newer state.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tower::ServiceExt;
use tower_service::Service;

use super::handle::Inner;
use crate::classify::{Class, Classify};

const SHARDS: usize = 32;

/// The outcome of one load, as every waiter receives it.
pub(crate) struct Landing<V, E> {
    pub(crate) outcome: Result<V, Arc<E>>,
    pub(crate) class: Class,
}

impl<V: Clone, E> Clone for Landing<V, E> {
    fn clone(&self) -> Self {
        Landing {
            outcome: match &self.outcome {
                Ok(v) => Ok(v.clone()),
                Err(e) => Err(Arc::clone(e)),
            },
            class: self.class,
        }
    }
}

pub(crate) type Receiver<V, E> = watch::Receiver<Option<Landing<V, E>>>;

/// A key's load in flight. Batch loads have no receiver: nobody waits on them, and a miss
/// that finds one starts its own load instead (see `Inner::join_or_lead`).
pub(crate) struct Flight<V, E> {
    pub(crate) id: u64,
    pub(crate) rx: Option<Receiver<V, E>>,
}

pub(crate) type Shard<K, V, E> = HashMap<K, Flight<V, E>>;

pub(crate) struct Flights<K, V, E> {
    shards: Box<[Mutex<Shard<K, V, E>>]>,
    hasher: quick_cache::DefaultHashBuilder,
    count: AtomicUsize,
    max: usize,
    next_id: AtomicU64,
}

impl<K: Hash + Eq, V, E> Flights<K, V, E> {
    pub(crate) fn new(max: usize) -> Self {
        Flights {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            count: AtomicUsize::new(0),
            max,
            next_id: AtomicU64::new(1),
        }
    }

    /// The shard owning `key`, locked. A panic under the lock (a listener's) leaves the map
    /// consistent, so poisoning is ignored.
    pub(crate) fn lock<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V, E>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_all(&self) -> impl Iterator<Item = MutexGuard<'_, Shard<K, V, E>>> {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Reserve `n` load slots, or none if that would pass `max_in_flight`.
    pub(crate) fn try_acquire(&self, n: usize) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                c.checked_add(n).filter(|&t| t <= self.max)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, n: usize) {
        self.count.fetch_sub(n, Ordering::AcqRel);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Owns one per-key load slot. Landing stores the result (if the flight is still current)
/// and publishes it; dropping it unlanded (the task was cancelled or panicked) unregisters
/// the flight and closes the channel, waking every waiter.
pub(crate) struct FlightGuard<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) inner: Arc<Inner<K, V, E>>,
    pub(crate) key: K,
    pub(crate) id: u64,
    pub(crate) started: u64,
    pub(crate) tx: watch::Sender<Option<Landing<V, E>>>,
    pub(crate) landed: bool,
}

impl<K, V, E> FlightGuard<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    pub(crate) fn land(mut self, landing: Landing<V, E>, took: Duration) {
        self.inner
            .land(&self.key, self.id, &landing, self.started, took);
        self.landed = true;
        self.tx.send_replace(Some(landing));
    }
}

impl<K, V, E> Drop for FlightGuard<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.landed {
            let mut shard = self.inner.flights.lock(&self.key);
            if shard.get(&self.key).is_some_and(|f| f.id == self.id) {
                shard.remove(&self.key);
            }
        }
        self.inner.flights.release(1);
    }
}

/// Run `guard`'s load on the current tokio runtime. Without one, the guard is dropped and its
/// waiters see `Abandoned`.
pub(crate) fn spawn_load<K, V, E, S, C>(guard: FlightGuard<K, V, E>, loader: S, classifier: Arc<C>)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: Service<K, Response = V, Error = E> + Send + 'static,
    S::Future: Send + 'static,
    C: Classify<V, E> + Send + Sync + 'static,
{
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let key = guard.key.clone();
        let t0 = tokio::time::Instant::now();
        let out = loader.oneshot(key).await;
        let class = classifier.classify(out.as_ref());
        let landing = Landing {
            outcome: out.map_err(Arc::new),
            class,
        };
        guard.land(landing, t0.elapsed());
    });
}
