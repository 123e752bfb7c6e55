//! [`CacheConfig`]'s and [`BatchConfig`]'s knobs as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BatchConfig, BatchConfigBuilder, CacheConfig, CacheConfigBuilder};
use crate::error::ConfigError;

/// A [`CacheConfig`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
///
/// A knob left out keeps the builder's default: 10,000 entries, `expire_after` 60 s, no soft
/// refresh, no stale-if-error, no negative caching, at most 10,000 keys loading at once, a
/// 1 ms clock. The listener is code, not data: set it on [`builder`](CacheSpec::builder)'s
/// result.
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
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// The most entries kept (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<usize>,
    /// Age after which a read refreshes the entry in the background (default none).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_after: Option<Duration>,
    /// Age after which an entry is never served while loads succeed (default 60 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expire_after: Option<Duration>,
    /// How long past `expire_after` an entry may be served while loads fail (default 0).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub stale_if_error: Option<Duration>,
    /// How long a permanent failure ("not found") is remembered (default not at all).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub negative_ttl: Option<Duration>,
    /// The most distinct keys loading at once (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// The XFetch `beta` for probabilistic early refresh (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_refresh: Option<f64>,
    /// How far behind the freshness clock may be; `"0s"` reads it every time (default 1 ms).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub clock_resolution: Option<Duration>,
    /// Seed for the early-refresh draws, for reproducible runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl CacheSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> CacheConfigBuilder {
        let mut b = CacheConfig::builder();
        if let Some(n) = self.capacity {
            b = b.capacity(n);
        }
        if let Some(d) = self.refresh_after {
            b = b.refresh_after(d);
        }
        if let Some(d) = self.expire_after {
            b = b.expire_after(d);
        }
        if let Some(d) = self.stale_if_error {
            b = b.stale_if_error(d);
        }
        if let Some(d) = self.negative_ttl {
            b = b.negative_ttl(d);
        }
        if let Some(n) = self.max_in_flight {
            b = b.max_in_flight(n);
        }
        if let Some(beta) = self.early_refresh {
            b = b.early_refresh(beta);
        }
        if let Some(d) = self.clock_resolution {
            b = b.clock_resolution(d);
        }
        if let Some(s) = self.seed {
            b = b.seed(s);
        }
        b
    }

    /// Check every knob and build the config.
    pub fn build(&self) -> Result<CacheConfig, ConfigError> {
        self.builder().build()
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// The most keys in one call to the batch loader (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,
    /// How long due keys are collected before a round of loads (default 100 ms).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// The most keys waiting for the next round (default 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<usize>,
}

impl BatchSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> BatchConfigBuilder {
        let mut b = BatchConfig::builder();
        if let Some(n) = self.max_batch {
            b = b.max_batch(n);
        }
        if let Some(d) = self.interval {
            b = b.interval(d);
        }
        if let Some(n) = self.max_pending {
            b = b.max_pending(n);
        }
        b
    }

    /// Check every knob and build the config.
    pub fn build(&self) -> Result<BatchConfig, ConfigError> {
        self.builder().build()
    }
}
