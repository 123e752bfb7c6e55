//! Where the committed position lives between runs.

use std::future::Future;
use std::sync::{Arc, Mutex};

use super::error::CheckpointError;
use super::offset::Offset;
use super::sink::{Flush, FlushFirst};

/// Durable storage for one stream's committed position.
///
/// `load` runs once when a [`Checkpointed`](super::Checkpointed) stream starts; `save` runs at
/// every commit, never concurrently with another `save` from the same stream, and always with
/// a position at or after the one saved before. When `save` returns `Ok` the position must
/// survive a crash: a restart resumes after whatever `load` returns.
///
/// A database-backed store is a few lines; here, SQLite through `rusqlite`:
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use riprap::stream::{CheckpointError, OffsetStore};
/// use rusqlite::{Connection, OptionalExtension};
///
/// struct SqliteStore { db: Arc<Mutex<Connection>>, stream: String }
///
/// impl OffsetStore<u64> for SqliteStore {
///     async fn load(&self) -> Result<Option<u64>, CheckpointError> {
///         let db = self.db.lock().map_err(|_| CheckpointError::backend("poisoned"))?;
///         db.query_row(
///             "SELECT position FROM offsets WHERE stream = ?1",
///             [&self.stream],
///             |row| row.get::<_, i64>(0),
///         )
///         .optional()
///         .map_err(CheckpointError::backend)?
///         .map(|p| u64::try_from(p).map_err(CheckpointError::backend))
///         .transpose()
///     }
///
///     async fn save(&self, position: &u64) -> Result<(), CheckpointError> {
///         let position = i64::try_from(*position).map_err(CheckpointError::backend)?;
///         let db = self.db.lock().map_err(|_| CheckpointError::backend("poisoned"))?;
///         db.execute(
///             "INSERT INTO offsets (stream, position) VALUES (?1, ?2)
///              ON CONFLICT (stream) DO UPDATE SET position = excluded.position",
///             rusqlite::params![self.stream, position],
///         )
///         .map_err(CheckpointError::backend)?;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let db = Connection::open_in_memory()?;
/// db.execute("CREATE TABLE offsets (stream TEXT PRIMARY KEY, position INTEGER NOT NULL)", [])?;
/// let store = SqliteStore { db: Arc::new(Mutex::new(db)), stream: "access-logs".into() };
/// assert_eq!(store.load().await?, None);
/// store.save(&41).await?;
/// assert_eq!(store.load().await?, Some(41));
/// # Ok(())
/// # }
/// ```
///
/// Committing in the same transaction as the consumer's own writes turns at-least-once into
/// effectively-once for that consumer: the position and the effects land together or not at
/// all. When the output lives elsewhere (a file, another service), wrap the store with
/// [`flush_first`](OffsetStore::flush_first) so the output is durable before the position
/// that covers it is saved.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot store offsets of type `{O}`",
    label = "not an offset store for these offsets",
    note = "use `MemoryStore` or `FileStore`, or implement `riprap::stream::OffsetStore<{O}>` (load and save) for your database or key-value store"
)]
pub trait OffsetStore<O: Offset>: Send + Sync + 'static {
    /// The committed position, or `None` if nothing was ever committed.
    fn load(&self) -> impl Future<Output = Result<Option<O>, CheckpointError>> + Send;

    /// Durably record `offset` as the committed position.
    fn save(&self, offset: &O) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// This store, flushing the consumer's output `sink` before every save, so that a
    /// committed position never runs ahead of the output: see [`FlushFirst`].
    fn flush_first<F: Flush>(self, sink: F) -> FlushFirst<Self, F>
    where
        Self: Sized,
    {
        FlushFirst::new(self, sink)
    }
}

/// An in-memory store: survives a reconnect, not a restart. Clones share the position, so a
/// test can keep one clone and inspect what a stream committed.
///
/// ```
/// use riprap::stream::{MemoryStore, OffsetStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), riprap::stream::CheckpointError> {
/// let store = MemoryStore::new();
/// let view = store.clone();
/// store.save(&9u64).await?;
/// assert_eq!(view.position(), Some(9));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MemoryStore<O> {
    position: Arc<Mutex<Option<O>>>,
}

impl<O> MemoryStore<O> {
    /// An empty store: nothing committed yet.
    pub fn new() -> Self {
        MemoryStore {
            position: Arc::new(Mutex::new(None)),
        }
    }

    /// A store that already holds `position`.
    pub fn with_position(position: O) -> Self {
        MemoryStore {
            position: Arc::new(Mutex::new(Some(position))),
        }
    }

    /// The position saved last, if any.
    pub fn position(&self) -> Option<O>
    where
        O: Clone,
    {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<O>> {
        // The guarded value is a plain `Option`, valid even if a holder panicked.
        self.position
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<O> Default for MemoryStore<O> {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl<O> Clone for MemoryStore<O> {
    fn clone(&self) -> Self {
        MemoryStore {
            position: Arc::clone(&self.position),
        }
    }
}

impl<O: Offset> OffsetStore<O> for MemoryStore<O> {
    async fn load(&self) -> Result<Option<O>, CheckpointError> {
        Ok(self.lock().clone())
    }

    async fn save(&self, offset: &O) -> Result<(), CheckpointError> {
        *self.lock() = Some(offset.clone());
        Ok(())
    }
}
