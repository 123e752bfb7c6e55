//! HTTP-dates (RFC 9110 §5.6.7): IMF-fixdate, plus the obsolete RFC 850 and asctime forms that
//! recipients must still accept.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::civil;
use super::malformed;

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parse an HTTP-date in any of the three forms RFC 9110 makes recipients accept:
///
/// | form | example |
/// |---|---|
/// | IMF-fixdate (preferred) | `Sun, 06 Nov 1994 08:49:37 GMT` |
/// | RFC 850 (obsolete) | `Sunday, 06-Nov-94 08:49:37 GMT` |
/// | asctime (obsolete) | `Sun Nov  6 08:49:37 1994` |
///
/// Surrounding ASCII whitespace is ignored, and names match without regard to ASCII case. The
/// weekday must be a weekday's name but need not agree with the date: the date is what the
/// sender meant, and a sloppy weekday should not cost a caller the server's `Retry-After`. A
/// two-digit RFC 850 year is 1970–2069 (`70`–`99` are 19xx, `00`–`69` are 20xx). Seconds may be
/// `60` (a leap second, read as the next minute's first second).
///
/// Anything else is `None`, with a `tracing` debug event.
// Only the tests and the fuzz targets call it on its own.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub fn parse_http_date(value: &[u8]) -> Option<SystemTime> {
    parse(value.trim_ascii()).or_else(|| malformed("http-date", value))
}

pub(super) fn parse(s: &[u8]) -> Option<SystemTime> {
    let mut c = Cursor(s);
    let (year, month, day, time);
    match s.get(3)? {
        b',' => {
            // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
            c.name(&WEEKDAYS)?;
            c.literal(b", ")?;
            day = c.number(2)?;
            c.literal(b" ")?;
            month = c.name(&MONTHS)? + 1;
            c.literal(b" ")?;
            year = i128::from(c.number(4)?);
            c.literal(b" ")?;
            time = c.time()?;
            c.literal(b" ")?;
            c.name(&["GMT"])?;
        }
        b' ' => {
            // asctime: `Sun Nov  6 08:49:37 1994`
            c.name(&WEEKDAYS)?;
            c.literal(b" ")?;
            month = c.name(&MONTHS)? + 1;
            c.literal(b" ")?;
            day = if c.0.first() == Some(&b' ') {
                c.literal(b" ")?;
                c.number(1)?
            } else {
                c.number(2)?
            };
            c.literal(b" ")?;
            time = c.time()?;
            c.literal(b" ")?;
            year = i128::from(c.number(4)?);
        }
        _ => {
            // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
            c.name(&LONG_WEEKDAYS)?;
            c.literal(b", ")?;
            day = c.number(2)?;
            c.literal(b"-")?;
            month = c.name(&MONTHS)? + 1;
            c.literal(b"-")?;
            let yy = i128::from(c.number(2)?);
            year = if yy >= 70 { 1900 + yy } else { 2000 + yy };
            c.literal(b" ")?;
            time = c.time()?;
            c.literal(b" ")?;
            c.name(&["GMT"])?;
        }
    }
    if !c.0.is_empty() {
        return None;
    }
    let month = month as u32;
    if day == 0 || day > civil::days_in_month(year, month) {
        return None;
    }
    let (hour, minute, second) = time;
    let secs = civil::unix_seconds(year, month, day, hour, minute, second);
    civil::system_time(secs, 0)
}

/// A byte cursor for fixed-layout dates. Every method consumes on success and gives `None`
/// on a mismatch.
pub(super) struct Cursor<'a>(pub(super) &'a [u8]);

impl Cursor<'_> {
    pub(super) fn literal(&mut self, lit: &[u8]) -> Option<()> {
        let rest = self.0.strip_prefix(lit)?;
        self.0 = rest;
        Some(())
    }

    /// Exactly `width` ASCII digits.
    pub(super) fn number(&mut self, width: usize) -> Option<u32> {
        let digits = self.0.get(..width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[width..];
        // At most 4 digits are ever asked for, far below u32::MAX.
        Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    }

    /// The index of the name in `names` that the input starts with (ASCII case-insensitive).
    fn name(&mut self, names: &[&str]) -> Option<usize> {
        names.iter().position(|name| {
            let n = name.len();
            let hit = self
                .0
                .get(..n)
                .is_some_and(|p| p.eq_ignore_ascii_case(name.as_bytes()));
            if hit {
                self.0 = &self.0[n..];
            }
            hit
        })
    }

    /// `HH:MM:SS`, range-checked (seconds up to 60 for a leap second).
    pub(super) fn time(&mut self) -> Option<(u32, u32, u32)> {
        let hour = self.number(2)?;
        self.literal(b":")?;
        let minute = self.number(2)?;
        self.literal(b":")?;
        let second = self.number(2)?;
        (hour < 24 && minute < 60 && second <= 60).then_some((hour, minute, second))
    }
}

/// Format `t` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 says
/// senders must use. Sub-second precision is dropped (rounding toward the past).
// Only the tests and the fuzz targets call it on its own.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub fn format_http_date(t: SystemTime) -> String {
    let secs = civil::floor_unix_seconds(t);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil::civil_from_days(days);
    let mut out = String::with_capacity(29);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[civil::weekday(days)],
        day,
        MONTHS[(month - 1) as usize],
        year,
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn leap_day_and_leap_second() {
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(
            parse_http_date(b"Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(leap)
        );
        assert_eq!(parse_http_date(b"Thu, 29 Feb 1900 00:00:00 GMT"), None);
        assert_eq!(
            parse_http_date(b"Mon, 28 Feb 2000 23:59:60 GMT"),
            Some(leap),
            "a leap second is the next minute's first second"
        );
    }

    #[test]
    fn before_the_epoch() {
        let t = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(format_http_date(t), "Wed, 31 Dec 1969 00:00:00 GMT");
        assert_eq!(parse_http_date(b"Wed, 31 Dec 1969 00:00:00 GMT"), Some(t));
        let just_before = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(
            format_http_date(just_before),
            "Wed, 31 Dec 1969 23:59:59 GMT"
        );
    }

    #[test]
    fn parse_http_date_examples() {
        use std::time::{Duration, UNIX_EPOCH};

        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date(b"Sun, 31 Nov 1994 08:49:37 GMT"), None); // no such day
    }

    #[test]
    fn format_http_date_examples() {
        use std::time::{Duration, UNIX_EPOCH};

        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date(format_http_date(t).as_bytes()), Some(t));
    }
}
