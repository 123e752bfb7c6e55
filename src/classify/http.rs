//! Classifying `http::Response`s by status code and rate-limit headers.

use http::{HeaderMap, Response, StatusCode};
use std::sync::Arc;
use std::time::SystemTime;

use super::headers::{MAX_SERVER_DELAY, Now, Reader, Table};
use super::{Class, Classified, ClassifierExt, Classify};

/// Classifies `http::Response`s by status code, reading `Retry-After` and the rate-limit
/// headers of [`headers`](super::headers) where the verdict depends on them.
///
/// An `Err` outcome (the transport failed, no response) is classified by the error's own
/// [`Classified`] impl. An `Ok` response is classified by these defaults:
///
/// | status | class |
/// |---|---|
/// | 1xx, 2xx, 3xx | success |
/// | 408 Request Timeout, 425 Too Early | transient |
/// | 429 Too Many Requests | throttled, `retry_after` = [`RateLimitSignal::pause`] |
/// | 403 Forbidden with `Retry-After` or an exhausted quota (GitHub's rate limits) | throttled, as 429 |
/// | 503 Service Unavailable with `Retry-After` | throttled, with that delay (RFC 9110: the server said when to come back) |
/// | 500, 502, 503, 504 and unknown 5xx | transient |
/// | 501 Not Implemented, 505 HTTP Version Not Supported, 511 Network Authentication Required | permanent |
/// | other 4xx | permanent |
/// | 600–999 (not HTTP) | permanent |
///
/// The server may overrule these with `x-should-retry` (OpenAI, Anthropic): `false` makes any
/// failure permanent; `true` makes a failure that would be permanent transient (429 stays
/// throttled). Per-status overrides set with [`status`](HttpStatus::status) win over
/// everything; an override to `Throttled { retry_after: None }` gets the server's delay filled
/// in from the headers.
///
/// Delays are read as the server gave them, bounded only by [`MAX_SERVER_DELAY`]; how long to
/// wait is the retry layer's decision. Success statuses read no headers, and the wall clock is read only when a delay is an
/// HTTP-date, an epoch or an RFC 3339 timestamp. Cloning is cheap: overrides are shared.
///
/// [`RateLimitSignal::pause`]: super::headers::RateLimitSignal::pause
///
/// ```
/// use http::Response;
/// use riprap::classify::{Class, Classify, HttpStatus};
/// use std::io;
/// use std::time::Duration;
///
/// let classifier = HttpStatus::new().status(404, Class::Transient);
/// let check = |res: Response<()>| classifier.classify(Ok::<_, &io::Error>(&res));
///
/// let throttled = Response::builder().status(429).header("retry-after", "20").body(()).unwrap();
/// assert_eq!(check(throttled), Class::Throttled { retry_after: Some(Duration::from_secs(20)) });
/// assert_eq!(check(Response::builder().status(502).body(()).unwrap()), Class::Transient);
/// assert_eq!(check(Response::builder().status(400).body(()).unwrap()), Class::Permanent);
/// assert_eq!(check(Response::builder().status(404).body(()).unwrap()), Class::Transient);
///
/// let reset = io::Error::from(io::ErrorKind::ConnectionReset);
/// assert_eq!(classifier.classify(Err::<&Response<()>, _>(&reset)), Class::Transient);
/// ```
#[derive(Clone)]
pub struct HttpStatus {
    overrides: Arc<[(u16, Class)]>,
    clock: Option<WallClock>,
}

/// A source of "now" for the headers that name an instant (an HTTP-date `Retry-After`, an
/// epoch or RFC 3339 reset).
type WallClock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

impl std::fmt::Debug for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStatus")
            .field("overrides", &self.overrides)
            .field("clock", &self.clock.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl Default for HttpStatus {
    fn default() -> Self {
        HttpStatus::new()
    }
}

impl HttpStatus {
    /// The default classification described above.
    pub fn new() -> Self {
        HttpStatus {
            overrides: Arc::new([]),
            clock: None,
        }
    }

    /// Read "now" from `clock` instead of the system clock, for headers that name an instant
    /// (`Retry-After: <HTTP-date>`, GitHub's epoch reset, Anthropic's RFC 3339 reset), so that a
    /// test or a replay classifies the same way every time.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use riprap::classify::{Class, Classify, HttpStatus};
    ///
    /// // 2023-11-14 22:13:20 UTC, and a server asking to come back 30 s later.
    /// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let classifier = HttpStatus::new().clock(move || now);
    /// let res = http::Response::builder()
    ///     .status(429)
    ///     .header("retry-after", "Tue, 14 Nov 2023 22:13:50 GMT")
    ///     .body(())
    ///     .unwrap();
    /// assert_eq!(
    ///     classifier.classify(Ok::<_, &std::io::Error>(&res)),
    ///     Class::Throttled { retry_after: Some(Duration::from_secs(30)) },
    /// );
    /// ```
    pub fn clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        HttpStatus {
            clock: Some(Arc::new(clock)),
            ..self
        }
    }

    /// Classify responses with status `code` as `class`, whatever the defaults and headers say.
    /// Setting the same code again replaces the earlier override.
    ///
    /// ```
    /// use riprap::classify::{Class, HttpStatus};
    ///
    /// // An eventually consistent store: a fresh object may 404 for a moment.
    /// let classifier = HttpStatus::new().status(404, Class::Transient);
    /// # let _ = classifier;
    /// ```
    pub fn status(self, code: u16, class: Class) -> Self {
        let overrides: Arc<[(u16, Class)]> = self
            .overrides
            .iter()
            .filter(|(c, _)| *c != code)
            .copied()
            .chain([(code, class)])
            .collect();
        HttpStatus { overrides, ..self }
    }

    /// The verdict on a response with `status` and `headers`, for clients whose response type
    /// is not an `http::Response` but exposes both.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use riprap::classify::{Class, HttpStatus};
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-should-retry", "false".parse().unwrap());
    /// let class = HttpStatus::new().classify_parts(StatusCode::SERVICE_UNAVAILABLE, &headers);
    /// assert_eq!(class, Class::Permanent);
    /// ```
    pub fn classify_parts(&self, status: StatusCode, headers: &HeaderMap) -> Class {
        let code = status.as_u16();
        let overridden = self
            .overrides
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, c)| *c);
        if code < 400 && overridden.is_none() {
            return Class::Success;
        }
        let table = Table::from_headers(headers);
        let now = match &self.clock {
            Some(clock) => Now::At(clock()),
            None => Now::wall(),
        };
        let headers = Reader::new(|h| table.get(h), now, MAX_SERVER_DELAY);
        match overridden {
            Some(Class::Throttled { retry_after: None }) => {
                return Class::Throttled {
                    retry_after: headers.pause(),
                };
            }
            Some(class) => return class,
            None => {}
        }

        let should_retry = headers.should_retry();
        if should_retry == Some(false) {
            return Class::Permanent;
        }
        let throttled = || Class::Throttled {
            retry_after: headers.pause(),
        };
        let permanent_unless_told = if should_retry == Some(true) {
            Class::Transient
        } else {
            Class::Permanent
        };
        match code {
            429 => throttled(),
            403 if headers.retry_after().is_some() || headers.exhausted() => throttled(),
            408 | 425 => Class::Transient,
            503 => match headers.retry_after() {
                Some(delay) => Class::Throttled {
                    retry_after: Some(delay),
                },
                None => Class::Transient,
            },
            501 | 505 | 511 => permanent_unless_told,
            500..=599 => Class::Transient,
            _ => permanent_unless_told,
        }
    }
}

impl<B, E: Classified> Classify<Response<B>, E> for HttpStatus {
    fn classify(&self, outcome: Result<&Response<B>, &E>) -> Class {
        match outcome {
            Ok(res) => self.classify_parts(res.status(), res.headers()),
            Err(e) => e.class(),
        }
    }
}

impl ClassifierExt for HttpStatus {}
