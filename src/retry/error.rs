//! Why a retrying request gave up.

use std::error::Error as StdError;
use std::fmt;

use crate::classify::{Class, Classified};

/// Why the retry layer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GiveUp {
    /// The classifier said no retry can help (or called the error a success).
    Permanent,
    /// Every attempt allowed by `max_attempts` was made.
    AttemptsExhausted,
    /// The backoff schedule ran out (its own `max_retries` or `max_elapsed`).
    BackoffExhausted,
    /// The shared retry budget refused to pay for another attempt.
    BudgetRefused,
    /// The next attempt could not start before the request's deadline.
    Deadline,
    /// The request cannot be sent twice: the clone policy declined to copy it (a streaming
    /// body, or a non-idempotent method without an `Idempotency-Key`).
    NotRetryable,
    /// The inner service failed while getting ready for an attempt.
    NotReady,
}

impl GiveUp {
    /// A short snake_case name for logs and metrics labels.
    ///
    /// ```
    /// assert_eq!(riprap::retry::GiveUp::BudgetRefused.as_str(), "budget_refused");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            GiveUp::Permanent => "permanent",
            GiveUp::AttemptsExhausted => "attempts_exhausted",
            GiveUp::BackoffExhausted => "backoff_exhausted",
            GiveUp::BudgetRefused => "budget_refused",
            GiveUp::Deadline => "deadline",
            GiveUp::NotRetryable => "not_retryable",
            GiveUp::NotReady => "not_ready",
        }
    }
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::Permanent => "the error is permanent",
            GiveUp::AttemptsExhausted => "attempts exhausted",
            GiveUp::BackoffExhausted => "backoff schedule exhausted",
            GiveUp::BudgetRefused => "retry budget refused another attempt",
            GiveUp::Deadline => "the next attempt would start past the deadline",
            GiveUp::NotRetryable => "the request cannot be replayed",
            GiveUp::NotReady => "the inner service failed to get ready",
        })
    }
}

/// The error of a [`Retry`](super::Retry) service: the last attempt's error, why the layer gave
/// up, and how many attempts it made.
///
/// Only errors end here: when the last attempt returned `Ok` with a failing class (an HTTP 503
/// response, say), the caller gets that response as `Ok`, as from `tower::retry`.
///
/// ```
/// use riprap::retry::{GiveUp, RetryError};
/// # fn handle(err: RetryError<std::io::Error>) {
/// match err.reason() {
///     GiveUp::BudgetRefused => eprintln!("shedding load after {} attempts", err.attempts()),
///     _ => eprintln!("failed: {}", err.into_inner()),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryError<E> {
    reason: GiveUp,
    attempts: u32,
    inner: E,
}

impl<E> RetryError<E> {
    pub(crate) fn new(reason: GiveUp, attempts: u32, inner: E) -> Self {
        RetryError {
            reason,
            attempts,
            inner,
        }
    }

    /// Why the layer stopped.
    pub fn reason(&self) -> GiveUp {
        self.reason
    }

    /// How many attempts were sent (0 if the service failed before the first).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's error.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The last attempt's error, by value.
    pub fn into_inner(self) -> E {
        self.inner
    }
}

impl<E> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            "gave up after {} attempt{s}: {}",
            self.attempts, self.reason
        )
    }
}

impl<E: StdError + 'static> StdError for RetryError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.inner)
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl<E: Into<BoxError>> RetryError<E> {
    /// This error as a `Box<dyn Error + Send + Sync>`, for tower stacks whose layers box
    /// their errors. A boxed inner error is not itself an `Error`, so `RetryError<BoxError>`
    /// is not one either; this wraps the inner error in [`Boxed`] first.
    ///
    /// ```
    /// use riprap::retry::{Boxed, RetryError};
    /// # fn f(err: RetryError<Box<dyn std::error::Error + Send + Sync>>) {
    /// let boxed = err.into_box_error();
    /// assert!(boxed.downcast_ref::<RetryError<Boxed>>().is_some());
    /// # }
    /// ```
    pub fn into_box_error(self) -> BoxError {
        Box::new(RetryError {
            reason: self.reason,
            attempts: self.attempts,
            inner: Boxed(self.inner.into()),
        })
    }
}

/// A boxed error that is itself an `Error`, so it can sit inside a [`RetryError`] that is one;
/// see [`RetryError::into_box_error`].
#[derive(Debug)]
pub struct Boxed(pub BoxError);

impl fmt::Display for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for Boxed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// Always [`Class::Permanent`]: this request has already been retried as far as its policy and
/// budget allow, and a layer above that retried it again would multiply the load, which is the
/// 64× of three stacked layers. A breaker belongs below the retry layer, where it sees each
/// attempt.
impl<E> Classified for RetryError<E> {
    fn class(&self) -> Class {
        Class::Permanent
    }
}

/// The verdict on riprap's retry errors met in a boxed error's source chain.
pub(crate) fn known_class(err: &(dyn StdError + 'static)) -> Option<Class> {
    let found = err.is::<RetryError<Boxed>>() || err.is::<RetryError<std::io::Error>>();
    found.then_some(Class::Permanent)
}
