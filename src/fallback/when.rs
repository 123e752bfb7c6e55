//! Which failures send a request to the fallback.

use crate::classify::Class;

/// Decides, from the primary's [`Class`], whether the request goes to the fallback:
/// a [`FallbackOn`] set of classes, or any `Fn(&Class) -> bool`.
pub trait FallbackWhen {
    /// Whether a primary outcome of `class` calls for the fallback.
    fn falls_back(&self, class: &Class) -> bool;
}

impl<F: Fn(&Class) -> bool> FallbackWhen for F {
    fn falls_back(&self, class: &Class) -> bool {
        self(class)
    }
}

/// A set of failure classes that send a request to the fallback.
///
/// ```
/// use riprap::classify::Class;
/// use riprap::fallback::{FallbackOn, FallbackWhen};
///
/// let on = FallbackOn::failures();
/// assert!(on.falls_back(&Class::Throttled { retry_after: None }));
/// assert!(on.falls_back(&Class::Refused { retry_after: None })); // its breaker is open
/// assert!(!on.falls_back(&Class::Permanent));
/// assert!(!on.falls_back(&Class::Success));
/// assert!(FallbackOn::none().permanent().falls_back(&Class::Permanent));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FallbackOn(u8);

const TRANSIENT: u8 = 1;
const TIMED_OUT: u8 = 2;
const THROTTLED: u8 = 4;
const REFUSED: u8 = 8;
const PERMANENT: u8 = 16;

impl FallbackOn {
    /// Every failure another try may fix: transient, timed out, throttled (the provider asked
    /// this caller to slow down; another provider did not) and refused (the primary's own
    /// breaker, limiter or bulkhead declined). The default.
    pub fn failures() -> Self {
        FallbackOn(TRANSIENT | TIMED_OUT | THROTTLED | REFUSED)
    }

    /// No class: add the ones you want.
    pub fn none() -> Self {
        FallbackOn(0)
    }

    /// Also on [`Class::Transient`].
    pub fn transient(self) -> Self {
        FallbackOn(self.0 | TRANSIENT)
    }

    /// Also on [`Class::TimedOut`].
    pub fn timed_out(self) -> Self {
        FallbackOn(self.0 | TIMED_OUT)
    }

    /// Also on [`Class::Throttled`].
    pub fn throttled(self) -> Self {
        FallbackOn(self.0 | THROTTLED)
    }

    /// Also on [`Class::Refused`].
    pub fn refused(self) -> Self {
        FallbackOn(self.0 | REFUSED)
    }

    /// Also on [`Class::Permanent`] (a content policy one model enforces and another does
    /// not, say).
    pub fn permanent(self) -> Self {
        FallbackOn(self.0 | PERMANENT)
    }

    /// Also on the class named `name` (`"transient"`, `"timed_out"`, `"throttled"`,
    /// `"refused"`, `"permanent"`, as [`Class::as_str`] names them); `None` for another name.
    pub fn with_name(self, name: &str) -> Option<Self> {
        Some(match name {
            "transient" => self.transient(),
            "timed_out" => self.timed_out(),
            "throttled" => self.throttled(),
            "refused" => self.refused(),
            "permanent" => self.permanent(),
            _ => return None,
        })
    }

    /// The names of the classes in the set.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (TRANSIENT, "transient"),
            (TIMED_OUT, "timed_out"),
            (THROTTLED, "throttled"),
            (REFUSED, "refused"),
            (PERMANENT, "permanent"),
        ]
        .into_iter()
        .filter(|(bit, _)| self.0 & bit != 0)
        .map(|(_, name)| name)
        .collect()
    }
}

impl Default for FallbackOn {
    fn default() -> Self {
        FallbackOn::failures()
    }
}

impl FallbackWhen for FallbackOn {
    fn falls_back(&self, class: &Class) -> bool {
        let bit = if class.is_timeout() {
            TIMED_OUT
        } else if class.is_throttled() {
            THROTTLED
        } else if class.is_refused() {
            REFUSED
        } else if class.is_failure() {
            TRANSIENT
        } else if class.is_success() {
            0
        } else {
            PERMANENT
        };
        self.0 & bit != 0
    }
}
