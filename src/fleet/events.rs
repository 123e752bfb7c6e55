//! What the fleet layers report.

use std::any::Any;
use std::time::Duration;

use crate::events::{self, LayerEvent, Measure, Metric, SharedListener, ms};

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

/// Trace `event` (target `riprap::fleet`) and hand it to `listener`.
pub(crate) fn emit(listener: Option<&SharedListener>, event: FleetEvent) {
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
    events::deliver(listener, &event);
}

static DEGRADED: Metric = Metric::counter(
    "riprap_fleet_degraded_total",
    "Times a shared store failed and the fleet layers fell back to local state, by store",
    &["store"],
    2,
);
static DEGRADED_FOR: Metric = Metric::histogram(
    "riprap_fleet_degraded_seconds",
    "How long each fallback to local state lasted",
    &[],
    1,
);
static LEASES: Metric = Metric::counter(
    "riprap_fleet_leases_total",
    "Blocks of shared quota leased, one round trip each",
    &[],
    1,
);
static SUBSCRIPTIONS_LOST: Metric = Metric::counter(
    "riprap_fleet_subscriptions_lost_total",
    "Subscriptions (gate pauses, invalidations) lost",
    &[],
    1,
);
static REMOTE_PAUSES: Metric = Metric::counter(
    "riprap_fleet_remote_pauses_total",
    "Pauses another process's throttle brought to this one",
    &[],
    1,
);
static FENCED: Metric = Metric::counter(
    "riprap_fleet_fenced_total",
    "Commits refused because another consumer took the stream over",
    &[],
    1,
);

fn store_variant(store: Store) -> usize {
    match store {
        Store::Redis => 0,
        Store::Postgres => 1,
    }
}

impl LayerEvent for FleetEvent {
    fn layer(&self) -> &'static str {
        "fleet"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    fn measure(&self, into: &dyn Measure) {
        match *self {
            FleetEvent::Degraded { store, .. } => {
                into.count(&DEGRADED, store_variant(store), &[store.as_str()], 1)
            }
            FleetEvent::Recovered { after, .. } => into.record(&DEGRADED_FOR, 0, &[], after),
            FleetEvent::Leased { .. } => into.count(&LEASES, 0, &[], 1),
            FleetEvent::SubscriptionLost { .. } => into.count(&SUBSCRIPTIONS_LOST, 0, &[], 1),
            FleetEvent::RemotePause { .. } => into.count(&REMOTE_PAUSES, 0, &[], 1),
            FleetEvent::Fenced { .. } => into.count(&FENCED, 0, &[], 1),
            FleetEvent::Subscribed { .. } => {}
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
