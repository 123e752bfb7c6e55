//! [`ChaosBuilder`]'s knobs as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ChaosBuilder, ChaosLayer, DefaultInjector, Latency};
use crate::error::ConfigError;

/// A [`ChaosLayer`] as plain data, readable from TOML, YAML or JSON (feature `serde`), so a
/// test or a staging environment can switch faults on from a file.
///
/// Every knob is optional: a spec with none injects nothing. `throttle_rate` needs
/// `throttle_retry_after` and `latency_rate` needs `latency`; field names are the knob names
/// a [`ConfigError`] reports (`chaos.throttle_rate`). The injector is code, not data: set it
/// with [`ChaosBuilder::inject_with`] on [`builder`](ChaosSpec::builder)'s result.
///
/// ```
/// use std::time::Duration;
/// use riprap::chaos::{ChaosSpec, OutageSpec};
///
/// let spec: ChaosSpec = toml::from_str(r#"
///     seed = 7
///     error_rate = 0.2
///     throttle_rate = 0.1
///     throttle_retry_after = "20s"
///     latency_rate = 0.5
///     latency = { min = "50ms", max = "200ms" }
///     outages = [{ from = "1m", until = "2m" }]
/// "#)?;
/// assert_eq!(spec.outages, [OutageSpec { from: Duration::from_secs(60), until: Duration::from_secs(120) }]);
/// let layer = spec.build()?;
/// # let _ = layer;
///
/// let spec: ChaosSpec = toml::from_str("error_rate = 0.8\nthrottle_rate = 0.5\nthrottle_retry_after = \"1s\"")?;
/// assert_eq!(spec.build().unwrap_err().knob(), "chaos.throttle_rate"); // 0.8 + 0.5 > 1
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosSpec {
    /// The seed every injection decision is drawn from (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Share of calls failed with an error, in `[0, 1]` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Share of calls throttled, in `[0, 1]`; set with `throttle_retry_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_rate: Option<f64>,
    /// The `Retry-After` an injected throttle carries; set with `throttle_rate`.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub throttle_retry_after: Option<Duration>,
    /// Share of calls delayed, in `[0, 1]`; set with `latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_rate: Option<f64>,
    /// How long a delayed call waits; set with `latency_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySpec>,
    /// Windows of time, from the layer's first call, when every call fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outages: Vec<OutageSpec>,
}

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
        let mut b = ChaosLayer::builder();
        if let Some(s) = self.seed {
            b = b.seed(s);
        }
        if let Some(r) = self.error_rate {
            b = b.error_rate(r);
        }
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
