//! What a response says about rate limits, and what a request costs.

use crate::classify::headers::RateLimitSignal;
use crate::classify::{Class, Classify};

/// Reads a server's rate-limit signal (`Retry-After`, remaining quota and reset) from a
/// response.
///
/// Implemented for closures `Fn(&Res) -> Option<RateLimitSignal>` and for [`NoSignal`]; with
/// the `http` feature, `HeaderSignal` reads `http::Response` headers
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

/// Reads nothing: no header signal, and as a classifier, `Ok` is a success and `Err` is
/// transient (which the limiter ignores). The layer's default for both.
///
/// ```
/// use riprap::classify::{Class, Classify};
/// use riprap::ratelimit::{NoSignal, ReadSignal};
///
/// assert_eq!(ReadSignal::<u16>::signal(&NoSignal, &429), None);
/// assert_eq!(Classify::<u16, ()>::classify(&NoSignal, Ok(&429)), Class::Success);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSignal;

impl<Res> ReadSignal<Res> for NoSignal {
    fn signal(&self, _: &Res) -> Option<RateLimitSignal> {
        None
    }
}

impl<Res, Err> Classify<Res, Err> for NoSignal {
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class {
        match outcome {
            Ok(_) => Class::Success,
            Err(_) => Class::Transient,
        }
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
