//! The growth of a [`BackoffPolicy`] as plain data, for config files, and building a
//! [`BackoffSpec`] (defined with the knobs it lists, in the module's root).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackoffBuilder, BackoffPolicy, BackoffSpec};
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
        let b = match self.growth {
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
        Ok(self.set_knobs(b))
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
