//! Cache-aside with single-flight loads, stale-while-revalidate, stale-if-error and batch
//! refresh.
//!
//! # The configuration-delay story
//!
//! Workers read per-customer configuration from a cache that a batch job filled every hour.
//! A customer's change took up to an hour to show, the job's query grew slower every month,
//! and when the cache was flushed a thousand workers asked the database for the same row at
//! once. This module fixes each part:
//!
//! - **cache-aside**: a miss loads the key at request time through your loader, so a new or
//!   [invalidated](Cache::invalidate) key is correct on the next read: write the row, call
//!   `invalidate`, and the change is visible at once;
//! - **single-flight**: however many readers miss a key together, the loader is called once
//!   and they all get its answer;
//! - **refresh-ahead**: past `refresh_after` a read still answers at once from the cache and
//!   starts one background refresh (stale-while-revalidate), so hot keys never make a reader
//!   wait, and a change nobody invalidated shows within about `refresh_after`;
//! - **batch refresh**: with a [`BatchRefresher`], keys that come due are collected and loaded
//!   in one query per `max_batch` keys (`WHERE key IN (...)`) instead of one per key;
//! - **stale-if-error**: while the database is down, an expired entry is served for up to
//!   `stale_if_error` more instead of an error.
//!
//! ```
//! use std::time::Duration;
//! use riprap::cache::{Cache, CacheConfig};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache: Cache<String, String, std::io::Error> = Cache::new(
//!     CacheConfig::builder()
//!         .capacity(100_000)
//!         .refresh_after(Duration::from_secs(30))
//!         .expire_after(Duration::from_secs(300))
//!         .stale_if_error(Duration::from_secs(3600))
//!         .build()?,
//! );
//! let mut config = ServiceBuilder::new()
//!     .layer(cache.layer())
//!     .service_fn(|key: String| async move {
//!         // SELECT value FROM config WHERE key = ?
//!         Ok::<_, std::io::Error>(format!("value of {key}"))
//!     });
//!
//! let v = config.ready().await?.call("checkout.timeout".to_string()).await?;
//! assert_eq!(v, "value of checkout.timeout");
//! // After `UPDATE config ...`, make the change visible now rather than in 30 s:
//! cache.invalidate("checkout.timeout");
//! # Ok(()) }
//! ```
//!
//! # Cache-aside, refresh-ahead or batch?
//!
//! | pattern | who loads | a reader waits | database queries |
//! |---|---|---|---|
//! | cache-aside (`expire_after` only) | the first reader after expiry | once per key per `expire_after` | one per key per expiry |
//! | refresh-ahead (`refresh_after` < `expire_after`) | a background task after a stale read | only for keys idle longer than `expire_after` | one per hot key per `refresh_after` |
//! | batch refresh-ahead ([`BatchRefresher`]) | one background task, in batches | as above | one per `max_batch` due keys per `interval` |
//!
//! Use plain cache-aside for keys read rarely, refresh-ahead when readers must not wait for
//! hot keys, and batch refresh when many keys come due together and the database answers a
//! `WHERE key IN (...)` query for about the price of one lookup. [`BatchRefresher::warm`]
//! preloads a known key set (at start-up, after a deploy) in the same batches.
//!
//! # Choosing the three durations
//!
//! - `refresh_after` is how stale a value may be in the normal case: the bound on how long
//!   an un-invalidated change takes to show (plus the refresh's own latency, and up to one
//!   `interval` with a batch refresher). Pick it from the business answer to "how long may a
//!   customer's change take to apply?", e.g. 30 s.
//! - `expire_after` is the hard limit while the database answers: after it, a read waits
//!   for a load rather than serve older data. Make it several `refresh_after`s, so a key
//!   read at least that often is refreshed in the background and never makes a reader wait;
//!   e.g. 5 min.
//! - `stale_if_error` is how much older data may get while loads fail with a retryable error:
//!   the outage you want to ride out, e.g. 1 h. A permanent failure (the classifier says so,
//!   e.g. "not found") is never papered over; with `negative_ttl` it is remembered instead.
//!   Put a circuit breaker under the cache so that during an outage loads fail fast and the
//!   stale answer is immediate. The cache classifies like every layer, by the error's own
//!   verdict ([`ByError`](crate::classify::ByError)): over a [stack](crate::stack), a load
//!   the stack gave up on keeps its last attempt's verdict, so a transient give-up is served
//!   stale; a bare retry layer's give-up is final (permanent) to every layer above it.
//!
//! # From a config file
//!
//! With the `serde` feature, `CacheSpec` and `BatchSpec` hold the knobs of [`CacheConfig`]
//! and [`BatchConfig`] as plain data, read from TOML, YAML or JSON with human durations:
//!
//! ```toml
//! capacity = 100000
//! refresh_after = "30s"
//! expire_after = "5m"
//! stale_if_error = "1h"
//! negative_ttl = "10s"
//! ```
//!
//! # Guarantees
//!
//! - **One load per key at a time.** Concurrent misses of one key make exactly one loader
//!   call, and so do stale reads starting a refresh. The load runs in its own task, so a
//!   caller dropped mid-wait leaves it running for the others (see below).
//! - **Writes show at once.** After [`invalidate`](Cache::invalidate),
//!   [`invalidate_all`](Cache::invalidate_all) or [`insert`](Cache::insert) returns, no read
//!   returns what was cached before, and a load that was already running when it was called
//!   answers its own waiters but does not store its result.
//! - **Bounded.** Entries are bounded by `capacity`, loads in flight by `max_in_flight`, and
//!   keys queued for batch refresh by `max_pending`.
//! - **Cheap hits.** A hit takes no lock of riprap's and allocates nothing: quick_cache's
//!   sharded lookup, one read of a coarse clock, two integer comparisons and a counter
//!   increment on a per-thread cache line.
//!
//! # Observing
//!
//! [`CacheEvent`]s go to `tracing` and to the config's
//! [`listener`](CacheConfigBuilder::listener); [`Cache::metrics`] gives a [`CacheMetrics`]
//! snapshot. The scheme is the [events guide](crate::events)'s:
//!
//! | target | message | level | fields |
//! |---|---|---|---|
//! | `riprap::cache` | `hit`, `stale hit, refreshing`, `negative hit`, `miss`, `evicted` | trace | `event` |
//! | `riprap::cache` | `loaded` | debug | `event="loaded"`, `took_ms` |
//! | `riprap::cache` | `load failed` | debug | `event="load_failed"`, `class` |
//! | `riprap::cache` | `served stale after a failed load`, `refresh dropped: queue full`, `inserted`, `invalidated`, `invalidated all` | debug | `event` |
//! | `riprap::cache` | `batch loaded` | debug | `event="batch_loaded"`, `keys`, `stored`, `took_ms` |
//! | `riprap::cache` | `batch refresh failed` (a background load: nobody else sees its error) | warn | `event="batch_failed"`, `keys`, `class` |
//! | `riprap::cache` | `miss turned away: too many loads in flight` | warn | `event="overloaded"` |
//!
//! With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_cache_hits_total` | counter | | fresh hits |
//! | `riprap_cache_stale_hits_total` | counter | | hits due for refresh (a refresh was started) |
//! | `riprap_cache_negative_hits_total` | counter | | remembered permanent failures served |
//! | `riprap_cache_misses_total` | counter | | reads that found nothing usable |
//! | `riprap_cache_loads_total` | counter | | per-key loads that succeeded |
//! | `riprap_cache_load_seconds` | histogram | | their duration |
//! | `riprap_cache_load_errors_total` | counter | `class` | per-key loads that failed |
//! | `riprap_cache_stale_if_error_total` | counter | | expired entries served because a load failed |
//! | `riprap_cache_batch_loads_total` | counter | | batch loads that returned |
//! | `riprap_cache_batch_keys_total` | counter | | keys those batches stored |
//! | `riprap_cache_batch_load_seconds` | histogram | | their duration |
//! | `riprap_cache_batch_errors_total` | counter | `class` | batch loads that failed |
//! | `riprap_cache_refresh_dropped_total` | counter | | due keys that found the refresh queue full |
//! | `riprap_cache_overloaded_total` | counter | | misses turned away at `max_in_flight` |
//! | `riprap_cache_evictions_total` | counter | | entries evicted for capacity |
//! | `riprap_cache_inserts_total` | counter | | `insert` calls |
//! | `riprap_cache_invalidations_total` | counter | | `invalidate` and `invalidate_all` calls |
//!
//! A hit through `MetricsListener` costs the recorder's counter increment on top of the
//! cache's own per-thread count; for a very hot cache, export [`Cache::metrics`] periodically
//! instead and leave hits out of the listener.
//!
//! # Design notes
//!
//! **Storage: quick_cache.** The storage is `quick_cache::sync::Cache`, chosen by benchmark
//! (`benches/cache.rs`, two threads reading 10,000 keys): a hit through [`Cache::get`],
//! freshness check included, costs about 1.7-2.7× a bare quick_cache `get` and under a tenth
//! of moka's `future::Cache::get`, which pays for an async interface, per-read bookkeeping
//! and its own expiry machinery. riprap keeps freshness itself, as integers in each entry,
//! because it needs a soft and a hard deadline per entry, which neither crate offers (moka
//! has no refresh-after-write).
//!
//! **Single-flight in a spawned task.** Each load runs in a `tokio::spawn`ed task publishing
//! on a `tokio::sync::watch` channel. The alternative, handing a dropped leader's turn to the
//! next waiter (as quick_cache's placeholders do), restarts the load and can stall behind a
//! chain of cancelled callers; a spawned load is never cancelled by its callers and its
//! result is stored even if all of them gave up. Loads therefore need a tokio runtime.
//!
//! **Freshness clock.** Reading the system clock costs about twice a quick_cache lookup, so by
//! default one process-wide ticker thread publishes a reading every millisecond while caches
//! are read and parks when they are not; see
//! [`clock_resolution`](CacheConfigBuilder::clock_resolution). A thread rather than a tokio
//! task, so a runtime with every worker busy cannot freeze the clock. On tokio's paused
//! clock every read is exact, so tests can step time precisely.
//!
//! **Generations.** Instead of a generation counter per key (which would need a map of its
//! own, and a second hash on every hit), a load must find its own flight still registered
//! for its key when it lands; `invalidate` and `insert` remove the key's flight under the same
//! shard lock. Only keys being loaded carry this state, so it is bounded by `max_in_flight`.

mod batch;
mod clock;
mod config;
mod due;
mod entry;
mod error;
mod events;
mod flight;
mod future;
mod handle;
mod layer;
mod service;
#[cfg(feature = "serde")]
mod spec;

pub use batch::BatchRefresher;
pub use config::{BatchConfig, BatchConfigBuilder, CacheConfig, CacheConfigBuilder};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config::{BatchSpec, CacheSpec};
pub use error::CacheError;
pub use events::{CacheEvent, CacheMetrics};
pub use future::ResponseFuture;
pub use handle::Cache;
pub use layer::CacheLayer;
pub use service::CacheService;
