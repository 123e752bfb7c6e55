//! [`BackoffPolicy`] as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackoffBuilder, BackoffPolicy, Jitter};
use crate::error::ConfigError;

/// How a backoff's delays grow from one retry to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrowthKind {
    /// `base · factor^n`: [`BackoffPolicy::exponential`].
    #[default]
    Exponential,
    /// `base + step · n`: [`BackoffPolicy::linear`].
    Linear,
    /// `base` every time: [`BackoffPolicy::constant`].
    Constant,
}

/// A [`BackoffPolicy`] as plain data: every knob of its builder, readable from TOML, YAML or
/// JSON (feature `serde`).
///
/// Only `base` is required. A knob left out keeps the builder's default: exponential growth
/// by a factor of 2, a 30 s cap, full jitter for exponential growth and none otherwise, no
/// bound on retries or total delay, a random seed. [`build`](BackoffSpec::build) goes through
/// [`BackoffBuilder`], so a bad value is refused exactly as in code, with the knob named, and
/// a knob that does not apply to the chosen growth (`factor` on linear growth, `step` on
/// exponential) is refused rather than ignored.
///
/// ```
/// use std::time::Duration;
/// use riprap::backoff::{BackoffPolicy, BackoffSpec, Jitter};
///
/// let spec: BackoffSpec = toml::from_str(r#"
///     base = "100ms"
///     factor = 3.0
///     max_delay = "5s"
///     jitter = "equal"
///     max_retries = 4
///     seed = 7
/// "#)?;
/// let policy = spec.build()?;
/// let same = BackoffPolicy::exponential(Duration::from_millis(100))
///     .factor(3.0)
///     .max_delay(Duration::from_secs(5))
///     .jitter(Jitter::Equal)
///     .max_retries(4)
///     .seed(7)
///     .build()?;
/// assert!(policy.schedule_with_seed(1).eq(same.schedule_with_seed(1)));
///
/// let spec: BackoffSpec = toml::from_str("base = \"100ms\"\nfactor = 0.5")?;
/// let err = spec.build().unwrap_err();
/// assert_eq!(err.knob(), "backoff.factor");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSpec {
    /// How delays grow (default exponential).
    #[serde(default)]
    pub growth: GrowthKind,
    /// The first delay's envelope (required).
    #[serde(with = "crate::config::duration")]
    pub base: Duration,
    /// Growth factor, exponential growth only (default 2.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// What each retry adds, linear growth only (required there).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub step: Option<Duration>,
    /// Cap on any single delay (default 30 s, or `base` if larger).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_delay: Option<Duration>,
    /// How delays are randomised: `none`, `full`, `equal` or `decorrelated` (default `full`
    /// for exponential growth, `none` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Jitter>,
    /// Stop after this many delays (default unbounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Stop before the delays add up past this (default unbounded).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_elapsed: Option<Duration>,
    /// Seed for the jitter, for reproducible runs (default random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl BackoffSpec {
    /// Exponential growth from `base`, every other knob at its default.
    pub fn new(base: Duration) -> Self {
        BackoffSpec {
            growth: GrowthKind::Exponential,
            base,
            factor: None,
            step: None,
            max_delay: None,
            jitter: None,
            max_retries: None,
            max_elapsed: None,
            seed: None,
        }
    }

    /// The builder with this spec's knobs set, for changes in code before building.
    pub fn builder(&self) -> Result<BackoffBuilder, ConfigError> {
        let mut b = match self.growth {
            GrowthKind::Exponential => {
                not_for(self.step.is_some(), "backoff.step", "exponential")?;
                let b = BackoffPolicy::exponential(self.base);
                match self.factor {
                    Some(f) => b.factor(f),
                    None => b,
                }
            }
            GrowthKind::Linear => {
                not_for(self.factor.is_some(), "backoff.factor", "linear")?;
                let step = self.step.ok_or_else(|| {
                    ConfigError::new("backoff.step", "is required for linear growth")
                })?;
                BackoffPolicy::linear(self.base, step)
            }
            GrowthKind::Constant => {
                not_for(self.factor.is_some(), "backoff.factor", "constant")?;
                not_for(self.step.is_some(), "backoff.step", "constant")?;
                BackoffPolicy::constant(self.base)
            }
        };
        if let Some(d) = self.max_delay {
            b = b.max_delay(d);
        }
        if let Some(j) = self.jitter {
            b = b.jitter(j);
        }
        if let Some(n) = self.max_retries {
            b = b.max_retries(n);
        }
        if let Some(d) = self.max_elapsed {
            b = b.max_elapsed(d);
        }
        if let Some(s) = self.seed {
            b = b.seed(s);
        }
        Ok(b)
    }

    /// Check every knob and build the policy.
    pub fn build(&self) -> Result<BackoffPolicy, ConfigError> {
        self.builder()?.build()
    }
}

/// A knob set for a growth it does not apply to is a mistake in the file, not a no-op.
fn not_for(set: bool, knob: &'static str, growth: &'static str) -> Result<(), ConfigError> {
    if set {
        Err(ConfigError::new(
            knob,
            format!("does not apply to {growth} growth; remove it or change `growth`"),
        ))
    } else {
        Ok(())
    }
}
