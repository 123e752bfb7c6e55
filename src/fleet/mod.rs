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
//! | a quota | [`RateLimiter`](crate::ratelimit::RateLimiter) | `Fleet::limiter`: GCRA on Redis, spent from leased blocks |
//! | a server's 429 pauses every caller | the limiter's gate | `Fleet::gate`: a Redis key that expires with the server's delay, announced on pub/sub |
//! | retries bounded by a ratio of requests | [`RatioBudget`](crate::budget::RatioBudget) | `Fleet::budget`: the same ratio over every process's deposits and withdrawals |
//! | resume after the committed offset | [`OffsetStore`](crate::stream::OffsetStore) | `PgOffsetStore` (committed in the sink's own transaction) and `RedisOffsetStore`, both fenced by an epoch |
//! | `invalidate` forgets a key | [`Cache::invalidate`](crate::cache::Cache::invalidate) | `Fleet::invalidation`: every process's cache forgets it |
//!
//! ## From a local quota to a fleet quota
//!
//! Two lines: a `Fleet` handle on Redis, and the limiter from it. Everything downstream
//! (a [`RateLimitLayer`](crate::ratelimit::RateLimitLayer), the stack) takes the same
//! [`RateLimiter`](crate::ratelimit::RateLimiter) as before.
//!
//! ```no_run
//! # #[cfg(feature = "redis")] {
//! use std::time::Duration;
//! use riprap::fleet::Fleet;
//! use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
//!
//! # #[tokio::main] async fn main() -> Result<(), riprap::ConfigError> {
//! let config = RateLimitConfig::builder().requests(500, Duration::from_secs(60)).build()?;
//! // let limiter = RateLimiter::new(config);                       // one process
//! let fleet = Fleet::redis("redis://10.0.0.5:6379/")?;             // every process
//! let limiter = fleet.limiter("openai", config)?;
//! let layer = RateLimitLayer::new(limiter);
//! # Ok(()) }
//! # }
//! ```
//!
//! ## The lease slack: how far a fleet may overshoot
//!
//! GCRA runs on the Redis server, in one script, so concurrent processes never double-book
//! (the anchors: redis-cell and go-redis's redis_rate for server-side GCRA, Doorman for
//! capacity leases, Envoy's global rate-limit service for a quota outside the processes).
//! Asking Redis on every acquire costs a round trip each, so a process *leases* a block
//! (up to `lease` requests, 20 by default, sized by what it spent over the last second) and
//! spends it locally. GCRA bounds what is granted in any window `T` to
//! `burst + rate × T`; a process may spend in that window what it held when it began, at
//! most one lease. With `P` processes:
//!
//! ```text
//! calls in any window T  ≤  burst + rate × T + P × lease
//! ```
//!
//! `lease(1)` removes the slack and pays a round trip per acquire; the default makes about
//! one round trip per 15 acquires at steady state. When the fleet is at its limit, Redis
//! schedules each grant for the instant it conforms, and the process holds it until then,
//! so a saturated fleet still fetches whole blocks instead of polling refusals.
//!
//! ## When the store is down
//!
//! Every layer keeps working on local state: the quota on a local share of its rate
//! (`local_share`), the gate on the local gate, the budget on a local
//! [`RatioBudget`](crate::budget::RatioBudget), cached entries on their own
//! `refresh_after`. Each round trip is bounded by the fleet's timeout, so no caller waits
//! longer than that on Redis; a failed or slow round trip emits [`FleetEvent::Degraded`],
//! and riprap's own [`BackoffPolicy`](crate::backoff::BackoffPolicy) paces the attempts to
//! reach it again ([`FleetEvent::Recovered`] when one answers). Offset stores do not fall
//! back: a position only one process knows would break the promise they make, so their
//! errors go to the stream, which retries them.
//!
//! ## Observing
//!
//! [`FleetEvent`]s go to `tracing` (target `riprap::fleet`: degradation, lost subscriptions and
//! fenced commits at warn, recoveries and remote pauses at info, leases at trace) and to the
//! listener given to `FleetBuilder::listener`. With the `metrics` feature, a
//! `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_fleet_degraded_total` | counter | `store` (`redis`, `postgres`) | falls back to local state |
//! | `riprap_fleet_degraded_seconds` | histogram | | how long each fallback lasted |
//! | `riprap_fleet_leases_total` | counter | | blocks of shared quota leased (one round trip each) |
//! | `riprap_fleet_subscriptions_lost_total` | counter | | subscriptions lost |
//! | `riprap_fleet_remote_pauses_total` | counter | | pauses another process's throttle brought |
//! | `riprap_fleet_fenced_total` | counter | | commits refused after a takeover |
//!
//! ## PostgreSQL: sqlx
//!
//! The PostgreSQL store uses sqlx (feature `postgres` turns on `sqlx`): its
//! `Transaction` derefs to the `PgConnection` that `PgOffsetStore::commit_in` takes, so
//! the offset joins whatever transaction the sink's own sqlx code opened; its pool bounds
//! connection waits; and its errors are already classified by riprap's `sqlx` feature
//! (a serialization failure retries, a constraint violation does not).

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
