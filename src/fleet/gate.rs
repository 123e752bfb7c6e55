//! The shared server gate: a pause any process saw pauses every process.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::Script;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::events::{FleetEvent, Store};
use super::redis::{Conn, Fleet};
use crate::backoff::{Backoff, MakeBackoff, SplitMix64};
use crate::classify::headers::MAX_SERVER_DELAY;
use crate::ratelimit::shared::SharedGate;

/// Extend the pause, never shorten it, and tell every process. KEYS[1]: the pause's key;
/// ARGV: the pause in ms, the channel, the message.
const PAUSE: &str = r"
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
";

/// A server gate shared by every process using the same name: a 429 or `Retry-After` that
/// any of them sees pauses all of them, for as long as the server asked and never less.
///
/// The pause lives in Redis as a key that expires when the server's delay does, and is
/// announced on a pub/sub channel. Each process keeps a local copy of the latest pause,
/// kept current by its subscription, so the hot path reads one atomic and makes no round
/// trip. A process that (re)subscribes reads the key's remaining time first, so a pause
/// announced while it was away still reaches it. While the subscription is down, each
/// process runs on its own gate (it still pauses itself on its own 429s), and a
/// [`FleetEvent::SubscriptionLost`] says so.
///
/// A fleet limiter ([`Fleet::limiter`]) uses one under the limiter's name; a gate on its
/// own serves anything else that should stop when the server says so.
///
/// ```no_run
/// use std::time::Duration;
/// use riprap::fleet::Fleet;
///
/// # #[tokio::main] async fn main() -> Result<(), riprap::ConfigError> {
/// let fleet = Fleet::redis("redis://127.0.0.1:6379/")?;
/// let gate = fleet.gate("openai");
/// gate.pause(Duration::from_secs(20)); // a 429 with `Retry-After: 20` seen here
/// assert!(gate.paused_for().is_some()); // ...and in every other process within a round trip
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FleetGate {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Arc<Conn>,
    key: String,
    channel: String,
    /// Tells this process's own announcements apart from others'.
    origin: u64,
    base: Instant,
    /// Nanoseconds since `base` until which the fleet is paused; 0: never paused.
    until: AtomicU64,
    subscribed: AtomicBool,
    script: Script,
    task: OnceLock<AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

impl Fleet {
    /// The shared server gate named `name`; see [`FleetGate`]. Subscribes in the background;
    /// must be called inside a tokio runtime.
    pub fn gate(&self, name: &str) -> FleetGate {
        let conn = Arc::clone(&self.conn);
        let inner = Arc::new(Inner {
            key: conn.key(name, "pause"),
            channel: conn.key(name, "pauses"),
            origin: SplitMix64::random_seed(conn.health.round_trips()),
            base: Instant::now(),
            until: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            script: Script::new(PAUSE),
            task: OnceLock::new(),
            conn,
        });
        let task = tokio::spawn(subscribe(Arc::downgrade(&inner)));
        let _ = inner.task.set(task.abort_handle());
        FleetGate { inner }
    }
}

impl FleetGate {
    /// Pause every process for `pause` (at most a day), as a server's 429 seen here would.
    /// Returns at once; the announcement is sent in the background.
    pub fn pause(&self, pause: Duration) {
        self.close_until(Instant::now() + pause.min(MAX_SERVER_DELAY));
    }

    /// How long the fleet is paused for, as last heard here.
    pub fn paused_for(&self) -> Option<Duration> {
        let until = self.closed_until()?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Whether the subscription to other processes' pauses is in place.
    pub fn is_subscribed(&self) -> bool {
        self.inner.subscribed.load(Relaxed)
    }
}

impl Inner {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Extend the local copy to `until`; `true` if that moved it later.
    fn extend(&self, until: Instant) -> bool {
        let n = self.nanos(until);
        self.until.fetch_max(n, Relaxed) < n
    }

    /// Another process paused the fleet for `pause` from the moment its message arrived: a
    /// delivery delay only makes this later, never earlier, than the server asked.
    fn heard(&self, pause: Duration) {
        let pause = pause.min(MAX_SERVER_DELAY);
        if !pause.is_zero() && self.extend(Instant::now() + pause) {
            self.conn.health.emit(FleetEvent::RemotePause { pause });
        }
    }

    async fn announce(&self, pause: Duration) {
        let ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX).max(1);
        let message = format!("{ms}:{}", self.origin);
        let _: Option<i64> = self
            .conn
            .run(|mut con| {
                let mut call = self.script.key(&self.key);
                call.arg(ms).arg(&self.channel).arg(message);
                async move { call.invoke_async(&mut con).await }
            })
            .await;
    }
}

impl SharedGate for FleetGate {
    #[inline]
    fn closed_until(&self) -> Option<Instant> {
        match self.inner.until.load(Relaxed) {
            0 => None,
            n => Some(self.inner.base + Duration::from_nanos(n)),
        }
    }

    fn close_until(&self, until: Instant) {
        let inner = &self.inner;
        // Already paused at least this long (by this process or another): nothing to tell.
        if !inner.extend(until) {
            return;
        }
        // Rounded up to whole milliseconds: the others never reopen before the server said.
        let pause = until.saturating_duration_since(Instant::now()) + Duration::from_micros(999);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let me = Arc::clone(inner);
            rt.spawn(async move { me.announce(pause).await });
        }
    }
}

impl fmt::Debug for FleetGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetGate")
            .field("key", &self.inner.key)
            .field("paused_for", &self.paused_for())
            .field("subscribed", &self.is_subscribed())
            .finish_non_exhaustive()
    }
}

/// Keep a subscription to the gate's channel, reconnecting with riprap's backoff; ends when
/// the gate is dropped.
async fn subscribe(gate: Weak<Inner>) {
    let Some(me) = gate.upgrade() else { return };
    let (client, channel, timeout) = (me.conn.client.clone(), me.channel.clone(), me.conn.timeout);
    let mut backoff = me.conn.reconnect.make_backoff();
    drop(me);
    loop {
        let connected = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        if let Ok(Ok(pubsub)) = connected {
            let Some(me) = gate.upgrade() else { return };
            // Subscribed first, then read what is already there: nothing falls in between.
            let left: Option<i64> = me
                .conn
                .run(|mut con| {
                    let key = me.key.clone();
                    async move { redis::cmd("PTTL").arg(key).query_async(&mut con).await }
                })
                .await;
            if let Some(ms) = left.and_then(|ms| u64::try_from(ms).ok()) {
                me.heard(Duration::from_millis(ms));
            }
            me.subscribed.store(true, Relaxed);
            me.conn.health.emit(FleetEvent::Subscribed {
                store: Store::Redis,
            });
            backoff.reset();
            drop(me);
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Some(me) = gate.upgrade() else { return };
                let payload = msg.get_payload_bytes();
                let text = std::str::from_utf8(payload).unwrap_or("");
                let mut parts = text.splitn(2, ':');
                let ms = parts.next().and_then(|p| p.parse::<u64>().ok());
                let origin = parts.next().and_then(|p| p.parse::<u64>().ok());
                if let (Some(ms), Some(origin)) = (ms, origin) {
                    if origin != me.origin {
                        me.heard(Duration::from_millis(ms));
                    }
                }
            }
            let Some(me) = gate.upgrade() else { return };
            me.subscribed.store(false, Relaxed);
            me.conn.health.emit(FleetEvent::SubscriptionLost {
                store: Store::Redis,
            });
        }
        let delay = backoff.next_delay().unwrap_or(Duration::from_secs(5));
        tokio::time::sleep(delay).await;
    }
}
