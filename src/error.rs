//! The one error type every config builder returns.

use std::borrow::Cow;
use std::fmt;

/// A configuration was rejected when it was built.
///
/// Every builder in riprap validates its knobs in `build()` and returns this error, naming the
/// knob to change, so a bad config fails at start-up rather than misbehaving under load.
///
/// ```
/// use std::time::Duration;
/// use riprap::backoff::BackoffPolicy;
///
/// let err = BackoffPolicy::exponential(Duration::from_millis(100))
///     .factor(0.0)
///     .build()
///     .unwrap_err();
/// assert_eq!(err.knob(), "backoff.factor");
/// println!("{err}"); // invalid `backoff.factor`: must be finite and at least 1.0 (got 0)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    knob: &'static str,
    reason: Cow<'static, str>,
}

impl ConfigError {
    /// A rejection of `knob` (dotted path, e.g. `"retry.max_attempts"`) for `reason`.
    pub fn new(knob: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        ConfigError {
            knob,
            reason: reason.into(),
        }
    }

    /// The knob to change, as a dotted path such as `"backoff.max_delay"`.
    pub fn knob(&self) -> &'static str {
        self.knob
    }

    /// Why the value was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.knob, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Durations riprap does arithmetic on are kept within `u64` nanoseconds (about 584 years),
/// so sums and products saturate instead of overflowing.
pub(crate) fn check_duration(
    knob: &'static str,
    d: std::time::Duration,
) -> Result<u64, ConfigError> {
    u64::try_from(d.as_nanos())
        .map_err(|_| ConfigError::new(knob, format!("must be at most 584 years (got {d:?})")))
}
