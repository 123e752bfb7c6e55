//! RFC 3339 timestamps: parsing never panics, and a parsed instant lies within the years a
//! four-digit year and a day's offset can reach, and agrees with the HTTP-date of the same
//! instant.
//!
//! Input: the timestamp text.

use riprap::classify::headers::fuzzing::{format_http_date, parse_http_date, parse_rfc3339};
use std::time::{Duration, UNIX_EPOCH};

/// 0000-01-01T00:00:00Z minus a day, and 10000-01-01T00:00:00Z plus a day.
const FIRST: i128 = -62_167_219_200 - 86_400;
const LAST: i128 = 253_402_300_800 + 86_400;

pub fn run(data: &[u8]) {
    let Some(t) = parse_rfc3339(data) else { return };
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()) - i128::from(e.duration().subsec_nanos() > 0),
    };
    assert!((FIRST..=LAST).contains(&secs), "{secs}");

    // Within four-digit years, the same instant as an HTTP-date parses back to the same second.
    if (0..253_402_300_800).contains(&secs) {
        let whole = UNIX_EPOCH + Duration::from_secs(secs as u64);
        assert_eq!(parse_http_date(format_http_date(t).as_bytes()), Some(whole));
    }
}
