//! What the rate limiter reports.

use std::time::Duration;

use super::LimitedBy;

/// One thing a [`RateLimiter`](super::RateLimiter) did, for a
/// [`Listener`](crate::events::Listener) and `tracing` (target `riprap::ratelimit`; the
/// [events guide](crate::events) lists levels and fields).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RateLimitEvent {
    /// The server's signal closed (or extended) the shared gate: every clone waits.
    GateClosed {
        /// How long until it reopens.
        reopens_in: Duration,
    },
    /// The first caller after the reopening instant found the gate open again.
    GateReopened,
    /// The server reported quota left: requests are spaced so it lasts until its reset.
    Pacing {
        /// The spacing per unit (per request, or per cost unit for the cost quota).
        interval: Duration,
        /// How long the pacing lasts (until the server's reset).
        lasts: Duration,
    },
    /// A caller waited for capacity and was let through.
    Waited {
        /// How long it waited.
        waited: Duration,
    },
    /// A caller was refused: the wait would exceed the maximum, or the cost can never pass.
    Rejected {
        /// What held it back (`None` for a cost above the burst).
        by: Option<LimitedBy>,
    },
    /// The adaptive rate was cut after a throttle.
    RateDecreased {
        /// The new rate, in requests per second.
        rate: f64,
    },
    /// The adaptive rate recovered to its maximum.
    RateRecovered {
        /// The rate, in requests per second.
        rate: f64,
    },
}

impl RateLimitEvent {
    /// A short snake_case name for logs and metrics, e.g. `"gate_closed"`.
    ///
    /// ```
    /// use riprap::ratelimit::RateLimitEvent;
    ///
    /// assert_eq!(RateLimitEvent::GateReopened.as_str(), "gate_reopened");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            RateLimitEvent::GateClosed { .. } => "gate_closed",
            RateLimitEvent::GateReopened => "gate_reopened",
            RateLimitEvent::Pacing { .. } => "pacing",
            RateLimitEvent::Waited { .. } => "waited",
            RateLimitEvent::Rejected { .. } => "rejected",
            RateLimitEvent::RateDecreased { .. } => "rate_decreased",
            RateLimitEvent::RateRecovered { .. } => "rate_recovered",
        }
    }
}
