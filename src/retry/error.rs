//! Why a retrying request gave up.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::GiveUp;
use crate::classify::{Class, Classified, LayerError, marker};

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
    retry_at: Option<Instant>,
    // The classifier's verdict on the last attempt's error.
    class: Class,
    inner: E,
}

impl<E> RetryError<E> {
    pub(crate) fn new(reason: GiveUp, attempts: u32, inner: E) -> Self {
        RetryError {
            reason,
            attempts,
            retry_at: None,
            class: Class::Transient,
            inner,
        }
    }

    pub(crate) fn with_class(mut self, class: Class) -> Self {
        self.class = class;
        self
    }

    /// The classifier's verdict on the last attempt's error: what the failure was, as opposed
    /// to what this error is to a layer above ([`Class::Permanent`]: already retried).
    pub fn last_class(&self) -> Class {
        self.class
    }

    pub(crate) fn retrying_at(mut self, retry_at: Option<Instant>) -> Self {
        self.retry_at = retry_at;
        self
    }

    /// Why the layer stopped.
    pub fn reason(&self) -> GiveUp {
        self.reason
    }

    /// When the server (or an open breaker) said it will take calls again, if the last
    /// failure said. With [`GiveUp::WaitTooLong`] this is the instant the layer would not wait
    /// for: come back then, not sooner.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// How long from now until [`retry_at`](Self::retry_at), if known (zero once it passed).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_at
            .map(|at| at.saturating_duration_since(Instant::now()))
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

    // How a boxed chain recognises a give-up whatever `E` is: `ByError` reads this marker
    // and classifies the chain as final instead of retrying it again.
    fn description(&self) -> &str {
        marker::GAVE_UP
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
            retry_at: self.retry_at,
            class: self.class,
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
/// attempt. Boxed, it classifies the same way whatever `E` is.
impl<E> Classified for RetryError<E> {
    fn class(&self) -> Class {
        Class::Permanent
    }
}

/// A retry layer that gave up has already spent its attempts: to anything above it the
/// failure is final, whatever the last attempt's error was.
impl<E> LayerError for RetryError<E> {
    type Inner = E;

    fn layer_class(&self) -> Result<&E, Class> {
        Err(Class::Permanent)
    }
}
