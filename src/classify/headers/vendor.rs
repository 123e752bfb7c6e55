//! Vendor dialects: OpenAI, Anthropic and GitHub rate-limit headers, and `x-should-retry`.

use std::time::{Duration, SystemTime};

use super::names::Header::{self, *};
use super::retry_after::until;
use super::signal::Now;
use super::{Quota, go_duration, ietf, malformed, rfc3339, saturating_u64};

/// Parse `x-should-retry` (sent by OpenAI and Anthropic): `true` or `false`, ignoring ASCII
/// case and surrounding whitespace. Anything else is `None`, with a `tracing` debug event.
pub fn parse_should_retry(value: &[u8]) -> Option<bool> {
    let s = value.trim_ascii();
    if s.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if s.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        malformed("x-should-retry", value)
    }
}

/// Parse a reset time given as Unix epoch seconds (GitHub's `x-ratelimit-reset`) into the delay
/// from `now`: zero if it has passed, at most `ceiling`. Anything but a non-negative integer is
/// `None`, with a `tracing` debug event.
// Only the tests and the fuzz targets call it on its own.
#[cfg_attr(not(any(test, fuzzing)), allow(dead_code))]
pub fn parse_epoch_reset(value: &[u8], now: SystemTime, ceiling: Duration) -> Option<Duration> {
    epoch_reset(value, &Now::At(now), ceiling)
}

fn epoch_reset(value: &[u8], now: &Now, ceiling: Duration) -> Option<Duration> {
    match saturating_u64(value.trim_ascii()) {
        Some(secs) => Some(
            match std::time::UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
                Some(at) => until(at, now.get(), ceiling),
                // Beyond what this platform's clock can represent: as far away as it gets.
                None => ceiling,
            },
        ),
        None => malformed("x-ratelimit-reset", value),
    }
}

/// Epoch seconds below this (September 2001) are read as delta seconds: GitHub sends epoch
/// seconds in `x-ratelimit-reset`, but other APIs reuse the name for a delay, and no genuine
/// reset time lies in 2001.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// A reset that is epoch seconds if it looks like one, else delta seconds.
fn epoch_or_delta(value: &[u8], now: &Now, ceiling: Duration) -> Option<Duration> {
    match saturating_u64(value.trim_ascii()) {
        Some(secs) if secs < EPOCH_THRESHOLD => Some(Duration::from_secs(secs).min(ceiling)),
        _ => epoch_reset(value, now, ceiling),
    }
}

/// A quota from whichever of its three parts were present and well-formed.
fn quota(
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_after: Option<Duration>,
) -> Option<Quota> {
    (limit.is_some() || remaining.is_some() || reset_after.is_some()).then_some(Quota {
        limit,
        remaining,
        reset_after,
    })
}

/// The three headers of one quota.
pub(super) struct Names {
    limit: Header,
    remaining: Header,
    reset: Header,
}

macro_rules! names {
    ($limit:ident, $remaining:ident, $reset:ident) => {
        Names {
            limit: $limit,
            remaining: $remaining,
            reset: $reset,
        }
    };
}

pub(super) const OPENAI_REQUESTS: Names = names!(
    OpenAiLimitRequests,
    OpenAiRemainingRequests,
    OpenAiResetRequests
);
pub(super) const OPENAI_TOKENS: Names =
    names!(OpenAiLimitTokens, OpenAiRemainingTokens, OpenAiResetTokens);
pub(super) const ANTHROPIC_REQUESTS: Names = names!(
    AnthropicRequestsLimit,
    AnthropicRequestsRemaining,
    AnthropicRequestsReset
);
pub(super) const ANTHROPIC_TOKENS: [Names; 3] = [
    names!(
        AnthropicTokensLimit,
        AnthropicTokensRemaining,
        AnthropicTokensReset
    ),
    names!(
        AnthropicInputTokensLimit,
        AnthropicInputTokensRemaining,
        AnthropicInputTokensReset
    ),
    names!(
        AnthropicOutputTokensLimit,
        AnthropicOutputTokensRemaining,
        AnthropicOutputTokensReset
    ),
];
const GITHUB: Names = names!(GitHubLimit, GitHubRemaining, GitHubReset);
const LEGACY_IETF: Names = names!(RateLimitLimit, RateLimitRemaining, RateLimitReset);

/// Reads one dialect's quota through a header lookup.
pub(super) struct Dialects<'n, G> {
    pub(super) get: G,
    pub(super) now: &'n Now,
    pub(super) ceiling: Duration,
}

impl<'a, G: Fn(Header) -> Option<&'a [u8]>> Dialects<'_, G> {
    fn counts(&self, names: &Names) -> (Option<u64>, Option<u64>) {
        let count = |name| (self.get)(name).and_then(ietf::parse_count);
        (count(names.limit), count(names.remaining))
    }

    /// OpenAI: counts, and resets as Go durations (`6m0s`).
    pub(super) fn openai(&self, names: &Names) -> Option<Quota> {
        let (limit, remaining) = self.counts(names);
        let reset = (self.get)(names.reset)
            .and_then(go_duration::parse_go_duration)
            .map(|d| d.min(self.ceiling));
        quota(limit, remaining, reset)
    }

    /// Anthropic: counts, and resets as RFC 3339 timestamps.
    pub(super) fn anthropic(&self, names: &Names) -> Option<Quota> {
        let (limit, remaining) = self.counts(names);
        let reset = (self.get)(names.reset).and_then(|v| match rfc3339::parse(v.trim_ascii()) {
            Some(at) => Some(until(at, self.now.get(), self.ceiling)),
            None => malformed(names.reset.name(), v),
        });
        quota(limit, remaining, reset)
    }

    /// GitHub: counts, and the reset in epoch seconds (or delta seconds, for small values).
    pub(super) fn github(&self) -> Option<Quota> {
        let (limit, remaining) = self.counts(&GITHUB);
        let reset =
            (self.get)(GITHUB.reset).and_then(|v| epoch_or_delta(v, self.now, self.ceiling));
        quota(limit, remaining, reset)
    }

    /// The older IETF draft fields, with the reset in delta seconds.
    pub(super) fn legacy_ietf(&self) -> Option<Quota> {
        let (limit, remaining) = self.counts(&LEGACY_IETF);
        let reset =
            (self.get)(LEGACY_IETF.reset).and_then(|v| ietf::parse_delta_seconds(v, self.ceiling));
        quota(limit, remaining, reset)
    }

    /// The structured `RateLimit` field, joined by name to its `RateLimit-Policy`.
    pub(super) fn ietf(&self) -> Option<Quota> {
        let policy = (self.get)(RateLimitPolicy);
        match (self.get)(RateLimit).and_then(|v| ietf::tightest_ratelimit(v, self.ceiling)) {
            Some((name, mut quota)) => {
                quota.limit = policy
                    .and_then(|p| ietf::policy(p, Some(name)))
                    .map(|p| p.limit);
                Some(quota)
            }
            None => policy
                .and_then(|p| ietf::policy(p, None))
                .and_then(|p| quota(Some(p.limit), None, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_should_retry_examples() {
        assert_eq!(parse_should_retry(b"false"), Some(false));
        assert_eq!(parse_should_retry(b" TRUE "), Some(true));
        assert_eq!(parse_should_retry(b"1"), None);
    }

    #[test]
    fn parse_epoch_reset_examples() {
        use std::time::{Duration, UNIX_EPOCH};

        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let ceiling = Duration::from_secs(3_600);
        assert_eq!(
            parse_epoch_reset(b"1700000042", now, ceiling),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            parse_epoch_reset(b"1600000000", now, ceiling),
            Some(Duration::ZERO)
        );
    }
}
