//! What a bulkhead reports: events, their `tracing`, and a metrics snapshot.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use super::Rejected;
use crate::events::{LayerEvent, Measure, Metric, ms};

/// Something a bulkhead did, reported through `tracing` (target `riprap::bulkhead`) and an
/// optional [`Listener`](crate::events::Listener) set with
/// [`BulkheadBuilder::listener`](super::BulkheadBuilder::listener).
///
/// | event | level | fields |
/// |---|---|---|
/// | `Rejected` | debug | `event="rejected"`, `name`, `reason`, `waited_ms` |
/// | `Waited` | debug | `event="waited"`, `name`, `waited_ms` |
/// | `LimitChanged` after a throttle or a timeout | info | `event="limit_changed"`, `name`, `from`, `to`, `dropped=true` |
/// | `LimitChanged` from latency | debug | the same, `dropped=false` |
/// | `SheddingStarted` | warn | `event="shedding_started"`, `name` |
/// | `SheddingStopped` | info | `event="shedding_stopped"`, `name` |
///
/// Refusals are per call and follow from a state already reported (a full bulkhead, a
/// standing queue), so they stay at debug: an overload logs one warning, not one per call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// A call was turned away.
    Rejected {
        /// The bulkhead's name, if it has one (a keyed bulkhead is named after its key).
        name: Option<Arc<str>>,
        /// Why.
        rejected: Rejected,
    },
    /// A call waited in the queue, then got its permit.
    Waited {
        /// The bulkhead's name, if it has one.
        name: Option<Arc<str>>,
        /// How long it waited.
        waited: Duration,
    },
    /// The adaptive limit moved.
    LimitChanged {
        /// The bulkhead's name, if it has one.
        name: Option<Arc<str>>,
        /// The limit before.
        from: u32,
        /// The limit now.
        to: u32,
        /// Whether a throttle or a timeout moved it (otherwise, measured latency).
        dropped: bool,
    },
    /// The queue became standing (callers kept waiting past the shedding target for a whole
    /// interval): callers that waited longer than the interval are shed.
    SheddingStarted {
        /// The bulkhead's name, if it has one.
        name: Option<Arc<str>>,
    },
    /// The queue drained below the shedding target, or emptied.
    SheddingStopped {
        /// The bulkhead's name, if it has one.
        name: Option<Arc<str>>,
    },
}

impl BulkheadEvent {
    /// A short snake_case name for logs and metrics: `"rejected"`, `"waited"`,
    /// `"limit_changed"`, `"shedding_started"` or `"shedding_stopped"`.
    ///
    /// ```
    /// use riprap::bulkhead::{BulkheadEvent, Rejected};
    ///
    /// let e = BulkheadEvent::Rejected { name: None, rejected: Rejected::Full };
    /// assert_eq!(e.as_str(), "rejected");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            BulkheadEvent::Rejected { .. } => "rejected",
            BulkheadEvent::Waited { .. } => "waited",
            BulkheadEvent::LimitChanged { .. } => "limit_changed",
            BulkheadEvent::SheddingStarted { .. } => "shedding_started",
            BulkheadEvent::SheddingStopped { .. } => "shedding_stopped",
        }
    }

    /// The bulkhead's own name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            BulkheadEvent::Rejected { name, .. }
            | BulkheadEvent::Waited { name, .. }
            | BulkheadEvent::LimitChanged { name, .. }
            | BulkheadEvent::SheddingStarted { name }
            | BulkheadEvent::SheddingStopped { name } => name.as_deref(),
        }
    }
}

/// The `tracing` scheme of the events guide: target `riprap::bulkhead`, an `event` field
/// named as [`BulkheadEvent::as_str`], durations in whole `_ms` fields.
pub(crate) fn trace(event: &BulkheadEvent) {
    const T: &str = "riprap::bulkhead";
    let name = event.name().unwrap_or("");
    match *event {
        BulkheadEvent::Rejected { rejected, .. } => {
            tracing::debug!(target: T, event = "rejected", name, reason = rejected.as_str(), waited_ms = ms(rejected.waited()), "call rejected");
        }
        BulkheadEvent::Waited { waited, .. } => {
            tracing::debug!(target: T, event = "waited", name, waited_ms = ms(waited), "waited for a permit");
        }
        BulkheadEvent::LimitChanged {
            from,
            to,
            dropped: true,
            ..
        } => {
            tracing::info!(target: T, event = "limit_changed", name, from, to, dropped = true, "concurrency limit cut after a throttle or timeout");
        }
        BulkheadEvent::LimitChanged { from, to, .. } => {
            tracing::debug!(target: T, event = "limit_changed", name, from, to, dropped = false, "concurrency limit moved");
        }
        BulkheadEvent::SheddingStarted { .. } => {
            tracing::warn!(target: T, event = "shedding_started", name, "queue standing: shedding callers by age");
        }
        BulkheadEvent::SheddingStopped { .. } => {
            tracing::info!(target: T, event = "shedding_stopped", name, "queue drained: shedding stopped");
        }
    }
}

static REJECTIONS: Metric = Metric::counter(
    "riprap_bulkhead_rejections_total",
    "Calls a bulkhead turned away, by reason",
    &["reason"],
    4,
);
static WAITED: Metric = Metric::histogram(
    "riprap_bulkhead_wait_seconds",
    "How long calls waited in a bulkhead's queue before getting a permit",
    &[],
    1,
);
static LIMIT_CHANGES: Metric = Metric::counter(
    "riprap_bulkhead_limit_changes_total",
    "Adaptive concurrency limit changes, by cause",
    &["cause"],
    2,
);
static SHEDDING: Metric = Metric::counter(
    "riprap_bulkhead_shedding_total",
    "Times a bulkhead's queue became standing and started shedding by age",
    &[],
    1,
);

impl LayerEvent for BulkheadEvent {
    fn layer(&self) -> &'static str {
        "bulkhead"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    fn measure(&self, into: &dyn Measure) {
        match self {
            BulkheadEvent::Rejected { rejected, .. } => {
                let variant = match rejected {
                    Rejected::Full => 0,
                    Rejected::QueueTimeout { .. } => 1,
                    Rejected::Shed { .. } => 2,
                    Rejected::Displaced { .. } => 3,
                };
                into.count(&REJECTIONS, variant, &[rejected.as_str()], 1);
            }
            BulkheadEvent::Waited { waited, .. } => into.record(&WAITED, 0, &[], *waited),
            BulkheadEvent::LimitChanged { dropped, .. } => {
                let (variant, cause) = if *dropped {
                    (0, "congestion")
                } else {
                    (1, "latency")
                };
                into.count(&LIMIT_CHANGES, variant, &[cause], 1);
            }
            BulkheadEvent::SheddingStarted { .. } => into.count(&SHEDDING, 0, &[], 1),
            BulkheadEvent::SheddingStopped { .. } => {}
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A snapshot of a bulkhead, from [`Bulkhead::metrics`](super::Bulkhead::metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BulkheadMetrics {
    /// The current concurrency limit.
    pub limit: u32,
    /// Permits held.
    pub in_flight: u32,
    /// Callers waiting, per priority class (the most urgent first).
    pub waiting: Vec<usize>,
    /// Calls turned away since the bulkhead was built.
    pub rejected: u64,
    /// Whether the queue is standing (shedding by age).
    pub shedding: bool,
}
