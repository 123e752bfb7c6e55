//! What a caller gets back when the bulkhead turns a call away, or the inner service fails.

use std::fmt;
use std::time::Duration;

use crate::classify::{Class, Classified, LayerError};

/// Why a bulkhead turned a call away without calling the inner service.
///
/// Every rejection is a local refusal, [`Class::Refused`]: the server never saw the call,
/// the caller's own bulkhead declined to send it, so a budget does not mistake it for the
/// server's throttle and a breaker does not count it against the dependency. It names no
/// time to come back: capacity returns when calls in flight finish.
///
/// ```
/// use riprap::bulkhead::Rejected;
/// use riprap::classify::{Class, Classified};
///
/// assert_eq!(Rejected::Full.class(), Class::Refused { retry_after: None });
/// assert_eq!(Rejected::Full.as_str(), "full");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejected {
    /// Every permit was taken and the queue was full (or there is no queue).
    Full,
    /// The caller waited in the queue for the whole queue timeout.
    QueueTimeout {
        /// How long it waited.
        waited: Duration,
    },
    /// The queue was standing (callers kept waiting longer than the shedding target) and
    /// this caller had waited too long to be worth serving.
    Shed {
        /// How long it waited.
        waited: Duration,
    },
    /// The queue was full and a more urgent caller took this caller's place.
    Displaced {
        /// How long it waited.
        waited: Duration,
    },
}

impl Rejected {
    /// A short snake_case name for logs and metrics labels: `"full"`, `"queue_timeout"`,
    /// `"shed"` or `"displaced"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rejected::Full => "full",
            Rejected::QueueTimeout { .. } => "queue_timeout",
            Rejected::Shed { .. } => "shed",
            Rejected::Displaced { .. } => "displaced",
        }
    }

    /// How long the caller waited in the queue before it was turned away (zero when it was
    /// refused at once).
    pub fn waited(&self) -> Duration {
        match self {
            Rejected::Full => Duration::ZERO,
            Rejected::QueueTimeout { waited }
            | Rejected::Shed { waited }
            | Rejected::Displaced { waited } => *waited,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Full => f.write_str("bulkhead full: every permit taken and no room to wait"),
            Rejected::QueueTimeout { waited } => {
                write!(f, "bulkhead queue timeout after waiting {waited:?}")
            }
            Rejected::Shed { waited } => {
                write!(
                    f,
                    "shed from a standing bulkhead queue after waiting {waited:?}"
                )
            }
            Rejected::Displaced { waited } => write!(
                f,
                "displaced from a full bulkhead queue by a more urgent call after waiting {waited:?}"
            ),
        }
    }
}

impl std::error::Error for Rejected {
    // Boxed-chain classification asks every link for its description before it looks the
    // link's type up, so a rejection made by hand (not by a bulkhead, which registers it when
    // it is built) is recognised too.
    fn description(&self) -> &str {
        register();
        "rejected by the bulkhead"
    }
}

impl Classified for Rejected {
    fn class(&self) -> Class {
        Class::Refused { retry_after: None }
    }
}

/// Teach boxed-chain classification about [`Rejected`], once per process.
pub(crate) fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::classify::recognize::<Rejected>();
    });
}

/// The error of a [`BulkheadService`](super::BulkheadService): the bulkhead turned the call
/// away, or the inner service failed.
///
/// Both variants are reachable through [`source`](std::error::Error::source), so a boxed
/// error still classifies with [`ByError`](crate::classify::ByError).
///
/// ```
/// use riprap::bulkhead::{BulkheadError, Rejected};
/// use riprap::classify::{ByError, Class, Classify};
///
/// let err: BulkheadError<std::io::Error> = Rejected::Full.into();
/// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
/// assert_eq!(ByError.classify(Err::<&(), _>(&boxed)), Class::Refused { retry_after: None });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkheadError<E> {
    /// Turned away without calling the inner service.
    Rejected(Rejected),
    /// The inner service's own error.
    Inner(E),
}

impl<E> BulkheadError<E> {
    /// The rejection, if the bulkhead turned the call away.
    pub fn rejection(&self) -> Option<Rejected> {
        match self {
            BulkheadError::Rejected(r) => Some(*r),
            BulkheadError::Inner(_) => None,
        }
    }

    /// The inner service's error, if it failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            BulkheadError::Inner(e) => Some(e),
            BulkheadError::Rejected(_) => None,
        }
    }
}

impl<E> From<Rejected> for BulkheadError<E> {
    fn from(r: Rejected) -> Self {
        BulkheadError::Rejected(r)
    }
}

impl<E: fmt::Display> fmt::Display for BulkheadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BulkheadError::Rejected(r) => r.fmt(f),
            BulkheadError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BulkheadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BulkheadError::Rejected(r) => Some(r),
            BulkheadError::Inner(e) => Some(e),
        }
    }
}

/// A rejection classifies as in [`Rejected`]; the inner error by its own verdict.
impl<E: Classified> Classified for BulkheadError<E> {
    fn class(&self) -> Class {
        match self {
            BulkheadError::Rejected(r) => r.class(),
            BulkheadError::Inner(e) => e.class(),
        }
    }
}

/// A rejection's verdict is the bulkhead's own; anything else is the inner service's.
impl<E> LayerError for BulkheadError<E> {
    type Inner = E;

    fn layer_class(&self) -> Result<&E, Class> {
        match self {
            BulkheadError::Inner(e) => Ok(e),
            BulkheadError::Rejected(r) => Err(r.class()),
        }
    }
}
