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
//! Every delay is capped by a ceiling ([`DEFAULT_CEILING`] unless you pass another), so a hostile
//! `Retry-After: 99999999999` cannot park a client for years. A malformed value gives `None`
//! and a `tracing` debug event, never a panic.

use std::time::Duration;

/// The longest delay a server may impose through headers unless configured otherwise: 5 minutes.
///
/// Long enough for every provider's per-minute windows; a client told to wait longer simply
/// waits this long and asks again.
pub const DEFAULT_CEILING: Duration = Duration::from_secs(300);

/// One quota window a server reported: how many calls (or tokens) it allows, how many are left,
/// and when the window resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quota {
    /// The window's limit, if reported.
    pub limit: Option<u64>,
    /// What is left in the window, if reported.
    pub remaining: Option<u64>,
    /// Time until the window resets (capped by the ceiling), if reported.
    pub reset_after: Option<Duration>,
}

/// Everything a response's headers said about rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitSignal {
    /// The server's explicit `Retry-After` / `retry-after-ms` (capped by the ceiling).
    pub retry_after: Option<Duration>,
    /// `x-should-retry`: the server's own opinion of whether a retry can succeed.
    pub should_retry: Option<bool>,
    /// The request-count quota (IETF, GitHub, OpenAI and Anthropic `requests`).
    pub requests: Option<Quota>,
    /// The token quota (OpenAI and Anthropic `tokens`; the tightest of Anthropic's input and
    /// output token quotas).
    pub tokens: Option<Quota>,
}
