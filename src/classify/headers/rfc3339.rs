//! RFC 3339 timestamps, as Anthropic sends its rate-limit reset times.

use std::time::SystemTime;

use super::civil;
use super::http_date::Cursor;
use super::malformed;

/// Parse an RFC 3339 timestamp (`2024-06-01T12:00:00Z`, `2024-06-01T12:00:00.250+02:00`).
///
/// Accepted: a `T`, `t` or space between date and time; fractional seconds of any length (kept
/// to the nanosecond, further digits truncated); `Z`, `z` or a `±HH:MM` offset. Seconds may be
/// `60` (a leap second, read as the next minute's first second). Surrounding ASCII whitespace
/// is ignored. Anything else is `None`, with a `tracing` debug event.
// Only the tests and the fuzz targets call it on its own.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub fn parse_rfc3339(value: &[u8]) -> Option<SystemTime> {
    parse(value.trim_ascii()).or_else(|| malformed("rfc3339", value))
}

pub(super) fn parse(s: &[u8]) -> Option<SystemTime> {
    let mut c = Cursor(s);
    let year = i128::from(c.number(4)?);
    c.literal(b"-")?;
    let month = c.number(2)?;
    c.literal(b"-")?;
    let day = c.number(2)?;
    match c.0.first()? {
        b'T' | b't' | b' ' => c.0 = &c.0[1..],
        _ => return None,
    }
    let (hour, minute, second) = c.time()?;

    let mut nanos = 0u32;
    if c.literal(b".").is_some() {
        let digits = c.0.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, d) in c.0[..digits].iter().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
            }
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        c.0 = &c.0[digits..];
    }

    let offset_secs: i128 = match c.0.first()? {
        b'Z' | b'z' => {
            c.0 = &c.0[1..];
            0
        }
        sign @ (b'+' | b'-') => {
            let negative = *sign == b'-';
            c.0 = &c.0[1..];
            let h = c.number(2)?;
            c.literal(b":")?;
            let m = c.number(2)?;
            if h > 23 || m > 59 {
                return None;
            }
            let offset = i128::from(h * 3_600 + m * 60);
            if negative { -offset } else { offset }
        }
        _ => return None,
    };
    if !c.0.is_empty() || !(1..=12).contains(&month) {
        return None;
    }
    if day == 0 || day > civil::days_in_month(year, month) {
        return None;
    }
    let local = civil::unix_seconds(year, month, day, hour, minute, second);
    civil::system_time(local - offset_secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rfc3339_examples() {
        use std::time::{Duration, UNIX_EPOCH};

        let noon = UNIX_EPOCH + Duration::from_secs(1_717_243_200);
        assert_eq!(parse_rfc3339(b"2024-06-01T12:00:00Z"), Some(noon));
        assert_eq!(parse_rfc3339(b"2024-06-01T14:00:00+02:00"), Some(noon));
        assert_eq!(
            parse_rfc3339(b"2024-06-01T12:00:00.5Z"),
            Some(noon + Duration::from_millis(500)),
        );
        assert_eq!(parse_rfc3339(b"2024-06-01 12:00"), None);
    }
}
