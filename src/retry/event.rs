//! What the retry layer reports.

use std::time::Duration;

use super::GiveUp;
use crate::classify::Class;

/// One thing the retry layer did, as a [`Listener`](crate::events::Listener) hears it. Every
/// event is also emitted through `tracing` (target `riprap::retry`), inside a `riprap.retry`
/// span per logical request; the [events guide](crate::events) lists levels and fields.
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
}
