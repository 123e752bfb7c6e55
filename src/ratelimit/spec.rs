//! A rate limit's quotas and adaptive rate as plain data, for config files, and building a
//! [`RateLimitSpec`] (defined with the knobs it lists, in `config.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RateLimitConfig, RateLimitConfigBuilder, RateLimitSpec};
use crate::error::ConfigError;

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
        let mut b = self.set_knobs(RateLimitConfig::builder());
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
        b
    }

    /// Check every knob and build the config.
    pub fn build(&self) -> Result<RateLimitConfig, ConfigError> {
        self.builder().build()
    }
}
