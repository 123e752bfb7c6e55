//! Building a [`RetrySpec`] (defined with the knobs it lists, in `config.rs`).

use super::{RetryConfig, RetryLayer, RetrySpec};
use crate::backoff::BackoffPolicy;
use crate::budget::AnyBudget;
use crate::classify::ByError;
use crate::error::ConfigError;
use crate::retry::ByClone;

/// The config a [`RetrySpec`] makes: errors classified by [`ByError`] until you set a
/// classifier, and the budget the spec chose.
pub type SpecRetryConfig<C = ByError> = RetryConfig<C, BackoffPolicy, AnyBudget, ByClone>;

impl RetrySpec {
    /// A [`RetryConfig`] with this spec's knobs, its backoff and budget built, ready for the
    /// knobs that are code ([`classifier`](RetryConfig::classifier),
    /// [`listener`](RetryConfig::listener), [`clone_requests`](RetryConfig::clone_requests)).
    /// The backoff and budget are checked here; the rest when the config is built.
    pub fn config(&self) -> Result<SpecRetryConfig, ConfigError> {
        let mut config = self.set_knobs(RetryConfig::new());
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
