//! Classifying a boxed error by its source chain, without knowing every error type.
//!
//! Tower layers that box their errors (`Buffer`, `tower::timeout`, `LoadShed`) hide the typed
//! error under a `Box<dyn Error>`. [`ByError`](super::ByError) then walks the source chain and
//! answers with the first link it recognises:
//!
//! 1. riprap's generic wrappers that end a request, which say so through the error's
//!    `description()` (the one stable way a `dyn Error` can speak for a generic type): a
//!    retry layer that gave up is final ([`Class::Permanent`]) whatever its inner error type,
//!    and a riprap timeout is [`Class::TimedOut`];
//! 2. the types this module knows: `std::io::Error`, tower's and tokio's `Elapsed`, and the
//!    clients behind features (`reqwest`, `rusqlite`, `sqlx`, `tokio-postgres`);
//! 3. every type registered with [`recognize`]: each riprap layer registers its own refusal
//!    type when it is built (and the type registers itself the first time the walk asks it for
//!    its description), and you can register yours.
//!
//! Walking a chain happens only on the failure path; it takes no lock.

use std::any::TypeId;
use std::error::Error as StdError;
use std::sync::OnceLock;

use super::{Class, Classified};

/// What a generic riprap wrapper's `description()` returns to say how its chain classifies.
pub(crate) mod marker {
    /// A retry loop gave up: to anything above it, the failure is final.
    pub(crate) const GAVE_UP: &str = "riprap: gave up after retrying";
    /// An attempt ran out of time.
    pub(crate) const TIMED_OUT: &str = "riprap: attempt timed out";
}

type ClassOf = fn(&(dyn StdError + 'static)) -> Option<Class>;

struct Known {
    id: TypeId,
    class_of: ClassOf,
}

/// Room for every riprap refusal type and a few dozen of yours; registering more is refused.
const SLOTS: usize = 64;

// Filled front to back, each slot once: a reader stops at the first empty slot, and a slot
// once read never changes, so reading needs no lock.
static KNOWN: [OnceLock<Known>; SLOTS] = [const { OnceLock::new() }; SLOTS];

fn class_of<E: Classified + StdError + 'static>(err: &(dyn StdError + 'static)) -> Option<Class> {
    err.downcast_ref::<E>().map(Classified::class)
}

/// Teach boxed-chain classification about `E`: from now on, an `E` met in a boxed error's
/// source chain classifies by its own [`Classified`] impl.
///
/// riprap's layers register their refusal types when they are built; call this once at
/// start-up for error types of your own that travel inside boxed errors. Registering a type
/// again does nothing. Returns `false` if the registry is full (64 types).
///
/// ```
/// use riprap::classify::{recognize, ByError, Class, Classified, Classify};
///
/// #[derive(Debug)]
/// struct QuotaSpent;
/// impl std::fmt::Display for QuotaSpent {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("monthly quota spent")
///     }
/// }
/// impl std::error::Error for QuotaSpent {}
/// impl Classified for QuotaSpent {
///     fn class(&self) -> Class { Class::Permanent }
/// }
///
/// assert!(recognize::<QuotaSpent>());
/// let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(QuotaSpent);
/// assert_eq!(ByError.classify(Err::<&(), _>(&boxed)), Class::Permanent);
/// ```
pub fn recognize<E: Classified + StdError + 'static>() -> bool {
    let id = TypeId::of::<E>();
    KNOWN.iter().any(|slot| {
        slot.get_or_init(|| Known {
            id,
            class_of: class_of::<E>,
        })
        .id == id
    })
}

/// The verdict of one link, if riprap recognises it.
fn class_of_link(err: &(dyn StdError + 'static)) -> Option<Class> {
    #[allow(deprecated)] // the one channel a generic wrapper has to speak through `dyn Error`
    match err.description() {
        marker::GAVE_UP => return Some(Class::Permanent),
        marker::TIMED_OUT => return Some(Class::TimedOut),
        _ => {}
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        return Some(io.class());
    }
    if err.is::<tower::timeout::error::Elapsed>() || err.is::<tokio::time::error::Elapsed>() {
        return Some(Class::TimedOut);
    }
    #[cfg(feature = "reqwest")]
    if let Some(e) = err.downcast_ref::<::reqwest::Error>() {
        return Some(e.class());
    }
    #[cfg(feature = "rusqlite")]
    if let Some(e) = err.downcast_ref::<rusqlite::Error>() {
        return Some(e.class());
    }
    #[cfg(any(feature = "sqlx", feature = "tokio-postgres"))]
    if let Some(class) = super::postgres::known_class(err) {
        return Some(class);
    }
    for slot in &KNOWN {
        let known = slot.get()?;
        if let Some(class) = (known.class_of)(err) {
            return Some(class);
        }
    }
    None
}

/// The verdict of the first error in `err`'s source chain that riprap recognises.
pub(crate) fn classify_chain(err: &(dyn StdError + 'static)) -> Option<Class> {
    let mut link: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = link {
        if let Some(class) = class_of_link(e) {
            return Some(class);
        }
        link = e.source();
    }
    None
}
