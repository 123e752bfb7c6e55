//! One limiter per key (tenant, model, endpoint), with bounded key state.

use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, Hash};
use std::sync::{Arc, OnceLock};

use super::{RateLimitConfig, RateLimiter};
use crate::ConfigError;
use crate::backoff::SplitMix64;
use crate::keyed::{KeyLimits, KeyMap, KeyState, Knobs};

const KNOBS: Knobs = Knobs {
    max_keys: "ratelimit.max_keys",
    idle_timeout: "ratelimit.idle_timeout",
    max_key_bytes: "ratelimit.max_key_bytes",
};

impl KeyState for RateLimiter {
    fn evicted(&self) {
        tracing::debug!(target: "riprap::ratelimit", event = "key_evicted", "evicted a key to make room");
    }
}

/// A bounded registry of [`RateLimiter`]s, one per key, each enforcing the same config.
///
/// Keys come from requests (a tenant id, a model name), so how many are kept is bounded by
/// [`KeyLimits`]: a cap on keys, and optionally idle expiry and a byte budget for keys.
/// Every key gets a limiter of its own; at the cap a key is evicted to make room, chosen by
/// use (quick_cache's CLOCK-Pro variant: a flood of one-off keys recycles a small probation
/// area and leaves keys in steady use alone; see [`KeyLimits`] for the guarantees). An
/// evicted or expired key starts afresh if it comes back (its quota full, its gate open),
/// so size `max_keys` above the number of keys active at once.
///
/// # Cost and memory
///
/// A known key is a lookup in quick_cache (a hash, a shard read lock, a probe) and a
/// reference-count increment, the same shape as governor's keyed `check_key` over its
/// DashMap; with an idle timeout, one clock reading more. A new key allocates its limiter and
/// takes its shard's write lock briefly; finding room is amortised O(1) whatever the cap
/// (about 2,000 instructions per new key at caps of 1 k, 100 k and 1 M; a larger map costs
/// more time only in cache misses). `benches/keyed.rs` has the figures.
///
/// Memory is bounded by about `max_keys × 750 bytes`, plus the keys' own heap bytes, with a
/// requests quota and `u64` keys: a limiter (its governor state, gate and config) is about
/// 600 bytes, the map's entry, index and memory of recently evicted keys the rest (1 M
/// distinct keys through a cap of 100 k hold 69 MiB, 720 bytes per key). Use
/// [`KeyLimits::max_key_bytes`] to bound the keys' bytes too.
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
    map: KeyMap<K, RateLimiter>,
    /// The one limiter of every key too heavy to keep: limited together, never unlimited.
    heavy: OnceLock<RateLimiter>,
}

impl<K> Clone for KeyedRateLimiter<K> {
    fn clone(&self) -> Self {
        KeyedRateLimiter {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedRateLimiter<K> {
    /// A registry of at most `max_keys` limiters enforcing `config`.
    pub fn new(config: RateLimitConfig, max_keys: usize) -> Result<Self, ConfigError> {
        Self::with_limits(config, KeyLimits::new(max_keys))
    }

    /// A registry of limiters enforcing `config`, kept within `limits`; every key's limiter
    /// reports to the config's listener.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::ratelimit::{KeyLimits, KeyedRateLimiter, RateLimitConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = RateLimitConfig::builder()
    ///     .requests(1, Duration::from_secs(60))
    ///     .reject_when_limited()
    ///     .build()?;
    /// let limits = KeyLimits::new(10_000).idle_timeout(Duration::from_secs(300));
    /// let per_tenant = KeyedRateLimiter::with_limits(config, limits)?;
    ///
    /// per_tenant.get(&"acme").try_acquire(1)?;
    /// assert!(per_tenant.get(&"acme").try_acquire(1).is_err());
    /// // Ten idle minutes later acme is forgotten, and starts afresh.
    /// tokio::time::advance(Duration::from_secs(600)).await;
    /// assert!(!per_tenant.contains_key(&"acme"));
    /// per_tenant.get(&"acme").try_acquire(1)?;
    /// # Ok(()) }
    /// ```
    pub fn with_limits(config: RateLimitConfig, limits: KeyLimits<K>) -> Result<Self, ConfigError> {
        Ok(KeyedRateLimiter {
            shared: Arc::new(KeyedShared {
                map: KeyMap::new(&limits, &KNOBS)?,
                config,
                heavy: OnceLock::new(),
            }),
        })
    }

    fn make(&self, key: Option<&K>) -> RateLimiter {
        let s = &*self.shared;
        let mut config = s.config.clone();
        // Keys seeded alike would jitter alike; derive each key's seed from the key, with a
        // fixed hasher so that a seeded run is the same run every time.
        if let Some(key) = key {
            let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
            config.seed = config.seed.map(|seed| SplitMix64::mix(seed, hash));
        }
        RateLimiter::new(config)
    }

    /// The limiter for `key`, created on first use.
    #[inline]
    pub fn get(&self, key: &K) -> RateLimiter {
        let s = &*self.shared;
        match s.map.get_or_insert(key, || self.make(Some(key))) {
            Some(limiter) => limiter,
            None => s.heavy.get_or_init(|| self.make(None)).clone(),
        }
    }

    /// The limiter for `key` if it has one, without creating it or counting a use.
    pub fn peek(&self, key: &K) -> Option<RateLimiter> {
        self.shared.map.peek(key)
    }

    /// Whether `key` has a limiter (one not idle past the timeout).
    pub fn contains_key(&self, key: &K) -> bool {
        self.peek(key).is_some()
    }

    /// Forget `key`: it starts afresh (full quota, open gate) on its next use. Returns the
    /// limiter it had; clones of it still work, apart from the registry.
    pub fn remove(&self, key: &K) -> Option<RateLimiter> {
        self.shared.map.remove(key)
    }

    /// Keep only the keys for which `keep(key, limiter)` is true (idle keys go too).
    ///
    /// Takes each shard's write lock in turn, so `keep` must not call back into this
    /// registry. Visits every key: for maintenance, not for every request.
    ///
    /// ```
    /// use riprap::ratelimit::{KeyedRateLimiter, RateLimitConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let per_tenant = KeyedRateLimiter::new(RateLimitConfig::builder().build()?, 100)?;
    /// for tenant in ["acme", "globex", "initech"] {
    ///     per_tenant.get(&tenant);
    /// }
    /// per_tenant.retain(|tenant, _| tenant.starts_with('a'));
    /// assert_eq!(per_tenant.len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn retain(&self, keep: impl FnMut(&K, &RateLimiter) -> bool) {
        self.shared.map.retain(keep);
    }

    /// Drop every key idle for longer than the [idle timeout](KeyLimits::idle_timeout) now,
    /// rather than at the next sweep. Visits every key.
    pub fn evict_idle(&self) {
        self.shared.map.evict_idle();
    }

    /// How many keys are held (idle keys not yet swept included).
    pub fn len(&self) -> usize {
        self.shared.map.len()
    }

    /// `true` when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most keys held at once.
    pub fn max_keys(&self) -> usize {
        self.shared.map.max_keys()
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
    async fn bounded_and_keeps_the_key_just_used() {
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
