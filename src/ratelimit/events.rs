//! What the rate limiter reports: its events, their `tracing` and their metrics.

use std::any::Any;
use std::time::Duration;

use super::LimitedBy;
use crate::events::{LayerEvent, Measure, Metric, ms};

/// One thing a [`RateLimiter`](super::RateLimiter) did, for a
/// [`Listener`](crate::events::Listener) and `tracing` (target `riprap::ratelimit`; the
/// [module guide](super#observing) lists levels, fields and metrics).
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

impl RateLimitEvent {
    /// Emit the event through `tracing`.
    pub(crate) fn trace(&self) {
        const T: &str = "riprap::ratelimit";
        match *self {
            RateLimitEvent::GateClosed { reopens_in } => {
                tracing::info!(target: T, event = "gate_closed", reopen_ms = ms(reopens_in), "gate closed by the server");
            }
            RateLimitEvent::GateReopened => {
                tracing::info!(target: T, event = "gate_reopened", "gate reopened");
            }
            RateLimitEvent::Pacing { interval, lasts } => {
                tracing::debug!(target: T, event = "pacing", interval_ms = ms(interval), lasts_ms = ms(lasts), "pacing to the server's remaining quota");
            }
            RateLimitEvent::Waited { waited } => {
                tracing::debug!(target: T, event = "waited", wait_ms = ms(waited), "waited for capacity");
            }
            RateLimitEvent::Rejected { by } => {
                let by = by.map_or("cost", |b| b.as_str());
                tracing::warn!(target: T, event = "rejected", by, "request refused");
            }
            RateLimitEvent::RateDecreased { rate } => {
                tracing::info!(target: T, event = "rate_decreased", rate, "adaptive rate cut");
            }
            RateLimitEvent::RateRecovered { rate } => {
                tracing::info!(target: T, event = "rate_recovered", rate, "adaptive rate recovered");
            }
        }
    }
}

static WAITS: Metric = Metric::counter(
    "riprap_ratelimit_waits_total",
    "Requests that waited for capacity, then passed",
    &[],
    1,
);
static WAIT: Metric = Metric::histogram(
    "riprap_ratelimit_wait_seconds",
    "How long requests waited for capacity",
    &[],
    1,
);
static REJECTIONS: Metric = Metric::counter(
    "riprap_ratelimit_rejections_total",
    "Requests the rate limiter refused, by what held them back",
    &["by"],
    4,
);
static GATE_CLOSED: Metric = Metric::counter(
    "riprap_ratelimit_gate_closed_total",
    "Server signals that closed or extended the shared gate",
    &[],
    1,
);
static GATE_PAUSE: Metric = Metric::histogram(
    "riprap_ratelimit_gate_pause_seconds",
    "How long each closing keeps the gate shut",
    &[],
    1,
);
static GATE_REOPENED: Metric = Metric::counter(
    "riprap_ratelimit_gate_reopened_total",
    "Reopenings of the shared gate",
    &[],
    1,
);
static PACING: Metric = Metric::counter(
    "riprap_ratelimit_pacing_total",
    "Pacing intervals set from the server's remaining quota",
    &[],
    1,
);
static RATE_CHANGES: Metric = Metric::counter(
    "riprap_ratelimit_rate_changes_total",
    "Adaptive rate changes, by direction",
    &["direction"],
    2,
);

impl LayerEvent for RateLimitEvent {
    fn layer(&self) -> &'static str {
        "ratelimit"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    fn measure(&self, into: &dyn Measure) {
        match *self {
            RateLimitEvent::Waited { waited } => {
                into.count(&WAITS, 0, &[], 1);
                into.record(&WAIT, 0, &[], waited);
            }
            RateLimitEvent::Rejected { by } => {
                let (variant, by) = match by {
                    Some(LimitedBy::Quota) => (0, "quota"),
                    Some(LimitedBy::Server) => (1, "server"),
                    Some(LimitedBy::Adaptive) => (2, "adaptive"),
                    None => (3, "cost"),
                };
                into.count(&REJECTIONS, variant, &[by], 1);
            }
            RateLimitEvent::GateClosed { reopens_in } => {
                into.count(&GATE_CLOSED, 0, &[], 1);
                into.record(&GATE_PAUSE, 0, &[], reopens_in);
            }
            RateLimitEvent::GateReopened => into.count(&GATE_REOPENED, 0, &[], 1),
            RateLimitEvent::Pacing { .. } => into.count(&PACING, 0, &[], 1),
            RateLimitEvent::RateDecreased { .. } => into.count(&RATE_CHANGES, 0, &["decreased"], 1),
            RateLimitEvent::RateRecovered { .. } => into.count(&RATE_CHANGES, 1, &["recovered"], 1),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
