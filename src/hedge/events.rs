//! What the hedging layer reports.

use std::any::Any;
use std::time::Duration;

use crate::classify::Class;
use crate::events::{LayerEvent, Measure, Metric, ms};

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

static HEDGES: Metric = Metric::counter(
    "riprap_hedge_hedges_total",
    "Hedges sent, by cause (slow, or the failed attempt's class)",
    &["cause"],
    1 + Class::CLASSES,
);
static REFUSED: Metric = Metric::counter(
    "riprap_hedge_budget_refused_total",
    "Hedges the retry budget refused to pay for",
    &[],
    1,
);
static WON: Metric = Metric::counter(
    "riprap_hedge_won_total",
    "Requests a hedge answered first",
    &[],
    1,
);

impl LayerEvent for HedgeEvent {
    fn layer(&self) -> &'static str {
        "hedge"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    fn measure(&self, into: &dyn Measure) {
        match self {
            HedgeEvent::Hedged {
                cause: HedgeCause::Slow { .. },
                ..
            } => into.count(&HEDGES, 0, &["slow"], 1),
            HedgeEvent::Hedged {
                cause: HedgeCause::Failed { class },
                ..
            } => into.count(&HEDGES, 1 + class.ordinal(), &[class.as_str()], 1),
            HedgeEvent::BudgetRefused { .. } => into.count(&REFUSED, 0, &[], 1),
            HedgeEvent::HedgeWon { .. } => into.count(&WON, 0, &[], 1),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
