//! How a request is copied for another attempt.

/// Makes the copy of a request that a retry sends.
///
/// riprap ships [`ByClone`] (the default, for requests that are `Clone`),
/// `TryClone` (feature `reqwest`: `reqwest::Request::try_clone`, declining a streamed body),
/// and `IdempotentOnly` (feature `http`: only methods that are safe to send twice).
///
/// Called once before the first attempt (the copy is kept for the retries) and once per retry
/// after that, except the last. Return `None` when the request cannot be sent again: the layer
/// then makes a single attempt and gives up with
/// [`GiveUp::NotRetryable`](crate::retry::GiveUp::NotRetryable) if it fails.
///
/// Requests with streaming bodies are the reason this is a policy: buffer the body into bytes
/// when it is small enough, and decline when it is not.
///
/// ```
/// use riprap::retry::CloneRequest;
///
/// /// A request whose body is read once from a stream; small bodies were buffered upstream.
/// struct Upload { buffered: Option<Vec<u8>> }
///
/// struct ReplayBuffered;
///
/// impl CloneRequest<Upload> for ReplayBuffered {
///     fn clone_request(&self, req: &Upload) -> Option<Upload> {
///         req.buffered.clone().map(|b| Upload { buffered: Some(b) })
///     }
/// }
///
/// assert!(ReplayBuffered.clone_request(&Upload { buffered: None }).is_none());
/// ```
#[diagnostic::on_unimplemented(
    message = "riprap cannot copy a `{Req}` to send it again with `{Self}`",
    label = "this request type needs a copy policy for retries",
    note = "a request that is not `Clone` needs its own copy policy: for `reqwest::Request` use `riprap::retry::TryClone` (feature `reqwest`) with `.clone_requests(TryClone)`, or implement `riprap::retry::CloneRequest` for yours"
)]
pub trait CloneRequest<Req> {
    /// A copy of `req` to send again, or `None` if it cannot be sent again.
    fn clone_request(&self, req: &Req) -> Option<Req>;
}

/// Copies requests with their `Clone` impl. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByClone;

// Not recommended in errors, so that a request that is not `Clone` reports the missing copy
// policy (and the ones that exist) rather than a missing `Clone`.
#[diagnostic::do_not_recommend]
impl<Req: Clone> CloneRequest<Req> for ByClone {
    #[inline]
    fn clone_request(&self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

impl<Req, F> CloneRequest<Req> for F
where
    F: Fn(&Req) -> Option<Req>,
{
    fn clone_request(&self, req: &Req) -> Option<Req> {
        self(req)
    }
}

/// Copies a `reqwest::Request` with its `try_clone`, which declines a request whose body is a
/// stream: such a request is sent once, never retried, and the give-up says so
/// ([`GiveUp::NotRetryable`](crate::retry::GiveUp::NotRetryable)).
///
/// `reqwest::Request` is not `Clone`, so the default [`ByClone`] cannot copy it; give this to
/// the retry config or the stack with `.clone_requests(TryClone)`.
///
/// ```
/// use riprap::retry::{CloneRequest, TryClone};
///
/// let client = reqwest::Client::new();
/// let buffered = client.post("http://localhost/v1/chat").body("{}").build().unwrap();
/// assert!(TryClone.clone_request(&buffered).is_some());
/// ```
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct TryClone;

#[cfg(feature = "reqwest")]
impl CloneRequest<reqwest::Request> for TryClone {
    #[inline]
    fn clone_request(&self, req: &reqwest::Request) -> Option<reqwest::Request> {
        req.try_clone()
    }
}

#[cfg(feature = "http")]
pub use self::http_guard::{AssumeIdempotent, IdempotentOnly};

#[cfg(feature = "http")]
mod http_guard {
    use super::{ByClone, CloneRequest};

    /// Retries an `http::Request` only when sending it twice is safe: its method is idempotent
    /// (GET, HEAD, PUT, DELETE, OPTIONS, TRACE), it carries an `Idempotency-Key` header, or it
    /// was marked with [`AssumeIdempotent`]. Copies are made by the wrapped policy
    /// ([`ByClone`] unless given another).
    ///
    /// A POST that timed out may have been processed; sending it again may charge a card twice.
    /// Servers that deduplicate by `Idempotency-Key` make the retry safe, so the key opens the
    /// guard.
    ///
    /// ```
    /// use riprap::retry::{AssumeIdempotent, CloneRequest, IdempotentOnly};
    ///
    /// let guard = IdempotentOnly::new();
    /// let get = http::Request::get("/v1/models").body(String::new()).unwrap();
    /// let post = http::Request::post("/v1/charges").body(String::new()).unwrap();
    /// let keyed = http::Request::post("/v1/charges")
    ///     .header("idempotency-key", "a1b2")
    ///     .body(String::new())
    ///     .unwrap();
    /// let mut marked = http::Request::post("/v1/chat").body(String::new()).unwrap();
    /// marked.extensions_mut().insert(AssumeIdempotent);
    ///
    /// assert!(guard.clone_request(&get).is_some());
    /// assert!(guard.clone_request(&post).is_none());
    /// assert!(guard.clone_request(&keyed).is_some());
    /// assert!(guard.clone_request(&marked).is_some());
    /// ```
    #[derive(Debug, Clone, Copy, Default)]
    pub struct IdempotentOnly<R = ByClone> {
        copy: R,
    }

    impl IdempotentOnly {
        /// The guard over [`ByClone`].
        pub fn new() -> Self {
            IdempotentOnly { copy: ByClone }
        }
    }

    impl<R> IdempotentOnly<R> {
        /// The guard over another copy policy, such as one that re-buffers bodies.
        pub fn with(copy: R) -> Self {
            IdempotentOnly { copy }
        }
    }

    /// A request extension by which the caller vouches that the request is safe to send twice
    /// whatever its method (an LLM completion POST, say).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct AssumeIdempotent;

    impl<B, R> CloneRequest<http::Request<B>> for IdempotentOnly<R>
    where
        R: CloneRequest<http::Request<B>>,
    {
        fn clone_request(&self, req: &http::Request<B>) -> Option<http::Request<B>> {
            let safe = req.method().is_idempotent()
                || req.headers().contains_key("idempotency-key")
                || req.extensions().get::<AssumeIdempotent>().is_some();
            if safe {
                self.copy.clone_request(req)
            } else {
                None
            }
        }
    }
}
