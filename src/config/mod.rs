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
//! | [`BulkheadSpec`](crate::bulkhead::BulkheadSpec) (with [`GradientSpec`](crate::bulkhead::GradientSpec), [`VegasSpec`](crate::bulkhead::VegasSpec) or [`AimdSpec`](crate::bulkhead::AimdSpec)) | [`Bulkhead`](crate::bulkhead::Bulkhead) | [`BulkheadBuilder`](crate::bulkhead::BulkheadBuilder) and the algorithm's builder |
//! | [`HedgeSpec`](crate::hedge::HedgeSpec) | [`HedgeLayer`](crate::hedge::HedgeLayer) | [`HedgeBuilder`](crate::hedge::HedgeBuilder) |
//! | [`FallbackSpec`](crate::fallback::FallbackSpec) | the classes that fall back, [`FallbackOn`](crate::fallback::FallbackOn) | [`FallbackLayer::on`](crate::fallback::FallbackLayer::on) |
//! | [`StackSpec`](crate::stack::StackSpec) (deadlines, and a table per layer: `[retry]`, `[breaker]`, `[rate_limit]`, `[bulkhead]`) | [`StackBuilder`](crate::stack::StackBuilder) (`builder(classifier)`) | `StackBuilder` and each layer's builder |
//!
//! What is code rather than data — classifiers, listeners, injectors, request copying — is
//! set on the builder or config a spec returns (`builder()`, or `config()` for retries).
//!
//! ## Writing a config
//!
//! - **Every knob is optional** unless its spec says otherwise (a backoff's `base`, a
//!   window's `size` or `span`), and a knob left out keeps the builder's default. Serializing
//!   writes the knobs that were set (a table may add its defaults, and durations come back
//!   in one canonical form, `"1m"` as `"1m0s"`), so a spec read back builds the same thing.
//! - **A plain field is the builder's setter of the same name**: `max_attempts = 4` is
//!   `.max_attempts(4)`, with the same default and the same check, since a builder and its
//!   spec are written from one list of knobs. Tables and paired fields (`requests = { rate,
//!   per }`, `open_base` with `open_max`) are described on their spec.
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
//!   unit…`; TOML quotes the offending line, key included. serde_json alone gives only a line
//!   and column: deserialize through [`deserialize`] to get the field's path in every format.
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

/// Deserialize a config, naming the path of the field at fault in any error, whatever the
/// format. serde_json on its own names an unknown field but locates a wrong type or a bad
/// duration only by line and column; through this function every error says which field.
///
/// ```
/// use riprap::retry::RetrySpec;
///
/// let json = r#"{ "max_attempts": "three" }"#;
/// let err = riprap::config::deserialize::<_, RetrySpec>(
///     &mut serde_json::Deserializer::from_str(json),
/// )
/// .unwrap_err();
/// assert_eq!(err.path(), "max_attempts");
/// assert!(err.to_string().starts_with("max_attempts: invalid type"));
/// ```
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, FieldError>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde_path_to_error::deserialize(deserializer).map_err(|e| FieldError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// A config that did not deserialize, with the path of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    path: String,
    message: String,
}

impl FieldError {
    /// The field's path, dotted (`retry.backoff.base`); `.` when the document itself is at fault.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What was wrong with it, in the format's own words.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}
