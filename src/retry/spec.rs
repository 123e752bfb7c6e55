//! [`RetryConfig`]'s plain knobs as data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{RetryConfig, RetryLayer};
use crate::backoff::{BackoffPolicy, BackoffSpec};
use crate::budget::{AnyBudget, BudgetSpec};
use crate::classify::ByError;
use crate::error::ConfigError;
use crate::retry::ByClone;

/// The knobs of a [`RetryConfig`] that are plain data, readable from TOML, YAML or JSON
/// (feature `serde`): attempts, deadline, the longest server delay sat out, the backoff and the budget.
///
/// A knob left out keeps [`RetryConfig::new`]'s default: 3 attempts, no deadline, server delays
/// sat out up to 60 s, exponential backoff from 100 ms capped at 5 s with full jitter, and a fresh
/// default [`RatioBudget`](crate::budget::RatioBudget). The classifier, the listener and
/// request copying are code, not data: set them on the config that
/// [`config`](RetrySpec::config) returns. To share one budget between several layers (as you
/// should for one dependency), build it once and pass it with [`RetryConfig::budget`], which
/// replaces the spec's.
///
/// ```
/// use std::time::Duration;
/// use riprap::retry::RetrySpec;
///
/// let spec: RetrySpec = toml::from_str(r#"
///     max_attempts = 4
///     deadline = "30s"
///     max_retry_after = "2m"
///
///     [backoff]
///     base = "250ms"
///     max_delay = "8s"
///
///     [budget.ratio_budget]
///     ratio = 0.1
/// "#)?;
/// assert_eq!(spec.max_attempts, Some(4));
/// assert_eq!(spec.deadline, Some(Duration::from_secs(30)));
/// let layer = spec.build()?; // or spec.config()?.classifier(..).build()?
/// # let _ = layer;
///
/// let err = toml::from_str::<RetrySpec>("max_attempts = 0")?.build().unwrap_err();
/// assert_eq!(err.knob(), "retry.max_attempts");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, first included, from 1 to 100 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The time a logical request may take, from its first attempt (default none).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deadline: Option<Duration>,
    /// The longest server-requested wait sat out (default 60 s); a longer one gives up at once.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_retry_after: Option<Duration>,
    /// The delays between attempts (default exponential from 100 ms, capped at 5 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffSpec>,
    /// The budget that pays for retries (default a [`RatioBudget`](crate::budget::RatioBudget)
    /// with its defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,
}

/// The config a [`RetrySpec`] makes: errors classified by [`ByError`] until you set a
/// classifier, and the budget the spec chose.
pub type SpecRetryConfig<C = ByError> = RetryConfig<C, BackoffPolicy, AnyBudget, ByClone>;

impl RetrySpec {
    /// A [`RetryConfig`] with this spec's knobs, its backoff and budget built, ready for the
    /// knobs that are code ([`classifier`](RetryConfig::classifier),
    /// [`listener`](RetryConfig::listener), [`clone_requests`](RetryConfig::clone_requests)).
    /// The backoff and budget are checked here; the rest when the config is built.
    pub fn config(&self) -> Result<SpecRetryConfig, ConfigError> {
        let mut config = RetryConfig::new();
        if let Some(n) = self.max_attempts {
            config = config.max_attempts(n);
        }
        if let Some(d) = self.deadline {
            config = config.deadline(d);
        }
        if let Some(d) = self.max_retry_after {
            config = config.max_retry_after(d);
        }
        if let Some(b) = &self.backoff {
            config = config.backoff(b.build()?);
        }
        let budget = match &self.budget {
            Some(b) => b.build()?,
            None => AnyBudget::default(),
        };
        Ok(config.budget(budget))
    }

    /// Check every knob and build the layer, classifying errors with [`ByError`].
    pub fn build(
        &self,
    ) -> Result<RetryLayer<ByError, BackoffPolicy, AnyBudget, ByClone>, ConfigError> {
        self.config()?.build()
    }
}
