//! What a caller gets back when the breaker refuses a call, or the inner service fails.

use std::fmt;
use std::time::Duration;

use crate::classify::{Class, Classified, LayerError};

/// Why the breaker refused a call without calling the inner service.
///
/// It classifies itself (see [`Classified`]) so a retry layer *outside* the breaker waits for
/// the next probe instead of hammering a fail-fast error:
///
/// | rejection | class | a retry layer outside |
/// |---|---|---|
/// | `Open { retry_in }` | `Refused { retry_after: Some(retry_in) }` | waits until the next probe, or gives up at once if that is too long |
/// | `HalfOpen` | `Refused { retry_after: None }` | backs off by its own schedule |
/// | `Isolated` | `Permanent` | gives up: an operator switched the dependency off |
///
/// A rejection is [`Class::Refused`], never [`Class::Throttled`]: the server said nothing, the
/// caller's own breaker did, and budgets and listeners must be able to tell the two apart.
///
/// ```
/// use std::time::Duration;
/// use riprap::breaker::Rejected;
/// use riprap::classify::{Class, Classified};
///
/// let open = Rejected::Open { retry_in: Duration::from_secs(3) };
/// assert_eq!(open.class(), Class::Refused { retry_after: Some(Duration::from_secs(3)) });
/// assert_eq!(open.retry_in(), Some(Duration::from_secs(3)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejected {
    /// The breaker is open; the next probe is let through after `retry_in`.
    Open {
        /// Time until the breaker lets a probe through.
        retry_in: Duration,
    },
    /// The breaker is half-open and every probe permit is taken; it decides as soon as a
    /// probe returns.
    HalfOpen,
    /// An operator isolated the dependency with
    /// [`force_open`](super::CircuitBreaker::force_open); no probes until it is reset.
    Isolated,
}

impl Rejected {
    /// A short snake_case name for logs and metrics labels: `"open"`, `"half_open"` or
    /// `"isolated"`.
    ///
    /// ```
    /// assert_eq!(riprap::breaker::Rejected::HalfOpen.as_str(), "half_open");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Rejected::Open { .. } => "open",
            Rejected::HalfOpen => "half_open",
            Rejected::Isolated => "isolated",
        }
    }

    /// Time until the next probe, when the breaker knows it.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            Rejected::Open { retry_in } => Some(*retry_in),
            _ => None,
        }
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Open { retry_in } => {
                write!(f, "circuit breaker is open; next probe in {retry_in:?}")
            }
            Rejected::HalfOpen => f.write_str("circuit breaker is half-open and probing"),
            Rejected::Isolated => f.write_str("circuit breaker is isolated by an operator"),
        }
    }
}

impl std::error::Error for Rejected {
    // Boxed-chain classification asks every link for its description before it looks the
    // link's type up, so a rejection made by hand (not by a breaker, which registers it when
    // it is built) is recognised too.
    fn description(&self) -> &str {
        register();
        "rejected by the circuit breaker"
    }
}

impl Classified for Rejected {
    fn class(&self) -> Class {
        match self {
            Rejected::Open { retry_in } => Class::Refused {
                retry_after: Some(*retry_in),
            },
            Rejected::HalfOpen => Class::Refused { retry_after: None },
            Rejected::Isolated => Class::Permanent,
        }
    }
}

/// The error of a [`CircuitBreakerService`](super::CircuitBreakerService): the breaker refused
/// the call, or the inner service failed.
///
/// Both variants are reachable through [`source`](std::error::Error::source), so a boxed
/// error (behind `tower::buffer::Buffer`, say) still classifies correctly with
/// [`ByError`](crate::classify::ByError).
///
/// ```
/// use std::time::Duration;
/// use riprap::breaker::{BreakerError, Rejected};
/// use riprap::classify::{ByError, Class, Classify};
///
/// let err: BreakerError<std::io::Error> = Rejected::Open { retry_in: Duration::from_secs(2) }.into();
/// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
/// assert_eq!(
///     ByError.classify(Err::<&(), _>(&boxed)),
///     Class::Refused { retry_after: Some(Duration::from_secs(2)) },
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakerError<E> {
    /// Refused without calling the inner service.
    Rejected(Rejected),
    /// The inner service's own error.
    Inner(E),
}

impl<E> BreakerError<E> {
    /// The rejection, if the breaker refused the call.
    pub fn rejection(&self) -> Option<Rejected> {
        match self {
            BreakerError::Rejected(r) => Some(*r),
            BreakerError::Inner(_) => None,
        }
    }

    /// The inner service's error, if it failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            BreakerError::Inner(e) => Some(e),
            BreakerError::Rejected(_) => None,
        }
    }
}

impl<E> From<Rejected> for BreakerError<E> {
    fn from(r: Rejected) -> Self {
        BreakerError::Rejected(r)
    }
}

impl<E> fmt::Display for BreakerError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerError::Rejected(_) => f.write_str("rejected by the circuit breaker"),
            BreakerError::Inner(_) => f.write_str("service behind the circuit breaker failed"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for BreakerError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BreakerError::Rejected(r) => Some(r),
            BreakerError::Inner(e) => Some(e),
        }
    }
}

/// A rejection classifies as in [`Rejected`]; the inner error by its own verdict.
impl<E: Classified> Classified for BreakerError<E> {
    fn class(&self) -> Class {
        match self {
            BreakerError::Rejected(r) => r.class(),
            BreakerError::Inner(e) => e.class(),
        }
    }
}

/// A rejection's verdict is the breaker's own; anything else is the inner service's.
impl<E> LayerError for BreakerError<E> {
    type Inner = E;

    fn layer_class(&self) -> Result<&E, Class> {
        match self {
            BreakerError::Inner(e) => Ok(e),
            BreakerError::Rejected(r) => Err(r.class()),
        }
    }
}

/// Teach boxed-chain classification about [`Rejected`], once per process.
pub(crate) fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::classify::recognize::<Rejected>();
    });
}
