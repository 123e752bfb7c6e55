//! The cache's knobs, validated once when built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, check_duration};
use crate::events::{Listener, SharedListener};

/// How a [`Cache`](super::Cache) keeps its entries: size, freshness, error handling.
///
/// Build one with [`CacheConfig::builder`]; every knob is checked in
/// [`build`](CacheConfigBuilder::build).
///
/// ```
/// use std::time::Duration;
/// use riprap::cache::CacheConfig;
///
/// let config = CacheConfig::builder()
///     .capacity(50_000)
///     .refresh_after(Duration::from_secs(30))   // soft: serve, then refresh in the background
///     .expire_after(Duration::from_secs(300))   // hard: never serve older than this...
///     .stale_if_error(Duration::from_secs(600)) // ...unless the database is failing
///     .build()?;
/// assert_eq!(config.expire_after(), Duration::from_secs(300));
///
/// let err = CacheConfig::builder()
///     .refresh_after(Duration::from_secs(60))
///     .expire_after(Duration::from_secs(60))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.knob(), "cache.refresh_after");
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CacheConfig {
    pub(crate) capacity: usize,
    pub(crate) refresh_after: Option<Duration>,
    pub(crate) expire_after: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) max_in_flight: usize,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) clock_resolution: Duration,
    pub(crate) seed: Option<u64>,
    pub(crate) listener: Option<SharedListener>,
    // The same durations in nanoseconds, as the entries store them.
    pub(crate) refresh_nanos: u64,
    pub(crate) expire_nanos: u64,
    pub(crate) stale_nanos: u64,
    pub(crate) negative_nanos: Option<u64>,
}

impl CacheConfig {
    /// A builder with the defaults: 10,000 entries, `expire_after` 60 s, no soft refresh, no
    /// stale-if-error, no negative caching, at most 10,000 keys loading at once, a 1 ms clock.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder {
            capacity: 10_000,
            refresh_after: None,
            expire_after: Duration::from_secs(60),
            stale_if_error: Duration::ZERO,
            negative_ttl: None,
            max_in_flight: 10_000,
            early_refresh: None,
            clock_resolution: Duration::from_millis(1),
            seed: None,
            listener: None,
        }
    }

    /// The most entries kept; beyond it the least useful are evicted.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Age after which a read still returns the entry but refreshes it in the background.
    pub fn refresh_after(&self) -> Option<Duration> {
        self.refresh_after
    }

    /// Age after which an entry is never served while loads succeed.
    pub fn expire_after(&self) -> Duration {
        self.expire_after
    }

    /// How long past `expire_after` an entry may still be served while its loads fail.
    pub fn stale_if_error(&self) -> Duration {
        self.stale_if_error
    }

    /// How long a permanent failure ("not found") is remembered, if at all.
    pub fn negative_ttl(&self) -> Option<Duration> {
        self.negative_ttl
    }

    /// The most distinct keys loading at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }

    /// The XFetch `beta` for probabilistic early refresh, if enabled.
    pub fn early_refresh(&self) -> Option<f64> {
        self.early_refresh
    }

    /// The granularity of the clock freshness is judged by (zero: read the clock every time).
    pub fn clock_resolution(&self) -> Duration {
        self.clock_resolution
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("capacity", &self.capacity)
            .field("refresh_after", &self.refresh_after)
            .field("expire_after", &self.expire_after)
            .field("stale_if_error", &self.stale_if_error)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_in_flight", &self.max_in_flight)
            .field("early_refresh", &self.early_refresh)
            .field("clock_resolution", &self.clock_resolution)
            .field("seed", &self.seed)
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

/// Builds a [`CacheConfig`]; see there for an example.
#[derive(Clone)]
#[must_use]
pub struct CacheConfigBuilder {
    capacity: usize,
    refresh_after: Option<Duration>,
    expire_after: Duration,
    stale_if_error: Duration,
    negative_ttl: Option<Duration>,
    max_in_flight: usize,
    early_refresh: Option<f64>,
    clock_resolution: Duration,
    seed: Option<u64>,
    listener: Option<SharedListener>,
}

impl fmt::Debug for CacheConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfigBuilder")
            .field("capacity", &self.capacity)
            .field("refresh_after", &self.refresh_after)
            .field("expire_after", &self.expire_after)
            .finish_non_exhaustive()
    }
}

impl CacheConfigBuilder {
    /// The most entries kept (at least 1). Eviction is quick_cache's CLOCK-Pro: a scan of
    /// one-off keys does not flush the hot ones.
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }

    /// Soft limit: a read of an older entry returns it at once and starts a background refresh
    /// (stale-while-revalidate). Must be below `expire_after`.
    pub fn refresh_after(mut self, age: Duration) -> Self {
        self.refresh_after = Some(age);
        self
    }

    /// Hard limit: a read of an older entry waits for a load. Must be above zero.
    pub fn expire_after(mut self, age: Duration) -> Self {
        self.expire_after = age;
        self
    }

    /// While loads fail with a retryable error, keep serving an expired entry until it is
    /// this much past `expire_after`. Zero (the default) serves the error instead.
    pub fn stale_if_error(mut self, extra: Duration) -> Self {
        self.stale_if_error = extra;
        self
    }

    /// Remember a load the classifier calls permanent ("not found") for `ttl`, so a storm of
    /// reads for a missing key reaches the database once per `ttl`. Off by default.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// The most distinct keys loading at once (at least 1); a miss beyond it fails with
    /// [`CacheError::Overloaded`](super::CacheError::Overloaded) instead of queueing.
    pub fn max_in_flight(mut self, keys: usize) -> Self {
        self.max_in_flight = keys;
        self
    }

    /// XFetch-style probabilistic early refresh: each entry's refresh point is moved earlier
    /// by `load time × beta × −ln(u)`, `u` uniform in (0, 1], drawn once when it lands, so
    /// keys loaded together do not all come due together. `beta` 1.0 is the paper's default;
    /// larger refreshes earlier. Finite and above zero.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = Some(beta);
        self
    }

    /// How far behind the clock that judges freshness may be (default 1 ms). Reading the
    /// system clock costs about as much as the whole lookup, so a process-wide ticker thread
    /// publishes a reading every millisecond while caches are read, and parks when they are
    /// not. Zero reads the clock on every access. Otherwise at least 1 ms (the ticker's
    /// period) and below `refresh_after` and `expire_after`. On tokio's paused clock reads
    /// are always exact.
    pub fn clock_resolution(mut self, resolution: Duration) -> Self {
        self.clock_resolution = resolution;
        self
    }

    /// Seed for the early-refresh draws, for reproducible runs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Receive every [`CacheEvent`](super::CacheEvent). Called inline, some calls under a lock: keep it cheap and
    /// do not call back into the cache from it.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Check every knob and build the config.
    pub fn build(self) -> Result<CacheConfig, ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::new("cache.capacity", "must be at least 1"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::new(
                "cache.max_in_flight",
                "must be at least 1",
            ));
        }
        let expire_nanos = check_duration("cache.expire_after", self.expire_after)?;
        if expire_nanos == 0 {
            return Err(ConfigError::new("cache.expire_after", "must be above zero"));
        }
        let refresh_nanos = match self.refresh_after {
            None => expire_nanos,
            Some(d) => {
                let n = check_duration("cache.refresh_after", d)?;
                if n == 0 || n >= expire_nanos {
                    return Err(ConfigError::new(
                        "cache.refresh_after",
                        format!(
                            "must be above zero and below `expire_after` ({:?}) (got {d:?})",
                            self.expire_after
                        ),
                    ));
                }
                n
            }
        };
        let stale_nanos = check_duration("cache.stale_if_error", self.stale_if_error)?;
        if expire_nanos.checked_add(stale_nanos).is_none() {
            return Err(ConfigError::new(
                "cache.stale_if_error",
                "`expire_after + stale_if_error` must be at most 584 years",
            ));
        }
        let negative_nanos = match self.negative_ttl {
            None => None,
            Some(d) => {
                let n = check_duration("cache.negative_ttl", d)?;
                if n == 0 {
                    return Err(ConfigError::new("cache.negative_ttl", "must be above zero"));
                }
                Some(n)
            }
        };
        if let Some(beta) = self.early_refresh {
            if !beta.is_finite() || beta <= 0.0 {
                return Err(ConfigError::new(
                    "cache.early_refresh",
                    format!("must be finite and above zero (got {beta})"),
                ));
            }
            if self.refresh_after.is_none() {
                return Err(ConfigError::new(
                    "cache.early_refresh",
                    "needs `refresh_after`: early refresh moves the soft limit",
                ));
            }
        }
        let resolution = check_duration("cache.clock_resolution", self.clock_resolution)?;
        if resolution != 0 && self.clock_resolution < super::clock::TICK {
            return Err(ConfigError::new(
                "cache.clock_resolution",
                format!(
                    "must be zero (exact) or at least 1 ms (got {:?})",
                    self.clock_resolution
                ),
            ));
        }
        if resolution >= refresh_nanos {
            return Err(ConfigError::new(
                "cache.clock_resolution",
                format!(
                    "must be below `refresh_after` and `expire_after` (got {:?})",
                    self.clock_resolution
                ),
            ));
        }
        Ok(CacheConfig {
            capacity: self.capacity,
            refresh_after: self.refresh_after,
            expire_after: self.expire_after,
            stale_if_error: self.stale_if_error,
            negative_ttl: self.negative_ttl,
            max_in_flight: self.max_in_flight,
            early_refresh: self.early_refresh,
            clock_resolution: self.clock_resolution,
            seed: self.seed,
            listener: self.listener,
            refresh_nanos,
            expire_nanos,
            stale_nanos,
            negative_nanos,
        })
    }
}

/// How a [`BatchRefresher`](super::BatchRefresher) groups keys due for refresh.
///
/// ```
/// use std::time::Duration;
/// use riprap::cache::BatchConfig;
///
/// let batch = BatchConfig::builder()
///     .max_batch(200)
///     .interval(Duration::from_millis(250))
///     .build()?;
/// assert_eq!(batch.max_batch(), 200);
/// assert_eq!(BatchConfig::builder().max_batch(0).build().unwrap_err().knob(), "cache.max_batch");
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub(crate) max_batch: usize,
    pub(crate) interval: Duration,
    pub(crate) max_pending: usize,
}

impl BatchConfig {
    /// A builder with the defaults: batches of at most 100 keys, at most every 100 ms, at
    /// most 10,000 keys waiting.
    pub fn builder() -> BatchConfigBuilder {
        BatchConfigBuilder {
            max_batch: 100,
            interval: Duration::from_millis(100),
            max_pending: 10_000,
        }
    }

    /// The most keys in one call to the batch loader.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The shortest time between two rounds of batch loads.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The most keys waiting for the next round.
    pub fn max_pending(&self) -> usize {
        self.max_pending
    }
}

/// Builds a [`BatchConfig`]; see there for an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct BatchConfigBuilder {
    max_batch: usize,
    interval: Duration,
    max_pending: usize,
}

impl BatchConfigBuilder {
    /// The most keys in one call to the batch loader (at least 1): size it to what one query
    /// handles well (`WHERE key IN (...)` lists, request size limits).
    pub fn max_batch(mut self, keys: usize) -> Self {
        self.max_batch = keys;
        self
    }

    /// Keys that come due are collected for this long, then loaded; rounds start at most this
    /// often. Above zero.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The most keys waiting for the next round (at least 1). A key that finds the queue full
    /// is not lost: it is queued again by a later read, or loaded on its own once it expires.
    pub fn max_pending(mut self, keys: usize) -> Self {
        self.max_pending = keys;
        self
    }

    /// Check every knob and build the config.
    pub fn build(self) -> Result<BatchConfig, ConfigError> {
        if self.max_batch == 0 {
            return Err(ConfigError::new("cache.max_batch", "must be at least 1"));
        }
        if self.max_pending == 0 {
            return Err(ConfigError::new("cache.max_pending", "must be at least 1"));
        }
        if check_duration("cache.interval", self.interval)? == 0 {
            return Err(ConfigError::new("cache.interval", "must be above zero"));
        }
        Ok(BatchConfig {
            max_batch: self.max_batch,
            interval: self.interval,
            max_pending: self.max_pending,
        })
    }
}
