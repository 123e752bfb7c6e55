//! Each header parser on its own, against real vendor values and hostile ones, property tests,
//! and the parser fuzz targets' corpora replayed on stable. The parsers are crate-private, so
//! these run as the crate's own tests; `tests/classify.rs` tests the whole signal.

#[path = "../../../tests/common/mod.rs"]
mod common;

#[path = "../../../tests/checks/header_go_duration.rs"]
mod header_go_duration_check;
#[path = "../../../tests/checks/header_http_date.rs"]
mod header_http_date_check;
#[path = "../../../tests/checks/header_ietf.rs"]
mod header_ietf_check;
#[path = "../../../tests/checks/header_retry_after.rs"]
mod header_retry_after_check;
#[path = "../../../tests/checks/header_rfc3339.rs"]
mod header_rfc3339_check;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;

use super::Quota;
use super::fuzzing::*;

const CEILING: Duration = Duration::from_secs(300);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + secs(unix)
}

// ---------------------------------------------------------------------------------------------
// Retry-After and retry-after-ms
// ---------------------------------------------------------------------------------------------

/// Sun, 06 Nov 1994 08:49:37 GMT
const NOV_1994: u64 = 784_111_777;

#[test]
fn retry_after_delay_seconds() {
    let now = at(NOV_1994);
    assert_eq!(parse_retry_after(b"120", now, CEILING), Some(secs(120)));
    assert_eq!(parse_retry_after(b"0", now, CEILING), Some(Duration::ZERO));
    assert_eq!(parse_retry_after(b" 20\t", now, CEILING), Some(secs(20)));
    assert_eq!(parse_retry_after(b"007", now, CEILING), Some(secs(7)));
}

#[test]
fn retry_after_dates_in_every_form() {
    let now = at(NOV_1994 - 30);
    for form in [
        &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
        b"Sunday, 06-Nov-94 08:49:37 GMT",
        b"Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(parse_retry_after(form, now, CEILING), Some(secs(30)));
    }
    // In the past: come back now.
    let later = at(NOV_1994 + 3_600);
    assert_eq!(
        parse_retry_after(b"Sun, 06 Nov 1994 08:49:37 GMT", later, CEILING),
        Some(Duration::ZERO)
    );
    // Far in the future: the ceiling.
    assert_eq!(
        parse_retry_after(b"Fri, 31 Dec 9999 23:59:59 GMT", now, CEILING),
        Some(CEILING)
    );
}

#[test]
fn retry_after_hostile_values() {
    let now = at(NOV_1994);
    assert_eq!(
        parse_retry_after(b"99999999999", now, CEILING),
        Some(CEILING)
    );
    assert_eq!(
        parse_retry_after(b"184467440737095516160000", now, CEILING),
        Some(CEILING),
        "beyond u64 saturates to the ceiling"
    );
    for bad in [
        &b""[..],
        b"   ",
        b"-1",
        b"+5",
        b"1.5",
        b"1e3",
        b"NaN",
        b"inf",
        b"20 seconds",
        b"0x10",
        b"\xff\xfe\xfd",
        b"Sun, 06 Nov 1994 08:49:37",
        b"Sun, 06 Nov 1994 25:49:37 GMT",
        b"Sun, 32 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994 08:49:37 GMT trailing",
        b"Sun, 06 Nov 1994 08:49:37 UTC",
    ] {
        assert_eq!(
            parse_retry_after(bad, now, CEILING),
            None,
            "{:?}",
            bad.escape_ascii()
        );
    }
    let huge = vec![b'9'; 100_000];
    assert_eq!(parse_retry_after(&huge, now, CEILING), Some(CEILING));
}

#[test]
fn retry_after_ms() {
    assert_eq!(
        parse_retry_after_ms(b"1500", CEILING),
        Some(Duration::from_millis(1_500))
    );
    assert_eq!(
        parse_retry_after_ms(b"0.5", CEILING),
        Some(Duration::from_micros(500))
    );
    assert_eq!(
        parse_retry_after_ms(b"1.0000019", CEILING),
        Some(Duration::from_nanos(1_000_001)),
        "kept to the nanosecond"
    );
    assert_eq!(
        parse_retry_after_ms(b"99999999999999999999999", CEILING),
        Some(CEILING)
    );
    for bad in [
        &b""[..],
        b"-5",
        b"NaN",
        b"1e3",
        b".5",
        b"5.",
        b"1,5",
        b"\x80",
    ] {
        assert_eq!(
            parse_retry_after_ms(bad, CEILING),
            None,
            "{:?}",
            bad.escape_ascii()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP-date, Go durations, RFC 3339
// ---------------------------------------------------------------------------------------------

#[test]
fn http_dates() {
    let t = at(NOV_1994);
    assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
    assert_eq!(parse_http_date(b"sun, 06 nov 1994 08:49:37 gmt"), Some(t));
    assert_eq!(
        parse_http_date(b"Mon, 06 Nov 1994 08:49:37 GMT"),
        Some(t),
        "a wrong weekday does not discard the date"
    );
    assert_eq!(
        parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"),
        Some(UNIX_EPOCH)
    );
    assert_eq!(
        parse_http_date(b"Friday, 01-Jan-49 00:00:00 GMT"),
        Some(at(2_493_072_000)),
        "two-digit years below 70 are 20xx"
    );
    // Real servers' values.
    assert_eq!(
        parse_http_date(b"Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(at(1_445_412_480))
    );
    assert_eq!(
        format_http_date(at(1_445_412_480)),
        "Wed, 21 Oct 2015 07:28:00 GMT"
    );
    for bad in [
        &b"Sun, 6 Nov 1994 08:49:37 GMT"[..],
        b"Sun, 06 Nov 94 08:49:37 GMT",
        b"Sun,06 Nov 1994 08:49:37 GMT",
        b"Xyz, 06 Nov 1994 08:49:37 GMT",
        b"Sun Nov 6 08:49:37 1994",
        b"Sun, 29 Feb 1900 00:00:00 GMT",
        b"Sun, 06 Nov 1994 08:60:00 GMT",
        b"",
    ] {
        assert_eq!(parse_http_date(bad), None, "{:?}", bad.escape_ascii());
    }
}

#[test]
fn go_durations_as_openai_sends_them() {
    let ms = Duration::from_millis;
    for (text, want) in [
        ("1s", secs(1)),
        ("6m0s", secs(360)),
        ("20ms", ms(20)),
        ("1h2m3.5s", ms(3_723_500)),
        ("0s", Duration::ZERO),
        ("0", Duration::ZERO),
        ("2m59.56s", ms(179_560)),
        ("7.66s", ms(7_660)),
        ("250us", Duration::from_micros(250)),
        ("250\u{b5}s", Duration::from_micros(250)),
        ("250\u{3bc}s", Duration::from_micros(250)),
        ("999ns", Duration::from_nanos(999)),
        ("1.5h", secs(5_400)),
        (".5s", ms(500)),
        ("+3m", secs(180)),
        ("1h1h", secs(7_200)),
    ] {
        assert_eq!(parse_go_duration(text.as_bytes()), Some(want), "{text}");
    }
    assert_eq!(
        parse_go_duration(b"99999999999999999999999999h"),
        Some(Duration::MAX),
        "too large saturates"
    );
    for bad in [
        "", "5", "s", "1x", "-1s", "1.s.", "1..5s", "1 s", "1sm", "NaN", "inf", "\u{b5}",
    ] {
        assert_eq!(parse_go_duration(bad.as_bytes()), None, "{bad:?}");
    }
    assert_eq!(parse_go_duration(b"\xff1s"), None);
}

#[test]
fn go_duration_formatting() {
    for (d, text) in [
        (Duration::ZERO, "0s"),
        (Duration::from_nanos(1), "1ns"),
        (Duration::from_nanos(1_500), "1.5\u{b5}s"),
        (Duration::from_micros(20_000), "20ms"),
        (secs(1), "1s"),
        (secs(360), "6m0s"),
        (secs(3_600), "1h0m0s"),
        (Duration::from_millis(3_723_500), "1h2m3.5s"),
        (Duration::new(1, 1), "1.000000001s"),
    ] {
        assert_eq!(format_go_duration(d), text);
    }
}

#[test]
fn rfc3339_as_anthropic_sends_it() {
    let noon = at(1_717_243_200); // 2024-06-01T12:00:00Z
    assert_eq!(parse_rfc3339(b"2024-06-01T12:00:00Z"), Some(noon));
    assert_eq!(parse_rfc3339(b"2024-06-01T12:00:00.000Z"), Some(noon));
    assert_eq!(parse_rfc3339(b"2024-06-01T14:30:00+02:30"), Some(noon));
    assert_eq!(parse_rfc3339(b"2024-06-01T04:00:00-08:00"), Some(noon));
    assert_eq!(parse_rfc3339(b"2024-06-01t12:00:00z"), Some(noon));
    assert_eq!(parse_rfc3339(b"2024-06-01 12:00:00Z"), Some(noon));
    assert_eq!(
        parse_rfc3339(b"2024-06-01T12:00:00.123456789123Z"),
        Some(noon + Duration::from_nanos(123_456_789))
    );
    for bad in [
        &b"2024-06-01T12:00:00"[..],
        b"2024-06-01",
        b"2024-6-01T12:00:00Z",
        b"2024-13-01T12:00:00Z",
        b"2023-02-29T12:00:00Z",
        b"2024-06-01T12:00:00+24:00",
        b"2024-06-01T12:00:00.Z",
        b"2024-06-01T12:00:00Zjunk",
        b"1717243200",
        b"\xff",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{:?}", bad.escape_ascii());
    }
}

// ---------------------------------------------------------------------------------------------
// IETF fields and counts
// ---------------------------------------------------------------------------------------------

#[test]
fn ietf_ratelimit_fields() {
    assert_eq!(
        parse_ratelimit(br#""default";r=45;t=30"#, CEILING),
        Some(Quota {
            limit: None,
            remaining: Some(45),
            reset_after: Some(secs(30))
        })
    );
    let two = br#""day";r=900;t=50000, "minute";r=0;t=30"#;
    assert_eq!(
        parse_ratelimit(two, CEILING).and_then(|q| q.remaining),
        Some(0)
    );
    let tie = br#"a;r=0;t=10, b;r=0;t=20"#;
    assert_eq!(
        parse_ratelimit(tie, CEILING).and_then(|q| q.reset_after),
        Some(secs(20)),
        "equal remaining: the later reset"
    );
    assert_eq!(
        parse_ratelimit(br#""x";r=1;t=99999999999999999999999"#, CEILING)
            .and_then(|q| q.reset_after),
        Some(CEILING)
    );
    assert_eq!(
        parse_ratelimit_policy(br#""default";q=100;w=60"#),
        Some(RateLimitPolicy {
            limit: 100,
            window: Some(secs(60))
        })
    );
    assert_eq!(
        parse_ratelimit_policy(br#""burst";q=100;w=1, "day";q=5000;w=86400;qu="requests""#)
            .map(|p| p.limit),
        Some(5000),
        "fewest per second"
    );
    for bad in [
        &br#""x";r=-1;t=5"#[..],
        br#""x";r=1.5"#,
        br#""x";r="1""#,
        br#""x";r=1,"#,
        br#""x;r=1"#,
        br#"(a b);r=1"#,
        br#""x";R=1"#,
        b"",
        br#""x";t=5"#,
        b"\xff;r=1",
    ] {
        assert_eq!(
            parse_ratelimit(bad, CEILING),
            None,
            "{:?}",
            bad.escape_ascii()
        );
    }
    assert_eq!(parse_count(b"100, 100;w=60"), Some(100));
    assert_eq!(parse_count(b"18446744073709551616"), Some(u64::MAX));
    assert_eq!(parse_count(b"1e3"), None);
    assert_eq!(parse_delta_seconds(b"30", CEILING), Some(secs(30)));
    assert_eq!(parse_delta_seconds(b"-30", CEILING), None);
}

#[test]
fn should_retry_and_epoch_resets() {
    assert_eq!(parse_should_retry(b"true"), Some(true));
    assert_eq!(parse_should_retry(b"False"), Some(false));
    assert_eq!(parse_should_retry(b"yes"), None);
    let now = at(1_700_000_000);
    assert_eq!(
        parse_epoch_reset(b"1700000060", now, CEILING),
        Some(secs(60))
    );
    assert_eq!(parse_epoch_reset(b"1", now, CEILING), Some(Duration::ZERO));
    assert_eq!(
        parse_epoch_reset(b"99999999999999999999", now, CEILING),
        Some(CEILING)
    );
    assert_eq!(parse_epoch_reset(b"1700000060.5", now, CEILING), None);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// 9999-12-31T23:59:59Z
const LAST_FOUR_DIGIT_SECOND: u64 = 253_402_300_799;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_parser_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), now in 0u64..LAST_FOUR_DIGIT_SECOND) {
        let now = at(now);
        if let Some(d) = parse_retry_after(&bytes, now, CEILING) { prop_assert!(d <= CEILING); }
        if let Some(d) = parse_retry_after_ms(&bytes, CEILING) { prop_assert!(d <= CEILING); }
        if let Some(d) = parse_delta_seconds(&bytes, CEILING) { prop_assert!(d <= CEILING); }
        if let Some(d) = parse_epoch_reset(&bytes, now, CEILING) { prop_assert!(d <= CEILING); }
        if let Some(q) = parse_ratelimit(&bytes, CEILING) {
            prop_assert!(q.reset_after.is_none_or(|d| d <= CEILING));
        }
        let _ = parse_http_date(&bytes);
        let _ = parse_go_duration(&bytes);
        let _ = parse_rfc3339(&bytes);
        let _ = parse_ratelimit_policy(&bytes);
        let _ = parse_count(&bytes);
        let _ = parse_should_retry(&bytes);
    }

    #[test]
    fn parsers_survive_near_miss_text(text in "[0-9a-zA-Z:;,.=\" +-]{0,40}") {
        let b = text.as_bytes();
        if let Some(d) = parse_retry_after(b, UNIX_EPOCH, CEILING) { prop_assert!(d <= CEILING); }
        let _ = parse_http_date(b);
        if let Some(d) = parse_go_duration(b) {
            prop_assert_eq!(parse_go_duration(format_go_duration(d).as_bytes()), Some(d));
        }
        let _ = parse_rfc3339(b);
        let _ = parse_ratelimit(b, CEILING);
    }

    #[test]
    fn go_duration_round_trips(secs in prop_oneof![0u64..100_000, any::<u64>()], nanos in 0u32..1_000_000_000) {
        let d = Duration::new(secs, nanos);
        prop_assert_eq!(parse_go_duration(format_go_duration(d).as_bytes()), Some(d));
    }

    #[test]
    fn http_date_round_trips_at_second_precision(secs in 0u64..=LAST_FOUR_DIGIT_SECOND, nanos in 0u32..1_000_000_000) {
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        let text = format_http_date(t);
        prop_assert_eq!(parse_http_date(text.as_bytes()), Some(at(secs)), "{}", text);
    }

    #[test]
    fn retry_after_date_in_the_past_is_zero(date in 0u64..LAST_FOUR_DIGIT_SECOND, ago in 0u64..1_000_000_000) {
        let now = at(date) + Duration::from_secs(ago);
        let text = format_http_date(at(date));
        prop_assert_eq!(parse_retry_after(text.as_bytes(), now, CEILING), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_date_is_capped(now in 0u64..200_000_000_000, ahead in 0u64..50_000_000_000, ceiling in 0u64..100_000) {
        let ceiling = Duration::from_secs(ceiling);
        let text = format_http_date(at(now + ahead));
        let want = Duration::from_secs(ahead).min(ceiling);
        prop_assert_eq!(parse_retry_after(text.as_bytes(), at(now), ceiling), Some(want));
    }

    #[test]
    fn retry_after_seconds_are_capped(digits in "[0-9]{1,40}", ceiling in 0u64..100_000) {
        let ceiling = Duration::from_secs(ceiling);
        let got = parse_retry_after(digits.as_bytes(), UNIX_EPOCH, ceiling);
        let want = match digits.parse::<u64>() {
            Ok(n) => Duration::from_secs(n).min(ceiling),
            Err(_) => ceiling,
        };
        prop_assert_eq!(got, Some(want));
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz corpora, replayed on stable
// ---------------------------------------------------------------------------------------------

#[test]
fn fuzz_corpus_header_retry_after() {
    common::replay_corpus("header_retry_after", header_retry_after_check::run);
}

#[test]
fn fuzz_corpus_header_http_date() {
    common::replay_corpus("header_http_date", header_http_date_check::run);
}

#[test]
fn fuzz_corpus_header_go_duration() {
    common::replay_corpus("header_go_duration", header_go_duration_check::run);
}

#[test]
fn fuzz_corpus_header_rfc3339() {
    common::replay_corpus("header_rfc3339", header_rfc3339_check::run);
}

#[test]
fn fuzz_corpus_header_ietf() {
    common::replay_corpus("header_ietf", header_ietf_check::run);
}
