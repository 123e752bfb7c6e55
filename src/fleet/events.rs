//! What the fleet layers report.

use std::time::Duration;

use crate::events::SharedListener;

/// Which shared store an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Store {
    /// Redis.
    Redis,
    /// PostgreSQL.
    Postgres,
}

impl Store {
    /// `"redis"` or `"postgres"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Store::Redis => "redis",
            Store::Postgres => "postgres",
        }
    }
}

/// Something a fleet layer did, for a [`Listener`](crate::events::Listener) and `tracing`
/// (target `riprap::fleet`).
///
/// ```
/// use riprap::fleet::{FleetEvent, Store};
///
/// let e = FleetEvent::Degraded { store: Store::Redis, retry_in: std::time::Duration::from_millis(50) };
/// assert_eq!(e.as_str(), "degraded");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetEvent {
    /// The store failed or did not answer in time: every layer runs on local state (the
    /// quota on its local share, the gate on the local gate, the budget on the local
    /// budget) until it answers again.
    Degraded {
        /// Which store.
        store: Store,
        /// When the next attempt is due (riprap's backoff).
        retry_in: Duration,
    },
    /// The store answered again after being degraded: shared state is back in charge.
    Recovered {
        /// Which store.
        store: Store,
        /// How long it was degraded.
        after: Duration,
    },
    /// The quota leased capacity in one round trip.
    Leased {
        /// Requests granted.
        requests: u32,
        /// Cost units granted.
        cost: u32,
        /// How long until the grant may be spent (zero unless the fleet is at its limit).
        ready_in: Duration,
    },
    /// A subscription (the gate's pauses, cache invalidations) was lost: until it is back,
    /// the gate is local and cached entries fall back to the cache's `refresh_after` and
    /// `expire_after`.
    SubscriptionLost {
        /// Which store.
        store: Store,
    },
    /// A subscription is (again) in place; what was missed meanwhile has been caught up.
    Subscribed {
        /// Which store.
        store: Store,
    },
    /// Another process's pause reached this one.
    RemotePause {
        /// How long it pauses this process.
        pause: Duration,
    },
    /// A commit was refused because another consumer took the stream over.
    Fenced {
        /// The epoch this consumer held.
        epoch: i64,
    },
}

impl FleetEvent {
    /// A short snake_case name for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            FleetEvent::Degraded { .. } => "degraded",
            FleetEvent::Recovered { .. } => "recovered",
            FleetEvent::Leased { .. } => "leased",
            FleetEvent::SubscriptionLost { .. } => "subscription_lost",
            FleetEvent::Subscribed { .. } => "subscribed",
            FleetEvent::RemotePause { .. } => "remote_pause",
            FleetEvent::Fenced { .. } => "fenced",
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Trace `event` (target `riprap::fleet`) and hand it to `listener`.
pub(crate) fn emit(listener: Option<&SharedListener<FleetEvent>>, event: FleetEvent) {
    const T: &str = "riprap::fleet";
    match event {
        FleetEvent::Degraded { store, retry_in } => {
            tracing::warn!(target: T, event = "degraded", store = store.as_str(), retry_ms = ms(retry_in), "shared store unreachable: running on local state");
        }
        FleetEvent::Recovered { store, after } => {
            tracing::info!(target: T, event = "recovered", store = store.as_str(), after_ms = ms(after), "shared store answers again");
        }
        FleetEvent::Leased {
            requests,
            cost,
            ready_in,
        } => {
            tracing::trace!(target: T, event = "leased", requests, cost, ready_ms = ms(ready_in), "capacity leased");
        }
        FleetEvent::SubscriptionLost { store } => {
            tracing::warn!(target: T, event = "subscription_lost", store = store.as_str(), "subscription lost");
        }
        FleetEvent::Subscribed { store } => {
            tracing::info!(target: T, event = "subscribed", store = store.as_str(), "subscribed");
        }
        FleetEvent::RemotePause { pause } => {
            tracing::info!(target: T, event = "remote_pause", pause_ms = ms(pause), "another process's throttle pauses this one");
        }
        FleetEvent::Fenced { epoch } => {
            tracing::warn!(target: T, event = "fenced", epoch, "commit refused: the stream has a newer owner");
        }
    }
    if let Some(l) = listener {
        l.on_event(&event);
    }
}
