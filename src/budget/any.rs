//! [`AnyBudget`]: one of the built-in budgets, chosen at run time.

use super::{Attempt, Budget, RatioBudget, RetryQuota, TokenThrottle, Unlimited, Withdrawal};
use crate::classify::Class;

/// One of the built-in budgets, chosen at run time: from a setting, a command-line flag, or a
/// config file's `BudgetSpec` (feature `serde`).
///
/// Dispatch is a `match`, with no allocation and no virtual call; clones share one account,
/// like the budgets inside. A layer that takes an `AnyBudget` has one type whichever budget
/// was chosen, so a config struct can hold it as a field.
///
/// ```
/// use std::time::Duration;
/// use riprap::budget::{AnyBudget, Budget, RatioBudget, RetryQuota, Unlimited};
/// use riprap::classify::Class;
/// use riprap::retry::RetryConfig;
///
/// fn budget(name: &str) -> Result<AnyBudget, riprap::ConfigError> {
///     Ok(match name {
///         "quota" => AnyBudget::RetryQuota(RetryQuota::builder().capacity(100).build()?),
///         "none" => AnyBudget::Unlimited(Unlimited),
///         _ => AnyBudget::Ratio(RatioBudget::builder().ratio(0.1).build()?),
///     })
/// }
///
/// let chosen = budget("quota")?;
/// assert!(chosen.try_withdraw(Class::Transient).is_some());
/// // One layer type, whichever budget was chosen.
/// let layer = RetryConfig::new().budget(chosen.clone()).build()?;
/// assert!(matches!(layer.budget(), AnyBudget::RetryQuota(_)));
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub enum AnyBudget {
    /// A [`RatioBudget`].
    Ratio(RatioBudget),
    /// A [`TokenThrottle`].
    TokenThrottle(TokenThrottle),
    /// A [`RetryQuota`].
    RetryQuota(RetryQuota),
    /// [`Unlimited`].
    Unlimited(Unlimited),
}

impl Default for AnyBudget {
    /// A default [`RatioBudget`].
    fn default() -> Self {
        AnyBudget::Ratio(RatioBudget::default())
    }
}

impl From<RatioBudget> for AnyBudget {
    fn from(b: RatioBudget) -> Self {
        AnyBudget::Ratio(b)
    }
}

impl From<TokenThrottle> for AnyBudget {
    fn from(b: TokenThrottle) -> Self {
        AnyBudget::TokenThrottle(b)
    }
}

impl From<RetryQuota> for AnyBudget {
    fn from(b: RetryQuota) -> Self {
        AnyBudget::RetryQuota(b)
    }
}

impl From<Unlimited> for AnyBudget {
    fn from(b: Unlimited) -> Self {
        AnyBudget::Unlimited(b)
    }
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBudget::Ratio($b) => $e,
            AnyBudget::TokenThrottle($b) => $e,
            AnyBudget::RetryQuota($b) => $e,
            AnyBudget::Unlimited($b) => $e,
        }
    };
}

impl Budget for AnyBudget {
    #[inline]
    fn deposit(&self) {
        each!(self, b => b.deposit())
    }

    fn try_withdraw(&self, after: Class) -> Option<Withdrawal> {
        each!(self, b => b.try_withdraw(after))
    }

    fn refund(&self, withdrawal: Withdrawal) {
        each!(self, b => b.refund(withdrawal))
    }

    #[inline]
    fn record(&self, attempt: Attempt) {
        each!(self, b => b.record(attempt))
    }

    fn can_withdraw(&self, after: Class) -> bool {
        each!(self, b => b.can_withdraw(after))
    }
}
