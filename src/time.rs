//! Time arithmetic shared by the layers.

use std::time::Duration;

/// A duration in whole nanoseconds, saturating at `u64::MAX` (about 584 years).
///
/// Clock readings, deadlines and intervals are kept as `u64` nanoseconds so that one atomic
/// holds them; a duration too long to represent means "practically never", so it saturates
/// instead of wrapping.
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
