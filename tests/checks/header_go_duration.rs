//! Go-style durations: parsing never panics, and every parsed or constructed duration survives
//! format → parse unchanged.
//!
//! Input: the duration text; its first 12 bytes also give a `Duration` for the round trip.

use riprap::classify::headers::fuzzing::{format_go_duration, parse_go_duration};
use std::time::Duration;

pub fn run(data: &[u8]) {
    if let Some(d) = parse_go_duration(data) {
        assert_eq!(parse_go_duration(format_go_duration(d).as_bytes()), Some(d));
    }

    if let Some((secs, rest)) = data.split_first_chunk::<8>() {
        let nanos = rest
            .first_chunk::<4>()
            .map_or(0, |n| u32::from_le_bytes(*n) % 1_000_000_000);
        // Exercise small values as often as huge ones.
        let secs = match secs[0] % 3 {
            0 => 0,
            1 => u64::from_le_bytes(*secs) % 100_000,
            _ => u64::from_le_bytes(*secs),
        };
        let d = Duration::new(secs, nanos);
        let text = format_go_duration(d);
        assert_eq!(parse_go_duration(text.as_bytes()), Some(d), "{text}");
    }
}
