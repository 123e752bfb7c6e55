//! What the fallback layer reports.

use std::any::Any;
use std::sync::Arc;

use crate::classify::Class;
use crate::events::{LayerEvent, Measure, Metric};

/// Something the fallback layer did, reported through `tracing` (target `riprap::fallback`)
/// and an optional [`Listener`](crate::events::Listener).
///
/// | event | level | fields |
/// |---|---|---|
/// | `FellBack` | debug | `event="fell_back"`, `name`, `class` (the primary's) |
/// | `NotReplayable` | debug | `event="not_replayable"`, `name`, `class` |
/// | `FallbackFailed` | warn | `event="fallback_failed"`, `name` |
///
/// A fallback that fails too is the one warning: the request has run out of providers.
/// Falling back is routine while a primary is down (its breaker reports that once).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FallbackEvent {
    /// The primary failed as `class`, and the request went to the fallback.
    FellBack {
        /// The fallback's name, if it has one.
        name: Option<Arc<str>>,
        /// The primary's failure.
        class: Class,
    },
    /// The primary failed as `class`, but the copy policy declined to copy the request, so
    /// the fallback was not called.
    NotReplayable {
        /// The fallback's name, if it has one.
        name: Option<Arc<str>>,
        /// The primary's failure.
        class: Class,
    },
    /// The fallback returned an error as well (its error is the request's).
    FallbackFailed {
        /// The fallback's name, if it has one.
        name: Option<Arc<str>>,
    },
}

impl FallbackEvent {
    /// A short snake_case name for logs and metrics: `"fell_back"`, `"not_replayable"` or
    /// `"fallback_failed"`.
    ///
    /// ```
    /// use riprap::classify::Class;
    /// use riprap::fallback::FallbackEvent;
    /// let e = FallbackEvent::FellBack { name: None, class: Class::Transient };
    /// assert_eq!(e.as_str(), "fell_back");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            FallbackEvent::FellBack { .. } => "fell_back",
            FallbackEvent::NotReplayable { .. } => "not_replayable",
            FallbackEvent::FallbackFailed { .. } => "fallback_failed",
        }
    }

    /// The fallback's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            FallbackEvent::FellBack { name, .. }
            | FallbackEvent::NotReplayable { name, .. }
            | FallbackEvent::FallbackFailed { name } => name.as_deref(),
        }
    }
}

pub(crate) fn trace(event: &FallbackEvent) {
    const T: &str = "riprap::fallback";
    let name = event.name().unwrap_or("");
    match event {
        FallbackEvent::FellBack { class, .. } => {
            tracing::debug!(target: T, event = "fell_back", name, class = class.as_str(), "primary failed, calling the fallback");
        }
        FallbackEvent::NotReplayable { class, .. } => {
            tracing::debug!(target: T, event = "not_replayable", name, class = class.as_str(), "primary failed, request cannot be copied for the fallback");
        }
        FallbackEvent::FallbackFailed { .. } => {
            tracing::warn!(target: T, event = "fallback_failed", name, "fallback failed too");
        }
    }
}

static FELL_BACK: Metric = Metric::counter(
    "riprap_fallback_fell_back_total",
    "Requests sent to the fallback, by the primary's failure class",
    &["class"],
    Class::CLASSES,
);
static NOT_REPLAYABLE: Metric = Metric::counter(
    "riprap_fallback_not_replayable_total",
    "Requests the fallback could not take because they could not be copied",
    &["class"],
    Class::CLASSES,
);
static FAILED: Metric = Metric::counter(
    "riprap_fallback_failed_total",
    "Requests the fallback failed too",
    &[],
    1,
);

impl LayerEvent for FallbackEvent {
    fn layer(&self) -> &'static str {
        "fallback"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    fn measure(&self, into: &dyn Measure) {
        match self {
            FallbackEvent::FellBack { class, .. } => {
                into.count(&FELL_BACK, class.ordinal(), &[class.as_str()], 1)
            }
            FallbackEvent::NotReplayable { class, .. } => {
                into.count(&NOT_REPLAYABLE, class.ordinal(), &[class.as_str()], 1)
            }
            FallbackEvent::FallbackFailed { .. } => into.count(&FAILED, 0, &[], 1),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
