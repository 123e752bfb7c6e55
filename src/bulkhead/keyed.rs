//! One bulkhead per key (tenant, model, endpoint), with a cap on keys.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::config::BulkheadBuilder;
use super::handle::Bulkhead;
use crate::ConfigError;

const SHARDS: usize = 16;
/// While at the cap with nothing evictable, sweep again only after this many new keys, so a
/// flood of fresh keys costs a hash lookup each rather than a scan of the whole map.
const SWEEP_EVERY: u64 = 64;

/// A bounded registry of [`Bulkhead`]s, one per key, each built from the same builder.
///
/// One tenant (or one model, one endpoint) cannot take every permit: each key has its own.
/// Keys come from requests, so their number is bounded by `max_keys`. A key's bulkhead is
/// forgotten only when idle (no permit held, nobody waiting, no handle outside), so
/// forgetting it loses nothing. When the map is full of busy bulkheads, new keys share one
/// overflow bulkhead: hostile key cardinality cannot grow memory, and cannot get past the
/// limit either. Lookups take a read lock on one of 16 shards; only a key's first call
/// takes a write lock. Each key gets a fresh adaptive algorithm, if the builder has one.
///
/// ```
/// use riprap::bulkhead::{Bulkhead, KeyedBulkheads};
///
/// let per_tenant = KeyedBulkheads::new(Bulkhead::builder().max_concurrent(2), 10_000)?;
/// let _a1 = per_tenant.get(&"acme").try_acquire()?;
/// let _a2 = per_tenant.get(&"acme").try_acquire()?;
/// assert!(per_tenant.get(&"acme").try_acquire().is_err()); // acme is at its limit
/// assert!(per_tenant.get(&"globex").try_acquire().is_ok()); // globex has its own
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KeyedBulkheads<K> {
    shared: Arc<Shared<K>>,
}

struct Shared<K> {
    template: Mutex<BulkheadBuilder>,
    shards: Box<[RwLock<HashMap<K, Bulkhead>>]>,
    hasher: RandomState,
    max_keys: usize,
    len: AtomicUsize,
    overflow: Bulkhead,
    overflowed: AtomicU64,
}

impl<K> Clone for KeyedBulkheads<K> {
    fn clone(&self) -> Self {
        KeyedBulkheads {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> fmt::Debug for KeyedBulkheads<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBulkheads")
            .field("len", &self.shared.len.load(Relaxed))
            .field("max_keys", &self.shared.max_keys)
            .finish_non_exhaustive()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Hash + Eq + Clone + fmt::Debug> KeyedBulkheads<K> {
    /// A registry of at most `max_keys` bulkheads built from `builder` (each named after its
    /// key). The builder is checked here, once.
    pub fn new(builder: BulkheadBuilder, max_keys: usize) -> Result<Self, ConfigError> {
        if max_keys == 0 {
            return Err(ConfigError::new("bulkhead.max_keys", "must be at least 1"));
        }
        let mut overflow = builder.clone();
        overflow.set_name(Some("<overflow>".into()));
        let overflow = overflow.build()?;
        Ok(KeyedBulkheads {
            shared: Arc::new(Shared {
                template: Mutex::new(builder),
                shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
                hasher: RandomState::new(),
                max_keys,
                len: AtomicUsize::new(0),
                overflow,
                overflowed: AtomicU64::new(0),
            }),
        })
    }

    fn shard(&self, key: &K) -> &RwLock<HashMap<K, Bulkhead>> {
        let s = &self.shared;
        let i = (s.hasher.hash_one(key) as usize) % SHARDS;
        // `SHARDS` shards were made; the index is below it.
        &s.shards[i]
    }

    /// The bulkhead of `key`, made on first use (or the overflow bulkhead, when the map is
    /// full of busy bulkheads).
    pub fn get(&self, key: &K) -> Bulkhead {
        let s = &*self.shared;
        let shard = self.shard(key);
        if let Some(b) = read(shard).get(key) {
            return b.clone();
        }
        if s.len.load(Relaxed) >= s.max_keys && !self.sweep() {
            return s.overflow.clone();
        }
        let mut map = write(shard);
        if let Some(b) = map.get(key) {
            return b.clone();
        }
        if s.len.fetch_add(1, Relaxed) >= s.max_keys {
            s.len.fetch_sub(1, Relaxed);
            return s.overflow.clone();
        }
        let mut builder = s
            .template
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        builder.set_name(Some(format!("{key:?}").into()));
        // The template was built once in `new`, so its knobs are valid.
        let bulkhead = match builder.build() {
            Ok(b) => b,
            Err(_) => {
                s.len.fetch_sub(1, Relaxed);
                return s.overflow.clone();
            }
        };
        map.insert(key.clone(), bulkhead.clone());
        bulkhead
    }

    /// Forget idle bulkheads; `true` if any slot was freed.
    fn sweep(&self) -> bool {
        let s = &*self.shared;
        if s.overflowed.fetch_add(1, Relaxed) % SWEEP_EVERY != 0 {
            return false;
        }
        let mut freed = 0;
        for shard in s.shards.iter() {
            let mut map = write(shard);
            let before = map.len();
            map.retain(|_, b| !b.is_idle());
            freed += before - map.len();
        }
        s.len.fetch_sub(freed, Relaxed);
        if freed > 0 {
            s.overflowed.store(0, Relaxed);
        }
        freed > 0
    }

    /// How many keys have a bulkhead.
    pub fn len(&self) -> usize {
        self.shared.len.load(Relaxed)
    }

    /// Whether no key has a bulkhead yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bulkhead shared by keys that arrive while the map is full of busy bulkheads.
    pub fn overflow(&self) -> &Bulkhead {
        &self.shared.overflow
    }
}
