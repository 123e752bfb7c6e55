use std::error::Error as StdError;
use std::io;

use super::{Class, Classify};

/// An error that knows its own [`Class`].
///
/// Implement it for your client's error type and classify outcomes with [`ByError`].
///
/// ```
/// use riprap::classify::{ByError, Class, Classified, Classify};
///
/// #[derive(Debug)]
/// enum StoreError { Timeout, BadKey }
///
/// impl Classified for StoreError {
///     fn class(&self) -> Class {
///         match self {
///             StoreError::Timeout => Class::Transient,
///             StoreError::BadKey => Class::Permanent,
///         }
///     }
/// }
///
/// assert_eq!(ByError.classify(Err::<&(), _>(&StoreError::BadKey)), Class::Permanent);
/// ```
#[diagnostic::on_unimplemented(
    message = "riprap cannot tell what a `{Self}` error means: `{Self}` does not implement `Classified`",
    label = "no verdict for this error type",
    note = "implement `riprap::classify::Classified` for `{Self}` (one `match` giving a `Class`), or give the layer a classifier of your own with `.classifier(classify_fn(|out| ...))`"
)]
pub trait Classified {
    /// This error's verdict.
    fn class(&self) -> Class;
}

/// Classifies `Ok` as [`Class::Success`] and an `Err` by its own [`Classified`] impl.
///
/// ```
/// use riprap::classify::{ByError, Class, Classify};
/// use std::io;
///
/// let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
/// assert_eq!(ByError.classify(Err::<&(), _>(&refused)), Class::Transient);
/// assert_eq!(ByError.classify(Ok::<_, &io::Error>(&())), Class::Success);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ByError;

// Not recommended in errors, so that an error type without a verdict reports `Classified`,
// which says what to do, rather than the layers' long types.
#[diagnostic::do_not_recommend]
impl<Res, Err: Classified> Classify<Res, Err> for ByError {
    fn classify(&self, outcome: Result<&Res, &Err>) -> Class {
        match outcome {
            Ok(_) => Class::Success,
            Err(e) => e.class(),
        }
    }
}

/// Network-shaped kinds retry; kinds that describe the request itself never do.
///
/// Unknown kinds (including `Other`) are transient: an I/O failure nobody recognises is more
/// often a flaky network than a bad request, and retries stay bounded by attempts and budget.
impl Classified for io::Error {
    fn class(&self) -> Class {
        use io::ErrorKind::*;
        match self.kind() {
            InvalidInput | InvalidData | PermissionDenied | NotFound | AlreadyExists
            | Unsupported | OutOfMemory => Class::Permanent,
            TimedOut => Class::TimedOut,
            ConnectionReset | ConnectionRefused | ConnectionAborted | NotConnected | BrokenPipe
            | UnexpectedEof | Interrupted | WouldBlock | AddrNotAvailable => Class::Transient,
            _ => Class::Transient,
        }
    }
}

/// An error that cannot happen: services that never fail work under every layer's default
/// classifier.
impl Classified for std::convert::Infallible {
    fn class(&self) -> Class {
        match *self {}
    }
}

/// A timed-out attempt may succeed on the next one.
impl Classified for tower::timeout::error::Elapsed {
    fn class(&self) -> Class {
        Class::TimedOut
    }
}

/// A timed-out attempt may succeed on the next one.
impl Classified for tokio::time::error::Elapsed {
    fn class(&self) -> Class {
        Class::TimedOut
    }
}

/// Boxed errors, as tower stacks produce them, are classified by the first error in their
/// source chain that riprap recognises (see [`recognize`](super::recognize)); an error nobody
/// recognises is transient, as in Polly and resilience4j, whose defaults retry every exception.
impl Classified for dyn StdError + Send + Sync + 'static {
    fn class(&self) -> Class {
        super::chain::classify_chain(self).unwrap_or(Class::Transient)
    }
}

impl Classified for Box<dyn StdError + Send + Sync + 'static> {
    fn class(&self) -> Class {
        (**self).class()
    }
}
