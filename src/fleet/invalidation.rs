//! Cache invalidation that reaches every process's cache.

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use tokio::task::AbortHandle;

use super::redis::{Conn, Fleet};
use super::subscription::{Subscriber, keep};
use crate::backoff::SplitMix64;
use crate::cache::Cache;

/// `invalidate` on one process reaches every process's cache of the same name, over Redis
/// pub/sub.
///
/// Each process wraps its own [`Cache`] and invalidates through this handle: the key is
/// forgotten here at once, then announced to the others, which forget it as their message
/// arrives. Keys travel as text ([`Display`](fmt::Display) out, [`FromStr`] in).
///
/// **If the subscription is lost** (Redis restarts, the network drops), invalidations sent
/// meanwhile do not arrive: until it is back, the entries' freshness rests on the cache's
/// own `refresh_after` and `expire_after`, and a [`FleetEvent::SubscriptionLost`](super::FleetEvent::SubscriptionLost)
/// says so. Set `refresh_after` to the staleness you accept during such an outage. When the
/// subscription is back, every entry is invalidated once, since any of them may have missed
/// its message, and [`FleetEvent::Subscribed`](super::FleetEvent::Subscribed) follows.
///
/// ```no_run
/// use std::time::Duration;
/// use riprap::cache::{Cache, CacheConfig};
/// use riprap::fleet::Fleet;
///
/// # #[tokio::main] async fn main() -> Result<(), riprap::ConfigError> {
/// let config = CacheConfig::builder()
///     .expire_after(Duration::from_secs(3600))  // invalidations keep it fresh...
///     .refresh_after(Duration::from_secs(30))   // ...and this, while they cannot
///     .build()?;
/// let cache: Cache<String, String, std::io::Error> = Cache::new(config);
/// let fleet = Fleet::redis("redis://127.0.0.1:6379/")?;
/// let shared = fleet.invalidation("settings", cache.clone());
/// shared.invalidate(&"feature-flags".to_string()).await; // every process forgets it
/// # Ok(()) }
/// ```
pub struct FleetInvalidation<K, V, E> {
    inner: Arc<Inner<K, V, E>>,
}

impl<K, V, E> Clone for FleetInvalidation<K, V, E> {
    fn clone(&self) -> Self {
        FleetInvalidation {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<K, V, E> {
    conn: Arc<Conn>,
    cache: Cache<K, V, E>,
    channel: String,
    origin: u64,
    subscribed: AtomicBool,
    task: OnceLock<AbortHandle>,
}

impl<K, V, E> Drop for Inner<K, V, E> {
    fn drop(&mut self) {
        if let Some(t) = self.task.get() {
            t.abort();
        }
    }
}

impl Fleet {
    /// Invalidations of `cache` shared with every process's cache named `name`; see
    /// [`FleetInvalidation`]. Subscribes in the background; must be called inside a tokio
    /// runtime.
    pub fn invalidation<K, V, E>(
        &self,
        name: &str,
        cache: Cache<K, V, E>,
    ) -> FleetInvalidation<K, V, E>
    where
        K: Hash + Eq + Clone + Send + Sync + fmt::Display + FromStr + 'static,
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let inner = Arc::new(Inner {
            channel: conn.key(name, "invalidations"),
            origin: SplitMix64::random_seed(conn.health.round_trips() ^ 0x1a7a),
            subscribed: AtomicBool::new(false),
            task: OnceLock::new(),
            cache,
            conn,
        });
        let task = tokio::spawn(keep(Arc::downgrade(&inner)));
        let _ = inner.task.set(task.abort_handle());
        FleetInvalidation { inner }
    }
}

impl<K, V, E> FleetInvalidation<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Display + FromStr + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// Forget `key` here at once and in every other process as the message reaches it.
    /// Returns whether the message was sent (`false`: Redis did not answer within the
    /// fleet's timeout; the others keep the entry until their own `refresh_after`).
    pub async fn invalidate(&self, key: &K) -> bool {
        self.inner.cache.invalidate(key);
        self.publish(format!("{}:k:{key}", self.inner.origin)).await
    }

    /// Forget every entry, here and in every other process.
    pub async fn invalidate_all(&self) -> bool {
        self.inner.cache.invalidate_all();
        self.publish(format!("{}:*", self.inner.origin)).await
    }

    async fn publish(&self, message: String) -> bool {
        let channel = &self.inner.channel;
        let sent: Option<i64> = self
            .inner
            .conn
            .run(|mut con| async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(message)
                    .query_async(&mut con)
                    .await
            })
            .await;
        sent.is_some()
    }

    /// The cache this handle invalidates.
    pub fn cache(&self) -> &Cache<K, V, E> {
        &self.inner.cache
    }

    /// Whether the subscription to the others' invalidations is in place.
    pub fn is_subscribed(&self) -> bool {
        self.inner.subscribed.load(Relaxed)
    }
}

impl<K, V, E> fmt::Debug for FleetInvalidation<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetInvalidation")
            .field("channel", &self.inner.channel)
            .field("subscribed", &self.inner.subscribed.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl<K, V, E> Subscriber for Inner<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Display + FromStr + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    fn conn(&self) -> &Conn {
        &self.conn
    }

    fn channel(&self) -> &str {
        &self.channel
    }

    /// Back after a loss: any entry may have missed its message.
    async fn subscribed(&self, again: bool) {
        if again {
            self.cache.invalidate_all();
        }
    }

    fn message(&self, payload: &[u8]) {
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let Some((origin, rest)) = text.split_once(':') else {
            return;
        };
        if origin.parse::<u64>().ok() == Some(self.origin) {
            return;
        }
        if rest == "*" {
            self.cache.invalidate_all();
        } else if let Some(key) = rest.strip_prefix("k:").and_then(|k| k.parse::<K>().ok()) {
            self.cache.invalidate(&key);
        }
    }

    fn lost(&self) {}

    fn set_subscribed(&self, on: bool) {
        self.subscribed.store(on, Relaxed);
    }
}
