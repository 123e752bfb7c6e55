//! The consumer's output, made durable before the position that covers it is committed.

use std::fmt;
use std::fs;
use std::future::Future;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::CheckpointError;
use super::offset::Offset;
use super::store::OffsetStore;

/// An output the consumer writes to and can make durable on demand: a file, a batch pending
/// in a database connection, a buffered upload.
///
/// Implemented for [`FileSink`] and for closures returning a future of `io::Result<()>`, such
/// as one syncing a `tokio::fs::File`:
///
/// ```
/// use std::sync::Arc;
/// use riprap::stream::Flush;
/// use tokio::sync::Mutex;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// # let path = std::env::temp_dir().join(format!("riprap-flush-doc-{}", std::process::id()));
/// let file = Arc::new(Mutex::new(tokio::fs::File::create(&path).await?));
/// let sink = {
///     let file = Arc::clone(&file);
///     move || {
///         let file = Arc::clone(&file);
///         async move { file.lock().await.sync_data().await }
///     }
/// };
/// sink.flush().await?;
/// # std::fs::remove_file(&path)?;
/// # Ok(())
/// # }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be flushed before an offset commits",
    note = "implement `riprap::stream::Flush` for your sink: make what was written durable"
)]
pub trait Flush: Send + Sync + 'static {
    /// Make everything written so far durable: once this returns `Ok`, no crash loses it.
    fn flush(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl<F, Fut> Flush for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<()>> + Send,
{
    fn flush(&self) -> impl Future<Output = io::Result<()>> + Send {
        self()
    }
}

/// An [`OffsetStore`] that flushes the consumer's output before every save, so the committed
/// position is never ahead of what the output durably holds.
///
/// A consumer acknowledges an item once it has *written* it, and writes usually land in a
/// buffer or the page cache first. Were the position saved before those bytes reached the
/// disk, a crash after the save would lose them for good: the restart resumes after them.
/// `FlushFirst` makes every commit two steps in this order: flush the sink (everything
/// written so far, which covers every acknowledged item), then save the position. A crash
/// between the two leaves the output ahead of the checkpoint, which the restart redelivers
/// (at-least-once); never the reverse. A failed flush saves nothing and ends the stream with
/// [`CheckpointError::Sink`].
///
/// Build it with [`OffsetStore::flush_first`] or [`FlushFirst::new`]:
///
/// ```
/// use std::time::Duration;
/// use futures_util::{stream, StreamExt};
/// use riprap::backoff::BackoffPolicy;
/// use riprap::stream::{
///     BytePosition, CommitConfig, FileSink, FileStore, OffsetStore, OnEnd, ResumeConfig,
///     Resumable,
/// };
///
/// /// Stand-in for a byte source: 100 bytes from `after`, in chunks of 10.
/// async fn open(after: Option<BytePosition>) -> std::io::Result<impl futures_core::Stream<
///     Item = std::io::Result<(BytePosition, Vec<u8>)>,
/// >> {
///     let from = after.map_or(0, |p| p.0);
///     Ok(stream::iter((from / 10..10).map(|i| Ok((BytePosition(i * 10 + 10), vec![i as u8; 10])))))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("riprap-sink-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let output = FileSink::open(dir.join("out.bin")).await?;
/// let checkpoint = FileStore::new(dir.join("out.ckpt")).flush_first(output.clone());
/// let mut copy = Resumable::new(tower::service_fn(open), BackoffPolicy::constant(Duration::from_secs(1)).build()?)
///     .config(ResumeConfig::builder().on_end(OnEnd::Finish).build()?)
///     .checkpointed(checkpoint, CommitConfig::builder().every(3).build()?);
/// let acker = copy.acker();
/// while let Some(delivery) = copy.next().await {
///     let delivery = delivery?;
///     let start = delivery.offset().0 - delivery.item().len() as u64;
///     let (bytes, ack) = delivery.into_parts();
///     output.append_at(start, bytes).await?; // written, not yet durable
///     acker.ack(ack)?;                       // a commit flushes it before saving the position
/// }
/// copy.flush().await?;
/// assert_eq!(output.len(), 100);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct FlushFirst<St, F> {
    store: St,
    sink: F,
}

impl<St, F> FlushFirst<St, F> {
    /// Save positions to `store`, flushing `sink` before each save.
    pub fn new(store: St, sink: F) -> Self {
        FlushFirst { store, sink }
    }

    /// The store positions are saved to.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The sink flushed before each save.
    pub fn sink(&self) -> &F {
        &self.sink
    }
}

impl<St: Clone, F: Clone> Clone for FlushFirst<St, F> {
    fn clone(&self) -> Self {
        FlushFirst {
            store: self.store.clone(),
            sink: self.sink.clone(),
        }
    }
}

impl<St: fmt::Debug, F> fmt::Debug for FlushFirst<St, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushFirst")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<O, St, F> OffsetStore<O> for FlushFirst<St, F>
where
    O: Offset,
    St: OffsetStore<O>,
    F: Flush,
{
    async fn load(&self) -> Result<Option<O>, CheckpointError> {
        self.store.load().await
    }

    async fn save(&self, offset: &O) -> Result<(), CheckpointError> {
        // Every acknowledged item was written before its ack, so this covers the position.
        self.sink.flush().await.map_err(CheckpointError::Sink)?;
        self.store.save(offset).await
    }
}

/// An output file for a resumable copy, written in order and flushed by [`FlushFirst`].
///
/// [`append_at`](FileSink::append_at) writes each item's bytes at the position where they
/// start and cuts the file back to that position first if it is longer, so the file always
/// ends with the last item written. That is what makes a restart exact without a step of its
/// own: the first item after a restart starts at the committed position, and what a crash
/// left beyond it is dropped; a source that starts over (an object replaced in the meantime,
/// with `ObjectSource`'s `OnChange::Restart`) starts at 0, and the old bytes go.
/// A position beyond the end is a gap and is refused.
///
/// Clones share the file. File I/O runs on tokio's blocking pool.
pub struct FileSink {
    inner: Arc<SinkFile>,
}

struct SinkFile {
    path: PathBuf,
    file: Mutex<fs::File>,
    /// The file's length, readable without waiting for a write in progress.
    len: AtomicU64,
}

impl FileSink {
    /// Open `path` for writing, creating it if it is missing and keeping what it holds.
    pub async fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let path = path.into();
        let opened = path.clone();
        let (file, len) = blocking(move || {
            let file = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&opened)?;
            let len = file.metadata()?.len();
            Ok((file, len))
        })
        .await?;
        Ok(FileSink {
            inner: Arc::new(SinkFile {
                path,
                file: Mutex::new(file),
                len: AtomicU64::new(len),
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The bytes the file holds, durable or not.
    pub fn len(&self) -> u64 {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write `bytes` at `start`, first dropping whatever the file holds from `start` on.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if `start` is past the end of the file: the
    /// bytes in between were never written.
    pub async fn append_at(
        &self,
        start: u64,
        bytes: impl AsRef<[u8]> + Send + 'static,
    ) -> io::Result<()> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let mut file = inner.lock();
            let len = file.metadata()?.len();
            if start > len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: writing at byte {start} would leave a gap after byte {len}",
                        inner.path.display()
                    ),
                ));
            }
            if start < len {
                file.set_len(start)?;
            }
            file.seek(SeekFrom::Start(start))?;
            let bytes = bytes.as_ref();
            let written = file.write_all(bytes);
            // Whatever reached the file counts, even if the write failed part-way.
            inner.len.store(file.metadata()?.len(), Ordering::Release);
            written
        })
        .await
    }
}

impl SinkFile {
    fn lock(&self) -> std::sync::MutexGuard<'_, fs::File> {
        // A file handle stays usable even if a writer panicked; the length is re-read from
        // the file at every write rather than trusted from before.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Flush for FileSink {
    async fn flush(&self) -> io::Result<()> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.lock().sync_data()).await
    }
}

impl Clone for FileSink {
    fn clone(&self) -> Self {
        FileSink {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl fmt::Debug for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink")
            .field("path", &self.inner.path)
            .field("len", &self.len())
            .finish()
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(io::Error::other(join)),
    }
}
