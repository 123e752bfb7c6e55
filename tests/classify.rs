//! Classification: the core classifiers and combinators, the rate-limit signal read from whole
//! responses in every vendor's dialect, the `http` status classifier, property tests, and the
//! fuzz corpora replayed on stable. Each header parser on its own is tested, and its fuzz
//! corpus replayed, by the crate's unit tests in `src/classify/headers/tests.rs`.

mod common;

#[cfg(feature = "http")]
#[path = "checks/header_signal.rs"]
mod header_signal_check;

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use riprap::classify::headers::*;
use riprap::classify::{ByError, Class, Classified, ClassifierExt, Classify, classify_fn};

const CEILING: Duration = Duration::from_secs(300);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + secs(unix)
}

// ---------------------------------------------------------------------------------------------
// The classify core
// ---------------------------------------------------------------------------------------------

fn io_class(kind: io::ErrorKind) -> Class {
    ByError.classify(Err::<&(), _>(&io::Error::from(kind)))
}

#[test]
fn io_errors_by_kind() {
    use io::ErrorKind::*;
    for kind in [
        ConnectionReset,
        ConnectionRefused,
        ConnectionAborted,
        BrokenPipe,
        UnexpectedEof,
    ] {
        assert_eq!(io_class(kind), Class::Transient, "{kind:?}");
    }
    assert_eq!(io_class(TimedOut), Class::TimedOut);
    for kind in [InvalidInput, InvalidData, PermissionDenied, NotFound] {
        assert_eq!(io_class(kind), Class::Permanent, "{kind:?}");
    }
    assert_eq!(ByError.classify(Ok::<_, &io::Error>(&())), Class::Success);
}

#[derive(Debug)]
struct Wrapper(Box<dyn StdError + Send + Sync>);

impl fmt::Display for Wrapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request failed")
    }
}

impl StdError for Wrapper {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

#[derive(Debug)]
struct Opaque;

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("opaque")
    }
}

impl StdError for Opaque {}

type BoxError = Box<dyn StdError + Send + Sync>;

#[test]
fn boxed_errors_by_source_chain() {
    let boxed = |e: BoxError| ByError.classify(Err::<&(), _>(&e));
    let denied: BoxError = Box::new(Wrapper(Box::new(io::Error::from(
        io::ErrorKind::PermissionDenied,
    ))));
    assert_eq!(boxed(denied), Class::Permanent, "found two levels down");
    let reset: BoxError = Box::new(io::Error::from(io::ErrorKind::ConnectionReset));
    assert_eq!(boxed(reset), Class::Transient);
    let elapsed: BoxError = Box::new(Wrapper(Box::new(tower::timeout::error::Elapsed::new())));
    assert_eq!(boxed(elapsed), Class::TimedOut);
    let unknown: BoxError = Box::new(Wrapper(Box::new(Opaque)));
    assert_eq!(
        boxed(unknown),
        Class::Transient,
        "unrecognised errors retry"
    );
}

#[derive(Debug)]
enum ApiError {
    Busy,
    Invalid,
}

impl Classified for ApiError {
    fn class(&self) -> Class {
        match self {
            ApiError::Busy => Class::Throttled { retry_after: None },
            ApiError::Invalid => Class::Permanent,
        }
    }
}

#[test]
fn own_errors_classify_themselves() {
    assert!(
        ByError
            .classify(Err::<&(), _>(&ApiError::Busy))
            .is_throttled()
    );
    assert_eq!(
        ByError.classify(Err::<&(), _>(&ApiError::Invalid)),
        Class::Permanent
    );
}

#[test]
fn closures_and_combinators() {
    let empty_is_transient = classify_fn(|out: Result<&&str, &io::Error>| match out {
        Ok(&"") => Class::Transient,
        _ => Class::Success,
    });
    let c = empty_is_transient.or(ByError);
    let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
    assert_eq!(
        c.classify(Ok(&"")),
        Class::Transient,
        "first failure verdict wins"
    );
    assert_eq!(
        c.classify(Err(&refused)),
        Class::Transient,
        "second asked on success"
    );
    assert_eq!(c.classify(Ok(&"ok")), Class::Success);

    let never_retry = ByError.map_class(|c| {
        if c.is_retryable() {
            Class::Permanent
        } else {
            c
        }
    });
    assert_eq!(
        never_retry.classify(Err::<&(), _>(&refused)),
        Class::Permanent
    );

    let missing = io::Error::from(io::ErrorKind::NotFound);
    let eventually_consistent = ByError.when(
        |out: Result<&(), &io::Error>| matches!(out, Err(e) if e.kind() == io::ErrorKind::NotFound),
        Class::Transient,
    );
    assert_eq!(
        eventually_consistent.classify(Err(&missing)),
        Class::Transient
    );
    let denied = io::Error::from(io::ErrorKind::PermissionDenied);
    assert_eq!(
        eventually_consistent.classify(Err(&denied)),
        Class::Permanent
    );

    // A bare closure is a classifier too.
    let bare = |out: Result<&u16, &()>| match out {
        Ok(200) => Class::Success,
        _ => Class::Transient,
    };
    assert_eq!(bare.classify(Ok(&503)), Class::Transient);
}

// ---------------------------------------------------------------------------------------------
// The combined signal
// ---------------------------------------------------------------------------------------------

fn signal(headers: &[(&str, &str)], now: SystemTime) -> RateLimitSignal {
    RateLimitSignal::from_lookup(
        |name| {
            assert_eq!(name, name.to_ascii_lowercase(), "names are asked lowercase");
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_bytes())
        },
        now,
        CEILING,
    )
}

#[test]
fn openai_headers() {
    let s = signal(
        &[
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-limit-tokens", "2000000"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1m30.5s"),
            ("x-should-retry", "true"),
        ],
        UNIX_EPOCH,
    );
    assert_eq!(
        s.requests,
        Some(Quota {
            limit: Some(10_000),
            remaining: Some(9_999),
            reset_after: Some(Duration::from_millis(6))
        })
    );
    assert_eq!(
        s.tokens.and_then(|q| q.reset_after),
        Some(Duration::from_millis(90_500))
    );
    assert_eq!(s.should_retry, Some(true));
    assert_eq!(s.pause(), Some(Duration::from_millis(90_500)));

    let with_ms = signal(
        &[("retry-after-ms", "1500"), ("retry-after", "2")],
        UNIX_EPOCH,
    );
    assert_eq!(
        with_ms.retry_after,
        Some(Duration::from_millis(1_500)),
        "ms wins"
    );
}

#[test]
fn anthropic_headers() {
    let now = at(1_717_243_200); // 2024-06-01T12:00:00Z
    let s = signal(
        &[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2024-06-01T12:00:01Z"),
            ("anthropic-ratelimit-tokens-limit", "100000"),
            ("anthropic-ratelimit-tokens-remaining", "80000"),
            ("anthropic-ratelimit-tokens-reset", "2024-06-01T12:00:20Z"),
            ("anthropic-ratelimit-input-tokens-limit", "80000"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2024-06-01T12:00:45Z",
            ),
            ("anthropic-ratelimit-output-tokens-limit", "16000"),
            ("anthropic-ratelimit-output-tokens-remaining", "16000"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2024-06-01T11:59:00Z",
            ),
        ],
        now,
    );
    assert_eq!(s.requests.and_then(|q| q.reset_after), Some(secs(1)));
    assert_eq!(
        s.tokens,
        Some(Quota {
            limit: Some(80_000),
            remaining: Some(0),
            reset_after: Some(secs(45))
        }),
        "the tightest of tokens, input and output"
    );
    assert_eq!(s.pause(), Some(secs(45)));
}

#[test]
fn github_headers() {
    let now = at(1_372_700_000);
    let s = signal(
        &[
            ("x-ratelimit-limit", "5000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1372700873"),
            ("x-ratelimit-used", "5000"),
            ("x-ratelimit-resource", "core"),
        ],
        now,
    );
    assert_eq!(
        s.requests,
        Some(Quota {
            limit: Some(5000),
            remaining: Some(0),
            reset_after: Some(CEILING)
        })
    );
    let delta = signal(&[("x-ratelimit-reset", "42")], now);
    assert_eq!(
        delta.requests.and_then(|q| q.reset_after),
        Some(secs(42)),
        "small values are delta seconds"
    );
}

#[test]
fn ietf_headers_join_policy_by_name() {
    let s = signal(
        &[
            ("ratelimit", r#""hour";r=500;t=1200, "minute";r=0;t=30"#),
            (
                "ratelimit-policy",
                r#""hour";q=1000;w=3600, "minute";q=60;w=60"#,
            ),
        ],
        UNIX_EPOCH,
    );
    assert_eq!(
        s.requests,
        Some(Quota {
            limit: Some(60),
            remaining: Some(0),
            reset_after: Some(secs(30))
        })
    );
    let legacy = signal(
        &[
            ("ratelimit-limit", "100"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "99999999999"),
        ],
        UNIX_EPOCH,
    );
    assert_eq!(legacy.pause(), Some(CEILING));
}

#[test]
fn malformed_values_are_skipped_not_fatal() {
    let s = signal(
        &[
            ("retry-after", "soon"),
            ("x-ratelimit-remaining-requests", "-3"),
            ("x-ratelimit-limit-requests", "100"),
            ("x-ratelimit-reset-requests", "NaN"),
            ("x-should-retry", "maybe"),
        ],
        UNIX_EPOCH,
    );
    assert_eq!(
        s,
        RateLimitSignal {
            requests: Some(Quota {
                limit: Some(100),
                ..Quota::default()
            }),
            ..RateLimitSignal::default()
        }
    );
    assert!(!s.is_empty());
    assert!(signal(&[], UNIX_EPOCH).is_empty());
    assert_eq!(signal(&[], UNIX_EPOCH).pause(), None);
}

#[test]
fn pause_prefers_retry_after_then_longest_exhausted_reset() {
    let quota = |remaining, reset| Quota {
        limit: None,
        remaining: Some(remaining),
        reset_after: Some(secs(reset)),
    };
    let s = RateLimitSignal {
        retry_after: Some(secs(3)),
        requests: Some(quota(0, 60)),
        ..Default::default()
    };
    assert_eq!(s.pause(), Some(secs(3)));
    let s = RateLimitSignal {
        requests: Some(quota(0, 10)),
        tokens: Some(quota(0, 40)),
        ..Default::default()
    };
    assert_eq!(s.pause(), Some(secs(40)));
    let s = RateLimitSignal {
        requests: Some(quota(1, 10)),
        tokens: Some(quota(5, 40)),
        ..Default::default()
    };
    assert_eq!(s.pause(), None, "nothing exhausted: no pause");
}

// ---------------------------------------------------------------------------------------------
// HttpStatus
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "http")]
mod http_status {
    use super::*;
    use http::Response;
    use riprap::classify::HttpStatus;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response<()> {
        let mut b = Response::builder().status(status);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    fn class_of(c: &HttpStatus, status: u16, headers: &[(&str, &str)]) -> Class {
        c.classify(Ok::<_, &io::Error>(&response(status, headers)))
    }

    fn throttled(d: Option<Duration>) -> Class {
        Class::Throttled { retry_after: d }
    }

    #[test]
    fn defaults() {
        let c = HttpStatus::new();
        for s in [100, 200, 201, 204, 301, 304] {
            assert_eq!(class_of(&c, s, &[]), Class::Success, "{s}");
        }
        for s in [408, 425, 500, 502, 503, 504, 520, 599] {
            assert_eq!(class_of(&c, s, &[]), Class::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422, 501, 505, 511, 600, 999] {
            assert_eq!(class_of(&c, s, &[]), Class::Permanent, "{s}");
        }
        assert_eq!(class_of(&c, 429, &[]), throttled(None));
    }

    #[test]
    fn throttles_carry_the_servers_delay() {
        let c = HttpStatus::new();
        assert_eq!(
            class_of(&c, 429, &[("retry-after", "20")]),
            throttled(Some(secs(20)))
        );
        assert_eq!(
            class_of(&c, 429, &[("retry-after", "99999999999")]),
            throttled(Some(riprap::classify::headers::MAX_SERVER_DELAY))
        );
        assert_eq!(
            class_of(&c, 429, &[("retry-after", "Thu, 01 Jan 1970 00:00:00 GMT")]),
            throttled(Some(Duration::ZERO)),
            "a past date is zero"
        );
        assert_eq!(
            class_of(
                &c,
                429,
                &[
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "12s"),
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "50ms"),
                ]
            ),
            throttled(Some(secs(12))),
            "the longest exhausted reset"
        );
        assert_eq!(
            class_of(&c, 503, &[("retry-after", "7")]),
            throttled(Some(secs(7)))
        );
        assert_eq!(
            class_of(&c, 503, &[("retry-after", "junk")]),
            Class::Transient
        );
    }

    #[test]
    fn github_403s() {
        let c = HttpStatus::new();
        let primary = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "60")];
        assert_eq!(class_of(&c, 403, &primary), throttled(Some(secs(60))));
        assert_eq!(
            class_of(&c, 403, &[("retry-after", "61")]),
            throttled(Some(secs(61)))
        );
        assert_eq!(
            class_of(&c, 403, &[("x-ratelimit-remaining", "12")]),
            Class::Permanent
        );
    }

    #[test]
    fn should_retry_overrules_defaults() {
        let c = HttpStatus::new();
        let no = [("x-should-retry", "false")];
        let yes = [("x-should-retry", "true")];
        for s in [408, 429, 500, 503] {
            assert_eq!(class_of(&c, s, &no), Class::Permanent, "{s}");
        }
        assert_eq!(class_of(&c, 200, &no), Class::Success);
        for s in [400, 409, 501] {
            assert_eq!(class_of(&c, s, &yes), Class::Transient, "{s}");
        }
        assert_eq!(
            class_of(&c, 429, &yes),
            throttled(None),
            "429 stays throttled"
        );
    }

    #[test]
    fn overrides_win() {
        let c = HttpStatus::new()
            .status(404, Class::Transient)
            .status(500, Class::Permanent)
            .status(500, Class::Transient)
            .status(200, Class::Permanent)
            .status(409, throttled(None));
        let copy = c.clone();
        assert_eq!(
            class_of(&copy, 404, &[("x-should-retry", "false")]),
            Class::Transient
        );
        assert_eq!(
            class_of(&c, 500, &[]),
            Class::Transient,
            "the later override replaces"
        );
        assert_eq!(class_of(&c, 200, &[]), Class::Permanent);
        assert_eq!(
            class_of(&c, 409, &[("retry-after", "4")]),
            throttled(Some(secs(4))),
            "a throttle override takes the server's delay"
        );
    }

    #[test]
    fn server_delays_are_kept_as_given_up_to_a_day() {
        let c = HttpStatus::new();
        assert_eq!(
            class_of(&c, 429, &[("retry-after", "3600")]),
            throttled(Some(secs(3600)))
        );
        assert_eq!(
            class_of(&c, 429, &[("retry-after", "99999999999")]),
            throttled(Some(riprap::classify::headers::MAX_SERVER_DELAY))
        );
    }

    #[test]
    fn errors_use_their_own_class() {
        let c = HttpStatus::new();
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            c.classify(Err::<&Response<()>, _>(&reset)),
            Class::Transient
        );
        assert_eq!(
            c.classify(Err::<&Response<()>, _>(&ApiError::Busy)),
            throttled(None)
        );
        // And it composes like every classifier.
        let strict = c.map_class(|c| {
            if c == Class::Transient {
                Class::Permanent
            } else {
                c
            }
        });
        assert_eq!(
            strict.classify(Ok::<_, &io::Error>(&response(502, &[]))),
            Class::Permanent
        );
    }

    #[test]
    fn from_headers_matches_from_lookup() {
        let r = response(
            429,
            &[
                ("Retry-After", "3"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Limit", "60"),
            ],
        );
        let s = RateLimitSignal::from_headers(r.headers(), UNIX_EPOCH, CEILING);
        assert_eq!(s.retry_after, Some(secs(3)));
        assert_eq!(s.requests.and_then(|q| q.limit), Some(60));
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzz corpora, replayed on stable
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "http")]
#[test]
fn fuzz_corpus_header_signal() {
    common::replay_corpus("header_signal", header_signal_check::run);
}

// ---------------------------------------------------------------------------------------------
// SQLSTATE, and the PostgreSQL clients' own errors (features `sqlx`, `tokio-postgres`); real
// server errors are provoked in tests/postgres.rs
// ---------------------------------------------------------------------------------------------

#[test]
fn sqlstate_postgres_codes() {
    use riprap::classify::database::sqlstate;
    let throttled = Class::Throttled { retry_after: None };
    let cases = [
        // Transient: the transaction lost a race, or the session or server went away.
        ("40001", Class::Transient), // serialization_failure
        ("40P01", Class::Transient), // deadlock_detected
        ("57P01", Class::Transient), // admin_shutdown (pg_terminate_backend)
        ("57P02", Class::Transient), // crash_shutdown
        ("57P03", Class::Transient), // cannot_connect_now (starting up)
        ("08000", Class::Transient), // connection_exception
        ("08001", Class::Transient), // sqlclient_unable_to_establish_sqlconnection
        ("08003", Class::Transient), // connection_does_not_exist
        ("08006", Class::Transient), // connection_failure
        ("08P01", Class::Transient), // protocol_violation
        // Throttled: the server is at its connection limit.
        ("53300", throttled),
        // Permanent: the statement itself is wrong.
        ("23000", Class::Permanent), // integrity_constraint_violation
        ("23502", Class::Permanent), // not_null_violation
        ("23503", Class::Permanent), // foreign_key_violation
        ("23505", Class::Permanent), // unique_violation
        ("23514", Class::Permanent), // check_violation
        ("23P01", Class::Permanent), // exclusion_violation
        ("22001", Class::Permanent), // string_data_right_truncation
        ("22003", Class::Permanent), // numeric_value_out_of_range
        ("22012", Class::Permanent), // division_by_zero
        ("22P02", Class::Permanent), // invalid_text_representation
        ("42501", Class::Permanent), // insufficient_privilege
        ("42601", Class::Permanent), // syntax_error
        ("42703", Class::Permanent), // undefined_column
        ("42P01", Class::Permanent), // undefined_table
    ];
    for (code, class) in cases {
        assert_eq!(sqlstate(code), class, "{code}");
        assert_eq!(
            sqlstate(&code.to_ascii_lowercase()),
            class,
            "{code} in lower case"
        );
    }
}

proptest! {
    #[test]
    fn sqlstate_classes_hold_for_every_subclass(
        sub in "[0-9A-Z]{3}",
        lower in any::<bool>(),
    ) {
        use riprap::classify::database::sqlstate;
        let case = |code: String| if lower { code.to_ascii_lowercase() } else { code };
        for class in ["22", "23", "42"] {
            prop_assert_eq!(sqlstate(&case(format!("{class}{sub}"))), Class::Permanent);
        }
        prop_assert_eq!(sqlstate(&case(format!("08{sub}"))), Class::Transient);
    }

    #[test]
    fn sqlstate_never_panics(code in "\\PC{0,8}") {
        let _ = riprap::classify::database::sqlstate(&code);
    }
}

#[cfg(feature = "sqlx")]
#[test]
fn sqlx_client_errors() {
    let throttled = Class::Throttled { retry_after: None };
    let io = |kind| sqlx::Error::Io(io::Error::from(kind));
    let boxed = |e: &str| -> Box<dyn StdError + Send + Sync> { e.into() };
    let cases = [
        (sqlx::Error::PoolTimedOut, throttled),
        (io(io::ErrorKind::ConnectionRefused), Class::Transient),
        (io(io::ErrorKind::ConnectionReset), Class::Transient),
        (io(io::ErrorKind::UnexpectedEof), Class::Transient),
        (
            sqlx::Error::Protocol("unexpected message".into()),
            Class::Transient,
        ),
        (sqlx::Error::WorkerCrashed, Class::Transient),
        (
            sqlx::Error::Tls(Box::new(io::Error::from(io::ErrorKind::ConnectionReset))),
            Class::Transient,
        ),
        (
            sqlx::Error::Tls(boxed("certificate expired")),
            Class::Permanent,
        ),
        (sqlx::Error::PoolClosed, Class::Permanent),
        (sqlx::Error::RowNotFound, Class::Permanent),
        (sqlx::Error::ColumnNotFound("id".into()), Class::Permanent),
        (
            sqlx::Error::Configuration(boxed("bad url")),
            Class::Permanent,
        ),
        (sqlx::Error::Decode(boxed("not an int")), Class::Permanent),
    ];
    for (err, class) in cases {
        assert_eq!(err.class(), class, "{err:?}");
        assert_eq!(ByError.classify(Err::<&(), _>(&err)), class, "{err:?}");
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(err);
        assert_eq!(boxed.class(), class, "boxed {boxed:?}");
    }
}

#[cfg(feature = "tokio-postgres")]
#[test]
fn tokio_postgres_client_errors() {
    // A connection string that does not parse is the caller's to fix.
    let bad = "host=/tmp port=notaport"
        .parse::<tokio_postgres::Config>()
        .unwrap_err();
    assert_eq!(bad.class(), Class::Permanent, "{bad:?}");
    let boxed: Box<dyn StdError + Send + Sync> = Box::new(bad);
    assert_eq!(boxed.class(), Class::Permanent);
}
