//! # riprap
//!
//! Rock armour for data pipelines: small, composable [`tower`] layers that stop the failures
//! that keep recurring in production.
//!
//! | failure seen in production | primitive that prevents it |
//! |---|---|
//! | Retrying a validation error forever, or giving up on a dropped connection | [`classify`]: one verdict shared by every layer |
//! | Immediate retries hammer a rate-limited API all night | [`backoff`]: exponential delays with jitter, capped and seeded |
//! | A stream with no offset: every disconnect leaves a permanent gap | [`stream`]: resume after the last delivered offset, drop replays, commit acknowledged positions durably |
//!
//! ## One vocabulary
//!
//! Every layer asks the same [`Classify`](classify::Classify) policy what an outcome was, so
//! "429 with `Retry-After: 20`" means the same thing everywhere: the retry layer waits 20 s,
//! the breaker does not count it against the dependency, and the rate limiter pauses every
//! caller for 20 s.
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
//! | `serde` | configs from TOML/YAML/JSON with human durations |
//! | `metrics` | counters and histograms through the `metrics` facade |
//! | `backoff-compat` | use a policy from the unmaintained `backoff` crate as a riprap [`Backoff`](backoff::Backoff) |

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
pub mod classify;
mod error;
pub mod events;
pub mod stream;

pub use error::ConfigError;
