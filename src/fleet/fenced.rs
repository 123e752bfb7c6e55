//! The refusal of a commit by a consumer that no longer owns its stream.

use std::fmt;

use crate::classify::{Class, Classified};

/// A commit refused because another consumer claimed the stream since this one did: this
/// consumer is a zombie, and whatever it wrote in the same transaction must not land.
///
/// Offset stores return it inside [`CheckpointError::Backend`](crate::stream::CheckpointError::Backend).
/// It is permanent: retrying cannot give ownership back.
///
/// ```
/// use riprap::classify::{Class, Classified};
/// use riprap::fleet::Fenced;
///
/// let e = Fenced { stream: "orders".into(), epoch: 3 };
/// assert_eq!(e.class(), Class::Permanent);
/// assert_eq!(e.to_string(), "stream `orders` was claimed by a newer consumer than epoch 3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fenced {
    /// The stream.
    pub stream: String,
    /// The epoch this consumer held.
    pub epoch: i64,
}

impl fmt::Display for Fenced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream `{}` was claimed by a newer consumer than epoch {}",
            self.stream, self.epoch
        )
    }
}

impl std::error::Error for Fenced {
    fn description(&self) -> &str {
        register();
        "fenced"
    }
}

impl Classified for Fenced {
    fn class(&self) -> Class {
        Class::Permanent
    }
}

/// Teach boxed-chain classification about [`Fenced`], once per process.
pub(crate) fn register() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::classify::recognize::<Fenced>();
    });
}
