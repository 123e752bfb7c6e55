//! What a response says about rate limits, and what a request costs.

#[cfg(feature = "http")]
use std::time::SystemTime;

use crate::classify::headers::RateLimitSignal;

/// Reads a server's rate-limit signal (`Retry-After`, remaining quota and reset) from a
/// response.
///
/// Implemented for closures `Fn(&Res) -> Option<RateLimitSignal>` and for [`NoSignal`]; with
/// the `http` feature, [`HeaderSignal`] reads `http::Response` headers
/// (and, with `reqwest`, `reqwest::Response` headers).
///
/// ```
/// use std::time::Duration;
/// use riprap::classify::headers::RateLimitSignal;
/// use riprap::ratelimit::ReadSignal;
///
/// struct Reply { wait_secs: Option<u64> }
///
/// let read = |r: &Reply| {
///     r.wait_secs.map(|s| RateLimitSignal { retry_after: Some(Duration::from_secs(s)), ..Default::default() })
/// };
/// assert_eq!(read.signal(&Reply { wait_secs: Some(3) }).unwrap().retry_after, Some(Duration::from_secs(3)));
/// ```
///
// Without the feature, the link goes to the table of Cargo features.
#[cfg_attr(not(feature = "http"), doc = "[`HeaderSignal`]: crate#cargo-features")]
pub trait ReadSignal<Res> {
    /// The signal `response` carries, if any.
    fn signal(&self, response: &Res) -> Option<RateLimitSignal>;
}

impl<Res, F> ReadSignal<Res> for F
where
    F: Fn(&Res) -> Option<RateLimitSignal>,
{
    fn signal(&self, response: &Res) -> Option<RateLimitSignal> {
        self(response)
    }
}

/// Reads no header signal. The layer's default.
///
/// ```
/// use riprap::ratelimit::{NoSignal, ReadSignal};
///
/// assert_eq!(ReadSignal::<u16>::signal(&NoSignal, &429), None);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSignal;

impl<Res> ReadSignal<Res> for NoSignal {
    fn signal(&self, _: &Res) -> Option<RateLimitSignal> {
        None
    }
}

/// Reads the server's signal from response headers: `Retry-After` and `retry-after-ms`, and
/// the OpenAI, Anthropic, GitHub and IETF rate-limit headers (see
/// [`headers`](crate::classify::headers)).
///
/// Implemented for `http::Response` and, with the `reqwest` feature, `reqwest::Response`.
///
/// ```
/// use std::time::Duration;
/// use riprap::ratelimit::{HeaderSignal, ReadSignal};
///
/// let res = http::Response::builder()
///     .status(200)
///     .header("x-ratelimit-remaining-requests", "0")
///     .header("x-ratelimit-reset-requests", "6s")
///     .body(())
///     .unwrap();
/// let signal = HeaderSignal::new().signal(&res).unwrap();
/// assert_eq!(signal.pause(), Some(Duration::from_secs(6)));
/// ```
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[derive(Debug, Clone, Copy)]
pub struct HeaderSignal {
    _private: (),
}

#[cfg(feature = "http")]
impl HeaderSignal {
    /// Read every dialect of rate-limit header riprap knows.
    pub fn new() -> Self {
        HeaderSignal { _private: () }
    }

    /// The signal in `headers`, if they carry any.
    pub fn read(&self, headers: &http::HeaderMap) -> Option<RateLimitSignal> {
        if headers.is_empty() {
            return None;
        }
        let signal = RateLimitSignal::from_headers(
            headers,
            SystemTime::now(),
            crate::classify::headers::MAX_SERVER_DELAY,
        );
        (!signal.is_empty()).then_some(signal)
    }
}

#[cfg(feature = "http")]
impl Default for HeaderSignal {
    fn default() -> Self {
        HeaderSignal::new()
    }
}

#[cfg(feature = "http")]
impl<B> ReadSignal<http::Response<B>> for HeaderSignal {
    fn signal(&self, response: &http::Response<B>) -> Option<RateLimitSignal> {
        self.read(response.headers())
    }
}

#[cfg(feature = "reqwest")]
impl ReadSignal<reqwest::Response> for HeaderSignal {
    fn signal(&self, response: &reqwest::Response) -> Option<RateLimitSignal> {
        self.read(response.headers())
    }
}

/// What a request spends from the cost quota (LLM tokens, bytes, query weight).
///
/// Implemented for closures `Fn(&Req) -> u32` and for [`UnitCost`]. A cost of zero passes
/// the cost quota untouched; a cost above its burst fails with
/// [`RateLimitError::CostExceedsBurst`](super::RateLimitError::CostExceedsBurst).
///
/// ```
/// use riprap::ratelimit::Cost;
///
/// struct Chat { prompt: String, max_tokens: u32 }
///
/// // Roughly four characters a token, plus the completion the request may produce.
/// let tokens = |c: &Chat| (c.prompt.len() as u32).div_ceil(4) + c.max_tokens;
/// assert_eq!(tokens.cost(&Chat { prompt: "Hello there!".into(), max_tokens: 100 }), 103);
/// ```
pub trait Cost<Req> {
    /// The units `request` spends.
    fn cost(&self, request: &Req) -> u32;
}

impl<Req, F> Cost<Req> for F
where
    F: Fn(&Req) -> u32,
{
    fn cost(&self, request: &Req) -> u32 {
        self(request)
    }
}

/// Every request costs one unit. The layer's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnitCost;

impl<Req> Cost<Req> for UnitCost {
    fn cost(&self, _: &Req) -> u32 {
        1
    }
}
