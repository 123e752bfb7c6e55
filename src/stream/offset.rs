//! Positions in a source, and how they order and persist.

use std::fmt;
use std::sync::Arc;

/// A position in a source: where an item sits, and where to resume after it.
///
/// Offsets come from the source and only move forward. [`Resumable`](super::Resumable) keeps
/// the offset of the last item it delivered, asks the source to resume *after* it, and drops
/// any item that is not [after](Offset::is_after) it. Offsets persist through an
/// [`OffsetStore`](super::OffsetStore) as bytes.
///
/// Implemented for `u64`, `i64` and `u32` (dense sequence numbers: a jump is a gap),
/// [`BytePosition`] (ordered, not dense) and [`ResumeToken`] (opaque: ordered only by arrival).
///
/// ```
/// use riprap::stream::Offset;
///
/// /// A Kafka-style (partition epoch, sequence) pair.
/// #[derive(Clone, Debug, PartialEq)]
/// struct Position { epoch: u32, seq: u64 }
///
/// impl Offset for Position {
///     fn is_after(&self, last: &Self) -> bool {
///         (self.epoch, self.seq) > (last.epoch, last.seq)
///     }
///     fn encode(&self, buf: &mut Vec<u8>) {
///         buf.extend_from_slice(&self.epoch.to_le_bytes());
///         buf.extend_from_slice(&self.seq.to_le_bytes());
///     }
///     fn decode(bytes: &[u8]) -> Option<Self> {
///         let epoch = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
///         let seq = u64::from_le_bytes(bytes.get(4..)?.try_into().ok()?);
///         Some(Position { epoch, seq })
///     }
/// }
///
/// let p = Position { epoch: 1, seq: 7 };
/// let mut buf = Vec::new();
/// p.encode(&mut buf);
/// assert_eq!(Position::decode(&buf), Some(p));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a stream offset",
    note = "integers, `BytePosition` and `ResumeToken` are offsets; implement `riprap::stream::Offset` (is_after, and successor for dense offsets) for your own"
)]
pub trait Offset: Clone + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// Whether an item at `self` is new to a consumer that has seen everything through `last`.
    /// Items for which this is `false` are replays and are dropped.
    fn is_after(&self, last: &Self) -> bool;

    /// For dense offsets (sequence numbers), the offset that must come right after `self`;
    /// an item at any later offset means the items in between are missing (a gap). `None`,
    /// the default, for offsets that may legitimately skip (byte positions, tokens).
    fn successor(&self) -> Option<Self> {
        None
    }

    /// Append this offset's persistent form to `buf`.
    fn encode(&self, buf: &mut Vec<u8>);

    /// Read an offset back from exactly the bytes [`encode`](Offset::encode) wrote; `None`
    /// if they are not a valid encoding.
    fn decode(bytes: &[u8]) -> Option<Self>;

    /// Whether this offset is bound to one version of its source, as
    /// [`Versioned`](super::Versioned) is; `false` for every other offset.
    ///
    /// The [checkpoint codec](super::codec) writes bound offsets in its format 2, whose
    /// payload starts with the version (see there), so that a build which cannot check the
    /// version refuses the checkpoint rather than resuming in whatever the source is now.
    /// Leave it `false` and wrap your offset in `Versioned` instead of setting it.
    const VERSIONED: bool = false;
}

macro_rules! dense_int {
    ($($t:ty),*) => {$(
        /// A dense sequence number: each item's offset is one more than the last.
        impl Offset for $t {
            #[inline]
            fn is_after(&self, last: &Self) -> bool {
                *self > *last
            }

            #[inline]
            fn successor(&self) -> Option<Self> {
                self.checked_add(1)
            }

            fn encode(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.to_le_bytes());
            }

            fn decode(bytes: &[u8]) -> Option<Self> {
                Some(<$t>::from_le_bytes(bytes.try_into().ok()?))
            }
        }
    )*};
}

dense_int!(u64, i64, u32);

/// A byte position in an object or file: the number of bytes consumed so far.
///
/// An item carrying `BytePosition(n)` ends at byte `n` (exclusive), so resuming after it means
/// reading from byte `n`. Ordered but not dense: chunks have any length.
///
/// ```
/// use riprap::stream::{BytePosition, Offset};
///
/// assert!(BytePosition(4096).is_after(&BytePosition(1024)));
/// assert_eq!(BytePosition(1024).successor(), None); // chunk sizes vary: no gap detection
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BytePosition(pub u64);

impl Offset for BytePosition {
    #[inline]
    fn is_after(&self, last: &Self) -> bool {
        self.0 > last.0
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        self.0.encode(buf);
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        u64::decode(bytes).map(BytePosition)
    }
}

impl fmt::Display for BytePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}", self.0)
    }
}

/// An opaque resume token: an SSE `Last-Event-ID`, a change-stream resume token, a cursor.
///
/// Tokens cannot be compared, so their order is the order they arrive in: the only replay
/// [`Resumable`](super::Resumable) can recognise is the token it resumed after being sent
/// again, which it drops. Cloning is a reference-count increment.
///
/// ```
/// use riprap::stream::{Offset, ResumeToken};
///
/// let last = ResumeToken::from("evt-41");
/// assert!(!ResumeToken::from("evt-41").is_after(&last)); // the resume point, sent again
/// assert!(ResumeToken::from("evt-42").is_after(&last));
/// assert_eq!(last.as_str(), Some("evt-41"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResumeToken(Arc<[u8]>);

impl ResumeToken {
    /// A token from raw bytes.
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        ResumeToken(Arc::from(bytes.as_ref()))
    }

    /// The token's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The token as text, if it is UTF-8 (as SSE event ids are).
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for ResumeToken {
    fn from(s: &str) -> Self {
        ResumeToken::new(s)
    }
}

impl From<String> for ResumeToken {
    fn from(s: String) -> Self {
        ResumeToken::new(s)
    }
}

impl From<Vec<u8>> for ResumeToken {
    fn from(v: Vec<u8>) -> Self {
        ResumeToken(Arc::from(v))
    }
}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "ResumeToken({s:?})"),
            None => write!(f, "ResumeToken({:02x?})", &self.0[..]),
        }
    }
}

impl Offset for ResumeToken {
    #[inline]
    fn is_after(&self, last: &Self) -> bool {
        self != last
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0);
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(ResumeToken::new(bytes))
    }
}
