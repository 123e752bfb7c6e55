//! Header parsing, per header kind, and `HttpStatus` verdicts.
//!
//! `cargo bench --all-features --bench classify -- --warm-up-time 1 --measurement-time 3`
//! (the `signal` and `http_status` groups need the `http` feature).
//!
//! The parsers are crate-private, so the `header` group reads each kind through the public
//! entry point, `RateLimitSignal::from_lookup`, with only that one header present. Every
//! figure includes asking for the other names and finding nothing; `header/none` is that cost
//! alone, and the difference is the parse.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use riprap::classify::headers::{MAX_SERVER_DELAY, RateLimitSignal};
#[cfg(feature = "http")]
use {
    http::{HeaderMap, HeaderValue, Response},
    riprap::classify::{Classify, HttpStatus},
    std::io,
};

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_717_243_200)
}

/// A lookup that knows one header.
fn one<'a>(name: &'static str, value: &'a [u8]) -> impl Fn(&str) -> Option<&'a [u8]> {
    move |asked| (asked == name).then_some(value)
}

fn parsers(c: &mut Criterion) {
    let mut g = c.benchmark_group("header");
    let now = now();
    let read = |name: &'static str, value: &'static [u8]| {
        RateLimitSignal::from_lookup(one(name, black_box(value)), now, MAX_SERVER_DELAY)
    };
    g.bench_function("none", |b| {
        b.iter(|| RateLimitSignal::from_lookup(|_| black_box(None), now, MAX_SERVER_DELAY))
    });
    g.bench_function("retry_after_seconds", |b| {
        b.iter(|| read("retry-after", b"120"))
    });
    g.bench_function("retry_after_http_date", |b| {
        b.iter(|| read("retry-after", b"Sat, 01 Jun 2024 12:00:30 GMT"))
    });
    g.bench_function("go_duration", |b| {
        b.iter(|| read("x-ratelimit-reset-tokens", b"1h2m3.5s"))
    });
    g.bench_function("rfc3339", |b| {
        b.iter(|| {
            read(
                "anthropic-ratelimit-requests-reset",
                b"2024-06-01T12:00:30.250Z",
            )
        })
    });
    g.bench_function("ietf_ratelimit", |b| {
        b.iter(|| read("ratelimit", br#""hour";r=900;t=1800, "minute";r=0;t=30"#))
    });
    g.finish();
}

#[cfg(feature = "http")]
fn openai_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("content-type", "application/json"),
        ("openai-processing-ms", "412"),
        ("x-request-id", "req_8f2c1a7d9e3b4c5a6f7e8d9c0b1a2f3e"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "2000000"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-remaining-tokens", "1999000"),
        ("x-ratelimit-reset-requests", "6m0s"),
        ("x-ratelimit-reset-tokens", "30ms"),
        ("x-should-retry", "true"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h
}

#[cfg(feature = "http")]
fn signal(c: &mut Criterion) {
    let mut g = c.benchmark_group("signal");
    let headers = openai_headers();
    let now = now();
    g.bench_function("openai_from_headers", |b| {
        b.iter(|| RateLimitSignal::from_headers(black_box(&headers), now, MAX_SERVER_DELAY))
    });
    g.finish();
}

#[cfg(feature = "http")]
fn http_status(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_status");
    let classifier = HttpStatus::new();
    let ok = Response::new(());
    let mut throttled = Response::new(());
    *throttled.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    *throttled.headers_mut() = openai_headers();
    throttled
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static("20"));
    g.bench_function("classify_200", |b| {
        b.iter(|| classifier.classify(Ok::<_, &io::Error>(black_box(&ok))))
    });
    g.bench_function("classify_429", |b| {
        b.iter(|| classifier.classify(Ok::<_, &io::Error>(black_box(&throttled))))
    });
    g.finish();
}

#[cfg(feature = "http")]
criterion_group!(benches, parsers, signal, http_status);
#[cfg(not(feature = "http"))]
criterion_group!(benches, parsers);
criterion_main!(benches);
