//! Reading an object by ranged requests, resumable mid-object.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use super::offset::BytePosition;
use crate::classify::{Class, Classified};

/// A source reading one object through [`object_store`] in ranged requests, one chunk each,
/// so a [`Resumable`](super::Resumable) that loses the connection continues from the last
/// byte it delivered instead of starting over.
///
/// Each item is a chunk of bytes with the [`BytePosition`] just past it. The first connection
/// records the object's size and entity tag; every read is conditional on that tag, so if the
/// object is replaced mid-transfer the stream ends with [`ObjectReadError::Changed`] rather
/// than splicing two versions. The stream ends when the object is complete: configure the
/// `Resumable` with [`OnEnd::Finish`](super::OnEnd::Finish).
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
#[derive(Clone)]
pub struct ObjectSource {
    store: Arc<dyn ObjectStore>,
    location: Path,
    chunk_size: u64,
    pinned: Arc<Mutex<Option<Pinned>>>,
}

impl ObjectSource {
    /// Read `location` from `store` in chunks of 1 MiB (see
    /// [`chunk_size`](ObjectSource::chunk_size)).
    pub fn new(store: Arc<dyn ObjectStore>, location: Path) -> Self {
        ObjectSource {
            store,
            location,
            chunk_size: 1 << 20,
            pinned: Arc::new(Mutex::new(None)),
        }
    }

    /// Bytes per ranged request; the most a disconnect can make the stream re-read. Values
    /// below 1 are raised to 1.
    pub fn chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }
}

impl fmt::Debug for ObjectSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectSource")
            .field("store", &self.store.to_string())
            .field("location", &self.location)
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

/// Size and entity tag seen by the first connection.
type Pinned = (u64, Option<String>);

/// Chunks of one object, each with the position just past it.
pub type ObjectChunks =
    Pin<Box<dyn Stream<Item = Result<(BytePosition, Bytes), ObjectReadError>> + Send>>;

type Connect = Pin<Box<dyn Future<Output = Result<ObjectChunks, ObjectReadError>> + Send>>;

impl tower_service::Service<Option<BytePosition>> for ObjectSource {
    type Response = ObjectChunks;
    type Error = ObjectReadError;
    type Future = Connect;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, after: Option<BytePosition>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let meta = this.store.head(&this.location).await?;
            let (size, e_tag) = {
                let mut pinned = this.pinned.lock().unwrap_or_else(|p| p.into_inner());
                match &*pinned {
                    Some((size, tag)) if *size != meta.size || *tag != meta.e_tag => {
                        return Err(ObjectReadError::Changed);
                    }
                    Some(known) => known.clone(),
                    None => pinned.insert((meta.size, meta.e_tag)).clone(),
                }
            };
            let start = after.map_or(0, |p| p.0);
            let chunks = futures_util::stream::try_unfold(start, move |pos| {
                let this = this.clone();
                let e_tag = e_tag.clone();
                async move {
                    if pos >= size {
                        return Ok(None);
                    }
                    let end = pos.saturating_add(this.chunk_size).min(size);
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(pos..end)),
                        if_match: e_tag,
                        ..GetOptions::default()
                    };
                    let bytes = this
                        .store
                        .get_opts(&this.location, options)
                        .await?
                        .bytes()
                        .await?;
                    let got = bytes.len() as u64;
                    if got != end - pos {
                        return Err(ObjectReadError::Truncated {
                            expected: end - pos,
                            got,
                        });
                    }
                    Ok(Some(((BytePosition(end), bytes), end)))
                }
            });
            Ok(Box::pin(chunks) as ObjectChunks)
        })
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
    /// The object's size or entity tag changed between connections.
    Changed,
}

impl From<object_store::Error> for ObjectReadError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::Precondition { .. } => ObjectReadError::Changed,
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
            ObjectReadError::Changed => f.write_str("the object changed during the transfer"),
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
/// object cannot be resumed; dropped bodies and backend failures can.
impl Classified for ObjectReadError {
    fn class(&self) -> Class {
        use object_store::Error as E;
        match self {
            ObjectReadError::Truncated { .. } => Class::Transient,
            ObjectReadError::Changed => Class::Permanent,
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
