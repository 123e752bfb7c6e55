//! Go-style durations (`time.Duration.String()`), as OpenAI sends its rate-limit reset times.

use std::fmt::Write as _;
use std::time::Duration;

use super::{duration_from_nanos, malformed};

/// Units by suffix, in nanoseconds. Both spellings of "micro" Go accepts are here: U+00B5
/// (micro sign, what Go prints) and U+03BC (Greek small letter mu).
const UNITS: [(&[u8], u128); 8] = [
    (b"ns", 1),
    (b"us", 1_000),
    ("\u{b5}s".as_bytes(), 1_000),
    ("\u{3bc}s".as_bytes(), 1_000),
    (b"ms", 1_000_000),
    (b"s", 1_000_000_000),
    (b"m", 60_000_000_000),
    (b"h", 3_600_000_000_000),
];

/// Parse a Go-style duration: a sequence of decimal numbers, each with an optional fraction and
/// a unit (`h`, `m`, `s`, `ms`, `us`/`µs`, `ns`), such as `1s`, `6m0s`, `20ms`, `1h2m3.5s`, or a
/// bare `0`.
///
/// This is the syntax of Go's `time.ParseDuration`, which OpenAI's
/// `x-ratelimit-reset-{requests,tokens}` headers use. A leading `+` is allowed; a negative
/// duration is `None`, since no server means "reset in the past". Precision is the nanosecond
/// (further fraction digits are truncated); a value too large for a [`Duration`] saturates at
/// [`Duration::MAX`] rather than failing, as "very long" is what the sender meant. Surrounding
/// ASCII whitespace is ignored; anything malformed is `None`, with a `tracing` debug event.
pub fn parse_go_duration(value: &[u8]) -> Option<Duration> {
    parse(value.trim_ascii()).or_else(|| malformed("go-duration", value))
}

fn parse(s: &[u8]) -> Option<Duration> {
    let s = s.strip_prefix(b"+").unwrap_or(s);
    if s == b"0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix(b".") {
            Some(f) => {
                let n = f.iter().take_while(|b| b.is_ascii_digit()).count();
                f.split_at(n)
            }
            None => (&after[..0], after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return None;
        }
        let unit_len = after
            .iter()
            .take_while(|b| !b.is_ascii_digit() && **b != b'.')
            .count();
        let (unit, after) = after.split_at(unit_len);
        let scale = UNITS.iter().find(|(u, _)| *u == unit)?.1;

        let whole = int_digits.iter().fold(0u128, |n, d| {
            n.saturating_mul(10).saturating_add(u128::from(d - b'0'))
        });
        // The largest unit is under 1e13 ns, so fraction digits past the 18th are worth less
        // than a nanosecond: they are validated above but not accumulated.
        let mut frac = 0u128;
        let mut denom = 1u128;
        for d in frac_digits.iter().take(18) {
            frac = frac * 10 + u128::from(d - b'0');
            denom *= 10;
        }
        total = total
            .saturating_add(whole.saturating_mul(scale))
            .saturating_add(frac * scale / denom);
        rest = after;
    }
    Some(duration_from_nanos(total))
}

/// Format `d` the way Go's `time.Duration.String()` does — `1h2m3.5s`, `6m0s`, `1.5ms`, `0s` —
/// so that [`parse_go_duration`] gives back exactly `d` for every `Duration`.
///
/// Durations of a second or more are written as hours, minutes and (fractional) seconds, with
/// leading zero units left out; shorter ones in the largest of `ms`, `µs` (U+00B5) and `ns` that
/// fits. Unlike Go, hours may run past Go's 2,562,047-hour limit, because a `Duration` can.
// Called by `config::duration` (serde), the tests and the fuzz targets.
#[cfg_attr(not(any(test, fuzzing, feature = "serde")), allow(dead_code))]
pub fn format_go_duration(d: Duration) -> String {
    let mut out = String::new();
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    // Writing to a String cannot fail.
    if secs == 0 {
        match nanos {
            0 => out.push_str("0s"),
            1..=999 => {
                let _ = write!(out, "{nanos}ns");
            }
            1_000..=999_999 => {
                let _ = write!(out, "{}", nanos / 1_000);
                push_fraction(&mut out, nanos % 1_000, 3);
                out.push_str("\u{b5}s");
            }
            _ => {
                let _ = write!(out, "{}", nanos / 1_000_000);
                push_fraction(&mut out, nanos % 1_000_000, 6);
                out.push_str("ms");
            }
        }
        return out;
    }
    let (hours, minutes, seconds) = (secs / 3_600, secs % 3_600 / 60, secs % 60);
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    push_fraction(&mut out, nanos, 9);
    out.push('s');
    out
}

/// `.ddd` for `value` as a `width`-digit fraction, without trailing zeros; nothing for zero.
fn push_fraction(out: &mut String, value: u32, width: usize) {
    if value == 0 {
        return;
    }
    let _ = write!(out, ".{value:0width$}");
    while out.ends_with('0') {
        out.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_go_duration_examples() {
        use std::time::Duration;

        assert_eq!(parse_go_duration(b"6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration(b"20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration(b"1.5h"), Some(Duration::from_secs(5_400)));
        assert_eq!(
            parse_go_duration("3\u{b5}s".as_bytes()),
            Some(Duration::from_micros(3))
        );
        assert_eq!(parse_go_duration(b"10"), None); // a unit is required
    }

    #[test]
    fn format_go_duration_examples() {
        use std::time::Duration;

        assert_eq!(format_go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(
            format_go_duration(Duration::from_millis(3_723_500)),
            "1h2m3.5s"
        );
        assert_eq!(format_go_duration(Duration::from_micros(1_500)), "1.5ms");
        let d = Duration::new(7_384, 123_456_789);
        assert_eq!(parse_go_duration(format_go_duration(d).as_bytes()), Some(d));
    }
}
