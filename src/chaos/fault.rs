use std::fmt;
use std::time::Duration;

use crate::classify::{Class, Classified};

/// A fault the chaos layer decided to inject instead of calling the inner service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A transient failure, like a dropped connection.
    Error,
    /// The server says "slow down", and when to come back.
    Throttle {
        /// The delay a real server would send as `Retry-After`.
        retry_after: Duration,
    },
    /// A scripted outage window: the dependency is down.
    Outage,
}

/// The error injected by default, classified the way the real failure would be:
/// [`Fault::Error`] and [`Fault::Outage`] are transient, [`Fault::Throttle`] is throttled with
/// its retry-after.
///
/// ```
/// use std::time::Duration;
/// use riprap::chaos::{ChaosError, Fault};
/// use riprap::classify::{Class, Classified};
///
/// let e = ChaosError::from(Fault::Throttle { retry_after: Duration::from_secs(3) });
/// assert_eq!(e.class(), Class::Throttled { retry_after: Some(Duration::from_secs(3)) });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChaosError {
    fault: Fault,
}

impl ChaosError {
    /// The fault that was injected.
    pub fn fault(&self) -> Fault {
        self.fault
    }
}

impl From<Fault> for ChaosError {
    fn from(fault: Fault) -> Self {
        ChaosError { fault }
    }
}

impl fmt::Display for ChaosError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fault {
            Fault::Error => f.write_str("injected fault: transient error"),
            Fault::Throttle { retry_after } => {
                write!(f, "injected fault: throttled, retry after {retry_after:?}")
            }
            Fault::Outage => f.write_str("injected fault: dependency down (scripted outage)"),
        }
    }
}

impl std::error::Error for ChaosError {}

impl Classified for ChaosError {
    fn class(&self) -> Class {
        match self.fault {
            Fault::Error | Fault::Outage => Class::Transient,
            Fault::Throttle { retry_after } => Class::Throttled {
                retry_after: Some(retry_after),
            },
        }
    }
}
