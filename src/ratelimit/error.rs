//! Why a request was not let through.

use std::fmt;
use std::time::Duration;

use crate::classify::{Class, Classified, LayerError};

/// What held a request back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitedBy {
    /// A local quota (requests or cost per window).
    Quota,
    /// The server: its gate is closed (a 429, `Retry-After`, a quota at zero) or its
    /// remaining quota is being paced until its reset.
    Server,
    /// The adaptive rate, cut after recent throttles.
    Adaptive,
}

impl LimitedBy {
    /// A short lowercase name for logs and metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            LimitedBy::Quota => "quota",
            LimitedBy::Server => "server",
            LimitedBy::Adaptive => "adaptive",
        }
    }
}

/// A request the rate limiter did not let through.
///
/// The layer's service returns it inside [`RateLimitedError::Limited`]; a boxed error chain
/// can be searched for it:
///
/// ```
/// use riprap::ratelimit::{LimitedBy, RateLimitError};
///
/// let err: tower::BoxError = Box::new(RateLimitError::CostExceedsBurst { cost: 9_000, burst: 8_000 });
/// match err.downcast_ref::<RateLimitError>() {
///     Some(RateLimitError::Limited { by: LimitedBy::Server, .. }) => { /* the server paused us */ }
///     Some(RateLimitError::CostExceedsBurst { cost, .. }) => assert_eq!(*cost, 9_000),
///     _ => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitError {
    /// Capacity would come later than the configured maximum wait (at once when the limiter
    /// rejects instead of waiting).
    Limited {
        /// What held it back.
        by: LimitedBy,
        /// When capacity is expected, if known.
        retry_after: Option<Duration>,
    },
    /// The request costs more than the cost quota's burst, so it could never pass.
    CostExceedsBurst {
        /// The request's cost.
        cost: u32,
        /// The most the quota lets through at once.
        burst: u32,
    },
}

impl fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitError::Limited {
                by,
                retry_after: Some(d),
            } => write!(f, "rate limited by the {} (retry after {d:?})", by.as_str()),
            RateLimitError::Limited {
                by,
                retry_after: None,
            } => {
                write!(f, "rate limited by the {}", by.as_str())
            }
            RateLimitError::CostExceedsBurst { cost, burst } => write!(
                f,
                "request cost {cost} exceeds the quota's burst of {burst}: it can never pass"
            ),
        }
    }
}

impl std::error::Error for RateLimitError {
    // Boxed-chain classification asks every link for its description before it looks the
    // link's type up, so an error made by hand (not by a limiter, which registers it when it
    // is built) is recognised too.
    fn description(&self) -> &str {
        register();
        "rate limited"
    }
}

/// A request the limiter held back is a local refusal with a known delay (even when the
/// server's signal closed the gate, it is the caller's own limiter that refused, and the
/// server never saw the request); an oversized request is permanent.
impl Classified for RateLimitError {
    fn class(&self) -> Class {
        match self {
            RateLimitError::Limited { retry_after, .. } => Class::Refused {
                retry_after: *retry_after,
            },
            RateLimitError::CostExceedsBurst { .. } => Class::Permanent,
        }
    }
}

/// Teach boxed-chain classification about [`RateLimitError`], once per process.
pub(crate) fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::classify::recognize::<RateLimitError>();
    });
}

/// The error of a [`RateLimit`](super::RateLimit) service: the limiter held the request back,
/// or the inner service failed.
///
/// ```
/// use riprap::ratelimit::{RateLimitError, RateLimitedError};
/// use riprap::classify::{Class, Classified};
///
/// let err: RateLimitedError<std::io::Error> =
///     RateLimitedError::Limited(RateLimitError::CostExceedsBurst { cost: 9_000, burst: 8_000 });
/// assert_eq!(err.class(), Class::Permanent);
/// assert!(err.limited().is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitedError<E> {
    /// The limiter did not let the request through; the inner service was not called.
    Limited(RateLimitError),
    /// The inner service's own error.
    Inner(E),
}

impl<E> RateLimitedError<E> {
    /// Why the limiter held the request back, if it did.
    pub fn limited(&self) -> Option<RateLimitError> {
        match self {
            RateLimitedError::Limited(e) => Some(*e),
            RateLimitedError::Inner(_) => None,
        }
    }

    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            RateLimitedError::Inner(e) => Some(e),
            RateLimitedError::Limited(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for RateLimitedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateLimitedError::Limited(e) => e.fmt(f),
            RateLimitedError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RateLimitedError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RateLimitedError::Limited(e) => Some(e),
            RateLimitedError::Inner(e) => Some(e),
        }
    }
}

impl<E: Classified> Classified for RateLimitedError<E> {
    fn class(&self) -> Class {
        match self {
            RateLimitedError::Limited(e) => e.class(),
            RateLimitedError::Inner(e) => e.class(),
        }
    }
}

/// A refusal's verdict is the limiter's own; anything else is the inner service's.
impl<E> LayerError for RateLimitedError<E> {
    type Inner = E;

    fn layer_class(&self) -> Result<&E, Class> {
        match self {
            RateLimitedError::Inner(e) => Ok(e),
            RateLimitedError::Limited(l) => Err(l.class()),
        }
    }
}
