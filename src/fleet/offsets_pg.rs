//! An offset store in PostgreSQL that commits in the caller's own transaction, fenced by an
//! epoch.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row};

use super::events::{FleetEvent, emit};
use super::fenced::{Fenced, register};
use crate::ConfigError;
use crate::events::{Listener, SharedListener};
use crate::stream::{CheckpointError, Corruption, Offset, OffsetStore};

/// A stream's committed position in a PostgreSQL table, owned by one consumer at a time,
/// committed in the same transaction as the consumer's own writes.
///
/// **Exactly-once effect for a PostgreSQL sink.** [`commit_in`](PgOffsetStore::commit_in)
/// moves the position inside the caller's transaction: the sink's rows and the position
/// commit together or not at all. A consumer killed at any instant resumes after the last
/// position whose rows landed, so every item is in the sink exactly once.
///
/// **Fencing.** [`claim`](PgOffsetStoreBuilder::claim) bumps the stream's epoch; a commit
/// updates the row only while its epoch is still the one claimed. A zombie predecessor
/// (paused, partitioned, not yet killed) therefore gets [`Fenced`] and must roll back: it
/// can neither move the position backwards nor commit its writes after it lost ownership.
/// Row locks order a claim and a commit that race: whichever commits second sees the other.
///
/// The table (created by [`create_table`](PgOffsetStore::create_table), or by you):
///
/// ```sql
/// CREATE TABLE IF NOT EXISTS riprap_offsets (
///     stream   TEXT PRIMARY KEY,
///     epoch    BIGINT NOT NULL,
///     position BYTEA
/// );
/// ```
///
/// ```no_run
/// use riprap::fleet::PgOffsetStore;
/// use riprap::stream::OffsetStore;
///
/// # async fn run(pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
/// PgOffsetStore::<u64>::create_table(&pool).await?;
/// let store = PgOffsetStore::<u64>::builder(pool.clone(), "orders").claim().await?;
/// let mut next = store.load().await?.map_or(0, |p| p + 1);
/// let mut tx = pool.begin().await?;
/// sqlx::query("INSERT INTO sink (item) VALUES ($1)").bind(next as i64).execute(&mut *tx).await?;
/// store.commit_in(&mut tx, &next).await?; // fenced: a zombie's commit fails here
/// tx.commit().await?;                     // the row and the position land together
/// # Ok(()) }
/// ```
pub struct PgOffsetStore<O> {
    pool: PgPool,
    stream: String,
    table: String,
    epoch: i64,
    timeout: Duration,
    listener: Option<SharedListener>,
    _offset: PhantomData<fn() -> O>,
}

/// Builder for [`PgOffsetStore`]; see [`PgOffsetStore::builder`].
#[must_use = "a builder does nothing until `claim()` is called"]
pub struct PgOffsetStoreBuilder<O> {
    pool: PgPool,
    stream: String,
    table: String,
    timeout: Duration,
    listener: Option<SharedListener>,
    _offset: PhantomData<fn() -> O>,
}

impl<O> fmt::Debug for PgOffsetStoreBuilder<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOffsetStoreBuilder")
            .field("stream", &self.stream)
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<O> fmt::Debug for PgOffsetStore<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOffsetStore")
            .field("stream", &self.stream)
            .field("table", &self.table)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn timed_out() -> CheckpointError {
    CheckpointError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "postgresql did not answer in time",
    ))
}

async fn bounded<T>(
    timeout: Duration,
    op: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, CheckpointError> {
    match tokio::time::timeout(timeout, op).await {
        Ok(r) => r.map_err(CheckpointError::backend),
        Err(_) => Err(timed_out()),
    }
}

fn valid_table(table: &str) -> bool {
    !table.is_empty()
        && table.len() <= 63
        && table
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !table.as_bytes()[0].is_ascii_digit()
}

impl<O: Offset> PgOffsetStore<O> {
    /// A builder for `stream`'s store on `pool`: table `riprap_offsets`, 5 s per statement.
    pub fn builder(pool: PgPool, stream: &str) -> PgOffsetStoreBuilder<O> {
        PgOffsetStoreBuilder {
            pool,
            stream: stream.to_owned(),
            table: "riprap_offsets".to_owned(),
            timeout: Duration::from_secs(5),
            listener: None,
            _offset: PhantomData,
        }
    }

    /// Create the default table if it is not there.
    pub async fn create_table(pool: &PgPool) -> Result<(), sqlx::Error> {
        create(pool, "riprap_offsets").await
    }

    /// The epoch this consumer claimed.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Move the committed position to `offset` inside the caller's transaction (pass
    /// `&mut tx`, a `sqlx::Transaction`, or any connection inside a transaction). Fails
    /// with [`Fenced`] (inside [`CheckpointError::Backend`]) when another consumer claimed
    /// the stream since: roll the transaction back.
    pub async fn commit_in(
        &self,
        tx: &mut PgConnection,
        offset: &O,
    ) -> Result<(), CheckpointError> {
        let mut bytes = Vec::new();
        offset.encode(&mut bytes);
        let sql = format!(
            "UPDATE {} SET position = $1 WHERE stream = $2 AND epoch = $3",
            self.table
        );
        let done = bounded(
            self.timeout,
            sqlx::query(&sql)
                .bind(bytes)
                .bind(&self.stream)
                .bind(self.epoch)
                .execute(&mut *tx),
        )
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        emit(
            self.listener.as_ref(),
            FleetEvent::Fenced { epoch: self.epoch },
        );
        Err(CheckpointError::backend(Fenced {
            stream: self.stream.clone(),
            epoch: self.epoch,
        }))
    }
}

async fn create(pool: &PgPool, table: &str) -> Result<(), sqlx::Error> {
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {table} (stream TEXT PRIMARY KEY, epoch BIGINT NOT NULL, position BYTEA)"
    );
    sqlx::query(&sql).execute(pool).await.map(|_| ())
}

impl<O: Offset> PgOffsetStoreBuilder<O> {
    /// The table holding positions (default `riprap_offsets`): lowercase letters, digits and
    /// `_`, as an unquoted PostgreSQL name.
    pub fn table(mut self, table: &str) -> Self {
        table.clone_into(&mut self.table);
        self
    }

    /// The longest any statement may take (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Report fenced commits to `listener`.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listener = Some(std::sync::Arc::new(listener));
        self
    }

    /// Take the stream over: bump its epoch (creating its row if new), fencing off every
    /// earlier owner, and return the store for this consumer.
    pub async fn claim(self) -> Result<PgOffsetStore<O>, CheckpointError> {
        register();
        if !valid_table(&self.table) {
            return Err(CheckpointError::backend(ConfigError::new(
                "fleet.offsets.table",
                "must be an unquoted PostgreSQL name: lowercase letters, digits and `_`",
            )));
        }
        crate::error::check_duration("fleet.offsets.timeout", self.timeout)
            .map_err(CheckpointError::backend)?;
        let sql = format!(
            "INSERT INTO {} (stream, epoch) VALUES ($1, 1) \
             ON CONFLICT (stream) DO UPDATE SET epoch = {}.epoch + 1 RETURNING epoch",
            self.table, self.table
        );
        let row = bounded(
            self.timeout,
            sqlx::query(&sql).bind(&self.stream).fetch_one(&self.pool),
        )
        .await?;
        let epoch: i64 = row.try_get(0).map_err(CheckpointError::backend)?;
        Ok(PgOffsetStore {
            pool: self.pool,
            stream: self.stream,
            table: self.table,
            epoch,
            timeout: self.timeout,
            listener: self.listener,
            _offset: PhantomData,
        })
    }
}

impl<O: Offset> OffsetStore<O> for PgOffsetStore<O> {
    async fn load(&self) -> Result<Option<O>, CheckpointError> {
        let sql = format!("SELECT position FROM {} WHERE stream = $1", self.table);
        let row = bounded(
            self.timeout,
            sqlx::query(&sql)
                .bind(&self.stream)
                .fetch_optional(&self.pool),
        )
        .await?;
        let bytes: Option<Vec<u8>> = match row {
            Some(r) => r.try_get(0).map_err(CheckpointError::backend)?,
            None => None,
        };
        match bytes {
            None => Ok(None),
            Some(b) => O::decode(&b)
                .map(Some)
                .ok_or(CheckpointError::Corrupt(Corruption::Offset)),
        }
    }

    /// A commit of its own: one statement, fenced like [`commit_in`](PgOffsetStore::commit_in).
    async fn save(&self, offset: &O) -> Result<(), CheckpointError> {
        let mut conn = bounded(self.timeout, self.pool.acquire()).await?;
        self.commit_in(&mut conn, offset).await
    }
}
