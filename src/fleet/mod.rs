//! The same promises across processes: one quota, one server gate, one retry budget, one
//! offset log and one cache invalidation for every process of a fleet, on Redis and
//! PostgreSQL (features `redis` and `postgres`).
//!
//! Everything else in riprap is shared by the clones inside one process. The incidents it
//! exists for happen across a fleet: one team's poller burns a quota every service shares;
//! forty replicas, each retrying on its own, multiply the load forty times; a consumer
//! restarted on another machine must resume where its predecessor committed. This module
//! keeps riprap's promises across processes on engines a fleet already runs, without a
//! coordinator of its own: Redis scripts and keys, PostgreSQL rows and transactions.
//!
//! | promise | in one process | across processes |
//! |---|---|---|
//! | a quota | [`RateLimiter`](crate::ratelimit::RateLimiter) | [`Fleet::limiter`]: GCRA on Redis, spent from leased blocks |
//! | a server's 429 pauses every caller | the limiter's gate | [`Fleet::gate`]: a Redis key with an expiry, announced on pub/sub |
//!
//! ## When the store is down
//!
//! Every layer keeps working on local state: the quota on a local share of its rate, the
//! gate on the local gate. Each round trip is bounded by the fleet's timeout, so no caller
//! waits longer than that on Redis; a failed or slow round trip emits
//! [`FleetEvent::Degraded`], and riprap's own [`BackoffPolicy`](crate::backoff::BackoffPolicy)
//! paces the attempts to reach it again ([`FleetEvent::Recovered`] when one answers).

mod events;
mod fenced;
#[cfg(feature = "redis")]
mod health;
#[cfg(feature = "postgres")]
mod offsets_pg;
#[cfg(feature = "redis")]
mod offsets_redis;

#[cfg(feature = "redis")]
mod budget;
#[cfg(feature = "redis")]
mod gate;
#[cfg(feature = "redis")]
mod gcra;
#[cfg(feature = "redis")]
mod invalidation;
#[cfg(feature = "redis")]
mod quota;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod subscription;

#[cfg(feature = "redis")]
pub use budget::FleetBudget;
pub use events::{FleetEvent, Store};
pub use fenced::Fenced;
#[cfg(feature = "redis")]
pub use gate::FleetGate;
#[cfg(feature = "redis")]
pub use invalidation::FleetInvalidation;
#[cfg(feature = "postgres")]
pub use offsets_pg::{PgOffsetStore, PgOffsetStoreBuilder};
#[cfg(feature = "redis")]
pub use offsets_redis::RedisOffsetStore;
#[cfg(feature = "redis")]
pub use quota::FleetLimiterBuilder;
#[cfg(feature = "redis")]
pub use redis::{Fleet, FleetBuilder};
