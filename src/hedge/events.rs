//! What the hedging layer reports.

use std::time::Duration;

use crate::classify::Class;

/// Why a hedge was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeCause {
    /// The attempts in flight had not answered after the hedging delay.
    Slow {
        /// The delay that passed.
        after: Duration,
    },
    /// An attempt failed with a class worth another try.
    Failed {
        /// Its class.
        class: Class,
    },
}

/// Something the hedging layer did, reported through `tracing` (target `riprap::hedge`) and an
/// optional [`Listener`](crate::events::Listener).
///
/// | event | level | fields |
/// |---|---|---|
/// | `Hedged` | debug | `event="hedged"`, `attempt`, `cause` (`slow` with `after_ms`, or the failure's `class`) |
/// | `BudgetRefused` | debug | `event="budget_refused"`, `attempt` |
/// | `HedgeWon` | debug | `event="hedge_won"`, `attempt` |
///
/// A request whose first attempt answers in time reports nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HedgeEvent {
    /// Another attempt was sent.
    Hedged {
        /// Its number: 1 for the first hedge (the original request is attempt 0).
        attempt: u32,
        /// Why.
        cause: HedgeCause,
    },
    /// A hedge was due, but the retry budget refused to pay for it; no more are sent for
    /// this request.
    BudgetRefused {
        /// The number the hedge would have had.
        attempt: u32,
    },
    /// A hedge's answer won; the others were cancelled.
    HedgeWon {
        /// Its number.
        attempt: u32,
    },
}

impl HedgeEvent {
    /// A short snake_case name for logs and metrics: `"hedged"`, `"budget_refused"` or
    /// `"hedge_won"`.
    ///
    /// ```
    /// use riprap::hedge::HedgeEvent;
    /// assert_eq!(HedgeEvent::HedgeWon { attempt: 1 }.as_str(), "hedge_won");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            HedgeEvent::Hedged { .. } => "hedged",
            HedgeEvent::BudgetRefused { .. } => "budget_refused",
            HedgeEvent::HedgeWon { .. } => "hedge_won",
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn trace(event: &HedgeEvent) {
    const T: &str = "riprap::hedge";
    match *event {
        HedgeEvent::Hedged {
            attempt,
            cause: HedgeCause::Slow { after },
        } => {
            tracing::debug!(target: T, event = "hedged", attempt, cause = "slow", after_ms = ms(after), "hedged a slow attempt");
        }
        HedgeEvent::Hedged {
            attempt,
            cause: HedgeCause::Failed { class },
        } => {
            tracing::debug!(target: T, event = "hedged", attempt, cause = class.as_str(), "hedged a failed attempt");
        }
        HedgeEvent::BudgetRefused { attempt } => {
            tracing::debug!(target: T, event = "budget_refused", attempt, "hedge not sent: retry budget refused");
        }
        HedgeEvent::HedgeWon { attempt } => {
            tracing::debug!(target: T, event = "hedge_won", attempt, "a hedge answered first");
        }
    }
}
