//! What the breaker reports: state-transition events and a metrics snapshot.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Rejected;
use crate::events::{LayerEvent, Measure, Metric, ms};

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls pass and outcomes are counted.
    Closed,
    /// Calls fail fast until the open duration has passed.
    Open,
    /// A few probes pass; their results decide between closing and reopening.
    HalfOpen,
    /// Forced open by an operator: every call fails fast until reset.
    Isolated,
    /// Forced closed by an operator: every call passes and nothing is counted.
    ForcedClosed,
    /// Metrics only: every call passes and is counted, and the breaker reports
    /// [`BreakerEvent::WouldTrip`] instead of opening.
    Disabled,
}

impl BreakerState {
    const STATES: usize = 6;

    const fn ordinal(&self) -> usize {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
            BreakerState::Isolated => 3,
            BreakerState::ForcedClosed => 4,
            BreakerState::Disabled => 5,
        }
    }

    /// A short lowercase name for logs and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Isolated => "isolated",
            BreakerState::ForcedClosed => "forced_closed",
            BreakerState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a breaker did, reported through `tracing` (target `riprap::breaker`; the
/// [module guide](super#observability) lists levels, fields and metrics) and an optional
/// [`Listener`](crate::events::Listener).
///
/// Events are emitted after the transition is made, by the caller that made it, so two
/// threads' events may reach a listener out of order; `generation` (which every transition
/// increments) restores the order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BreakerEvent {
    /// The breaker changed state.
    Transition {
        /// The breaker's name, if it has one (keyed breakers are named after their key).
        name: Option<Arc<str>>,
        /// The state it left.
        from: BreakerState,
        /// The state it entered.
        to: BreakerState,
        /// How long it stays open, when `to` is [`BreakerState::Open`].
        open_for: Option<Duration>,
        /// The transition's sequence number (wraps at 2^29).
        generation: u32,
    },
    /// A disabled (metrics-only) breaker's policy would have opened it. The policy's window
    /// starts over, so this fires about as often as the breaker would trip.
    WouldTrip {
        /// The breaker's name, if it has one.
        name: Option<Arc<str>>,
    },
    /// A call was refused without reaching the inner service (counted in
    /// [`BreakerMetrics::rejected`]).
    Rejected {
        /// The breaker's name, if it has one.
        name: Option<Arc<str>>,
        /// Why.
        rejected: Rejected,
    },
}

impl BreakerEvent {
    /// A short snake_case name for logs and metrics: `"transition"`, `"would_trip"` or
    /// `"rejected"`.
    ///
    /// ```
    /// use riprap::breaker::{BreakerEvent, Rejected};
    ///
    /// let e = BreakerEvent::Rejected { name: None, rejected: Rejected::Isolated };
    /// assert_eq!(e.as_str(), "rejected");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerEvent::Transition { .. } => "transition",
            BreakerEvent::WouldTrip { .. } => "would_trip",
            BreakerEvent::Rejected { .. } => "rejected",
        }
    }

    /// The breaker's own name, if it has one (a keyed breaker is named after its key).
    ///
    /// ```
    /// use riprap::breaker::BreakerEvent;
    ///
    /// let e = BreakerEvent::WouldTrip { name: Some("orders-db".into()) };
    /// assert_eq!(e.name(), Some("orders-db"));
    /// ```
    pub fn name(&self) -> Option<&str> {
        match self {
            BreakerEvent::Transition { name, .. }
            | BreakerEvent::WouldTrip { name }
            | BreakerEvent::Rejected { name, .. } => name.as_deref(),
        }
    }
}

impl BreakerEvent {
    /// Emit the event through `tracing`. `name` is the breaker's own name, passed apart from
    /// the event so that a breaker without a listener does not clone it into one.
    pub(crate) fn trace(&self, name: Option<&str>) {
        const T: &str = "riprap::breaker";
        match self {
            BreakerEvent::Transition {
                from,
                to,
                open_for: Some(open_for),
                generation,
                ..
            } => {
                tracing::warn!(target: T, event = "transition", name, state.from = from.as_str(), state.to = to.as_str(), open_ms = ms(*open_for), generation, "circuit opened");
            }
            BreakerEvent::Transition {
                from,
                to,
                generation,
                ..
            } => {
                tracing::info!(target: T, event = "transition", name, state.from = from.as_str(), state.to = to.as_str(), generation, "circuit state changed");
            }
            BreakerEvent::WouldTrip { .. } => {
                tracing::warn!(target: T, event = "would_trip", name, "circuit would have opened (disabled: metrics only)");
            }
            BreakerEvent::Rejected { rejected, .. } => {
                // One per refused call: the transition that caused it was logged at warn.
                tracing::debug!(target: T, event = "rejected", name, reason = rejected.as_str(), "call rejected");
            }
        }
    }
}

static TRANSITIONS: Metric = Metric::counter(
    "riprap_breaker_transitions_total",
    "Circuit breaker state changes",
    &["from", "to"],
    BreakerState::STATES * BreakerState::STATES,
);
static REJECTIONS: Metric = Metric::counter(
    "riprap_breaker_rejections_total",
    "Calls a circuit breaker refused, by reason",
    &["reason"],
    3,
);
static WOULD_TRIP: Metric = Metric::counter(
    "riprap_breaker_would_trip_total",
    "Times a disabled (metrics-only) breaker would have opened",
    &[],
    1,
);
static OPEN: Metric = Metric::histogram(
    "riprap_breaker_open_seconds",
    "How long each opening of a circuit breaker lasts",
    &[],
    1,
);

impl LayerEvent for BreakerEvent {
    fn layer(&self) -> &'static str {
        "breaker"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    fn measure(&self, into: &dyn Measure) {
        match self {
            BreakerEvent::Transition {
                from, to, open_for, ..
            } => {
                let variant = from.ordinal() * BreakerState::STATES + to.ordinal();
                into.count(&TRANSITIONS, variant, &[from.as_str(), to.as_str()], 1);
                if let Some(d) = open_for {
                    into.record(&OPEN, 0, &[], *d);
                }
            }
            BreakerEvent::WouldTrip { .. } => into.count(&WOULD_TRIP, 0, &[], 1),
            BreakerEvent::Rejected { rejected, .. } => {
                let variant = match rejected {
                    Rejected::Open { .. } => 0,
                    Rejected::HalfOpen => 1,
                    Rejected::Isolated => 2,
                };
                into.count(&REJECTIONS, variant, &[rejected.as_str()], 1)
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A snapshot of a breaker, from [`CircuitBreaker::metrics`](super::CircuitBreaker::metrics).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The current state.
    pub state: BreakerState,
    /// Failures over counted calls in the policy's window, if it has a rate.
    pub failure_rate: Option<f64>,
    /// Slow calls over counted calls in the policy's window, if it tracks slow calls.
    pub slow_rate: Option<f64>,
    /// Counted calls in the policy's window, if it has a window.
    pub calls_in_window: Option<u64>,
    /// The current run of failures, if the policy counts them.
    pub consecutive_failures: Option<u32>,
    /// Calls refused since the breaker was built.
    pub rejected: u64,
    /// Half-open probes in flight.
    pub probes_in_flight: u32,
    /// Successful probes so far in this half-open period.
    pub probe_successes: u32,
    /// Time until the next probe, while open.
    pub retry_in: Option<Duration>,
}
