//! The built-in budgets as plain data, for config files; [`AnyBudget`] holds the one a file
//! chose.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AnyBudget, RatioBudget, RatioBudgetBuilder, RetryQuota, RetryQuotaBuilder, TokenThrottle,
    TokenThrottleBuilder, Unlimited,
};
use crate::error::ConfigError;

/// A [`RatioBudget`] as plain data (feature `serde`); a knob left out keeps the builder's
/// default (20 %, 10 retries/s, 10 s).
///
/// ```
/// use riprap::budget::RatioBudgetSpec;
///
/// let spec: RatioBudgetSpec = serde_json::from_str(r#"{ "ratio": 0.1, "ttl": "30s" }"#)?;
/// let budget = spec.build()?;
/// assert_eq!(budget.reserve(), 300.0); // 10 retries/s over 30 s
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RatioBudgetSpec {
    /// Retries allowed per first attempt, in `[0, 10]` (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Retries per second allowed whatever the traffic (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retries_per_sec: Option<u32>,
    /// How long a deposit counts, from 1 s to 1 h (default 10 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
}

impl RatioBudgetSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> RatioBudgetBuilder {
        let mut b = RatioBudget::builder();
        if let Some(r) = self.ratio {
            b = b.ratio(r);
        }
        if let Some(n) = self.min_retries_per_sec {
            b = b.min_retries_per_sec(n);
        }
        if let Some(t) = self.ttl {
            b = b.ttl(t);
        }
        b
    }

    /// Check every knob and build the budget.
    pub fn build(&self) -> Result<RatioBudget, ConfigError> {
        self.builder().build()
    }
}

/// A [`TokenThrottle`] as plain data (feature `serde`); a knob left out keeps the builder's
/// default (`max_tokens` 100, `token_ratio` 0.1).
///
/// ```
/// use riprap::budget::TokenThrottleSpec;
///
/// let spec: TokenThrottleSpec = toml::from_str("max_tokens = 10\ntoken_ratio = 0.5")?;
/// assert_eq!(spec.build()?.tokens(), 10.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenThrottleSpec {
    /// The token count's ceiling and starting point, from 1 to 1000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Tokens a success adds, from 0.001 to 1 (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ratio: Option<f64>,
}

impl TokenThrottleSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> TokenThrottleBuilder {
        let mut b = TokenThrottle::builder();
        if let Some(n) = self.max_tokens {
            b = b.max_tokens(n);
        }
        if let Some(r) = self.token_ratio {
            b = b.token_ratio(r);
        }
        b
    }

    /// Check every knob and build the throttle.
    pub fn build(&self) -> Result<TokenThrottle, ConfigError> {
        self.builder().build()
    }
}

/// A [`RetryQuota`] as plain data (feature `serde`); a knob left out keeps the builder's
/// default (capacity 500; retries cost 5, 10 after a timeout, 1 after a throttle; successes
/// add 1).
///
/// ```
/// use riprap::budget::RetryQuotaSpec;
///
/// let spec: RetryQuotaSpec = toml::from_str("capacity = 100\ntimeout_cost = 20")?;
/// assert_eq!(spec.build()?.available(), 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryQuotaSpec {
    /// The bucket's size and starting level (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u64>,
    /// What a retry after an ordinary failure costs (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_cost: Option<u64>,
    /// What a retry after a timeout costs (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_cost: Option<u64>,
    /// What a retry after a throttle costs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_cost: Option<u64>,
    /// What a request that succeeds without retrying adds (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_increment: Option<u64>,
}

impl RetryQuotaSpec {
    /// The builder with this spec's knobs set.
    pub fn builder(&self) -> RetryQuotaBuilder {
        let mut b = RetryQuota::builder();
        if let Some(n) = self.capacity {
            b = b.capacity(n);
        }
        if let Some(n) = self.retry_cost {
            b = b.retry_cost(n);
        }
        if let Some(n) = self.timeout_cost {
            b = b.timeout_cost(n);
        }
        if let Some(n) = self.throttle_cost {
            b = b.throttle_cost(n);
        }
        if let Some(n) = self.success_increment {
            b = b.success_increment(n);
        }
        b
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
