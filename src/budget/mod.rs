//! How many retries a whole process may make: a retry budget shared by every request.
//!
//! A per-request attempt cap bounds one caller; it does nothing about a fleet. When a
//! dependency goes down, every request fails, and every request retries: attempt caps multiply
//! load instead of shedding it. A [`Budget`] is the process-wide limit: each retry must be paid
//! for out of a shared account, and when the account is empty the retry is not made.
//!
//! ## The arithmetic
//!
//! With `n` layers stacked (client SDK, service mesh, your own code) each making up to `k`
//! attempts, one failing call becomes `k^n` calls to the dependency: 3 layers × 4 attempts is
//! 4³ = **64×** the load, arriving exactly when the dependency is least able to take it.
//!
//! A [`RatioBudget`] of 20 % bounds the extra load instead: at every retry, the retries of the
//! last `ttl` are at most 20 % of the first attempts of the last `ttl` plus a small reserve,
//! which renews every `ttl`. Over a storm whose retries span *T*, total calls are at most
//! **1.2 × requests + reserve rate × (T + ttl)**, however many attempts each request is
//! allowed; but *T* is as long as requests keep retrying, so a large attempt cap with long
//! backoffs lets the reserve pay for longer (set `min_retries_per_sec` to 0, or give the retry
//! layer a deadline, where that matters). With the defaults (20 %, a reserve of 10 retries/s,
//! 10 s expiry), 100 requests/s against a dead dependency make at most 120 + 10 calls/s, where
//! four attempts without a budget make 400.
//!
//! riprap's storm test replays exactly that for 60 s on a paused clock (6,000 requests, every
//! call failing, 4 attempts allowed): without a budget the dependency sees 24,000 calls (4×);
//! with the default budget it sees 7,694 (1.28×), inside the bound of 1.2 × 6,000 plus the
//! reserve's 10/s × (60 s + one 10 s window) = 7,900.
//!
//! The budget also breaks the multiplication between layers: retry in one layer per
//! dependency, share its budget, and let the layers above see a
//! [`RetryError`](crate::retry::RetryError), which classifies itself as permanent, so they do not
//! retry what was already retried.
//!
//! ## Choosing semantics
//!
//! All three built-ins implement [`Budget`]; pick the one whose behaviour you already know.
//!
//! | budget | origin | a retry costs | credit comes from | when it refuses |
//! |---|---|---|---|---|
//! | [`RatioBudget`] | Finagle, tower's `TpsBudget` | one retry | each first attempt deposits `ratio` retries; deposits expire after `ttl`; a reserve of `min_retries_per_sec × ttl` | retries in the last `ttl` exceed `ratio ×` requests + reserve |
//! | [`TokenThrottle`] | gRPC retry throttling | nothing directly | successes add `token_ratio`; failures take 1 | tokens at or below half of `max_tokens` |
//! | [`RetryQuota`] | AWS SDKs' retry quota | 5 (10 after a timeout, 1 after a throttle) | a success gives back its last retry's cost, or adds 1 | the quota cannot cover the cost |
//!
//! - **[`RatioBudget`]** (the default) bounds amplification by a ratio you choose, whatever the
//!   traffic; the reserve keeps a quiet client able to retry. Use it unless you have a reason not to.
//! - **[`TokenThrottle`]** reacts to the *failure rate*: it stops retrying once failures
//!   outnumber successes by enough, and starts again as successes return. No clock involved.
//! - **[`RetryQuota`]** is a plain bucket that drains on failures and refills on successes;
//!   it weighs retries after timeouts (costly for both sides) above retries after throttles
//!   (which already wait for the server's `Retry-After`).
//! - [`Unlimited`] pays for everything: only for tests and comparisons.
//!
//! Clones of a budget share one account: build one budget and hand it to every layer and
//! service that calls the same dependency.
//!
//! ```
//! use riprap::budget::{Budget, RatioBudget};
//! use riprap::classify::Class;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), riprap::ConfigError> {
//! let budget = RatioBudget::builder().ratio(0.2).min_retries_per_sec(0).build()?;
//! for _ in 0..10 {
//!     budget.deposit(); // ten first attempts...
//! }
//! let failure = Class::Transient;
//! assert!(budget.try_withdraw(failure).is_some()); // ...pay for two retries
//! assert!(budget.try_withdraw(failure).is_some());
//! assert!(budget.try_withdraw(failure).is_none()); // and no third
//! # Ok(()) }
//! ```
//!
//! ## From a config file
//!
//! With the `serde` feature, `RatioBudgetSpec`, `TokenThrottleSpec` and `RetryQuotaSpec` hold
//! each budget's knobs as plain data, and `BudgetSpec` chooses one by its key; building a
//! `BudgetSpec` gives an [`AnyBudget`], which is itself a [`Budget`] (and needs no feature:
//! use it wherever the budget is chosen at run time):
//!
//! ```toml
//! [budget.ratio_budget]   # or token_throttle, retry_quota, or `budget = { unlimited = true }`
//! ratio = 0.2
//! min_retries_per_sec = 10
//! ttl = "10s"
//! ```
//!
//! ## Implementing your own
//!
//! A [`Budget`] hears four things: a first attempt ([`deposit`](Budget::deposit)), a retry about
//! to be sent ([`try_withdraw`](Budget::try_withdraw)), a withdrawal handed back
//! ([`refund`](Budget::refund)), and every attempt's outcome ([`record`](Budget::record)). The
//! retry layer withdraws at the instant it sends the retry, after any backoff sleep, so a
//! request dropped while it waits spends nothing.

use std::sync::Arc;

use crate::classify::Class;

mod any;
mod quota;
mod ratio;
#[cfg(feature = "serde")]
mod spec;
mod throttle;

pub use any::AnyBudget;
pub use quota::{RetryQuota, RetryQuotaBuilder};
pub use ratio::{RatioBudget, RatioBudgetBuilder};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::BudgetSpec;
pub use throttle::{TokenThrottle, TokenThrottleBuilder};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use {quota::RetryQuotaSpec, ratio::RatioBudgetSpec, throttle::TokenThrottleSpec};

/// A process-wide account that pays for retries.
///
/// Implementations are shared by every clone (keep the state behind an `Arc`) and are called
/// on the request path: keep every method lock-free and allocation-free.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a retry budget",
    label = "not a `riprap::budget::Budget`",
    note = "use `RatioBudget`, `TokenThrottle`, `RetryQuota` or `Unlimited`, or implement `riprap::budget::Budget` (deposit, try_withdraw, refund)"
)]
pub trait Budget: Send + Sync {
    /// A logical request is making its first attempt.
    fn deposit(&self);

    /// A retry is scheduled after an attempt that failed as `after`: pay for it, or refuse
    /// with `None`. Budgets may price by the verdict: a timeout, a server's throttle and a
    /// local refusal ([`Class::Refused`]: the caller's own breaker or limiter, never waived as
    /// a throttle is) can cost differently.
    fn try_withdraw(&self, after: Class) -> Option<Withdrawal>;

    /// Hand back a withdrawal whose retry was never sent.
    fn refund(&self, withdrawal: Withdrawal);

    /// An attempt finished. Budgets that learn from outcomes ([`TokenThrottle`],
    /// [`RetryQuota`]) override this; the default ignores it.
    fn record(&self, attempt: Attempt) {
        let _ = attempt;
    }

    /// Whether a withdrawal after `after` would succeed right now, without making it.
    ///
    /// The retry layer asks before it sleeps, so a caller whose retry the budget would refuse
    /// is told at once instead of after a useless wait. The answer may be stale by the time
    /// the retry is due; [`try_withdraw`](Budget::try_withdraw) decides. Defaults to `true`.
    fn can_withdraw(&self, after: Class) -> bool {
        let _ = after;
        true
    }
}

impl<B: Budget + ?Sized> Budget for Arc<B> {
    fn deposit(&self) {
        (**self).deposit()
    }
    fn try_withdraw(&self, after: Class) -> Option<Withdrawal> {
        (**self).try_withdraw(after)
    }
    fn refund(&self, withdrawal: Withdrawal) {
        (**self).refund(withdrawal)
    }
    fn record(&self, attempt: Attempt) {
        (**self).record(attempt)
    }
    fn can_withdraw(&self, after: Class) -> bool {
        (**self).can_withdraw(after)
    }
}

/// What a retry cost, in the budget's own units; hand it back with [`Budget::refund`].
///
/// Withdrawals add up, so a request can tell its budget what all of its retries cost. A sum
/// also remembers what the last retry in it cost and when the budget booked its earliest
/// one: the [`RetryQuota`] gives back only the last retry's cost when a request succeeds, and
/// the [`RatioBudget`] cancels a refund in the slot the withdrawal came from, so a refund
/// never counts for longer than the withdrawal it hands back. Two withdrawals are equal when
/// their units are.
///
/// ```
/// use riprap::budget::Withdrawal;
/// assert_eq!((Withdrawal::new(5) + Withdrawal::new(10)).units(), 15);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Withdrawal {
    units: u64,
    /// What the most recent withdrawal in this sum cost.
    last: u64,
    /// The budget's own time stamp of the earliest withdrawal in this sum (the ratio budget's
    /// slot tick); `u64::MAX` when unknown.
    at: u64,
}

impl Withdrawal {
    /// Nothing withdrawn.
    pub const NONE: Withdrawal = Withdrawal {
        units: 0,
        last: 0,
        at: u64::MAX,
    };

    /// A withdrawal of `units`.
    pub const fn new(units: u64) -> Self {
        Withdrawal {
            units,
            last: units,
            at: u64::MAX,
        }
    }

    /// A withdrawal of `units` booked at the budget's own time stamp `at`.
    pub(crate) const fn stamped(units: u64, at: u64) -> Self {
        Withdrawal {
            units,
            last: units,
            at,
        }
    }

    /// How many units were withdrawn.
    pub const fn units(&self) -> u64 {
        self.units
    }

    /// What the most recent withdrawal added into this one cost (all of it for a single
    /// withdrawal).
    ///
    /// ```
    /// use riprap::budget::Withdrawal;
    /// assert_eq!((Withdrawal::new(10) + Withdrawal::new(5)).last_units(), 5);
    /// ```
    pub const fn last_units(&self) -> u64 {
        self.last
    }

    pub(crate) const fn stamp(&self) -> u64 {
        self.at
    }
}

impl Default for Withdrawal {
    fn default() -> Self {
        Withdrawal::NONE
    }
}

impl PartialEq for Withdrawal {
    fn eq(&self, other: &Self) -> bool {
        self.units == other.units
    }
}

impl Eq for Withdrawal {}

impl std::hash::Hash for Withdrawal {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.units.hash(state);
    }
}

impl std::ops::Add for Withdrawal {
    type Output = Withdrawal;
    fn add(self, rhs: Withdrawal) -> Withdrawal {
        Withdrawal {
            units: self.units.saturating_add(rhs.units),
            last: if rhs.units > 0 { rhs.last } else { self.last },
            at: self.at.min(rhs.at),
        }
    }
}

impl std::ops::AddAssign for Withdrawal {
    fn add_assign(&mut self, rhs: Withdrawal) {
        *self = *self + rhs;
    }
}

/// How an attempt ended, as [`Budget::record`] hears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The attempt succeeded; `spent` is what the logical request's retries withdrew.
    Succeeded {
        /// The sum of this logical request's withdrawals.
        spent: Withdrawal,
    },
    /// The attempt failed, with this verdict ([`Class::TimedOut`] for a timeout, however deep
    /// in a stack it happened; [`Class::Refused`] for the caller's own layer refusing).
    Failed(Class),
}

/// A budget that pays for every retry: attempts are bounded only by the retry layer's cap.
///
/// This is "no budget": for tests and for measuring what a budget saves.
///
/// ```
/// use riprap::budget::{Budget, Unlimited};
/// use riprap::classify::Class;
/// assert!(Unlimited.try_withdraw(Class::Transient).is_some());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl Budget for Unlimited {
    fn deposit(&self) {}
    fn try_withdraw(&self, _after: Class) -> Option<Withdrawal> {
        Some(Withdrawal::NONE)
    }
    fn refund(&self, _withdrawal: Withdrawal) {}
}
