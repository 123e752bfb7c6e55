//! # riprap
//!
//! Rock armour for data pipelines: small, composable [`tower`] layers that stop the failures
//! that keep recurring in production.
//!
//! | failure seen in production | primitive that prevents it |
//! |---|---|
//! | Retrying a validation error forever, or giving up on a dropped connection | [`classify`]: one verdict shared by every layer, and every dialect of "slow down" read from headers |
//! | Immediate retries hammer a rate-limited API all night | [`backoff`]: exponential delays with jitter, capped and seeded |
//! | Three layers of retries turn one outage into 64× the load | [`retry`] with a shared [`budget`]: attempt cap, process-wide retry budget, `Retry-After` honoured |
//! | A dependency is down and every caller waits on it, then all retry at once when it returns | [`breaker`]: fail fast while open, probe safely in half-open, one breaker per key |
//! | Many workers share one API quota; one greedy poller starves the rest | [`ratelimit`]: local quotas plus the server's 429s and rate-limit headers, shared by all clones |
//! | A stream with no offset: every disconnect leaves a permanent gap | [`stream`]: resume after the last delivered offset, drop replays, commit acknowledged positions durably |
//! | A hung call holds a worker forever | [`timeout`]: a per-attempt limit that keeps the error's type |
//! | A slow dependency ties up every worker; an urgent item waits behind a batch job; a limit set for yesterday's capacity melts down today | [`bulkhead`]: calls in flight capped, a bounded queue served by priority with a starvation guard, shedding by queue age, per-key limits, and adaptive limits (Gradient, Vegas, AIMD) |
//! | One slow replica sets everyone's p99 | [`hedge`]: another attempt after a delay or a failure, the first answer wins, paid for from the retry budget |
//! | One provider's outage or quota takes the feature down | [`fallback`]: another provider, model or region on a chosen class of failure, each behind its own breaker |
//! | Cache filled only by a batch job: a config change takes hours to show; a miss storm hits the DB | [`cache`]: cache-aside with single-flight loads, batch refresh-ahead, invalidation, stale-if-error |
//! | The primitives exist but nobody composes them in the right order | [`stack`]: the layers in the recommended order, one classifier, validated together |
//! | Nobody knows how the stack behaves when the dependency fails | [`chaos`]: seeded fault injection — errors, throttles, latency, outages, stream disconnects |
//! | An incident nobody sees until the bill arrives | [`events`]: one listener for every layer, one `tracing` scheme, `metrics` counters and histograms |
//! | One team's poller burns a quota every service shares; forty replicas retry forty times over; a consumer restarted elsewhere must resume where its predecessor committed | `fleet` (features `redis`, `postgres`): the same quota, server gate, retry budget, fenced offsets and invalidation across processes, on Redis and PostgreSQL |
//!
//! Start with [`stack`]: `StackBuilder::llm_api(classifier)`, `StackBuilder::object_store(..)` or
//! `StackBuilder::database(..)` give a validated preset whose every knob can be changed; the
//! design-review guide in the repository (`docs/design-review.md`) explains each choice.
//!
//! ## One vocabulary
//!
//! Every layer asks the same [`Classify`](classify::Classify) policy what an outcome was, so
//! "429 with `Retry-After: 20`" means the same thing everywhere: the retry layer waits 20 s
//! (never less: a wait longer than the caller allows ends the request at once, saying when the
//! server takes calls again), the breaker does not count it against the dependency, and the
//! rate limiter pauses every caller for 20 s. The verdicts are [`Class`](classify::Class)'s:
//! success, transient, timed out, throttled by the server, refused by the caller's own breaker,
//! quota or bulkhead, and permanent. Every layer's default classifier is
//! [`ByError`](classify::ByError), the error's own verdict, and every layer's setter for
//! another is `.classifier(..)`; one retry engine serves the retry layer and the stream's
//! reconnects; one [`Listener`](events::Listener) hears every layer.
//!
//! The modules stand on three floors, and imports run down only: the ground
//! ([`classify`], [`events`], [`budget`], [`backoff`], the retry engine, the copy policy)
//! knows no layer; each layer ([`retry`], [`breaker`], [`ratelimit`], [`bulkhead`], ...) owns
//! its error, that error's verdict, its events and its tracing, and imports no other layer;
//! [`stack`] and `fleet` consume the layers.
//!
//! ```
//! use riprap::classify::{ByError, Class, Classify};
//! use std::io;
//!
//! let dropped = io::Error::from(io::ErrorKind::ConnectionReset);
//! let invalid = io::Error::from(io::ErrorKind::InvalidInput);
//! assert_eq!(ByError.classify(Err::<&(), _>(&dropped)), Class::Transient); // retry it
//! assert_eq!(ByError.classify(Err::<&(), _>(&invalid)), Class::Permanent); // never
//! ```
//!
//! ## Cargo features
//!
//! Everything beyond the core (tokio, tower, futures, tracing, governor) is off by default:
//!
//! | feature | adds |
//! |---|---|
//! | `http` | classification of `http::Response`s by status and rate-limit headers |
//! | `reqwest` | classification and header signals for `reqwest` |
//! | `object_store` | resumable ranged reads through `object_store` |
//! | `rusqlite` | classification of `rusqlite` errors |
//! | `sqlx` | classification of `sqlx` errors for PostgreSQL (SQLSTATE, I/O, pool timeouts) |
//! | `tokio-postgres` | classification of `tokio-postgres` errors (SQLSTATE, I/O, closed connections) |
//! | `serde` | configs from TOML/YAML/JSON with human durations |
//! | `metrics` | counters and histograms through the `metrics` facade |
//! | `redis` | `fleet` on Redis: a GCRA quota with leases, the shared server gate, the fleet retry budget, an offset store, cache invalidation |
//! | `postgres` | `fleet` on PostgreSQL (through sqlx): an offset store committed in the sink's own transaction, fenced by an epoch |
//! | `backoff-compat` | use a policy from the unmaintained `backoff` crate as a riprap [`Backoff`](backoff::Backoff) |
//!
//! ## Testing your stack
//!
//! Every delay riprap takes (backoff, `Retry-After`, open breakers, deadlines, quotas) is a
//! tokio timer, so a test runs on tokio's paused clock and finishes at once, however long the
//! waits: `#[tokio::test(start_paused = true)]`, as the examples in these docs do (hidden in
//! the rendered page). The paused clock needs tokio's `test-util` feature in your
//! `[dev-dependencies]`. [`chaos`] injects faults with a seed, so a failing run repeats.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod bulkhead;
pub mod cache;
pub mod chaos;
pub mod classify;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;
mod engine;
mod error;
pub mod events;
pub mod fallback;
#[cfg(any(feature = "redis", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "redis", feature = "postgres"))))]
pub mod fleet;
pub mod hedge;
// Each builder's plain knobs, listed once: the builder's setters and its config-file spec are
// written from the list.
mod knobs;
pub mod ratelimit;
// How a request is copied to be sent again: retries, hedges and fallbacks share it.
mod request;
pub mod retry;
pub mod stack;
pub mod stream;
mod sync;
// Nanosecond arithmetic on durations, shared by the layers.
mod time;

// Bounded per-key state behind the keyed breakers and rate limiters.
mod keyed;
pub mod timeout;

pub use error::ConfigError;

// The README's examples compile as written (its snippets need `reqwest`, `redis` and `serde`).
#[cfg(all(doctest, feature = "reqwest", feature = "redis", feature = "serde"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

// The fuzz checks shared with `fuzz/` name the crate `riprap`; the unit tests that replay
// their corpora include them as they are.
#[cfg(test)]
extern crate self as riprap;
