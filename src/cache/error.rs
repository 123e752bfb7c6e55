//! The error a cached call returns.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::classify::{Class, Classified};

/// Why a read through a [`CacheService`](super::CacheService) failed.
///
/// The loader's error is shared by every caller that waited on the same load, so it arrives
/// behind an `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use riprap::cache::CacheError;
/// use riprap::classify::{Class, Classified};
///
/// let err: CacheError<std::io::Error> =
///     CacheError::Load(Arc::new(std::io::ErrorKind::ConnectionReset.into()));
/// assert_eq!(err.class(), Class::Transient);
/// assert!(err.load_error().is_some());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CacheError<E> {
    /// The loader failed (this call's load, the one it joined, or a remembered permanent
    /// failure) and no stale entry could stand in.
    Load(Arc<E>),
    /// `max_in_flight` keys were already loading, so this miss was turned away rather than
    /// queued behind them.
    Overloaded,
    /// The task running the load ended without an answer: the loader panicked, the runtime
    /// shut down, or there was no tokio runtime to run it on.
    Abandoned,
}

impl<E> CacheError<E> {
    /// The loader's error, if that is what this is.
    pub fn load_error(&self) -> Option<&E> {
        match self {
            CacheError::Load(e) => Some(e),
            _ => None,
        }
    }
}

impl<E> Clone for CacheError<E> {
    fn clone(&self) -> Self {
        match self {
            CacheError::Load(e) => CacheError::Load(Arc::clone(e)),
            CacheError::Overloaded => CacheError::Overloaded,
            CacheError::Abandoned => CacheError::Abandoned,
        }
    }
}

impl<E: PartialEq> PartialEq for CacheError<E> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CacheError::Load(a), CacheError::Load(b)) => a == b,
            (CacheError::Overloaded, CacheError::Overloaded)
            | (CacheError::Abandoned, CacheError::Abandoned) => true,
            _ => false,
        }
    }
}

impl<E: fmt::Display> fmt::Display for CacheError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::Load(e) => write!(f, "cache load failed: {e}"),
            CacheError::Overloaded => f.write_str("cache overloaded: too many keys loading"),
            CacheError::Abandoned => f.write_str("cache load abandoned before it answered"),
        }
    }
}

impl<E: StdError + 'static> StdError for CacheError<E> {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CacheError::Load(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A load error keeps the loader's verdict; an overloaded cache asks the caller to slow down
/// (it is not the dependency's fault); an abandoned load may succeed when tried again.
impl<E: Classified> Classified for CacheError<E> {
    fn class(&self) -> Class {
        match self {
            CacheError::Load(e) => e.class(),
            CacheError::Overloaded => Class::Throttled { retry_after: None },
            CacheError::Abandoned => Class::Transient,
        }
    }
}
