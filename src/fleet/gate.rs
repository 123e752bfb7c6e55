//! The shared server gate: a pause any process saw pauses every process.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::Script;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::events::FleetEvent;
use super::redis::{Conn, Fleet};
use super::subscription::{Subscriber, keep};
use crate::backoff::SplitMix64;
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
        let task = tokio::spawn(keep(Arc::downgrade(&inner)));
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
        crate::time::nanos(at.saturating_duration_since(self.base)).max(1)
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

impl Subscriber for Inner {
    fn conn(&self) -> &Conn {
        &self.conn
    }

    fn channel(&self) -> &str {
        &self.channel
    }

    /// Read what is already paused: a pause announced while this process was away (or
    /// before it started) still reaches it.
    async fn subscribed(&self, _again: bool) {
        let left: Option<i64> = self
            .conn
            .run(|mut con| {
                let key = self.key.clone();
                async move { redis::cmd("PTTL").arg(key).query_async(&mut con).await }
            })
            .await;
        if let Some(ms) = left.and_then(|ms| u64::try_from(ms).ok()) {
            self.heard(Duration::from_millis(ms));
        }
    }

    fn message(&self, payload: &[u8]) {
        let text = std::str::from_utf8(payload).unwrap_or("");
        let mut parts = text.splitn(2, ':');
        let ms = parts.next().and_then(|p| p.parse::<u64>().ok());
        let origin = parts.next().and_then(|p| p.parse::<u64>().ok());
        if let (Some(ms), Some(origin)) = (ms, origin) {
            if origin != self.origin {
                self.heard(Duration::from_millis(ms));
            }
        }
    }

    /// The local gate carries on alone: this process still pauses on its own 429s.
    fn lost(&self) {}

    fn set_subscribed(&self, on: bool) {
        self.subscribed.store(on, Relaxed);
    }
}
