//! [`Fleet`]: one Redis server (or proxy) shared by every process, and the round trips every
//! fleet layer makes through it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::events::Store;
use super::health::Health;
use crate::ConfigError;
use crate::backoff::BackoffPolicy;
use crate::error::check_duration;
use crate::events::{Listener, SharedListener};

/// Redis shared by every process of a fleet: build one per process and make its layers from
/// it ([`limiter`](Fleet::limiter), [`gate`](Fleet::gate), [`budget`](Fleet::budget),
/// [`offsets`](Fleet::offsets), [`invalidation`](Fleet::invalidation)).
///
/// Building connects to nothing: the connection (the `redis` crate's tokio
/// `ConnectionManager`) is made on first use, so a process starts while Redis is down and
/// runs on local state until it answers. Every round trip is bounded by
/// [`timeout`](FleetBuilder::timeout); one that fails or times out degrades every layer to
/// local state, and the next attempt waits for riprap's [`BackoffPolicy`]
/// ([`reconnect`](FleetBuilder::reconnect)).
///
/// ```
/// use std::time::Duration;
/// use riprap::fleet::Fleet;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), riprap::ConfigError> {
/// let fleet = Fleet::builder("redis://127.0.0.1:6379/")
///     .prefix("billing")                       // keys and channels start with `billing:`
///     .timeout(Duration::from_millis(100))     // no caller waits longer on Redis
///     .build()?;
/// assert_eq!(fleet.round_trips(), 0);          // nothing sent yet
///
/// let err = Fleet::redis("not a url").unwrap_err();
/// assert_eq!(err.knob(), "fleet.url");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fleet {
    pub(crate) conn: Arc<Conn>,
}

pub(crate) struct Conn {
    pub(crate) client: redis::Client,
    manager: ConnectionManager,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) reconnect: BackoffPolicy,
    pub(crate) health: Health,
}

/// Builder for [`Fleet`]; see [`Fleet::builder`].
#[must_use = "a builder does nothing until `build()` is called"]
pub struct FleetBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    reconnect: Option<BackoffPolicy>,
    listener: Option<SharedListener>,
}

impl fmt::Debug for FleetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet on the Redis server at `url` (`redis://host:port/db`), with the defaults.
    /// Must be called inside a tokio runtime.
    pub fn redis(url: &str) -> Result<Fleet, ConfigError> {
        Fleet::builder(url).build()
    }

    /// A builder: key prefix `riprap`, a 250 ms timeout per round trip, and reconnect
    /// attempts every 50 ms growing to 5 s (full jitter) while Redis does not answer.
    pub fn builder(url: &str) -> FleetBuilder {
        FleetBuilder {
            url: url.to_owned(),
            prefix: "riprap".to_owned(),
            timeout: Duration::from_millis(250),
            reconnect: None,
            listener: None,
        }
    }

    /// Round trips made to Redis so far by every layer of this fleet handle (answered or
    /// not): divide by the acquires made to see what leasing saves.
    pub fn round_trips(&self) -> u64 {
        self.conn.health.round_trips()
    }

    /// One round trip (`PING`) within the timeout: connects now rather than on the first
    /// acquire, and says whether Redis answers.
    pub async fn ping(&self) -> bool {
        let pong: Option<String> = self
            .conn
            .run(|mut con| async move { redis::cmd("PING").query_async(&mut con).await })
            .await;
        pong.is_some()
    }

    /// Whether Redis is taken to be answering (`false` while the layers run on local state).
    pub fn is_up(&self) -> bool {
        self.conn.health.is_up()
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("prefix", &self.conn.prefix)
            .field("up", &self.is_up())
            .field("round_trips", &self.round_trips())
            .finish_non_exhaustive()
    }
}

impl FleetBuilder {
    /// Start every key and channel with `prefix:` (default `riprap`), so several
    /// applications can share one Redis.
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// The longest any round trip may take, connecting included (default 250 ms). Past it
    /// the layers run on local state: no caller waits longer on Redis.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The delays between attempts while Redis does not answer (default: exponential from
    /// 50 ms to 5 s, full jitter).
    pub fn reconnect(mut self, policy: BackoffPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Report degradation, recovery, leases and subscriptions to `listener`.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Check every knob. Connects to nothing; must be called inside a tokio runtime.
    pub fn build(self) -> Result<Fleet, ConfigError> {
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| ConfigError::new("fleet.url", format!("not a Redis URL: {e}")))?;
        check_duration("fleet.timeout", self.timeout)?;
        if self.timeout.is_zero() {
            return Err(ConfigError::new("fleet.timeout", "must be more than zero"));
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(ConfigError::new(
                "fleet.prefix",
                "must be non-empty and free of `{` and `}` (riprap adds its own hash tags)",
            ));
        }
        let reconnect = match self.reconnect {
            Some(p) => p,
            None => BackoffPolicy::exponential(Duration::from_millis(50))
                .max_delay(Duration::from_secs(5))
                .build()?,
        };
        // riprap's backoff decides when to try again; the manager itself makes one quick
        // attempt per command and never waits longer than the timeout.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(self.timeout);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| ConfigError::new("fleet.url", format!("{e}")))?;
        Ok(Fleet {
            conn: Arc::new(Conn {
                client,
                manager,
                prefix: self.prefix,
                timeout: self.timeout,
                health: Health::new(Store::Redis, reconnect.clone(), self.listener),
                reconnect,
            }),
        })
    }
}

impl Conn {
    /// `prefix:{name}:what`: the hash tag keeps one name's keys in one cluster slot, so a
    /// script may touch them together.
    pub(crate) fn key(&self, name: &str, what: &str) -> String {
        format!("{}:{{{name}}}:{what}", self.prefix)
    }

    /// One round trip, bounded by the timeout; `None` when Redis is degraded (and not due
    /// for another attempt), failed or was too slow.
    pub(crate) async fn run<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.health.may_try(self.timeout) {
            return None;
        }
        self.health.count();
        match tokio::time::timeout(self.timeout, op(self.manager.clone())).await {
            Ok(Ok(v)) => {
                self.health.succeeded();
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::debug!(target: "riprap::fleet", error = %e, "redis round trip failed");
                self.health.failed();
                None
            }
            Err(_) => {
                self.health.failed();
                None
            }
        }
    }
}
