use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StackBuilder;
use crate::breaker::{BreakerSpec, TripPolicies};
use crate::budget::AnyBudget;
use crate::error::ConfigError;
use crate::ratelimit::{NoSignal, RateLimitSpec, UnitCost};
use crate::retry::RetrySpec;

/// A [stack](super) as plain data: deadlines plus each layer's spec. Absent parts keep the
/// defaults of [`StackBuilder::new`].
///
/// ```
/// use riprap::classify::ByError;
/// use riprap::stack::StackSpec;
///
/// let spec: StackSpec = toml::from_str(r#"
///     total_deadline = "30s"
///     attempt_timeout = "5s"
///
///     [retry]
///     max_attempts = 4
///
///     [breaker]
///     consecutive_failures = 10
///     open_for = "15s"
///
///     [rate_limit]
///     requests = { rate = 600, per = "1m" }
/// "#)?;
/// let stack = spec.builder(ByError)?.build()?;
/// # let _ = stack;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StackSpec {
    /// The most a logical request may take, retries and waits included.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_deadline: Option<Duration>,
    /// The most one attempt may take.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub attempt_timeout: Option<Duration>,
    /// The retry layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// The circuit breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerSpec>,
    /// The rate limiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

impl StackSpec {
    /// A stack builder with these settings and `classifier`; add code-only parts (cost,
    /// signal reader, listeners) on the builder, then [`build`](StackBuilder::build) it, which
    /// checks that the layers agree.
    pub fn builder<C>(
        &self,
        classifier: C,
    ) -> Result<StackBuilder<C, TripPolicies, UnitCost, NoSignal, AnyBudget>, ConfigError> {
        let retry = self.retry.clone().unwrap_or_default().config()?;
        let breaker = self.breaker.clone().unwrap_or_default().builder()?;
        let mut b = StackBuilder::new(classifier).retry(retry).breaker(breaker);
        if let Some(rate_limit) = &self.rate_limit {
            b = b.rate_limit(rate_limit.builder());
        }
        if let Some(d) = self.total_deadline {
            b = b.total_deadline(d);
        }
        if let Some(d) = self.attempt_timeout {
            b = b.attempt_timeout(d);
        }
        Ok(b)
    }
}
