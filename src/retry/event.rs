//! What the retry layer reports.

use std::time::Duration;

use super::GiveUp;
use crate::classify::Class;

/// One thing the retry layer did, as a [`Listener`](crate::events::Listener) hears it. Every
/// event is also emitted through `tracing` at debug level, inside a `retry` span per logical
/// request.
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
