//! A crash-safe checkpoint file.

use std::fs;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::codec;
use super::error::CheckpointError;
use super::offset::Offset;
use super::store::OffsetStore;

/// Keeps the committed position in one file, replaced atomically at every save.
///
/// A save writes a temporary file in the same directory, fsyncs it, renames it over the
/// checkpoint and fsyncs the directory, so after a crash at any instant the file holds either
/// the previous position or the new one, whole. The format (see [`codec`](super::codec)) has
/// a magic, a version, a length and a CRC-32, and a damaged file is reported as
/// [`CheckpointError::Corrupt`], never read as "start from the beginning". A missing file
/// means nothing was committed yet.
///
/// File I/O runs on tokio's blocking pool, so the store needs a tokio runtime.
///
/// ```
/// use riprap::stream::{FileStore, OffsetStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("riprap-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = FileStore::<u64>::new(dir.join("access-logs.ckpt"));
/// assert_eq!(store.load().await?, None); // no checkpoint yet
/// store.save(&1_000).await?;
/// assert_eq!(store.load().await?, Some(1_000));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct FileStore<O> {
    inner: Arc<Inner>,
    _offset: PhantomData<fn() -> O>,
}

struct Inner {
    path: PathBuf,
    tmp: PathBuf,
    /// Orders saves: a save whose future was dropped keeps running on the blocking pool, and
    /// must neither interleave with nor land after a newer one.
    issued: AtomicU64,
    written: Mutex<u64>,
}

impl<O> FileStore<O> {
    /// A store keeping its checkpoint at `path`. The directory must exist; the file need not.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(path.file_name().unwrap_or_else(|| "checkpoint".as_ref()));
        tmp_name.push(".tmp");
        let tmp = path.with_file_name(tmp_name);
        FileStore {
            inner: Arc::new(Inner {
                path,
                tmp,
                issued: AtomicU64::new(0),
                written: Mutex::new(0),
            }),
            _offset: PhantomData,
        }
    }

    /// The checkpoint file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl<O> Clone for FileStore<O> {
    fn clone(&self) -> Self {
        FileStore {
            inner: Arc::clone(&self.inner),
            _offset: PhantomData,
        }
    }
}

impl<O> std::fmt::Debug for FileStore<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl<O: Offset> OffsetStore<O> for FileStore<O> {
    async fn load(&self) -> Result<Option<O>, CheckpointError> {
        let path = self.inner.path.clone();
        blocking(move || match fs::read(&path) {
            Ok(bytes) => codec::decode(&bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CheckpointError::Io(e)),
        })
        .await
    }

    async fn save(&self, offset: &O) -> Result<(), CheckpointError> {
        let bytes = codec::encode(offset)?;
        let inner = Arc::clone(&self.inner);
        let generation = inner.issued.fetch_add(1, Ordering::Relaxed) + 1;
        blocking(move || inner.write(generation, &bytes)).await
    }
}

impl Inner {
    fn write(&self, generation: u64, bytes: &[u8]) -> Result<(), CheckpointError> {
        // The guarded value is a plain counter, valid even if a writer panicked.
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if *written > generation {
            // A newer save already landed: writing this one would move the position back.
            return Ok(());
        }
        let mut file = fs::File::create(&self.tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        sync_dir(&self.path)?;
        *written = generation;
        Ok(())
    }
}

/// The rename is durable only once the directory entry is.
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing here; NTFS journals the rename itself.
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CheckpointError> + Send + 'static,
) -> Result<T, CheckpointError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(CheckpointError::Io(io::Error::other(join))),
    }
}
