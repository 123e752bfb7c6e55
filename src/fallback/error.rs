//! The error of a [`Fallback`](super::Fallback) service.

use std::fmt;

use crate::classify::{Class, Classified};

/// What failed: the primary service (and the failure did not call for the fallback, or the
/// request could not be copied), or the fallback after the primary failed.
///
/// It classifies by the error it holds, so a retry layer above retries a fallback's
/// transient failure and gives up on a permanent one.
///
/// ```
/// use riprap::classify::{Class, Classified};
/// use riprap::fallback::FallbackError;
/// use std::io::{Error, ErrorKind};
///
/// let err: FallbackError<Error, Error> = FallbackError::Fallback(Error::from(ErrorKind::TimedOut));
/// assert_eq!(err.class(), Class::TimedOut);
/// assert!(err.fell_back());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackError<P, F> {
    /// The primary's error; the fallback was not called.
    Primary(P),
    /// The fallback's error, after the primary failed.
    Fallback(F),
}

impl<P, F> FallbackError<P, F> {
    /// Whether the fallback was called (and failed).
    pub fn fell_back(&self) -> bool {
        matches!(self, FallbackError::Fallback(_))
    }

    /// The primary's error, if the fallback was not called.
    pub fn primary(&self) -> Option<&P> {
        match self {
            FallbackError::Primary(e) => Some(e),
            FallbackError::Fallback(_) => None,
        }
    }

    /// The fallback's error, if it was called and failed.
    pub fn fallback(&self) -> Option<&F> {
        match self {
            FallbackError::Fallback(e) => Some(e),
            FallbackError::Primary(_) => None,
        }
    }
}

impl<P: fmt::Display, F: fmt::Display> fmt::Display for FallbackError<P, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FallbackError::Primary(e) => e.fmt(f),
            FallbackError::Fallback(e) => write!(f, "fallback failed too: {e}"),
        }
    }
}

impl<P, F> std::error::Error for FallbackError<P, F>
where
    P: std::error::Error + 'static,
    F: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FallbackError::Primary(e) => Some(e),
            FallbackError::Fallback(e) => Some(e),
        }
    }
}

impl<P: Classified, F: Classified> Classified for FallbackError<P, F> {
    fn class(&self) -> Class {
        match self {
            FallbackError::Primary(e) => e.class(),
            FallbackError::Fallback(e) => e.class(),
        }
    }
}
