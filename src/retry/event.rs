//! What the retry layer reports: its events, their `tracing` and their metrics.

use std::any::Any;
use std::time::Duration;

use super::GiveUp;
use crate::classify::Class;
use crate::events::{LayerEvent, Measure, Metric, ms};

/// One thing the retry layer did, as a [`Listener`](crate::events::Listener) hears it. Every
/// event is also emitted through `tracing` (target `riprap::retry`), inside a `riprap.retry`
/// span per logical request; the [module guide](super#observing) lists levels, fields and
/// metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryEvent {
    /// An attempt finished.
    Attempt {
        /// Which attempt, from 1.
        attempt: u32,
        /// The classifier's verdict on it.
        class: Class,
        /// The wait before the next attempt, if one follows.
        delay: Option<Duration>,
    },
    /// The layer stopped without a success.
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// Why it stopped.
        reason: GiveUp,
    },
}

impl RetryEvent {
    /// A short snake_case name for logs and metrics: `"attempt"` or `"gave_up"`.
    ///
    /// ```
    /// use riprap::retry::{GiveUp, RetryEvent};
    ///
    /// let e = RetryEvent::GaveUp { attempts: 2, reason: GiveUp::Deadline };
    /// assert_eq!(e.as_str(), "gave_up");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            RetryEvent::Attempt { .. } => "attempt",
            RetryEvent::GaveUp { .. } => "gave_up",
        }
    }

    /// Emit the event through `tracing`. Each macro checks its level before evaluating a
    /// field, so a disabled event formats nothing.
    pub(crate) fn trace(&self) {
        const T: &str = "riprap::retry";
        match *self {
            RetryEvent::Attempt {
                attempt,
                class: Class::Success,
                ..
            } => {
                // A first-try success is the quiet path; a success after retries is a recovery.
                if attempt == 1 {
                    tracing::trace!(target: T, event = "attempt", attempt, class = "success", "attempt succeeded");
                } else {
                    tracing::debug!(target: T, event = "attempt", attempt, class = "success", "attempt succeeded");
                }
            }
            RetryEvent::Attempt {
                attempt,
                class,
                delay: Some(delay),
            } => {
                tracing::debug!(target: T, event = "attempt", attempt, class = class.as_str(), delay_ms = ms(delay), "attempt failed, retrying");
            }
            RetryEvent::Attempt {
                attempt,
                class,
                delay: None,
            } => {
                tracing::debug!(target: T, event = "attempt", attempt, class = class.as_str(), "attempt failed");
            }
            RetryEvent::GaveUp {
                attempts,
                reason: GiveUp::Permanent,
            } => {
                // Nothing was retried: the caller has the error and reports it.
                tracing::debug!(target: T, event = "gave_up", attempts, reason = "permanent", "gave up");
            }
            RetryEvent::GaveUp { attempts, reason } => {
                tracing::warn!(target: T, event = "gave_up", attempts, reason = reason.as_str(), "gave up");
            }
        }
    }
}

static ATTEMPTS: Metric = Metric::counter(
    "riprap_retry_attempts_total",
    "Attempts made by the retry layer, by the classifier's verdict",
    &["class"],
    Class::CLASSES,
);
static GIVEUPS: Metric = Metric::counter(
    "riprap_retry_giveups_total",
    "Logical requests the retry layer stopped without a success, by reason",
    &["reason"],
    GiveUp::REASONS,
);
static DELAY: Metric = Metric::histogram(
    "riprap_retry_delay_seconds",
    "Waits scheduled before a retry",
    &[],
    1,
);

impl LayerEvent for RetryEvent {
    fn layer(&self) -> &'static str {
        "retry"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    fn measure(&self, into: &dyn Measure) {
        match *self {
            RetryEvent::Attempt { class, delay, .. } => {
                into.count(&ATTEMPTS, class.ordinal(), &[class.as_str()], 1);
                if let Some(delay) = delay {
                    into.record(&DELAY, 0, &[], delay);
                }
            }
            RetryEvent::GaveUp { reason, .. } => {
                into.count(&GIVEUPS, reason.ordinal(), &[reason.as_str()], 1)
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
