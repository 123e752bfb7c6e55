//! Rate-limit signals read from response headers.
//!
//! Servers say "slow down" in many dialects. The parsers here read each of them from raw
//! header values (`&[u8]`, so any HTTP stack can call them) into one [`RateLimitSignal`]:
//!
//! | dialect | headers |
//! |---|---|
//! | RFC 9110 | `Retry-After` as delay-seconds or HTTP-date |
//! | common | `retry-after-ms`, `x-should-retry` |
//! | IETF draft | `RateLimit` / `RateLimit-Policy` structured fields, older `RateLimit-Limit/Remaining/Reset` |
//! | OpenAI | `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with Go-style durations |
//! | Anthropic | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}` (RFC 3339) |
//! | GitHub | `x-ratelimit-{limit,remaining,reset}` (reset in epoch seconds) |
//!
//! Every delay is kept as the server said it, up to one bound, [`MAX_SERVER_DELAY`] (a day),
//! so that a hostile `Retry-After: 99999999999` is bounded arithmetic rather than an
//! overflow. Whether a caller waits that long is the caller's decision, made in one place: the
//! retry engine gives up at once when a delay exceeds its `max_retry_after`, and the rate
//! limiter refuses callers whose wait would exceed its `max_wait`. Nothing ever shortens a
//! server's delay. A malformed value gives `None` and a `tracing` debug event, never a panic;
//! numbers too large to represent saturate rather than wrap.
//!
//! ```
//! use riprap::classify::headers::{RateLimitSignal, MAX_SERVER_DELAY};
//! use std::time::{Duration, SystemTime};
//!
//! // An OpenAI 429: the token quota is spent and resets in 6 minutes.
//! let headers = [
//!     ("x-ratelimit-limit-tokens", "40000"),
//!     ("x-ratelimit-remaining-tokens", "0"),
//!     ("x-ratelimit-reset-tokens", "6m0s"),
//!     ("x-ratelimit-remaining-requests", "99"),
//! ];
//! let get = |name: &str| {
//!     headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_bytes())
//! };
//! let signal = RateLimitSignal::from_lookup(get, SystemTime::now(), MAX_SERVER_DELAY);
//! assert_eq!(signal.tokens.and_then(|q| q.remaining), Some(0));
//! assert_eq!(signal.pause(), Some(Duration::from_secs(360)));
//! ```
//!
//! To read one header on its own, give `from_lookup` a lookup that knows only that name:
//!
//! ```
//! use riprap::classify::headers::{RateLimitSignal, MAX_SERVER_DELAY};
//! use std::time::{Duration, SystemTime};
//!
//! let retry_after = |name: &str| (name == "retry-after").then_some(&b"20"[..]);
//! let signal = RateLimitSignal::from_lookup(retry_after, SystemTime::now(), MAX_SERVER_DELAY);
//! assert_eq!(signal.retry_after, Some(Duration::from_secs(20)));
//! ```

use std::time::Duration;

mod civil;
mod go_duration;
mod http_date;
mod ietf;
mod names;
mod retry_after;
mod rfc3339;
mod signal;
#[cfg(test)]
mod tests;
mod vendor;

#[cfg(feature = "serde")]
pub(crate) use go_duration::{format_go_duration, parse_go_duration};

/// The parsers one by one, for the fuzz targets (cargo-fuzz builds with `--cfg fuzzing`) and
/// the crate's own tests. Not part of the API: users read headers through [`RateLimitSignal`].
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing {
    pub use super::go_duration::{format_go_duration, parse_go_duration};
    pub use super::http_date::{format_http_date, parse_http_date};
    pub use super::ietf::{
        RateLimitPolicy, parse_count, parse_delta_seconds, parse_ratelimit, parse_ratelimit_policy,
    };
    pub use super::retry_after::{parse_retry_after, parse_retry_after_ms};
    pub use super::rfc3339::parse_rfc3339;
    pub use super::vendor::{parse_epoch_reset, parse_should_retry};
}

#[cfg(feature = "http")]
pub(crate) use names::Table;
#[cfg(feature = "http")]
pub(crate) use signal::{Now, Reader};

/// The one bound on a delay read from a server: a day. A longer one is read as a day.
///
/// This is arithmetic hygiene, not a policy: no layer waits anywhere near this long by
/// default (the retry engine's `max_retry_after` is 60 s, the rate limiter's `max_wait` 30 s),
/// and a caller that would have to wait longer than it allows gives up at once, told when the
/// server will take calls again. A delay is never shortened below what the server asked,
/// except to this bound.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

/// One quota window a server reported: how many calls (or tokens) it allows, how many are left,
/// and when the window resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// The window's limit, if reported.
    pub limit: Option<u64>,
    /// What is left in the window, if reported.
    pub remaining: Option<u64>,
    /// Time until the window resets (at most [`MAX_SERVER_DELAY`]), if reported.
    pub reset_after: Option<Duration>,
}

/// Everything a response's headers said about rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitSignal {
    /// The server's explicit `Retry-After` / `retry-after-ms` (at most [`MAX_SERVER_DELAY`]).
    pub retry_after: Option<Duration>,
    /// `x-should-retry`: the server's own opinion of whether a retry can succeed.
    pub should_retry: Option<bool>,
    /// The request-count quota (IETF, GitHub, OpenAI and Anthropic `requests`).
    pub requests: Option<Quota>,
    /// The token quota (OpenAI and Anthropic `tokens`; the tightest of Anthropic's input and
    /// output token quotas).
    pub tokens: Option<Quota>,
}

/// Log a rejected header value (at most its first 64 bytes, escaped) and give `None`.
fn malformed<T>(header: &'static str, value: &[u8]) -> Option<T> {
    tracing::debug!(
        target: "riprap::classify",
        event = "malformed_header",
        header,
        value = %value[..value.len().min(64)].escape_ascii(),
        "ignoring malformed rate-limit header value",
    );
    None
}

/// A non-empty run of ASCII digits as a `u64`, saturating at `u64::MAX` (a huge count or delay
/// means "a lot", and is capped later, rather than being an error).
fn saturating_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Nanoseconds (saturating) as a `Duration`, saturating at `Duration::MAX`.
fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / NANOS_PER_SEC) {
        // The remainder is below 1e9, so it fits a u32.
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}
