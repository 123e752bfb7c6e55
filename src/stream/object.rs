//! Reading an object by ranged requests, resumable mid-object and across restarts.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore};

use super::offset::BytePosition;
use super::versioned::{SourceVersion, Versioned};
use crate::classify::{Class, Classified};

/// A byte position in one version of an object: what [`ObjectSource`] delivers with each
/// chunk and what a checkpoint of an object download holds.
///
/// The version ([`ObjectVersion`]) is committed with the position, so a download resumed in
/// another process, after the object was replaced, is refused (or started over, with
/// [`OnChange::Restart`]) instead of splicing the old head onto the new tail.
pub type ObjectPosition = Versioned<BytePosition>;

/// Which version of an object a position belongs to: its entity tag, else its version id,
/// else its modification time, and its size.
///
/// The entity tag comes first because stores change it whenever the content changes (and a
/// conditional read can pin it); a version id where there is no tag; the modification time
/// as the last resort, for stores that report neither.
///
/// ```
/// use object_store::{memory::InMemory, path::Path, ObjectStore, PutPayload};
/// use riprap::stream::ObjectVersion;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = InMemory::new();
/// let path = Path::from("day.csv");
/// store.put(&path, PutPayload::from_static(b"a,b\n")).await?;
/// let first = ObjectVersion::of(&store.head(&path).await?);
/// store.put(&path, PutPayload::from_static(b"c,d\n")).await?;
/// let second = ObjectVersion::of(&store.head(&path).await?);
/// assert_ne!(first, second); // same size, new entity tag
/// assert_eq!(second.size(), 4);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectVersion {
    size: u64,
    tag: Tag,
    /// The encoding, as committed in positions: `[kind][size, 8 bytes LE][tag]`.
    encoded: SourceVersion,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Tag {
    Entity(String),
    Id(String),
    Modified { secs: i64, nanos: u32 },
}

const KIND_ETAG: u8 = 1;
const KIND_ID: u8 = 2;
const KIND_MODIFIED: u8 = 3;
/// The longest entity tag or version id kept: the rest of the encoding is 9 bytes.
const MAX_TAG: usize = SourceVersion::MAX_LEN - 9;

impl ObjectVersion {
    /// The version described by `meta`, as returned by `head` or a read.
    pub fn of(meta: &ObjectMeta) -> Self {
        // An entity tag or id too long to commit falls through to the next candidate; the
        // modification time always fits.
        let usable = |s: &Option<String>| {
            s.as_ref()
                .filter(|s| !s.is_empty() && s.len() <= MAX_TAG)
                .cloned()
        };
        let tag = usable(&meta.e_tag)
            .map(Tag::Entity)
            .or_else(|| usable(&meta.version).map(Tag::Id))
            .unwrap_or(Tag::Modified {
                secs: meta.last_modified.timestamp(),
                nanos: meta.last_modified.timestamp_subsec_nanos(),
            });
        ObjectVersion::new(meta.size, tag)
    }

    fn new(size: u64, tag: Tag) -> Self {
        let mut buf = Vec::with_capacity(1 + 8 + 32);
        buf.push(match &tag {
            Tag::Entity(_) => KIND_ETAG,
            Tag::Id(_) => KIND_ID,
            Tag::Modified { .. } => KIND_MODIFIED,
        });
        buf.extend_from_slice(&size.to_le_bytes());
        match &tag {
            Tag::Entity(t) | Tag::Id(t) => buf.extend_from_slice(t.as_bytes()),
            Tag::Modified { secs, nanos } => {
                buf.extend_from_slice(&secs.to_le_bytes());
                buf.extend_from_slice(&nanos.to_le_bytes());
            }
        }
        // 1 + 8 + at most `MAX_TAG` bytes: within `SourceVersion::MAX_LEN`, never empty.
        let encoded = SourceVersion::from_valid(buf);
        ObjectVersion { size, tag, encoded }
    }

    /// Read a version back from a committed position's [`SourceVersion`]; `None` if it is
    /// not an object version.
    pub fn from_source_version(version: &SourceVersion) -> Option<Self> {
        let bytes = version.as_bytes();
        let (&kind, rest) = bytes.split_first()?;
        let size = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        let data = rest.get(8..)?;
        let tag = match kind {
            KIND_ETAG => Tag::Entity(String::from_utf8(data.to_vec()).ok()?),
            KIND_ID => Tag::Id(String::from_utf8(data.to_vec()).ok()?),
            KIND_MODIFIED if data.len() == 12 => Tag::Modified {
                secs: i64::from_le_bytes(data.get(..8)?.try_into().ok()?),
                nanos: u32::from_le_bytes(data.get(8..)?.try_into().ok()?),
            },
            _ => return None,
        };
        Some(ObjectVersion {
            size,
            tag,
            encoded: version.clone(),
        })
    }

    /// The object's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The entity tag, if this version is identified by one.
    pub fn e_tag(&self) -> Option<&str> {
        match &self.tag {
            Tag::Entity(t) => Some(t),
            _ => None,
        }
    }

    /// The store's version id, if this version is identified by one (and has no entity tag).
    pub fn version_id(&self) -> Option<&str> {
        match &self.tag {
            Tag::Id(t) => Some(t),
            _ => None,
        }
    }

    /// The version as committed in an [`ObjectPosition`].
    pub fn source_version(&self) -> &SourceVersion {
        &self.encoded
    }
}

impl fmt::Debug for ObjectVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectVersion")
            .field("size", &self.size)
            .field("tag", &self.tag)
            .finish()
    }
}

impl fmt::Display for ObjectVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tag {
            Tag::Entity(t) => write!(f, "entity tag {t}")?,
            Tag::Id(t) => write!(f, "version {t}")?,
            Tag::Modified { secs, nanos } => write!(f, "modified at {secs}.{nanos:09} (Unix)")?,
        }
        write!(f, ", {} bytes", self.size)
    }
}

/// What [`ObjectSource`] does when it resumes and the object is not the version the position
/// was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnChange {
    /// End the stream with [`ObjectReadError::Changed`] (the default): a person, or the
    /// caller's code, decides what a changed object means.
    #[default]
    Fail,
    /// Read the new version from byte 0. The first chunk after the change starts at 0 of the
    /// new version (its position carries the new version), so the consumer must write each
    /// chunk at its start, as [`FileSink::append_at`](super::FileSink::append_at) does, not
    /// blindly append: appending would splice the new version onto the old head.
    Restart,
}

/// A source reading one object through [`object_store`] in ranged requests, one chunk each,
/// so a [`Resumable`](super::Resumable) that loses the connection continues from the last
/// byte it delivered instead of starting over, and a restarted process continues from its
/// checkpoint.
///
/// Each item is a chunk of bytes with the [`ObjectPosition`] just past it: the byte position
/// *and the version of the object* it was read from. Every connection checks the object's
/// current version (entity tag, version id or modification time, and size) against the
/// position it resumes after; every read is conditional on that version and its response
/// checked against it. So an object replaced mid-transfer, or while the process was down
/// with the position in a checkpoint, ends the stream with [`ObjectReadError::Changed`] (or
/// starts the new version over, with [`OnChange::Restart`]); it is never spliced. The stream
/// ends when the object is complete: configure the `Resumable` with
/// [`OnEnd::Finish`](super::OnEnd::Finish).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_util::StreamExt;
/// use object_store::{memory::InMemory, path::Path, ObjectStore, PutPayload};
/// use riprap::backoff::BackoffPolicy;
/// use riprap::stream::{ObjectSource, OnEnd, ResumeConfig, Resumable};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(InMemory::new());
/// let path = Path::from("exports/day.csv");
/// store.put(&path, PutPayload::from(vec![7u8; 10_000])).await?;
///
/// let source = ObjectSource::new(store, path).chunk_size(4_096);
/// let mut download = Resumable::new(source, BackoffPolicy::constant(Duration::from_millis(10)).build()?)
///     .config(ResumeConfig::builder().on_end(OnEnd::Finish).build()?);
/// let mut body = Vec::new();
/// while let Some(chunk) = download.next().await {
///     let (_end, bytes) = chunk?;
///     body.extend_from_slice(&bytes);
/// }
/// assert_eq!(body.len(), 10_000);
/// # Ok(())
/// # }
/// ```
///
/// # Across restarts
///
/// Checkpoint the download in a [`FileStore`](super::FileStore), write it to a
/// [`FileSink`](super::FileSink) flushed before every commit, and a stopped or killed process
/// picks up where the last commit left off, in the same version of the object or not at all:
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use futures_util::StreamExt;
/// use object_store::{memory::InMemory, path::Path, ObjectStore, PutPayload};
/// use riprap::backoff::BackoffPolicy;
/// use riprap::stream::{
///     CommitConfig, FileSink, FileStore, ObjectPosition, ObjectReadError, ObjectSource,
///     OffsetStore, OnEnd, ResumeConfig, ResumeError, Resumable,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("riprap-object-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let store = Arc::new(InMemory::new());
/// let path = Path::from("exports/day.csv");
/// store.put(&path, PutPayload::from(vec![1u8; 10_000])).await?;
///
/// // One run of the program: resume from the checkpoint, if any; stop after a few chunks.
/// let run = |store: Arc<InMemory>, stop_after: usize| {
///     let (dir, path) = (dir.clone(), path.clone());
///     async move {
///         let output = FileSink::open(dir.join("day.csv")).await?;
///         let checkpoint = FileStore::<ObjectPosition>::new(dir.join("day.ckpt"))
///             .flush_first(output.clone());
///         let source = ObjectSource::new(store, path).chunk_size(1_000);
///         let mut download = Resumable::new(source, BackoffPolicy::constant(Duration::from_millis(10)).build()?)
///             .config(ResumeConfig::builder().on_end(OnEnd::Finish).build()?)
///             .checkpointed(checkpoint, CommitConfig::builder().every(2).build()?);
///         let acker = download.acker();
///         let mut chunks = 0;
///         while let Some(delivery) = download.next().await {
///             let delivery = delivery?;
///             let start = delivery.offset().position().0 - delivery.item().len() as u64;
///             let (bytes, ack) = delivery.into_parts();
///             output.append_at(start, bytes).await?;
///             acker.ack(ack)?;
///             chunks += 1;
///             if chunks == stop_after { break; }
///         }
///         download.flush().await?;
///         Ok::<_, Box<dyn std::error::Error>>(output.len())
///     }
/// };
/// assert_eq!(run(Arc::clone(&store), 5).await?, 5_000); // stopped half-way
/// store.put(&path, PutPayload::from(vec![2u8; 10_000])).await?; // replaced meanwhile
/// let resumed = run(Arc::clone(&store), usize::MAX).await;
/// let err = resumed.unwrap_err();
/// assert!(matches!(
///     err.downcast_ref::<ResumeError<ObjectReadError, ObjectPosition>>(),
///     Some(ResumeError::Permanent(ObjectReadError::Changed { .. }))
/// ));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ObjectSource {
    store: Arc<dyn ObjectStore>,
    location: Path,
    chunk_size: u64,
    on_change: OnChange,
}

impl ObjectSource {
    /// Read `location` from `store` in chunks of 1 MiB (see
    /// [`chunk_size`](ObjectSource::chunk_size)).
    pub fn new(store: Arc<dyn ObjectStore>, location: Path) -> Self {
        ObjectSource {
            store,
            location,
            chunk_size: 1 << 20,
            on_change: OnChange::Fail,
        }
    }

    /// Bytes per ranged request; the most a disconnect can make the stream re-read. Values
    /// below 1 are raised to 1.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    /// What to do when the object is not the version being resumed (default
    /// [`OnChange::Fail`]).
    pub fn on_change(mut self, on_change: OnChange) -> Self {
        self.on_change = on_change;
        self
    }
}

impl fmt::Debug for ObjectSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectSource")
            .field("store", &self.store.to_string())
            .field("location", &self.location)
            .field("chunk_size", &self.chunk_size)
            .field("on_change", &self.on_change)
            .finish()
    }
}

/// Chunks of one object, each with the position just past it.
pub type ObjectChunks =
    Pin<Box<dyn Stream<Item = Result<(ObjectPosition, Bytes), ObjectReadError>> + Send>>;

type Connect = Pin<Box<dyn Future<Output = Result<ObjectChunks, ObjectReadError>> + Send>>;

impl tower_service::Service<Option<ObjectPosition>> for ObjectSource {
    type Response = ObjectChunks;
    type Error = ObjectReadError;
    type Future = Connect;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, after: Option<ObjectPosition>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let meta = this.store.head(&this.location).await?;
            let version = ObjectVersion::of(&meta);
            let start = match &after {
                None => 0,
                Some(p) if p.is_in(version.source_version()) => p.position().0,
                Some(p) => {
                    let expected = p.version().and_then(ObjectVersion::from_source_version);
                    match this.on_change {
                        OnChange::Fail => {
                            return Err(ObjectReadError::Changed {
                                expected,
                                found: Some(version),
                            });
                        }
                        OnChange::Restart => {
                            tracing::warn!(
                                target: "riprap::stream",
                                location = %this.location,
                                resumed = ?expected,
                                found = %version,
                                "object changed: reading the new version from byte 0",
                            );
                            0
                        }
                    }
                }
            };
            let version = Arc::new(version);
            let chunks = futures_util::stream::try_unfold(start, move |pos| {
                let this = this.clone();
                let version = Arc::clone(&version);
                async move {
                    let size = version.size();
                    if pos >= size {
                        return Ok(None);
                    }
                    let end = pos.saturating_add(this.chunk_size).min(size);
                    let bytes = this.read(&version, pos..end).await?;
                    let at =
                        ObjectPosition::new(version.source_version().clone(), BytePosition(end));
                    Ok(Some(((at, bytes), end)))
                }
            });
            Ok(Box::pin(chunks) as ObjectChunks)
        })
    }
}

impl ObjectSource {
    /// Read `range` of `version`, or fail: never bytes of another version.
    async fn read(
        &self,
        version: &ObjectVersion,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ObjectReadError> {
        let expected = range.end - range.start;
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            // Where the store supports it, it refuses a replaced object itself.
            if_match: version.e_tag().map(str::to_owned),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&self.location, options).await {
            Ok(result) => result,
            Err(object_store::Error::Precondition { .. }) => {
                return Err(self.changed(version, None));
            }
            Err(e) => return Err(ObjectReadError::Store(e)),
        };
        // Checked whatever the store did with the precondition: some ignore it, and a
        // version id or modification time cannot be made a precondition of every store.
        let found = ObjectVersion::of(&result.meta);
        if found != *version {
            return Err(self.changed(version, Some(found)));
        }
        let bytes = result.bytes().await?;
        let got = bytes.len() as u64;
        if got != expected {
            return Err(ObjectReadError::Truncated { expected, got });
        }
        Ok(bytes)
    }

    fn changed(&self, expected: &ObjectVersion, found: Option<ObjectVersion>) -> ObjectReadError {
        match self.on_change {
            OnChange::Fail => ObjectReadError::Changed {
                expected: Some(expected.clone()),
                found,
            },
            OnChange::Restart => ObjectReadError::Replaced { found },
        }
    }
}

/// Why a ranged read failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ObjectReadError {
    /// The object store failed.
    Store(object_store::Error),
    /// A range came back shorter than asked (a dropped body).
    Truncated {
        /// Bytes asked for.
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// The object is not the version the stream was reading or resuming (with
    /// [`OnChange::Fail`]). Nothing of the other version was delivered.
    Changed {
        /// The version the position was taken in; `None` for a position from a checkpoint
        /// written before versions were recorded.
        expected: Option<ObjectVersion>,
        /// The version the store has now, if it said (a refused conditional read does not).
        found: Option<ObjectVersion>,
    },
    /// The object was replaced mid-transfer and, with [`OnChange::Restart`], the next
    /// connection reads the new version from byte 0. Nothing of the new version was
    /// delivered in this connection.
    Replaced {
        /// The version the store has now, if it said.
        found: Option<ObjectVersion>,
    },
}

impl From<object_store::Error> for ObjectReadError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::Precondition { .. } => ObjectReadError::Changed {
                expected: None,
                found: None,
            },
            e => ObjectReadError::Store(e),
        }
    }
}

impl fmt::Display for ObjectReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectReadError::Store(e) => write!(f, "object store: {e}"),
            ObjectReadError::Truncated { expected, got } => {
                write!(f, "range truncated: asked for {expected} bytes, got {got}")
            }
            ObjectReadError::Changed { expected, found } => {
                f.write_str("the object changed: ")?;
                match expected {
                    Some(v) => write!(f, "the position was taken in {v}")?,
                    None => f.write_str("the position records no version")?,
                }
                match found {
                    Some(v) => write!(f, ", the store now has {v}"),
                    None => f.write_str(", the store refused a read conditional on it"),
                }
            }
            ObjectReadError::Replaced { found } => {
                f.write_str("the object was replaced mid-transfer")?;
                if let Some(v) = found {
                    write!(f, " (now {v})")?;
                }
                f.write_str("; the next connection reads it from the start")
            }
        }
    }
}

impl std::error::Error for ObjectReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ObjectReadError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Missing objects, bad paths and refused credentials will not fix themselves; a changed
/// object cannot be resumed; dropped bodies, backend failures and a replacement the source
/// was told to start over on can.
impl Classified for ObjectReadError {
    fn class(&self) -> Class {
        use object_store::Error as E;
        match self {
            ObjectReadError::Truncated { .. } | ObjectReadError::Replaced { .. } => {
                Class::Transient
            }
            ObjectReadError::Changed { .. } => Class::Permanent,
            ObjectReadError::Store(e) => match e {
                E::NotFound { .. }
                | E::InvalidPath { .. }
                | E::NotSupported { .. }
                | E::AlreadyExists { .. }
                | E::Precondition { .. }
                | E::NotModified { .. }
                | E::NotImplemented
                | E::PermissionDenied { .. }
                | E::Unauthenticated { .. }
                | E::UnknownConfigurationKey { .. } => Class::Permanent,
                _ => Class::Transient,
            },
        }
    }
}
