//! Positions bound to one version of their source.

use std::fmt;
use std::sync::Arc;

use super::offset::Offset;

/// Which version of a source a position was taken in: an object's entity tag, a version id,
/// a modification time, a log file's inode. Opaque bytes, compared for equality only.
///
/// At most [`MAX_LEN`](SourceVersion::MAX_LEN) bytes and never empty: an empty version is how
/// a checkpoint written before versions were recorded reads back (see [`Versioned`]).
///
/// ```
/// use riprap::stream::SourceVersion;
///
/// let v = SourceVersion::new("\"9b2cf535f27731c974343645a3985328\"").unwrap();
/// assert_eq!(v.as_str(), Some("\"9b2cf535f27731c974343645a3985328\""));
/// assert!(SourceVersion::new("").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SourceVersion(Arc<[u8]>);

impl SourceVersion {
    /// The longest version kept, in bytes.
    pub const MAX_LEN: usize = 4096;

    /// A version from its bytes; `None` if they are empty or longer than
    /// [`MAX_LEN`](SourceVersion::MAX_LEN).
    pub fn new(bytes: impl AsRef<[u8]>) -> Option<Self> {
        let bytes = bytes.as_ref();
        (!bytes.is_empty() && bytes.len() <= Self::MAX_LEN).then(|| SourceVersion(Arc::from(bytes)))
    }

    /// A version from bytes the caller has checked: 1 to `MAX_LEN` of them.
    #[cfg(feature = "object_store")]
    pub(crate) fn from_valid(bytes: Vec<u8>) -> Self {
        debug_assert!(!bytes.is_empty() && bytes.len() <= Self::MAX_LEN);
        SourceVersion(Arc::from(bytes))
    }

    /// The version's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The version as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for SourceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "SourceVersion({s:?})"),
            None => write!(f, "SourceVersion({:02x?})", &self.0[..]),
        }
    }
}

/// A position in one version of a source, so that a resume can tell the source changed
/// underneath it instead of reading the new version from the old position.
///
/// A byte offset is only meaningful in the version of the object it was counted in: resume
/// "after byte 4 MiB" in an object that was replaced while the process was down, and the
/// output is the old head spliced onto the new tail. Committing a `Versioned` position keeps
/// the version beside the offset in every [`OffsetStore`](super::OffsetStore), so the source
/// sees both when it resumes and can refuse (or start over) when the version differs.
/// `ObjectSource` (feature `object_store`) uses
/// `Versioned<BytePosition>` with the object's entity tag.
///
/// Ordering: within one version, the inner offset's; a position in a different version is
/// always new (a source that starts over in a new version is not replaying).
///
/// **Checkpoints.** The [codec](super::codec) writes `Versioned` offsets in format 2 and reads
/// format-1 checkpoints (a plain offset, from before the version was recorded) as a position
/// with [no version](Versioned::version), which matches no version of the source: resuming
/// from it is refused, never trusted.
///
/// ```
/// use riprap::stream::{codec, BytePosition, Offset, SourceVersion, Versioned};
///
/// let v1 = SourceVersion::new("etag-1").unwrap();
/// let v2 = SourceVersion::new("etag-2").unwrap();
/// let at = Versioned::new(v1.clone(), BytePosition(4096));
/// assert!(Versioned::new(v1, BytePosition(8192)).is_after(&at));
/// assert!(Versioned::new(v2, BytePosition(1024)).is_after(&at)); // a new version starts over
///
/// let bytes = codec::encode(&at)?;
/// assert_eq!(codec::decode::<Versioned<BytePosition>>(&bytes)?, at);
/// # Ok::<(), riprap::stream::CheckpointError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Versioned<O> {
    version: Option<SourceVersion>,
    position: O,
}

impl<O> Versioned<O> {
    /// `position` in `version` of the source.
    pub fn new(version: SourceVersion, position: O) -> Self {
        Versioned {
            version: Some(version),
            position,
        }
    }

    /// The version the position was taken in; `None` for a position read from a checkpoint
    /// written before versions were recorded, which no source can vouch for.
    pub fn version(&self) -> Option<&SourceVersion> {
        self.version.as_ref()
    }

    /// The position within that version.
    pub fn position(&self) -> &O {
        &self.position
    }

    /// The position, without its version.
    pub fn into_position(self) -> O {
        self.position
    }

    /// Whether this position was taken in `version`.
    pub fn is_in(&self, version: &SourceVersion) -> bool {
        self.version.as_ref() == Some(version)
    }
}

impl<O: fmt::Debug> fmt::Debug for Versioned<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Versioned")
            .field("version", &self.version)
            .field("position", &self.position)
            .finish()
    }
}

impl<O: Offset> Offset for Versioned<O> {
    const VERSIONED: bool = true;

    #[inline]
    fn is_after(&self, last: &Self) -> bool {
        self.version != last.version || self.position.is_after(&last.position)
    }

    fn successor(&self) -> Option<Self> {
        self.position.successor().map(|position| Versioned {
            version: self.version.clone(),
            position,
        })
    }

    /// The version's length (2 bytes, little-endian; 0 for none), the version, then the inner
    /// offset's encoding.
    fn encode(&self, buf: &mut Vec<u8>) {
        let version = self
            .version
            .as_ref()
            .map_or(&[][..], SourceVersion::as_bytes);
        // `SourceVersion::new` caps the length well below `u16::MAX`.
        let len = u16::try_from(version.len()).unwrap_or(0);
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&version[..usize::from(len)]);
        self.position.encode(buf);
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let len = usize::from(u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?));
        let version = bytes.get(2..2 + len)?;
        let version = match len {
            0 => None,
            _ => Some(SourceVersion::new(version)?),
        };
        let position = O::decode(bytes.get(2 + len..)?)?;
        Some(Versioned { version, position })
    }
}
