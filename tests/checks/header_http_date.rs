//! HTTP-dates: parsing never panics; a parsed date formats to an IMF-fixdate that parses back to
//! the same instant; and any instant round-trips at second precision.
//!
//! Input: the header value; its first 8 bytes also give an instant for the round trip.

use riprap::classify::headers::fuzzing::{format_http_date, parse_http_date};
use std::time::{Duration, UNIX_EPOCH};

/// 9999-12-31T23:59:59Z, the last instant a four-digit year can name.
const LAST: u64 = 253_402_300_799;

pub fn run(data: &[u8]) {
    // A leap second on 9999-12-31 is the first second of year 10000, past four digits.
    let in_range = |t: std::time::SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(true, |d| d.as_secs() <= LAST)
    };
    if let Some(t) = parse_http_date(data).filter(|t| in_range(*t)) {
        let formatted = format_http_date(t);
        assert_eq!(formatted.len(), 29, "{formatted}");
        assert_eq!(
            parse_http_date(formatted.as_bytes()),
            Some(t),
            "{formatted}"
        );
    }

    if let Some((secs, _)) = data.split_first_chunk::<8>() {
        let secs = u64::from_le_bytes(*secs) % (LAST + 1);
        let nanos = data.len() as u32 * 7_919 % 1_000_000_000;
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        let back = parse_http_date(format_http_date(t).as_bytes());
        assert_eq!(back, Some(UNIX_EPOCH + Duration::from_secs(secs)));
    }
}
