//! The hedging layer's knobs as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HedgeBuilder, HedgeLayer};
use crate::budget::{AnyBudget, BudgetSpec};
use crate::classify::ByError;
use crate::error::ConfigError;
use crate::request::ByClone;

/// A [`HedgeLayer`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
///
/// At most one of `delay`, `percentile` and `on_failure_only` says when hedges go (none: 2 s).
/// The classifier, the copy policy and the listener are code: set them on the builder
/// [`builder`](HedgeSpec::builder) returns. To share the retry layer's budget, pass it with
/// [`HedgeBuilder::budget`], which replaces the spec's.
///
/// ```
/// use riprap::hedge::HedgeSpec;
///
/// let spec: HedgeSpec = toml::from_str(r#"
///     max_hedged_attempts = 2
///     percentile = { quantile = 0.95, until_known = "300ms" }
///     budget = { ratio_budget = { ratio = 0.1 } }
/// "#)?;
/// let layer = spec.build()?;
/// # let _ = layer;
///
/// let spec: HedgeSpec = toml::from_str(r#"delay = "1s"
/// on_failure_only = true"#)?;
/// assert_eq!(spec.build().unwrap_err().knob(), "hedge.delay");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HedgeSpec {
    /// Hedges per request, 1 to 10 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hedged_attempts: Option<u32>,
    /// A hedge after this long without an answer.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub delay: Option<Duration>,
    /// A hedge after a percentile of recent latencies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentile: Option<PercentileSpec>,
    /// A hedge only after a failure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_failure_only: bool,
    /// The budget that pays for hedges (default a [`RatioBudget`](crate::budget::RatioBudget)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,
}

/// [`HedgeBuilder::delay_percentile`] as data.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PercentileSpec {
    /// Between 0 and 1, such as 0.95.
    pub quantile: f64,
    /// The delay until enough answers were seen.
    #[serde(with = "crate::config::duration")]
    pub until_known: Duration,
}

impl HedgeSpec {
    /// A [`HedgeBuilder`] with this spec's knobs (the budget built here, the rest checked
    /// when the builder is built).
    pub fn builder(&self) -> Result<HedgeBuilder<ByError, ByClone, AnyBudget>, ConfigError> {
        let chosen = usize::from(self.delay.is_some())
            + usize::from(self.percentile.is_some())
            + usize::from(self.on_failure_only);
        if chosen > 1 {
            return Err(ConfigError::new(
                "hedge.delay",
                "set at most one of `delay`, `percentile` and `on_failure_only`",
            ));
        }
        let budget = match &self.budget {
            Some(b) => b.build()?,
            None => AnyBudget::default(),
        };
        let mut b = HedgeLayer::builder().budget(budget);
        if let Some(n) = self.max_hedged_attempts {
            b = b.max_hedged_attempts(n);
        }
        if let Some(d) = self.delay {
            b = b.delay(d);
        }
        if let Some(p) = self.percentile {
            b = b.delay_percentile(p.quantile, p.until_known);
        }
        if self.on_failure_only {
            b = b.on_failure_only();
        }
        Ok(b)
    }

    /// Check every knob and build the layer.
    pub fn build(&self) -> Result<HedgeLayer<ByError, ByClone, AnyBudget>, ConfigError> {
        self.builder()?.build()
    }
}
