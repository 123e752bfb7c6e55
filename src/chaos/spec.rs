//! Injected latency and outages as plain data, for config files, and building a
//! [`ChaosSpec`] (defined with the knobs it lists, in `config.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ChaosBuilder, ChaosLayer, ChaosSpec, DefaultInjector, Latency};
use crate::error::ConfigError;

/// Injected latency: `{ fixed = "100ms" }`, or uniform in `{ min = "50ms", max = "200ms" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "LatencyRepr", into = "LatencyRepr")]
pub enum LatencySpec {
    /// Always this much.
    Fixed(Duration),
    /// Uniform between the bounds, inclusive.
    Uniform {
        /// The shortest delay.
        min: Duration,
        /// The longest delay.
        max: Duration,
    },
}

/// [`LatencySpec`] as it is written: named bounds rather than an enum tag, which YAML
/// libraries would write as a `!tag`.
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct LatencyRepr {
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    fixed: Option<Duration>,
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    min: Option<Duration>,
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    max: Option<Duration>,
}

impl TryFrom<LatencyRepr> for LatencySpec {
    type Error = &'static str;

    fn try_from(r: LatencyRepr) -> Result<Self, Self::Error> {
        match (r.fixed, r.min, r.max) {
            (Some(d), None, None) => Ok(LatencySpec::Fixed(d)),
            (None, Some(min), Some(max)) => Ok(LatencySpec::Uniform { min, max }),
            _ => Err("latency needs either `fixed`, or both `min` and `max`"),
        }
    }
}

impl From<LatencySpec> for LatencyRepr {
    fn from(l: LatencySpec) -> Self {
        match l {
            LatencySpec::Fixed(d) => LatencyRepr {
                fixed: Some(d),
                ..LatencyRepr::default()
            },
            LatencySpec::Uniform { min, max } => LatencyRepr {
                fixed: None,
                min: Some(min),
                max: Some(max),
            },
        }
    }
}

impl From<LatencySpec> for Latency {
    fn from(l: LatencySpec) -> Self {
        match l {
            LatencySpec::Fixed(d) => Latency::Fixed(d),
            LatencySpec::Uniform { min, max } => Latency::Uniform(min, max),
        }
    }
}

/// The dependency is down from `from` to `until`, measured from the layer's first call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutageSpec {
    /// When the outage starts.
    #[serde(with = "crate::config::duration")]
    pub from: Duration,
    /// When it ends.
    #[serde(with = "crate::config::duration")]
    pub until: Duration,
}

impl ChaosSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> Result<ChaosBuilder<DefaultInjector>, ConfigError> {
        let mut b = self.set_knobs(ChaosLayer::builder());
        match (self.throttle_rate, self.throttle_retry_after) {
            (Some(rate), Some(after)) => b = b.throttle_rate(rate, after),
            (None, None) => {}
            (Some(_), None) => return Err(required("chaos.throttle_retry_after", "throttle_rate")),
            (None, Some(_)) => return Err(required("chaos.throttle_rate", "throttle_retry_after")),
        }
        match (self.latency_rate, self.latency) {
            (Some(rate), Some(latency)) => b = b.latency(rate, latency.into()),
            (None, None) => {}
            (Some(_), None) => return Err(required("chaos.latency", "latency_rate")),
            (None, Some(_)) => return Err(required("chaos.latency_rate", "latency")),
        }
        for o in &self.outages {
            b = b.outage(o.from, o.until);
        }
        Ok(b)
    }

    /// Check every knob and build the layer.
    pub fn build(&self) -> Result<ChaosLayer<DefaultInjector>, ConfigError> {
        self.builder()?.build()
    }
}

fn required(knob: &'static str, with: &'static str) -> ConfigError {
    ConfigError::new(knob, format!("is required with `{with}`"))
}
