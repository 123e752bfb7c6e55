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
            knobs: CacheKnobs::default(),
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
    knobs: CacheKnobs,
}

impl fmt::Debug for CacheConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CacheConfigBuilder");
        self.knobs.debug_fields(&mut d);
        d.finish_non_exhaustive()
    }
}

crate::knobs::knobs! {
    /// The builder's knobs. [`CacheSpec`] is written from the same list.
    #[derive(Clone)]
    struct CacheKnobs;

    impl CacheConfigBuilder;

    /// A [`CacheConfig`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
    ///
    /// A knob left out keeps the builder's default: 10,000 entries, `expire_after` 60 s, no
    /// soft refresh, no stale-if-error, no negative caching, at most 10,000 keys loading at
    /// once, a 1 ms clock. The listener is code, not data: set it on
    /// [`builder`](CacheSpec::builder)'s result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::cache::CacheSpec;
    ///
    /// let spec: CacheSpec = serde_norway::from_str("
    ///     capacity: 50000
    ///     refresh_after: 30s
    ///     expire_after: 5m
    ///     stale_if_error: 1h
    /// ")?;
    /// let config = spec.build()?;
    /// assert_eq!(config.expire_after(), Duration::from_secs(300));
    ///
    /// let spec: CacheSpec = serde_norway::from_str("refresh_after: 2m\nexpire_after: 1m")?;
    /// assert_eq!(spec.build().unwrap_err().knob(), "cache.refresh_after");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct CacheSpec;

    /// The most entries kept (at least 1; default 10,000). Eviction is quick_cache's
    /// CLOCK-Pro: a scan of one-off keys does not flush the hot ones.
    capacity: usize = 10_000,

    /// Soft limit (default none): a read of an older entry returns it at once and starts a
    /// background refresh (stale-while-revalidate). Must be below `expire_after`.
    refresh_after: Option<Duration> = None,

    /// Hard limit (default 60 s): a read of an older entry waits for a load. Must be above
    /// zero.
    expire_after: Duration = Duration::from_secs(60),

    /// While loads fail with a retryable error, keep serving an expired entry until it is
    /// this much past `expire_after`. Zero (the default) serves the error instead.
    stale_if_error: Duration = Duration::ZERO,

    /// Remember a load the classifier calls permanent ("not found") for `ttl`, so a storm of
    /// reads for a missing key reaches the database once per `ttl`. Off by default.
    negative_ttl: Option<Duration> = None,

    /// The most distinct keys loading at once (at least 1; default 10,000); a miss beyond it
    /// fails with [`CacheError::Overloaded`](super::CacheError::Overloaded) instead of
    /// queueing.
    max_in_flight: usize = 10_000,

    /// XFetch-style probabilistic early refresh (default off): each entry's refresh point is
    /// moved earlier by `load time × beta × −ln(u)`, `u` uniform in (0, 1], drawn once when it
    /// lands, so keys loaded together do not all come due together. `beta` 1.0 is the paper's
    /// default; larger refreshes earlier. Finite and above zero.
    early_refresh: Option<f64> = None,

    /// How far behind the clock that judges freshness may be (default 1 ms). Reading the
    /// system clock costs about as much as the whole lookup, so a process-wide ticker thread
    /// publishes a reading every millisecond while caches are read, and parks when they are
    /// not. Zero reads the clock on every access. Otherwise at least 1 ms (the ticker's
    /// period) and below `refresh_after` and `expire_after`. On tokio's paused clock reads
    /// are always exact.
    clock_resolution: Duration = Duration::from_millis(1),

    /// Seed for the early-refresh draws, for reproducible runs.
    seed: Option<u64> = None,

    manual listener: Option<SharedListener> = None,
}

impl CacheConfigBuilder {
    /// Receive every [`CacheEvent`](super::CacheEvent). Called inline, some calls under a lock: keep it cheap and
    /// do not call back into the cache from it.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.knobs.listener = Some(Arc::new(listener));
        self
    }

    /// Check every knob and build the config.
    pub fn build(self) -> Result<CacheConfig, ConfigError> {
        let k = self.knobs;
        if k.capacity == 0 {
            return Err(ConfigError::new("cache.capacity", "must be at least 1"));
        }
        if k.max_in_flight == 0 {
            return Err(ConfigError::new(
                "cache.max_in_flight",
                "must be at least 1",
            ));
        }
        let expire_nanos = check_duration("cache.expire_after", k.expire_after)?;
        if expire_nanos == 0 {
            return Err(ConfigError::new("cache.expire_after", "must be above zero"));
        }
        let refresh_nanos = match k.refresh_after {
            None => expire_nanos,
            Some(d) => {
                let n = check_duration("cache.refresh_after", d)?;
                if n == 0 || n >= expire_nanos {
                    return Err(ConfigError::new(
                        "cache.refresh_after",
                        format!(
                            "must be above zero and below `expire_after` ({:?}) (got {d:?})",
                            k.expire_after
                        ),
                    ));
                }
                n
            }
        };
        let stale_nanos = check_duration("cache.stale_if_error", k.stale_if_error)?;
        if expire_nanos.checked_add(stale_nanos).is_none() {
            return Err(ConfigError::new(
                "cache.stale_if_error",
                "`expire_after + stale_if_error` must be at most 584 years",
            ));
        }
        let negative_nanos = match k.negative_ttl {
            None => None,
            Some(d) => {
                let n = check_duration("cache.negative_ttl", d)?;
                if n == 0 {
                    return Err(ConfigError::new("cache.negative_ttl", "must be above zero"));
                }
                Some(n)
            }
        };
        if let Some(beta) = k.early_refresh {
            if !beta.is_finite() || beta <= 0.0 {
                return Err(ConfigError::new(
                    "cache.early_refresh",
                    format!("must be finite and above zero (got {beta})"),
                ));
            }
            if k.refresh_after.is_none() {
                return Err(ConfigError::new(
                    "cache.early_refresh",
                    "needs `refresh_after`: early refresh moves the soft limit",
                ));
            }
        }
        let resolution = check_duration("cache.clock_resolution", k.clock_resolution)?;
        if resolution != 0 && k.clock_resolution < super::clock::TICK {
            return Err(ConfigError::new(
                "cache.clock_resolution",
                format!(
                    "must be zero (exact) or at least 1 ms (got {:?})",
                    k.clock_resolution
                ),
            ));
        }
        if resolution >= refresh_nanos {
            return Err(ConfigError::new(
                "cache.clock_resolution",
                format!(
                    "must be below `refresh_after` and `expire_after` (got {:?})",
                    k.clock_resolution
                ),
            ));
        }
        Ok(CacheConfig {
            capacity: k.capacity,
            refresh_after: k.refresh_after,
            expire_after: k.expire_after,
            stale_if_error: k.stale_if_error,
            negative_ttl: k.negative_ttl,
            max_in_flight: k.max_in_flight,
            early_refresh: k.early_refresh,
            clock_resolution: k.clock_resolution,
            seed: k.seed,
            listener: k.listener,
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
            knobs: BatchKnobs::default(),
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
    knobs: BatchKnobs,
}

crate::knobs::knobs! {
    /// The builder's knobs. [`BatchSpec`] is written from the same list.
    #[derive(Debug, Clone)]
    struct BatchKnobs;

    impl BatchConfigBuilder;

    /// A [`BatchConfig`] as plain data (feature `serde`); a knob left out keeps the builder's
    /// default (batches of at most 100 keys, at most every 100 ms, at most 10,000 keys waiting).
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::cache::BatchSpec;
    ///
    /// let spec: BatchSpec = toml::from_str("max_batch = 200\ninterval = \"250ms\"")?;
    /// assert_eq!(spec.build()?.interval(), Duration::from_millis(250));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct BatchSpec;

    /// The most keys in one call to the batch loader (at least 1; default 100): size it to
    /// what one query handles well (`WHERE key IN (...)` lists, request size limits).
    max_batch: usize = 100,

    /// Keys that come due are collected for this long, then loaded; rounds start at most this
    /// often (above zero; default 100 ms).
    interval: Duration = Duration::from_millis(100),

    /// The most keys waiting for the next round (at least 1; default 10,000). A key that finds
    /// the queue full is not lost: it is queued again by a later read, or loaded on its own
    /// once it expires.
    max_pending: usize = 10_000,
}

impl BatchConfigBuilder {
    /// Check every knob and build the config.
    pub fn build(self) -> Result<BatchConfig, ConfigError> {
        let k = self.knobs;
        if k.max_batch == 0 {
            return Err(ConfigError::new("cache.max_batch", "must be at least 1"));
        }
        if k.max_pending == 0 {
            return Err(ConfigError::new("cache.max_pending", "must be at least 1"));
        }
        if check_duration("cache.interval", k.interval)? == 0 {
            return Err(ConfigError::new("cache.interval", "must be above zero"));
        }
        Ok(BatchConfig {
            max_batch: k.max_batch,
            interval: k.interval,
            max_pending: k.max_pending,
        })
    }
}
