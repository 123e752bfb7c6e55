//! The retry layer's knobs, their validation, and the presets.

use std::sync::Arc;
use std::time::Duration;

use super::{ByClone, RetryLayer};
use crate::backoff::{BackoffBuilder, BackoffPolicy, Jitter, MakeBackoff};
use crate::budget::{Budget, RatioBudget};
use crate::classify::ByError;
use crate::engine::{DEFAULT_MAX_RETRY_AFTER, Rules};
use crate::error::{ConfigError, check_duration};
use crate::events::{Listener, SharedListener};
#[cfg(feature = "serde")]
use crate::{backoff::BackoffSpec, budget::BudgetSpec};

/// Attempts made unless configured otherwise: one call and two retries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The most attempts a config accepts: beyond this a retry loop is an outage amplifier.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// The configuration of a [`RetryLayer`], and its builder.
///
/// The type parameters are the four policies: classifier `C` (default [`ByError`]), backoff
/// `P` (default exponential from 100 ms, ×2, capped at 5 s, full jitter), budget `B` (default
/// a fresh [`RatioBudget`]) and request copying `R` (default [`ByClone`]). Each setter that
/// changes a policy changes the type.
///
/// ```
/// use std::time::Duration;
/// use riprap::backoff::BackoffPolicy;
/// use riprap::budget::RatioBudget;
/// use riprap::retry::RetryConfig;
///
/// let budget = RatioBudget::default(); // share it with every layer calling this dependency
/// let layer = RetryConfig::new()
///     .max_attempts(4)
///     .deadline(Duration::from_secs(10))
///     .backoff(BackoffPolicy::exponential(Duration::from_millis(50)).build()?)
///     .budget(budget.clone())
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[must_use = "a config does nothing until `build()` is called"]
pub struct RetryConfig<C = ByError, P = BackoffPolicy, B = RatioBudget, R = ByClone> {
    classifier: C,
    backoff: Result<P, ConfigError>,
    budget: B,
    requests: R,
    knobs: Knobs,
}

crate::knobs::knobs! {
    /// The knobs that are plain values, grouped so that a setter changing a policy's type moves
    /// them in one piece. [`RetrySpec`] is written from the same list.
    #[derive(Clone)]
    struct Knobs;

    impl<C, P, B, R> RetryConfig<C, P, B, R>;

    /// The knobs of a [`RetryConfig`] that are plain data, readable from TOML, YAML or JSON
    /// (feature `serde`): attempts, deadline, the longest server delay sat out, the backoff and
    /// the budget.
    ///
    /// A knob left out keeps [`RetryConfig::new`]'s default: 3 attempts, no deadline, server
    /// delays sat out up to 60 s, exponential backoff from 100 ms capped at 5 s with full jitter,
    /// and a fresh default [`RatioBudget`]. The classifier, the listener and request copying
    /// are code, not data: set them on the config that [`config`](RetrySpec::config) returns.
    /// To share one budget between several layers (as you should for one dependency), build it
    /// once and pass it with [`RetryConfig::budget`], which replaces the spec's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::retry::RetrySpec;
    ///
    /// let spec: RetrySpec = toml::from_str(r#"
    ///     max_attempts = 4
    ///     deadline = "30s"
    ///     max_retry_after = "2m"
    ///
    ///     [backoff]
    ///     base = "250ms"
    ///     max_delay = "8s"
    ///
    ///     [budget.ratio_budget]
    ///     ratio = 0.1
    /// "#)?;
    /// assert_eq!(spec.max_attempts, Some(4));
    /// assert_eq!(spec.deadline, Some(Duration::from_secs(30)));
    /// let layer = spec.build()?; // or spec.config()?.classifier(..).build()?
    /// # let _ = layer;
    ///
    /// let err = toml::from_str::<RetrySpec>("max_attempts = 0")?.build().unwrap_err();
    /// assert_eq!(err.knob(), "retry.max_attempts");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct RetrySpec;

    /// Attempts in all, first included, from 1 (no retries) to 100. Default 3.
    max_attempts: u32 = DEFAULT_MAX_ATTEMPTS,

    /// The time a logical request may take, measured from its first attempt (default none).
    /// A retry that could not start before it is not made: the layer gives up at once with
    /// [`GiveUp::Deadline`](super::GiveUp::Deadline) instead of sleeping uselessly. An attempt
    /// in flight is not cut short; wrap the layer in `tower::timeout` for a hard cap.
    deadline: Option<Duration> = None,

    /// The longest server-requested wait (a `Retry-After`, an open breaker's time to its next
    /// probe) this layer sits out (default 60 s). A longer one is never shortened: the layer
    /// gives up at once with [`GiveUp::WaitTooLong`](super::GiveUp::WaitTooLong), and
    /// [`RetryError::retry_at`](super::RetryError::retry_at) says when the server will take
    /// calls again.
    max_retry_after: Duration = DEFAULT_MAX_RETRY_AFTER,

    /// The delays between attempts (default exponential from 100 ms, capped at 5 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffSpec>,

    /// The budget that pays for retries (default a [`RatioBudget`] with its defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetSpec>,

    /// Seed the backoff's jitter, so that two runs with the same seed (and the same outcomes)
    /// make the same calls at the same instants. Unseeded, each layer draws a random seed, so
    /// a fleet of clients does not retry in lockstep: seed for tests and replays, not in
    /// production.
    ///
    /// ```
    /// use riprap::retry::RetryConfig;
    /// let layer = RetryConfig::llm_api().seed(7).build()?;
    /// # drop(layer);
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    code seed: Option<u64> = None,

    manual listener: Option<SharedListener> = None,
}

impl<C, P, B, R> std::fmt::Debug for RetryConfig<C, P, B, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RetryConfig");
        self.knobs.debug_fields(&mut d);
        d.finish_non_exhaustive()
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig::new()
    }
}

fn backoff(b: BackoffBuilder) -> Result<BackoffPolicy, ConfigError> {
    b.jitter(Jitter::Full).build()
}

impl RetryConfig {
    /// The defaults: 3 attempts, exponential backoff from 100 ms capped at 5 s with full
    /// jitter, a fresh default [`RatioBudget`] (20 %), server delays sat out up to 60 s, no
    /// deadline, errors classified by [`ByError`], requests copied by `Clone`.
    pub fn new() -> Self {
        RetryConfig {
            classifier: ByError,
            backoff: backoff(
                BackoffPolicy::exponential(Duration::from_millis(100))
                    .max_delay(Duration::from_secs(5)),
            ),
            budget: RatioBudget::default(),
            requests: ByClone,
            knobs: Knobs::default(),
        }
    }

    /// For LLM and other metered, rate-limited HTTP APIs.
    ///
    /// 3 attempts: every call costs money and seconds, and a provider that failed twice is
    /// having an incident that a third immediate call will not fix. Backoff from 0.5 s to 8 s
    /// with full jitter: long enough for a provider's load balancer to shed a hot spot, short
    /// enough for an interactive caller. `Retry-After` is obeyed up to 60 s, since providers
    /// meter per minute and say exactly when capacity returns; obeying it costs less than
    /// being throttled again. No deadline, because generations legitimately take minutes: put
    /// one on with [`deadline`](RetryConfig::deadline) for interactive paths. Pair it with
    /// the `http` feature's status classifier, and mark completion POSTs with
    /// `AssumeIdempotent` if you guard methods.
    pub fn llm_api() -> Self {
        RetryConfig {
            backoff: backoff(
                BackoffPolicy::exponential(Duration::from_millis(500))
                    .max_delay(Duration::from_secs(8)),
            ),
            ..RetryConfig::new()
        }
        .max_attempts(3)
        .max_retry_after(Duration::from_secs(60))
    }

    /// For object stores (S3, GCS, Azure Blob) and similar bulk HTTP storage.
    ///
    /// 5 attempts, backoff from 100 ms to 15 s with full jitter: object stores shed load with
    /// 503 "slow down" responses per key prefix and recover within seconds, reads and puts of
    /// whole objects are idempotent, and a failed step in a batch pipeline costs far more than
    /// a few extra calls. A 3-minute deadline bounds the whole exchange, so a stuck partition
    /// cannot hold a pipeline stage forever.
    pub fn object_store() -> Self {
        RetryConfig {
            backoff: backoff(
                BackoffPolicy::exponential(Duration::from_millis(100))
                    .max_delay(Duration::from_secs(15)),
            ),
            ..RetryConfig::new()
        }
        .max_attempts(5)
        .deadline(Duration::from_secs(180))
    }

    /// For databases: serialization failures, deadlocks, "database is locked".
    ///
    /// 4 attempts, backoff from 20 ms to 1 s with full jitter: these conflicts clear as soon
    /// as the competing transaction commits, typically within milliseconds, and jitter keeps
    /// the losers of one conflict from colliding again. A 10 s deadline, because a caller
    /// holding a connection (and often locks) must not wait out a long schedule. The
    /// classifier must say which errors are conflicts: constraint violations are permanent.
    pub fn database() -> Self {
        RetryConfig {
            backoff: backoff(
                BackoffPolicy::exponential(Duration::from_millis(20))
                    .max_delay(Duration::from_secs(1)),
            ),
            ..RetryConfig::new()
        }
        .max_attempts(4)
        .deadline(Duration::from_secs(10))
    }
}

impl<C, P, B, R> RetryConfig<C, P, B, R> {
    /// The knobs a stack checks against its deadlines: attempts, deadline and backoff.
    pub(crate) fn plan(&self) -> (u32, Option<Duration>, Option<&P>) {
        (
            self.knobs.max_attempts,
            self.knobs.deadline,
            self.backoff.as_ref().ok(),
        )
    }

    /// Hear every [`RetryEvent`](super::RetryEvent), for metrics or tests.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.knobs.listener = Some(Arc::new(listener));
        self
    }

    /// The policy that says what each outcome was.
    pub fn classifier<C2>(self, classifier: C2) -> RetryConfig<C2, P, B, R> {
        RetryConfig {
            classifier,
            backoff: self.backoff,
            budget: self.budget,
            requests: self.requests,
            knobs: self.knobs,
        }
    }

    /// The policy that spaces retries out.
    pub fn backoff<P2: MakeBackoff>(self, backoff: P2) -> RetryConfig<C, P2, B, R> {
        RetryConfig {
            classifier: self.classifier,
            backoff: Ok(backoff),
            budget: self.budget,
            requests: self.requests,
            knobs: self.knobs,
        }
    }

    /// The budget that pays for retries. Pass a clone of one budget to every layer that calls
    /// the same dependency, so they share one account.
    pub fn budget<B2: Budget>(self, budget: B2) -> RetryConfig<C, P, B2, R> {
        RetryConfig {
            classifier: self.classifier,
            backoff: self.backoff,
            budget,
            requests: self.requests,
            knobs: self.knobs,
        }
    }

    /// The policy that copies requests for retries, such as [`IdempotentOnly`] (feature `http`)
    /// or one that re-buffers bodies.
    ///
    #[cfg_attr(feature = "http", doc = "[`IdempotentOnly`]: super::IdempotentOnly")]
    #[cfg_attr(
        not(feature = "http"),
        doc = "[`IdempotentOnly`]: crate#cargo-features"
    )]
    pub fn clone_requests<R2>(self, requests: R2) -> RetryConfig<C, P, B, R2> {
        RetryConfig {
            classifier: self.classifier,
            backoff: self.backoff,
            budget: self.budget,
            requests,
            knobs: self.knobs,
        }
    }

    /// Check every knob and build the layer.
    ///
    /// ```
    /// use riprap::retry::RetryConfig;
    /// let err = RetryConfig::new().max_attempts(0).build().unwrap_err();
    /// assert_eq!(err.knob(), "retry.max_attempts");
    /// ```
    pub fn build(self) -> Result<RetryLayer<C, P, B, R>, ConfigError>
    where
        P: MakeBackoff,
    {
        let knobs = self.knobs;
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&knobs.max_attempts) {
            return Err(ConfigError::new(
                "retry.max_attempts",
                format!(
                    "must be from 1 to {MAX_ATTEMPTS_LIMIT} (got {})",
                    knobs.max_attempts
                ),
            ));
        }
        if let Some(d) = knobs.deadline {
            if check_duration("retry.deadline", d)? == 0 {
                return Err(ConfigError::new(
                    "retry.deadline",
                    "must be greater than zero",
                ));
            }
        }
        // Zero is allowed: it means "never sit out a server's delay, give up at once".
        check_duration("retry.max_retry_after", knobs.max_retry_after)?;
        let mut backoff = self.backoff?;
        if let Some(seed) = knobs.seed {
            backoff.reseed(seed);
        }
        Ok(RetryLayer::from_shared(Arc::new(super::Shared {
            classifier: self.classifier,
            rules: Rules {
                backoff,
                budget: self.budget,
                max_attempts: knobs.max_attempts,
                deadline: knobs.deadline,
                max_retry_after: knobs.max_retry_after,
            },
            requests: self.requests,
            listener: knobs.listener,
        })))
    }
}
