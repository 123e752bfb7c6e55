//! A whole response's headers: `RateLimitSignal::from_lookup` and the `HttpStatus` classifier
//! never panic and never hand out a delay beyond the ceiling.
//!
//! Input: the first byte picks the ceiling (in seconds), the second the status code; the rest
//! is lines separated by `\n`, each a byte choosing one of `NAMES` followed by that header's
//! value. At most 16 headers; a repeated name keeps its first value.

use riprap::classify::headers::{Quota, RateLimitSignal};
use riprap::classify::{Class, Classify, HttpStatus};
use std::time::{Duration, UNIX_EPOCH};

pub const NAMES: [&str; 28] = [
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-used",
];

const STATUSES: [u16; 16] = [
    200, 301, 400, 403, 404, 408, 425, 429, 500, 501, 502, 503, 504, 511, 599, 999,
];

pub fn run(data: &[u8]) {
    let [ceiling, status, rest @ ..] = data else {
        return;
    };
    let ceiling = Duration::from_secs(u64::from(*ceiling) * 5);
    let status = STATUSES[usize::from(*status) % STATUSES.len()];

    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    for line in rest.split(|&b| b == b'\n').take(16) {
        let Some((pick, value)) = line.split_first() else {
            continue;
        };
        let name = NAMES[usize::from(*pick) % NAMES.len()];
        if headers.iter().all(|(n, _)| *n != name) {
            headers.push((name, value));
        }
    }
    let get = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);

    let now = UNIX_EPOCH + Duration::from_secs(1_717_243_200);
    let signal = RateLimitSignal::from_lookup(get, now, ceiling);
    let within = |d: Option<Duration>| d.is_none_or(|d| d <= ceiling);
    let quota_within = |q: Option<Quota>| q.is_none_or(|q| within(q.reset_after));
    assert!(within(signal.retry_after));
    assert!(quota_within(signal.requests));
    assert!(quota_within(signal.tokens));
    assert!(within(signal.pause()));
    assert_eq!(signal.is_empty(), signal == RateLimitSignal::default());

    // The same headers on a response, where they are valid header values.
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    for (name, value) in &headers {
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            response.headers_mut().insert(*name, value);
        }
    }
    let from_map = RateLimitSignal::from_headers(response.headers(), now, ceiling);
    let by_name = RateLimitSignal::from_lookup(
        |name| response.headers().get(name).map(|v| v.as_bytes()),
        now,
        ceiling,
    );
    assert_eq!(
        from_map, by_name,
        "scanning the map reads what looking names up reads"
    );
    assert!(within(from_map.pause()));
    let class = HttpStatus::new().classify(Ok::<_, &std::io::Error>(&response));
    // The classifier keeps what the server said, up to the one bound.
    assert!(
        class
            .retry_after()
            .is_none_or(|d| d <= riprap::classify::headers::MAX_SERVER_DELAY)
    );
    if status < 400 {
        assert_eq!(class, Class::Success);
    }
}
