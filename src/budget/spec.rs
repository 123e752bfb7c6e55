//! Building the budget specs (each defined with the knobs it lists, beside its budget), and
//! [`BudgetSpec`], the choice of one; [`AnyBudget`] holds the one a file chose.

use serde::{Deserialize, Serialize};

use super::{
    AnyBudget, RatioBudget, RatioBudgetBuilder, RatioBudgetSpec, RetryQuota, RetryQuotaBuilder,
    RetryQuotaSpec, TokenThrottle, TokenThrottleBuilder, TokenThrottleSpec, Unlimited,
};
use crate::error::ConfigError;

impl RatioBudgetSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> RatioBudgetBuilder {
        self.set_knobs(RatioBudget::builder())
    }

    /// Check every knob and build the budget.
    pub fn build(&self) -> Result<RatioBudget, ConfigError> {
        self.builder().build()
    }
}

impl TokenThrottleSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> TokenThrottleBuilder {
        self.set_knobs(TokenThrottle::builder())
    }

    /// Check every knob and build the throttle.
    pub fn build(&self) -> Result<TokenThrottle, ConfigError> {
        self.builder().build()
    }
}

impl RetryQuotaSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> RetryQuotaBuilder {
        self.set_knobs(RetryQuota::builder())
    }

    /// Check every knob and build the quota.
    pub fn build(&self) -> Result<RetryQuota, ConfigError> {
        self.builder().build()
    }
}

/// Which budget pays for retries, and its knobs (feature `serde`).
///
/// In a file the choice is a table with exactly one key, the same in TOML, YAML and JSON:
/// `budget = { ratio_budget = { ratio = 0.1 } }`, `budget = { token_throttle = {} }`,
/// `budget = { retry_quota = { capacity = 100 } }` or `budget = { unlimited = true }`. The keys
/// are the prefixes of the knobs a [`ConfigError`] names (`ratio_budget.ratio`), so an error
/// points at its line.
///
/// ```
/// use riprap::budget::{AnyBudget, BudgetSpec};
///
/// let spec: BudgetSpec = serde_norway::from_str("token_throttle: { max_tokens: 10 }")?;
/// assert!(matches!(spec.build()?, AnyBudget::TokenThrottle(_)));
/// let spec: BudgetSpec = serde_json::from_str(r#"{ "unlimited": true }"#)?;
/// assert_eq!(spec, BudgetSpec::Unlimited);
///
/// let err = toml::from_str::<BudgetSpec>("unlimited = true\n[retry_quota]").unwrap_err();
/// assert!(err.to_string().contains("exactly one"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "OneBudget", into = "OneBudget")]
pub enum BudgetSpec {
    /// A [`RatioBudget`] (the default).
    RatioBudget(RatioBudgetSpec),
    /// A [`TokenThrottle`].
    TokenThrottle(TokenThrottleSpec),
    /// A [`RetryQuota`].
    RetryQuota(RetryQuotaSpec),
    /// [`Unlimited`]: no budget at all.
    Unlimited,
}

/// [`BudgetSpec`] as it is written: a table with one key. An externally tagged enum would be
/// the same in TOML and JSON, but YAML libraries write and expect those as `!tags`.
#[derive(Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct OneBudget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ratio_budget: Option<RatioBudgetSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_throttle: Option<TokenThrottleSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_quota: Option<RetryQuotaSpec>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unlimited: bool,
}

impl TryFrom<OneBudget> for BudgetSpec {
    type Error = String;

    fn try_from(one: OneBudget) -> Result<Self, String> {
        let chosen = usize::from(one.ratio_budget.is_some())
            + usize::from(one.token_throttle.is_some())
            + usize::from(one.retry_quota.is_some())
            + usize::from(one.unlimited);
        if chosen != 1 {
            return Err(format!(
                "a budget needs exactly one of `ratio_budget`, `token_throttle`, `retry_quota` \
                 or `unlimited` (got {chosen})"
            ));
        }
        Ok(if let Some(s) = one.ratio_budget {
            BudgetSpec::RatioBudget(s)
        } else if let Some(s) = one.token_throttle {
            BudgetSpec::TokenThrottle(s)
        } else if let Some(s) = one.retry_quota {
            BudgetSpec::RetryQuota(s)
        } else {
            BudgetSpec::Unlimited
        })
    }
}

impl From<BudgetSpec> for OneBudget {
    fn from(spec: BudgetSpec) -> Self {
        match spec {
            BudgetSpec::RatioBudget(s) => OneBudget {
                ratio_budget: Some(s),
                ..OneBudget::default()
            },
            BudgetSpec::TokenThrottle(s) => OneBudget {
                token_throttle: Some(s),
                ..OneBudget::default()
            },
            BudgetSpec::RetryQuota(s) => OneBudget {
                retry_quota: Some(s),
                ..OneBudget::default()
            },
            BudgetSpec::Unlimited => OneBudget {
                unlimited: true,
                ..OneBudget::default()
            },
        }
    }
}

impl Default for BudgetSpec {
    /// A [`RatioBudget`] with its defaults.
    fn default() -> Self {
        BudgetSpec::RatioBudget(RatioBudgetSpec::default())
    }
}

impl BudgetSpec {
    /// Check every knob and build the chosen budget.
    pub fn build(&self) -> Result<AnyBudget, ConfigError> {
        Ok(match self {
            BudgetSpec::RatioBudget(s) => AnyBudget::Ratio(s.build()?),
            BudgetSpec::TokenThrottle(s) => AnyBudget::TokenThrottle(s.build()?),
            BudgetSpec::RetryQuota(s) => AnyBudget::RetryQuota(s.build()?),
            BudgetSpec::Unlimited => AnyBudget::Unlimited(Unlimited),
        })
    }
}
