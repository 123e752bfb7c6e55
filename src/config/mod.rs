//! Every config from TOML, YAML or JSON, with human durations (feature `serde`).
//!
//! Each configurable primitive has a *spec*: a plain struct with public fields, one per knob
//! of its builder, that derives `Deserialize` and `Serialize`. A spec's `build()` goes through
//! the builder you would call in code, so validation lives in one place and a bad value is
//! refused with the same [`ConfigError`](crate::ConfigError), naming the knob.
//!
//! | spec | builds | through |
//! |---|---|---|
//! | [`BackoffSpec`](crate::backoff::BackoffSpec) | [`BackoffPolicy`](crate::backoff::BackoffPolicy) | [`BackoffBuilder`](crate::backoff::BackoffBuilder) |
//! | [`RatioBudgetSpec`](crate::budget::RatioBudgetSpec), [`TokenThrottleSpec`](crate::budget::TokenThrottleSpec), [`RetryQuotaSpec`](crate::budget::RetryQuotaSpec) | the budget of that name | its builder |
//! | [`BudgetSpec`](crate::budget::BudgetSpec) (one of the three, or unlimited) | [`AnyBudget`](crate::budget::AnyBudget) | the chosen budget's builder |
//! | [`RetrySpec`](crate::retry::RetrySpec) | [`RetryConfig`](crate::retry::RetryConfig) (`config()`) or [`RetryLayer`](crate::retry::RetryLayer) (`build()`) | `RetryConfig` |
//! | [`BreakerSpec`](crate::breaker::BreakerSpec) | [`CircuitBreaker`](crate::breaker::CircuitBreaker)`<`[`TripPolicies`](crate::breaker::TripPolicies)`>` | [`BreakerBuilder`](crate::breaker::BreakerBuilder) and the window builders |
//! | [`RateLimitSpec`](crate::ratelimit::RateLimitSpec) | [`RateLimitConfig`](crate::ratelimit::RateLimitConfig) | [`RateLimitConfigBuilder`](crate::ratelimit::RateLimitConfigBuilder) |
//! | [`CacheSpec`](crate::cache::CacheSpec), [`BatchSpec`](crate::cache::BatchSpec) | [`CacheConfig`](crate::cache::CacheConfig), [`BatchConfig`](crate::cache::BatchConfig) | their builders |
//! | [`ChaosSpec`](crate::chaos::ChaosSpec) | [`ChaosLayer`](crate::chaos::ChaosLayer) | [`ChaosBuilder`](crate::chaos::ChaosBuilder) |
//!
//! What is code rather than data — classifiers, listeners, injectors, request copying — is
//! set on the builder or config a spec returns (`builder()`, or `config()` for retries).
//!
//! ## Writing a config
//!
//! - **Every knob is optional** unless its spec says otherwise (a backoff's `base`, a
//!   window's `size` or `span`), and a knob left out keeps the builder's default. Serializing
//!   writes only the knobs that were set, so a spec round-trips exactly.
//! - **Durations are strings with a unit**: `"250ms"`, `"1.5s"`, `"2m"`, `"1h30m"`; see
//!   [`duration`]. A bare number is refused rather than guessed to be seconds.
//! - **Unknown fields are refused**, so a typo (`maxx_attempts`) is an error, not a default.
//! - **Choices are tables with one key**, the same in every format: `budget = { retry_quota =
//!   { capacity = 100 } }`, `latency = { fixed = "100ms" }`.
//!
//! ## Errors name the field
//!
//! - **An unknown field** is named by serde in every format: ``unknown field `maxx_attempts`,
//!   expected one of `max_attempts`, …``.
//! - **A wrong type or a bad duration**: YAML (serde_norway, serde_yaml_ng) prefixes the
//!   path, `backoff.base: invalid value: string "5 parsecs", expected a duration with a
//!   unit…`; TOML quotes the offending line, key included. serde_json gives only a line and
//!   column; deserialize through the `serde_path_to_error` crate to get the path as well, as
//!   in the example below.
//! - **A value the builder refuses** comes back from `build()` as a
//!   [`ConfigError`](crate::ConfigError) whose [`knob`](crate::ConfigError::knob) is the
//!   field's path, prefixed by the primitive: ``invalid `retry.max_attempts`: must be from 1
//!   to 100 (got 0)``, ``invalid `breaker.count_window.min_calls`: …``.
//!
//! ## Composing specs
//!
//! Specs are ordinary structs: embed them in your own config, with `Option` for a layer that
//! may be left out.
//!
//! ```
//! use serde::Deserialize;
//! use riprap::breaker::BreakerSpec;
//! use riprap::retry::RetrySpec;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Upstream {
//!     url: String,
//!     retry: RetrySpec,
//!     breaker: Option<BreakerSpec>,
//! }
//!
//! let upstream: Upstream = toml::from_str(r#"
//!     url = "https://api.example.com"
//!
//!     [retry]
//!     max_attempts = 4
//!     deadline = "30s"
//!     backoff = { base = "250ms", max_delay = "8s" }
//!     budget = { ratio_budget = { ratio = 0.1 } }
//!
//!     [breaker]
//!     consecutive_failures = 5
//!     open_base = "2s"
//! "#)?;
//! let retry = upstream.retry.build()?;
//! let breaker = upstream.breaker.unwrap_or_default().build()?;
//! # let _ = (retry, breaker);
//!
//! // JSON: serde_path_to_error adds the path serde_json leaves out.
//! let json = r#"{ "url": "u", "retry": { "backoff": { "base": "5 parsecs" } } }"#;
//! let err = serde_path_to_error::deserialize::<_, Upstream>(
//!     &mut serde_json::Deserializer::from_str(json),
//! )
//! .err()
//! .unwrap();
//! assert_eq!(err.path().to_string(), "retry.backoff.base");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod duration;
