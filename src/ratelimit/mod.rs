//! Rate-limit-aware clients: a local quota that also obeys the server.
//!
//! Many workers share one API quota. Left alone, each discovers a 429 on its own and sends
//! one more request into the wall; an erratic poller burns the quota another team needed. A
//! [`RateLimiter`] is shared by every clone of a client and limits it three ways.
//!
//! ## Local quotas
//!
//! What you know before sending: governor's GCRA, on tokio's clock (so a paused test clock
//! freezes it too). A **request quota** (`requests(500, 60 s)`) and a **cost quota**
//! (`cost(30_000, 60 s)`, each request spending what a [`Cost`] says, such as its token
//! estimate) are enforced together. A caller waits for capacity up to `max_wait`, then gets
//! [`RateLimitError::Limited`]; `reject_when_limited()` refuses at once instead. A request
//! costing more than the cost quota's burst can never pass and gets
//! [`RateLimitError::CostExceedsBurst`] rather than waiting forever.
//!
//! ## Server signals
//!
//! What the server says after: a response classified [`Class::Throttled`](crate::classify::Class::Throttled)
//! (a 429, with its `Retry-After`), or headers reporting a quota at zero until a reset,
//! **close a gate shared by every clone** until that instant. At the reopening one request
//! goes first as a probe and the others wait for its answer, then resume each after its own
//! small seeded jitter, so they do not all fire on one tick and a server whose window has
//! not quite reset answers one 429, not one per clone. Headers
//! reporting quota *left* **pace** requests evenly until the reset, so the quota lasts instead
//! of being burnt and answered with a 429. A server's delay is never shortened: a caller
//! whose wait for the gate would exceed `max_wait` is refused at once with
//! [`RateLimitError::Limited`] saying when the gate reopens.
//!
//! Pacing spreads what is left over the time to the reset: exact for fixed windows (GitHub,
//! IETF `RateLimit`), conservative for token buckets (OpenAI and Anthropic report the time
//! until the bucket is *full*), where it settles with the bucket about half full. With such
//! a provider, set local quotas to your tier too, so the headers rarely report it near empty. The layer reads signals through a [`ReadSignal`] (the `http` feature reads
//! OpenAI, Anthropic, GitHub and IETF rate-limit headers).
//!
//! The gate costs the hot path one atomic load when nothing is closed or paced.
//!
//! ## Adaptive rate
//!
//! What you learn over time, for servers that throttle without saying how much they allow:
//! `adaptive(max_rate)` paces requests at a rate cut multiplicatively on every throttle and
//! raised additively on every success, back up to the maximum (AIMD). governor's quotas are
//! immutable, so the adaptive rate is a pacing interval in an atomic rather than a rebuilt
//! quota; [`RateLimiter::current_rate`] shows it.
//!
//! ## Keyed limits
//!
//! [`KeyedRateLimiter`] holds one limiter per tenant, model or endpoint, within
//! [`KeyLimits`] (a cap on keys, evicting by use; optionally idle expiry and a byte budget
//! for keys); [`RateLimitLayer::keyed`] picks the key per request.
//!
//! ## From a config file
//!
//! With the `serde` feature, `RateLimitSpec` holds every knob of [`RateLimitConfig`] as plain
//! data, read from TOML, YAML or JSON with human durations, and builds through its builder:
//!
//! ```toml
//! requests = { rate = 500, per = "1m" }                # burst defaults to the rate
//! cost = { rate = 30000, per = "1m", burst = 10000 }   # tokens
//! max_wait = "10s"
//! default_pause = "1s"
//! adaptive = { max_rate = 8.0, min_rate = 0.5, decrease = 0.5, increase = 0.1 }
//! ```
//!
//! ## A worked LLM example
//!
//! A tier of 500 requests and 30,000 tokens per minute. Each chat request is charged its
//! prompt estimate plus `max_tokens`; 32 workers share one limiter. A heavy request waits
//! for tokens, a light one mostly for requests, and a 429 stops all 32 at once.
//!
//! ```
//! use std::time::Duration;
//! use riprap::classify::Class;
//! use riprap::ratelimit::{RateLimitConfig, RateLimitError, RateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let minute = Duration::from_secs(60);
//! let limiter = RateLimiter::new(
//!     RateLimitConfig::builder()
//!         .requests(500, minute)
//!         .cost(30_000, minute)
//!         .cost_burst(10_000) // no more than a third of the minute's tokens at once
//!         .max_wait(Duration::from_secs(20))
//!         .build()?,
//! );
//!
//! // Three 3,000-token requests pass at once; the burst covers them.
//! let start = tokio::time::Instant::now();
//! for _ in 0..3 {
//!     limiter.acquire(3_000).await?;
//! }
//! // The fourth waits for 2,000 tokens to replenish: 4 s at 500 tokens a second.
//! let admitted = limiter.acquire(3_000).await?;
//! assert_eq!(start.elapsed(), Duration::from_secs(4));
//!
//! // More than the burst can never pass: a typed error, not an endless wait.
//! assert!(matches!(limiter.acquire(12_000).await, Err(RateLimitError::CostExceedsBurst { .. })));
//!
//! // The server answers 429 with `Retry-After: 30`: every clone waits 30 s.
//! limiter.observe(admitted, &Class::Throttled { retry_after: Some(Duration::from_secs(30)) }, None);
//! assert_eq!(limiter.clone().reopens_in(), Some(Duration::from_secs(30)));
//! # Ok(()) }
//! ```
//!
//! In a tower stack, [`RateLimitLayer`] does the acquiring and observing for every request;
//! put it under the retry layer, so every attempt is limited.
//!
//! ## Observing
//!
//! What the limiter does goes to `tracing` and, as [`RateLimitEvent`]s, to a
//! [`Listener`](crate::events::Listener) set with
//! [`RateLimitConfigBuilder::listener`]. The scheme is the [events guide](crate::events)'s:
//!
//! | target | span / message | level | fields |
//! |---|---|---|---|
//! | `riprap::ratelimit` | span `riprap.ratelimit.wait`, one per request that waits for capacity | debug | `cost` |
//! | `riprap::ratelimit` | `gate closed by the server` | info | `event="gate_closed"`, `reopen_ms` |
//! | `riprap::ratelimit` | `gate reopened` | info | `event="gate_reopened"` |
//! | `riprap::ratelimit` | `adaptive rate cut` / `adaptive rate recovered` | info | `event="rate_decreased"` / `"rate_recovered"`, `rate` (requests per second) |
//! | `riprap::ratelimit` | `request refused` | warn | `event="rejected"`, `by` (`quota`, `server`, `adaptive`, `cost`) |
//! | `riprap::ratelimit` | `waited for capacity` | debug | `event="waited"`, `wait_ms` |
//! | `riprap::ratelimit` | `pacing to the server's remaining quota` | debug | `event="pacing"`, `interval_ms`, `lasts_ms` |
//! | `riprap::ratelimit` | `evicted the least recently used key` | debug | `event="key_evicted"` |
//!
//! With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_ratelimit_waits_total` | counter | | requests that waited, then passed |
//! | `riprap_ratelimit_wait_seconds` | histogram | | how long they waited |
//! | `riprap_ratelimit_rejections_total` | counter | `by` (`quota`, `server`, `adaptive`, `cost`) | requests refused |
//! | `riprap_ratelimit_gate_closed_total` | counter | | server signals that closed or extended the gate |
//! | `riprap_ratelimit_gate_pause_seconds` | histogram | | how long each closing keeps it shut |
//! | `riprap_ratelimit_gate_reopened_total` | counter | | reopenings |
//! | `riprap_ratelimit_pacing_total` | counter | | pacing intervals set from the server's remaining quota |
//! | `riprap_ratelimit_rate_changes_total` | counter | `direction` (`decreased`, `recovered`) | adaptive rate changes |

mod adaptive;
mod clock;
mod config;
mod error;
mod events;
mod future;
mod gate;
mod keyed;
mod layer;
mod limiter;
mod service;
pub(crate) mod shared;
mod signal;
#[cfg(feature = "serde")]
mod spec;

pub use crate::keyed::KeyLimits;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use config::RateLimitSpec;
pub use config::{AdaptiveConfig, QuotaConfig, RateLimitConfig, RateLimitConfigBuilder};
pub use error::{LimitedBy, RateLimitError, RateLimitedError};
pub use events::RateLimitEvent;
pub use future::ResponseFuture;
pub use keyed::KeyedRateLimiter;
pub use layer::{ByKey, RateLimitLayer, SelectLimiter};
pub use limiter::{Acquire, Admission, RateLimiter};
pub use service::RateLimit;
#[cfg(feature = "http")]
pub use signal::HeaderSignal;
pub use signal::{Cost, NoSignal, ReadSignal, UnitCost};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use spec::{AdaptiveSpec, QuotaSpec};
