//! `Retry-After` and `retry-after-ms`: never panic, never exceed the ceiling, and agree with
//! `parse_http_date` on dates.
//!
//! Input: 4 bytes of ceiling (seconds, little-endian), then the header value. `now` is fixed so
//! the check is deterministic.

use riprap::classify::headers::fuzzing::{
    parse_http_date, parse_retry_after, parse_retry_after_ms,
};
use std::time::{Duration, UNIX_EPOCH};

pub fn run(data: &[u8]) {
    let (ceiling, value) = match data.split_first_chunk::<4>() {
        Some((c, rest)) => (Duration::from_secs(u64::from(u32::from_le_bytes(*c))), rest),
        None => (Duration::from_secs(300), data),
    };
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);

    let delay = parse_retry_after(value, now, ceiling);
    if let Some(d) = delay {
        assert!(d <= ceiling, "{d:?} > ceiling {ceiling:?}");
    }
    let trimmed = value.trim_ascii();
    if !trimmed.is_empty() && trimmed.iter().all(u8::is_ascii_digit) {
        assert!(delay.is_some(), "delay-seconds must always parse");
    }
    if let Some(at) = parse_http_date(value) {
        let expected = at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(ceiling);
        assert_eq!(delay, Some(expected));
    }

    if let Some(d) = parse_retry_after_ms(value, ceiling) {
        assert!(d <= ceiling, "{d:?} > ceiling {ceiling:?}");
    }
}
