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
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot read a rate-limit signal from a `{Res}`",
    label = "not a signal reader for this response type",
    note = "use `riprap::ratelimit::HeaderSignal` for `http::Response` or `reqwest::Response` (features `http`, `reqwest`), `NoSignal` to read none, or a closure `|res: &{Res}| -> Option<RateLimitSignal>`"
)]
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
#[derive(Clone)]
pub struct HeaderSignal {
    clock: Option<std::sync::Arc<dyn Fn() -> SystemTime + Send + Sync>>,
}

#[cfg(feature = "http")]
impl std::fmt::Debug for HeaderSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderSignal")
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

#[cfg(feature = "http")]
impl HeaderSignal {
    /// Read every dialect of rate-limit header riprap knows.
    pub fn new() -> Self {
        HeaderSignal { clock: None }
    }

    /// Read "now" from `clock` instead of the system clock, for headers that name an instant
    /// (an HTTP-date `Retry-After`, an epoch or RFC 3339 reset), so that a test or a replay
    /// reads the same signal every time.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use riprap::ratelimit::{HeaderSignal, ReadSignal};
    ///
    /// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let res = http::Response::builder()
    ///     .header("x-ratelimit-remaining", "0")
    ///     .header("x-ratelimit-reset", "1700000060") // GitHub: an epoch second
    ///     .body(())
    ///     .unwrap();
    /// let signal = HeaderSignal::new().clock(move || now).signal(&res).unwrap();
    /// assert_eq!(signal.pause(), Some(Duration::from_secs(60)));
    /// ```
    pub fn clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        HeaderSignal {
            clock: Some(std::sync::Arc::new(clock)),
        }
    }

    /// The signal in `headers`, if they carry any.
    pub fn read(&self, headers: &http::HeaderMap) -> Option<RateLimitSignal> {
        if headers.is_empty() {
            return None;
        }
        let now = self
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock());
        let signal =
            RateLimitSignal::from_headers(headers, now, crate::classify::headers::MAX_SERVER_DELAY);
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
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot price a `{Req}` against the cost quota",
    label = "not a cost function for this request type",
    note = "use `riprap::ratelimit::UnitCost`, or a closure `|req: &{Req}| -> u32` (its estimated tokens, bytes, weight)"
)]
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
