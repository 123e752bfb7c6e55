//! [`RateLimitConfig`]'s knobs as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RateLimitConfig, RateLimitConfigBuilder};
use crate::error::ConfigError;

/// A [`RateLimitConfig`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
///
/// A knob left out keeps the builder's default: no local quota (server signals only), wait up
/// to 30 s for capacity, a 1 s pause for a bare 429, up to 100 ms of
/// reopening jitter, a 1 s probe timeout, no adaptive rate.
///
/// ```
/// use std::time::Duration;
/// use riprap::ratelimit::{RateLimitConfig, RateLimitSpec};
///
/// // An LLM tier: 500 requests and 30,000 tokens a minute; wait up to 10 s for capacity.
/// let spec: RateLimitSpec = toml::from_str(r#"
///     requests = { rate = 500, per = "1m" }
///     cost = { rate = 30000, per = "1m", burst = 10000 }
///     max_wait = "10s"
///     adaptive = { max_rate = 8.0 }
/// "#)?;
/// let config = spec.build()?;
/// assert_eq!(config.cost_quota().unwrap().burst, 10_000);
/// assert_eq!(config.max_wait(), Duration::from_secs(10));
///
/// let spec: RateLimitSpec = toml::from_str(r#"requests = { rate = 0, per = "1s" }"#)?;
/// assert_eq!(spec.build().unwrap_err().knob(), "ratelimit.requests");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// A local quota on requests (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<QuotaSpec>,
    /// A local quota on cost units such as tokens (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<QuotaSpec>,
    /// The longest a caller waits for capacity; `"0s"` rejects at once (default 30 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_wait: Option<Duration>,
    /// How long a throttle that names no delay pauses every caller (default 1 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_pause: Option<Duration>,
    /// Random delay, up to this, added when a closed gate reopens (default 100 ms).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub reopen_jitter: Option<Duration>,
    /// How long the others wait for the first request's answer after a reset (default 1 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub probe_timeout: Option<Duration>,
    /// Pace requests at an adaptive rate (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSpec>,
    /// Seed for the reopening jitter, for reproducible runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `rate` units per `per`, spent at most `burst` at once (default: the whole `rate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSpec {
    /// Units replenished every `per`.
    pub rate: u32,
    /// The window `rate` is spread over.
    #[serde(with = "crate::config::duration")]
    pub per: Duration,
    /// The most units spent at once (default `rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// The adaptive rate's knobs, in requests per second; see
/// [`RateLimitConfigBuilder::adaptive`].
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveSpec {
    /// The rate it starts at and recovers towards (required).
    pub max_rate: f64,
    /// The floor (default 1 % of `max_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rate: Option<f64>,
    /// The factor applied on a throttle, in `(0, 1)` (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decrease: Option<f64>,
    /// Requests per second regained per success (default 1 % of `max_rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increase: Option<f64>,
}

impl RateLimitSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> RateLimitConfigBuilder {
        let mut b = RateLimitConfig::builder();
        if let Some(q) = self.requests {
            b = b.requests(q.rate, q.per);
            if let Some(burst) = q.burst {
                b = b.request_burst(burst);
            }
        }
        if let Some(q) = self.cost {
            b = b.cost(q.rate, q.per);
            if let Some(burst) = q.burst {
                b = b.cost_burst(burst);
            }
        }
        if let Some(d) = self.max_wait {
            b = b.max_wait(d);
        }
        if let Some(d) = self.default_pause {
            b = b.default_pause(d);
        }
        if let Some(d) = self.reopen_jitter {
            b = b.reopen_jitter(d);
        }
        if let Some(d) = self.probe_timeout {
            b = b.probe_timeout(d);
        }
        if let Some(a) = self.adaptive {
            b = b.adaptive(a.max_rate);
            if let Some(r) = a.min_rate {
                b = b.adaptive_floor(r);
            }
            if let Some(f) = a.decrease {
                b = b.adaptive_decrease(f);
            }
            if let Some(r) = a.increase {
                b = b.adaptive_increase(r);
            }
        }
        if let Some(s) = self.seed {
            b = b.seed(s);
        }
        b
    }

    /// Check every knob and build the config.
    pub fn build(&self) -> Result<RateLimitConfig, ConfigError> {
        self.builder().build()
    }
}
