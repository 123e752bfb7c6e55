//! One limiter per key (tenant, model, endpoint), with a bound on keys.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};

use super::{RateLimitConfig, RateLimiter};
use crate::ConfigError;
use crate::backoff::SplitMix64;

const MAX_SHARDS: usize = 16;

/// A bounded registry of [`RateLimiter`]s, one per key, each enforcing the same config.
///
/// Keys come from requests (a tenant id, a model name), so their number is bounded: when a
/// shard of the registry is full, the key used least recently is evicted. An evicted key
/// starts afresh if it comes back (its quota full, its gate open), so size `max_keys` above
/// the number of keys active at once. Lookups take a shard's read lock (one of up to 16, by
/// hash); only a new key takes a write lock.
///
/// ```
/// use std::time::Duration;
/// use riprap::ratelimit::{KeyedRateLimiter, RateLimitConfig};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = RateLimitConfig::builder()
///     .requests(1, Duration::from_secs(1))
///     .reject_when_limited()
///     .build()?;
/// let per_tenant = KeyedRateLimiter::new(config, 10_000)?;
///
/// per_tenant.get(&"acme").try_acquire(1)?;
/// assert!(per_tenant.get(&"acme").try_acquire(1).is_err()); // acme spent its quota
/// per_tenant.get(&"globex").try_acquire(1)?; // globex has its own
/// # Ok(()) }
/// ```
pub struct KeyedRateLimiter<K> {
    shared: Arc<KeyedShared<K>>,
}

struct KeyedShared<K> {
    config: RateLimitConfig,
    shards: Box<[Shard<K>]>,
    hasher: RandomState,
    /// Bumped on every insertion; an entry remembers the value at its last use, so the
    /// least recently used is the one with the smallest, without reading the clock.
    generation: AtomicU64,
}

struct Shard<K> {
    cap: usize,
    map: RwLock<HashMap<K, Entry>>,
}

struct Entry {
    limiter: RateLimiter,
    last_used: AtomicU64,
}

impl<K> Clone for KeyedRateLimiter<K> {
    fn clone(&self) -> Self {
        KeyedRateLimiter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// A registry of at most `max_keys` limiters enforcing `config`; every key's limiter
    /// reports to the config's listener.
    pub fn new(config: RateLimitConfig, max_keys: usize) -> Result<Self, ConfigError> {
        if max_keys == 0 {
            return Err(ConfigError::new("ratelimit.max_keys", "must be at least 1"));
        }
        let n = max_keys.min(MAX_SHARDS);
        // Spread the cap so the shards together hold exactly `max_keys`.
        let shards = (0..n)
            .map(|i| Shard {
                cap: max_keys / n + usize::from(i < max_keys % n),
                map: RwLock::new(HashMap::new()),
            })
            .collect();
        Ok(KeyedRateLimiter {
            shared: Arc::new(KeyedShared {
                config,
                shards,
                hasher: RandomState::new(),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// The limiter for `key`, created on first use.
    pub fn get(&self, key: &K) -> RateLimiter {
        let s = &*self.shared;
        let hash = s.hasher.hash_one(key);
        let shard = &s.shards[(hash as usize) % s.shards.len()];
        {
            let map = shard.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = map.get(key) {
                let now = s.generation.load(Relaxed);
                // Write only when it changes, so hot keys do not bounce a cache line.
                if e.last_used.load(Relaxed) != now {
                    e.last_used.store(now, Relaxed);
                }
                return e.limiter.clone();
            }
        }
        let mut map = shard.map.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = map.get(key) {
            return e.limiter.clone();
        }
        if map.len() >= shard.cap {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.last_used.load(Relaxed))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
                tracing::debug!(target: "riprap::ratelimit", event = "key_evicted", "evicted the least recently used key");
            }
        }
        let mut config = s.config.clone();
        // Keys seeded alike would jitter alike; derive each key's seed from its hash.
        config.seed = config.seed.map(|seed| SplitMix64::mix(seed, hash));
        let limiter = RateLimiter::new(config);
        map.insert(
            key.clone(),
            Entry {
                limiter: limiter.clone(),
                last_used: AtomicU64::new(s.generation.fetch_add(1, Relaxed) + 1),
            },
        );
        limiter
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.shared
            .shards
            .iter()
            .map(|s| s.map.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys held at once.
    pub fn max_keys(&self) -> usize {
        self.shared.shards.iter().map(|s| s.cap).sum()
    }
}

impl<K> fmt::Debug for KeyedRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn bounded_and_evicts_least_recently_used() {
        let config = RateLimitConfig::builder()
            .requests(1, Duration::from_secs(60))
            .reject_when_limited()
            .build()
            .unwrap();
        let keyed = KeyedRateLimiter::new(config, 3).unwrap();
        assert_eq!(keyed.max_keys(), 3);
        for k in 0..100u32 {
            keyed.get(&k).try_acquire(1).unwrap();
        }
        assert!(keyed.len() <= 3);
        assert!(
            keyed.get(&99).try_acquire(1).is_err(),
            "recent key kept its state"
        );
        assert!(
            KeyedRateLimiter::<u32>::new(RateLimitConfig::builder().build().unwrap(), 0).is_err()
        );
    }
}
