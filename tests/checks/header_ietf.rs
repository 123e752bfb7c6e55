//! The IETF draft fields (`RateLimit`, `RateLimit-Policy`, older `RateLimit-*`): parsing never
//! panics and every reset stays within the ceiling.
//!
//! Input: 2 bytes of ceiling (seconds, little-endian), then the field value.

use riprap::classify::headers::fuzzing::{
    parse_count, parse_delta_seconds, parse_ratelimit, parse_ratelimit_policy,
};
use std::time::Duration;

pub fn run(data: &[u8]) {
    let (ceiling, value) = match data.split_first_chunk::<2>() {
        Some((c, rest)) => (Duration::from_secs(u64::from(u16::from_le_bytes(*c))), rest),
        None => (Duration::from_secs(300), data),
    };

    if let Some(q) = parse_ratelimit(value, ceiling) {
        assert!(q.remaining.is_some(), "an item without `r` is never chosen");
        assert!(q.reset_after.is_none_or(|d| d <= ceiling));
    }
    let _ = parse_ratelimit_policy(value);
    let _ = parse_count(value);
    if let Some(d) = parse_delta_seconds(value, ceiling) {
        assert!(d <= ceiling);
    }
}
