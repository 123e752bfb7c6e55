//! Assembling one [`RateLimitSignal`] from every dialect a response may speak.

// The lazy clock and the piecemeal reads serve the `http` classifier.
#![cfg_attr(not(feature = "http"), allow(dead_code))]

use std::cell::OnceCell;
use std::time::{Duration, SystemTime};

use super::names::Header;
#[cfg(feature = "http")]
use super::names::Table;
use super::vendor::{
    ANTHROPIC_REQUESTS, ANTHROPIC_TOKENS, Dialects, OPENAI_REQUESTS, OPENAI_TOKENS,
};
use super::{Quota, RateLimitSignal, retry_after};

/// The wall-clock time delays are measured from: given, or read once on first use, so paths
/// that need no date conversion never read the clock.
pub(crate) enum Now {
    At(SystemTime),
    Wall(OnceCell<SystemTime>),
}

impl Now {
    pub(crate) fn wall() -> Self {
        Now::Wall(OnceCell::new())
    }

    pub(crate) fn get(&self) -> SystemTime {
        match self {
            Now::At(t) => *t,
            Now::Wall(cell) => *cell.get_or_init(SystemTime::now),
        }
    }
}

impl Quota {
    /// `true` if the server said nothing is left in this window (`remaining == Some(0)`).
    ///
    /// ```
    /// use riprap::classify::headers::Quota;
    ///
    /// assert!(Quota { remaining: Some(0), ..Quota::default() }.is_exhausted());
    /// assert!(!Quota::default().is_exhausted());
    /// ```
    pub fn is_exhausted(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// The more constraining of two quotas: fewer remaining (a known count beats an unknown one),
/// then the later reset.
fn tighter(a: Option<Quota>, b: Option<Quota>) -> Option<Quota> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let key = |q: &Quota| {
                (
                    q.remaining.is_none(),
                    q.remaining,
                    std::cmp::Reverse(q.reset_after),
                )
            };
            Some(if key(&b) < key(&a) { b } else { a })
        }
        (a, b) => a.or(b),
    }
}

/// The longest reset among exhausted quotas.
fn exhausted_reset(quotas: [Option<Quota>; 2]) -> Option<Duration> {
    quotas
        .into_iter()
        .flatten()
        .filter(Quota::is_exhausted)
        .filter_map(|q| q.reset_after)
        .max()
}

/// Reads a response's headers on demand, so a classifier asks only for what its verdict needs.
pub(crate) struct Reader<G> {
    get: G,
    now: Now,
    ceiling: Duration,
}

impl<'a, G: Fn(Header) -> Option<&'a [u8]>> Reader<G> {
    pub(crate) fn new(get: G, now: Now, ceiling: Duration) -> Self {
        Reader { get, now, ceiling }
    }

    fn dialects(&self) -> Dialects<'_, &G> {
        Dialects {
            get: &self.get,
            now: &self.now,
            ceiling: self.ceiling,
        }
    }

    /// `retry-after-ms` (the more precise, when both are sent), else `Retry-After`.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        (self.get)(Header::RetryAfterMs)
            .and_then(|v| super::retry_after::parse_retry_after_ms(v, self.ceiling))
            .or_else(|| {
                (self.get)(Header::RetryAfter)
                    .and_then(|v| retry_after::retry_after(v, &self.now, self.ceiling))
            })
    }

    pub(crate) fn should_retry(&self) -> Option<bool> {
        (self.get)(Header::ShouldRetry).and_then(super::vendor::parse_should_retry)
    }

    pub(crate) fn requests(&self) -> Option<Quota> {
        let d = self.dialects();
        [
            d.ietf(),
            d.legacy_ietf(),
            d.openai(&OPENAI_REQUESTS),
            d.anthropic(&ANTHROPIC_REQUESTS),
            d.github(),
        ]
        .into_iter()
        .reduce(tighter)
        .flatten()
    }

    pub(crate) fn tokens(&self) -> Option<Quota> {
        let d = self.dialects();
        let [all, input, output] = &ANTHROPIC_TOKENS;
        [
            d.openai(&OPENAI_TOKENS),
            d.anthropic(all),
            d.anthropic(input),
            d.anthropic(output),
        ]
        .into_iter()
        .reduce(tighter)
        .flatten()
    }

    /// [`RateLimitSignal::pause`], reading the quota headers only without a `Retry-After`.
    pub(crate) fn pause(&self) -> Option<Duration> {
        self.retry_after()
            .or_else(|| exhausted_reset([self.requests(), self.tokens()]))
    }

    /// `true` if some quota is exhausted.
    pub(crate) fn exhausted(&self) -> bool {
        self.requests().is_some_and(|q| q.is_exhausted())
            || self.tokens().is_some_and(|q| q.is_exhausted())
    }

    pub(crate) fn signal(&self) -> RateLimitSignal {
        RateLimitSignal {
            retry_after: self.retry_after(),
            should_retry: self.should_retry(),
            requests: self.requests(),
            tokens: self.tokens(),
        }
    }
}

impl RateLimitSignal {
    /// Read every dialect riprap knows through `get`, which returns a header's value given its
    /// lowercase name (the first value, if the header repeats).
    ///
    /// Delays are measured from `now` (used only for HTTP-dates, RFC 3339 and epoch resets) and
    /// capped at `ceiling`. Where several dialects report the same quota, the most constraining
    /// report wins (fewest remaining, then the latest reset):
    ///
    /// | field | read from |
    /// |---|---|
    /// | `retry_after` | `retry-after-ms`, else `retry-after` (seconds or HTTP-date) |
    /// | `should_retry` | `x-should-retry` |
    /// | `requests` | `ratelimit` + `ratelimit-policy`; `ratelimit-{limit,remaining,reset}`; `x-ratelimit-{limit,remaining,reset}-requests`; `anthropic-ratelimit-requests-*`; `x-ratelimit-{limit,remaining,reset}` |
    /// | `tokens` | `x-ratelimit-{limit,remaining,reset}-tokens`; `anthropic-ratelimit-{tokens,input-tokens,output-tokens}-*` |
    ///
    /// GitHub's `x-ratelimit-reset` is epoch seconds; values below 1,000,000,000 (before
    /// September 2001) are read as delta seconds instead, as some other APIs send under that
    /// name. Malformed values are skipped (with a `tracing` debug event); the rest of the
    /// signal is still read.
    ///
    /// ```
    /// use riprap::classify::headers::{Quota, RateLimitSignal};
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// // GitHub, primary rate limit exhausted.
    /// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let get = |name: &str| match name {
    ///     "x-ratelimit-limit" => Some(&b"5000"[..]),
    ///     "x-ratelimit-remaining" => Some(&b"0"[..]),
    ///     "x-ratelimit-reset" => Some(&b"1700000120"[..]),
    ///     _ => None,
    /// };
    /// let signal = RateLimitSignal::from_lookup(get, now, Duration::from_secs(300));
    /// assert_eq!(
    ///     signal.requests,
    ///     Some(Quota { limit: Some(5000), remaining: Some(0), reset_after: Some(Duration::from_secs(120)) }),
    /// );
    /// assert_eq!(signal.pause(), Some(Duration::from_secs(120)));
    /// ```
    pub fn from_lookup<'a>(
        get: impl Fn(&str) -> Option<&'a [u8]>,
        now: SystemTime,
        ceiling: Duration,
    ) -> RateLimitSignal {
        Reader::new(|h: Header| get(h.name()), Now::At(now), ceiling).signal()
    }

    /// [`from_lookup`](Self::from_lookup) over an [`http::HeaderMap`].
    ///
    /// ```
    /// use http::HeaderMap;
    /// use riprap::classify::headers::{RateLimitSignal, MAX_SERVER_DELAY};
    /// use std::time::{Duration, SystemTime};
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("retry-after", "20".parse().unwrap());
    /// let signal = RateLimitSignal::from_headers(&headers, SystemTime::now(), MAX_SERVER_DELAY);
    /// assert_eq!(signal.pause(), Some(Duration::from_secs(20)));
    /// ```
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn from_headers(
        headers: &http::HeaderMap,
        now: SystemTime,
        ceiling: Duration,
    ) -> RateLimitSignal {
        // One pass over the map beats thirty hashed lookups of names it mostly lacks.
        let table = Table::from_headers(headers);
        Reader::new(|h| table.get(h), Now::At(now), ceiling).signal()
    }

    /// How long every caller must wait before the next request: the server's `retry_after`
    /// if it sent one, else the longest `reset_after` among quotas with nothing remaining,
    /// else `None`.
    ///
    /// ```
    /// use riprap::classify::headers::{Quota, RateLimitSignal};
    /// use std::time::Duration;
    ///
    /// let spent = Quota { limit: Some(60), remaining: Some(0), reset_after: Some(Duration::from_secs(12)) };
    /// let signal = RateLimitSignal { requests: Some(spent), ..Default::default() };
    /// assert_eq!(signal.pause(), Some(Duration::from_secs(12)));
    /// assert_eq!(RateLimitSignal::default().pause(), None);
    /// ```
    pub fn pause(&self) -> Option<Duration> {
        self.retry_after
            .or_else(|| exhausted_reset([self.requests, self.tokens]))
    }

    /// `true` if the headers said nothing about rate limits at all.
    ///
    /// ```
    /// assert!(riprap::classify::headers::RateLimitSignal::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == RateLimitSignal::default()
    }
}
