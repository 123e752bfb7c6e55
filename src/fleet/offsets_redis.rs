//! An offset store on Redis, fenced by an epoch.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use redis::Script;

use super::events::FleetEvent;
use super::fenced::{Fenced, register};
use super::redis::{Conn, Fleet};
use crate::stream::{CheckpointError, Offset, OffsetStore};

/// Save only for the current owner. KEYS[1]: the stream's hash; ARGV: epoch, position.
const SAVE: &str = r"
if tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'position', ARGV[2])
return 1
";

/// A stream's committed position in Redis, owned by one consumer at a time.
///
/// [`Fleet::offsets`] *claims* the stream: it bumps the stream's epoch, and from then on
/// only this store may save. A predecessor that still runs (a zombie: paused, partitioned,
/// not yet killed) has its saves refused with [`Fenced`], so it can neither move the
/// offset backwards nor commit after it lost ownership.
///
/// Redis is as durable as its persistence settings (AOF with `appendfsync always` for a
/// position that survives a Redis crash). For a sink in PostgreSQL, prefer the PostgreSQL
/// store, which commits the offset in the sink's own transaction.
///
/// ```no_run
/// use riprap::fleet::Fleet;
/// use riprap::stream::OffsetStore;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let fleet = Fleet::redis("redis://127.0.0.1:6379/")?;
/// let store = fleet.offsets::<u64>("access-logs").await?; // this consumer owns it now
/// let resume_after = store.load().await?;
/// store.save(&42).await?;
/// # Ok(()) }
/// ```
pub struct RedisOffsetStore<O> {
    conn: Arc<Conn>,
    stream: String,
    key: String,
    epoch: i64,
    script: Arc<Script>,
    _offset: PhantomData<fn() -> O>,
}

impl Fleet {
    /// Claim `stream`'s offsets for this consumer; see [`RedisOffsetStore`]. Fails if Redis
    /// does not answer within the fleet's timeout.
    pub async fn offsets<O: Offset>(
        &self,
        stream: &str,
    ) -> Result<RedisOffsetStore<O>, CheckpointError> {
        register();
        let conn = Arc::clone(&self.conn);
        let key = conn.key(stream, "offset");
        let epoch: i64 = conn
            .run(|mut con| {
                let key = key.clone();
                async move {
                    redis::cmd("HINCRBY")
                        .arg(key)
                        .arg("epoch")
                        .arg(1)
                        .query_async(&mut con)
                        .await
                }
            })
            .await
            .ok_or_else(unreachable)?;
        Ok(RedisOffsetStore {
            conn,
            stream: stream.to_owned(),
            key,
            epoch,
            script: Arc::new(Script::new(SAVE)),
            _offset: PhantomData,
        })
    }
}

fn unreachable() -> CheckpointError {
    CheckpointError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "redis did not answer in time",
    ))
}

impl<O> RedisOffsetStore<O> {
    /// The epoch this consumer claimed.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }
}

impl<O> fmt::Debug for RedisOffsetStore<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOffsetStore")
            .field("stream", &self.stream)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl<O: Offset> OffsetStore<O> for RedisOffsetStore<O> {
    async fn load(&self) -> Result<Option<O>, CheckpointError> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .run(|mut con| {
                let key = self.key.clone();
                async move {
                    redis::cmd("HGET")
                        .arg(key)
                        .arg("position")
                        .query_async(&mut con)
                        .await
                }
            })
            .await
            .ok_or_else(unreachable)?;
        match bytes {
            None => Ok(None),
            Some(b) => O::decode(&b)
                .map(Some)
                .ok_or(CheckpointError::Corrupt(crate::stream::Corruption::Offset)),
        }
    }

    async fn save(&self, offset: &O) -> Result<(), CheckpointError> {
        let mut bytes = Vec::new();
        offset.encode(&mut bytes);
        let saved: i64 = self
            .conn
            .run(|mut con| {
                let mut call = self.script.key(&self.key);
                call.arg(self.epoch).arg(bytes);
                async move { call.invoke_async(&mut con).await }
            })
            .await
            .ok_or_else(unreachable)?;
        if saved == 1 {
            return Ok(());
        }
        self.conn
            .health
            .emit(FleetEvent::Fenced { epoch: self.epoch });
        Err(CheckpointError::backend(Fenced {
            stream: self.stream.clone(),
            epoch: self.epoch,
        }))
    }
}
