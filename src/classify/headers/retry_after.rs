//! `Retry-After` (RFC 9110 §10.2.3) and the common `retry-after-ms` extension.

use std::time::{Duration, SystemTime};

use super::signal::Now;
use super::{duration_from_nanos, http_date, malformed, saturating_u64};

/// Parse a `Retry-After` value: delay-seconds (`120`) or an HTTP-date
/// (`Fri, 31 Dec 1999 23:59:59 GMT`, in any of the forms [`parse_http_date`] accepts), as a
/// delay from `now`, capped at `ceiling`.
///
/// A date in the past is a delay of zero. A delay beyond `ceiling` — including delay-seconds
/// too large for a `u64` — is `ceiling`, so a hostile or broken server cannot park a client
/// for years. Negative, fractional or otherwise malformed values are `None`, with a `tracing`
/// debug event.
///
/// [`parse_http_date`]: super::http_date::parse_http_date
// Only the tests and the fuzz targets call it on its own.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub fn parse_retry_after(value: &[u8], now: SystemTime, ceiling: Duration) -> Option<Duration> {
    retry_after(value, &Now::At(now), ceiling)
}

/// [`parse_retry_after`], reading the clock only if the value is a date.
pub(crate) fn retry_after(value: &[u8], now: &Now, ceiling: Duration) -> Option<Duration> {
    let s = value.trim_ascii();
    if s.first().is_some_and(u8::is_ascii_digit) {
        return match saturating_u64(s) {
            Some(secs) => Some(Duration::from_secs(secs).min(ceiling)),
            None => malformed("retry-after", value),
        };
    }
    match http_date::parse(s) {
        Some(at) => Some(until(at, now.get(), ceiling)),
        None => malformed("retry-after", value),
    }
}

/// The time from `now` until `at`: zero if `at` has passed, at most `ceiling`.
pub(crate) fn until(at: SystemTime, now: SystemTime, ceiling: Duration) -> Duration {
    at.duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(ceiling)
}

/// Parse a `retry-after-ms` value (milliseconds, as OpenAI and Azure send it), capped at
/// `ceiling`.
///
/// The value is a non-negative decimal number and may carry a fraction (`1500.5`), kept to the
/// nanosecond; values too large to represent are `ceiling`. Negative numbers, exponents, `NaN`,
/// `inf` and anything else malformed are `None`, with a `tracing` debug event.
pub fn parse_retry_after_ms(value: &[u8], ceiling: Duration) -> Option<Duration> {
    let s = value.trim_ascii();
    let (int, frac) = match s.iter().position(|&b| b == b'.') {
        Some(dot) => (&s[..dot], Some(&s[dot + 1..])),
        None => (s, None),
    };
    let Some(millis) = saturating_u64(int) else {
        return malformed("retry-after-ms", value);
    };
    let mut nanos = u128::from(millis) * 1_000_000;
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
            return malformed("retry-after-ms", value);
        }
        // Six fraction digits of a millisecond are the nanoseconds; the rest are below them.
        let mut scale = 100_000u128;
        for d in frac.iter().take(6) {
            nanos += u128::from(d - b'0') * scale;
            scale /= 10;
        }
    }
    Some(duration_from_nanos(nanos).min(ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_retry_after_examples() {
        use std::time::{Duration, UNIX_EPOCH};

        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let ceiling = Duration::from_secs(300);

        assert_eq!(
            parse_retry_after(b"120", now, ceiling),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(b"Sun, 06 Nov 1994 08:50:07 GMT", now, ceiling),
            Some(Duration::from_secs(30)),
        );
        assert_eq!(
            parse_retry_after(b"Sat, 05 Nov 1994 08:49:37 GMT", now, ceiling),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(b"99999999999", now, ceiling),
            Some(ceiling)
        );
        assert_eq!(parse_retry_after(b"-1", now, ceiling), None);
    }

    #[test]
    fn parse_retry_after_ms_examples() {
        use std::time::Duration;

        let ceiling = Duration::from_secs(60);
        assert_eq!(
            parse_retry_after_ms(b"1500", ceiling),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(
            parse_retry_after_ms(b"2.25", ceiling),
            Some(Duration::from_micros(2_250))
        );
        assert_eq!(parse_retry_after_ms(b"1e9", ceiling), None);
    }
}
