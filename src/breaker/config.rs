//! Building a breaker: knobs, defaults, validation, presets.

use std::sync::Arc;
use std::time::Duration;

use super::handle::CircuitBreaker;
use super::policy::{ConsecutiveFailures, TripPolicy};
#[cfg(feature = "serde")]
use super::spec::{CountWindowSpec, TimeWindowSpec};
use super::{AnyOf, CountWindow, TimeWindow, TripPolicyExt};
use crate::backoff::{Backoff, BackoffPolicy, Jitter, MakeBackoff};
use crate::error::{ConfigError, check_duration};
use crate::events::{Listener, SharedListener};

/// How an outcome of a given class counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Counted {
    /// Against the dependency.
    Failure,
    /// For the dependency: it answered.
    Success,
    /// Not at all; a half-open probe with this outcome gives its permit back undecided.
    Ignored,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Counting {
    pub(crate) throttled: Counted,
    pub(crate) permanent: Counted,
}

/// Makes open-duration schedules; object-safe so a breaker's type does not name it.
trait MakeOpen: Send + Sync {
    fn make(&self) -> Box<dyn Backoff + Send>;
}

impl<M> MakeOpen for M
where
    M: MakeBackoff + Send + Sync + 'static,
    M::Backoff: Send + 'static,
{
    fn make(&self) -> Box<dyn Backoff + Send> {
        Box::new(self.make_backoff())
    }
}

#[derive(Clone)]
pub(crate) struct OpenSchedule {
    make: Arc<dyn MakeOpen>,
    first: Duration,
}

impl OpenSchedule {
    pub(crate) fn make(&self) -> Box<dyn Backoff + Send> {
        self.make.make()
    }

    /// What to use if a custom schedule hands out nothing at all.
    pub(crate) fn first_guess(&self) -> Duration {
        self.first
    }
}

/// Everything but the policy, shared by a keyed family of breakers.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) probes: u16,
    pub(crate) close_after: u16,
    pub(crate) counting: Counting,
    pub(crate) open: OpenSchedule,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) listener: Option<SharedListener>,
}

#[derive(Clone)]
enum OpenSpec {
    Growing { base: Duration, max: Duration },
    Fixed(Duration),
    Custom(Arc<dyn MakeOpen>),
}

/// Builder for [`CircuitBreaker`]; every knob is checked in [`build`](BreakerBuilder::build).
///
/// Defaults, and how they compare:
///
/// | knob | riprap | resilience4j | Polly |
/// |---|---|---|---|
/// | trip policy | 5 consecutive failures | failure rate 50 % over the last 100 calls, minimum 100 calls | failure ratio 0.1 over 30 s, minimum throughput 100 |
/// | open for | 5 s, doubling on each failed probe up to 60 s, equal jitter | 60 s fixed | 5 s fixed |
/// | half-open | 3 probes at once, close after 3 successes | 10 calls, closes by failure rate | 1 probe |
/// | counted as failures | transient errors only | every exception | every handled exception |
///
/// Why riprap differs: a pipeline's traffic is often low or bursty, and a window with a
/// minimum of 100 calls never trips at one call a minute while every call waits on a dead
/// dependency; five straight failures are near-impossible for a healthy one. Opening for 5 s
/// and growing keeps a blip cheap and a long outage quiet, and jitter stops a fleet of
/// workers from probing in lockstep. One lucky probe is weak evidence; three in parallel cost
/// at most three calls and decide within one call's latency. Throttles belong to the rate
/// limiter and permanent errors to the caller, so neither trips the breaker.
///
/// ```
/// use std::time::Duration;
/// use riprap::breaker::{CircuitBreaker, ConsecutiveFailures, Counted, CountWindow, TripPolicyExt};
///
/// let breaker = CircuitBreaker::builder()
///     .policy(ConsecutiveFailures::new(5)?.or(CountWindow::last(100).min_calls(20).build()?))
///     .open_growing(Duration::from_secs(2), Duration::from_secs(30))
///     .half_open_probes(2)
///     .close_after(4)
///     .count_permanent_as(Counted::Success)
///     .name("inventory-db")
///     .build()?;
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[must_use = "a builder does nothing until `build()` is called"]
pub struct BreakerBuilder<P = ConsecutiveFailures> {
    policy: P,
    knobs: Knobs,
}

impl<P> std::fmt::Debug for BreakerBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("BreakerBuilder");
        self.knobs.debug_fields(&mut d);
        d.field("name", &self.knobs.name).finish_non_exhaustive()
    }
}

crate::knobs::knobs! {
    /// Every knob but the trip policy, so that [`policy`](BreakerBuilder::policy) moves them in
    /// one piece. [`BreakerSpec`] is written from the same list.
    #[derive(Clone)]
    struct Knobs;

    impl<P> BreakerBuilder<P>;

    /// A [`CircuitBreaker`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
    ///
    /// **When to trip** is the set of policies listed: `consecutive_failures`, `count_window`,
    /// `time_window`, any combination, tripping when any of them does (as
    /// [`TripPolicyExt::or`](super::TripPolicyExt::or)); with none listed, riprap's default of
    /// 5 consecutive failures. **How long to stay open** is either `open_for` (fixed) or
    /// `open_base` / `open_max` (growing, the default 5 s doubling to 60 s), not both. Every
    /// other knob left out keeps [`BreakerBuilder`]'s default. Field names are the knob names a
    /// [`ConfigError`] reports (`breaker.count_window.min_calls`), so an error points at its
    /// line.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::breaker::{BreakerSpec, BreakerState};
    ///
    /// let spec: BreakerSpec = toml::from_str(r#"
    ///     consecutive_failures = 5
    ///     open_base = "2s"
    ///     open_max = "30s"
    ///     half_open_probes = 2
    ///     close_after = 3
    ///     count_permanent_as = "success"
    ///     name = "inventory-db"
    ///
    ///     [count_window]
    ///     size = 100
    ///     min_calls = 20
    ///     failure_rate = 0.5
    ///     slow_threshold = "2s"
    ///     slow_rate = 0.8
    /// "#)?;
    /// let breaker = spec.build()?;
    /// assert_eq!(breaker.state(), BreakerState::Closed);
    /// assert_eq!(breaker.policy().count_window().unwrap().size(), 100);
    ///
    /// let spec: BreakerSpec = toml::from_str("[count_window]\nsize = 10\nmin_calls = 11")?;
    /// assert_eq!(spec.build().unwrap_err().knob(), "breaker.count_window.min_calls");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[derive(Debug, Clone, PartialEq, Default)]
    pub struct BreakerSpec;

    /// Trip on this many failures in a row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,

    /// Trip on the failure (or slow-call) rate over the last N calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_window: Option<CountWindowSpec>,

    /// Trip on the failure (or slow-call) rate over the last span of time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindowSpec>,

    /// Stay open exactly this long every time.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_for: Option<Duration>,

    /// The first open duration of a growing schedule (default 5 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_base: Option<Duration>,

    /// The longest open duration of a growing schedule (default 60 s).
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_max: Option<Duration>,

    manual open: OpenSpec = OpenSpec::Growing {
        base: DEFAULT_OPEN_BASE,
        max: DEFAULT_OPEN_MAX,
    },

    /// Probes let through at once while half-open (default 3).
    half_open_probes: u16 = 3,

    /// Successful probes that close the breaker (default 3). Any failed probe reopens it.
    close_after: u16 = 3,

    /// How a [`Throttled`](crate::classify::Class::Throttled) outcome counts: `failure`,
    /// `success` or `ignored` (default [`Counted::Ignored`]: the rate limiter owns throttles).
    count_throttled_as: Counted = Counted::Ignored,

    /// How a [`Permanent`](crate::classify::Class::Permanent) outcome counts: `failure`,
    /// `success` or `ignored` (default [`Counted::Ignored`]: a bad request is the caller's
    /// fault; [`Counted::Success`] if an answer proves the dependency is up).
    count_permanent_as: Counted = Counted::Ignored,

    /// A name for events and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    manual name: Option<Arc<str>> = None,

    /// Seed the jitter of growing open durations, for reproducible runs. Unseeded breakers
    /// draw a random seed, so a fleet of them does not probe in lockstep.
    seed: Option<u64> = None,

    manual listener: Option<SharedListener> = None,
}

/// First open duration of the default schedule (Polly's break duration).
pub const DEFAULT_OPEN_BASE: Duration = Duration::from_secs(5);
/// Longest open duration of the default schedule (resilience4j's wait in open state).
pub const DEFAULT_OPEN_MAX: Duration = Duration::from_secs(60);

impl CircuitBreaker<ConsecutiveFailures> {
    /// A builder with riprap's defaults; see [`BreakerBuilder`].
    pub fn builder() -> BreakerBuilder<ConsecutiveFailures> {
        BreakerBuilder::with_policy(ConsecutiveFailures::with(5))
    }
}

impl<P: TripPolicy> BreakerBuilder<P> {
    fn with_policy(policy: P) -> Self {
        BreakerBuilder {
            policy,
            knobs: Knobs::default(),
        }
    }

    /// When to trip (default: 5 consecutive failures).
    pub fn policy<Q: TripPolicy>(self, policy: Q) -> BreakerBuilder<Q> {
        BreakerBuilder {
            policy,
            knobs: self.knobs,
        }
    }

    /// Stay open for `base` after tripping, doubling after every failed probe up to `max`,
    /// each duration drawn with equal jitter from `[d / 2, d]` so a fleet spreads its probes.
    /// The default, with 5 s and 60 s.
    pub fn open_growing(mut self, base: Duration, max: Duration) -> Self {
        self.knobs.open = OpenSpec::Growing { base, max };
        self
    }

    /// Stay open for exactly `d` every time.
    pub fn open_for(mut self, d: Duration) -> Self {
        self.knobs.open = OpenSpec::Fixed(d);
        self
    }

    /// Draw open durations from any backoff policy: the first delay after tripping from
    /// closed, the next after each failed probe. A schedule that runs out keeps its last.
    pub fn open_backoff<M>(mut self, policy: M) -> Self
    where
        M: MakeBackoff + Send + Sync + 'static,
        M::Backoff: Send + 'static,
    {
        self.knobs.open = OpenSpec::Custom(Arc::new(policy));
        self
    }

    /// A name for events and logs.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.knobs.name = Some(name.into());
        self
    }

    /// Receive every [`BreakerEvent`](super::BreakerEvent).
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.knobs.listener = Some(Arc::new(listener));
        self
    }

    /// Check every knob and build the breaker.
    ///
    /// ```
    /// use riprap::breaker::CircuitBreaker;
    ///
    /// let err = CircuitBreaker::builder().half_open_probes(0).build().unwrap_err();
    /// assert_eq!(err.knob(), "breaker.half_open_probes");
    /// ```
    pub fn build(self) -> Result<CircuitBreaker<P>, ConfigError> {
        let knobs = self.knobs;
        if knobs.half_open_probes == 0 {
            return Err(ConfigError::new(
                "breaker.half_open_probes",
                "must be at least 1, or the breaker could never close",
            ));
        }
        if knobs.close_after == 0 {
            return Err(ConfigError::new(
                "breaker.close_after",
                "must be at least 1",
            ));
        }
        let open = match knobs.open {
            OpenSpec::Growing { base, max } => {
                positive("breaker.open_base", base)?;
                positive("breaker.open_max", max)?;
                if max < base {
                    return Err(ConfigError::new(
                        "breaker.open_max",
                        format!("must be at least the base {base:?} (got {max:?})"),
                    ));
                }
                let mut policy = BackoffPolicy::exponential(base)
                    .factor(2.0)
                    .max_delay(max)
                    .jitter(Jitter::Equal);
                if let Some(seed) = knobs.seed {
                    policy = policy.seed(seed);
                }
                let policy = policy.build()?;
                OpenSchedule {
                    make: Arc::new(policy),
                    first: base,
                }
            }
            OpenSpec::Fixed(d) => {
                positive("breaker.open_for", d)?;
                OpenSchedule {
                    make: Arc::new(BackoffPolicy::constant(d).build()?),
                    first: d,
                }
            }
            OpenSpec::Custom(make) => OpenSchedule {
                make,
                first: DEFAULT_OPEN_BASE,
            },
        };
        let settings = Settings {
            probes: knobs.half_open_probes,
            close_after: knobs.close_after,
            counting: Counting {
                throttled: knobs.count_throttled_as,
                permanent: knobs.count_permanent_as,
            },
            open,
            name: knobs.name,
            listener: knobs.listener,
        };
        Ok(CircuitBreaker::from_parts(self.policy, settings))
    }
}

fn positive(knob: &'static str, d: Duration) -> Result<(), ConfigError> {
    if check_duration(knob, d)? == 0 {
        return Err(ConfigError::new(knob, "must be greater than zero"));
    }
    Ok(())
}

impl BreakerBuilder<AnyOf<ConsecutiveFailures, TimeWindow>> {
    /// An LLM API: slow, expensive calls at modest rates.
    ///
    /// 5 consecutive failures, or half of the calls in the last 60 s with at least 10;
    /// open 15 s growing to 2 min; one probe at a time, close after 2 successes. Latency is
    /// not judged: a long completion is not a sick server. The reasoning is in the
    /// [module guide](super#presets).
    ///
    /// ```
    /// let breaker = riprap::breaker::BreakerBuilder::llm_api().name("llm").build()?;
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn llm_api() -> Self {
        BreakerBuilder::with_policy(ConsecutiveFailures::with(5).or(TimeWindow::preset(
            Duration::from_secs(60),
            12,
            0.5,
            10,
            None,
        )))
        .open_growing(Duration::from_secs(15), Duration::from_secs(120))
        .half_open_probes(1)
        .close_after(2)
    }

    /// A database: failures are fast (refused connections) or slow (lock waits, failover).
    ///
    /// 5 consecutive failures, or over the last 10 s with at least 20 calls half failed or
    /// half slower than 2 s; open 2 s growing to 30 s (failovers take seconds); 2 probes,
    /// close after 3 successes.
    ///
    /// ```
    /// let breaker = riprap::breaker::BreakerBuilder::database().build()?;
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn database() -> Self {
        BreakerBuilder::with_policy(ConsecutiveFailures::with(5).or(TimeWindow::preset(
            Duration::from_secs(10),
            10,
            0.5,
            20,
            Some((Duration::from_secs(2), 0.5)),
        )))
        .open_growing(Duration::from_secs(2), Duration::from_secs(30))
        .half_open_probes(2)
        .close_after(3)
    }
}

impl BreakerBuilder<CountWindow> {
    /// An object store (S3, GCS, Azure Blob): high request rates, many parallel reads.
    ///
    /// Half of the last 200 calls with at least 50, or 80 % of them slower than 10 s; open 5 s
    /// growing to 60 s; 5 probes at once, close after 5 successes.
    ///
    /// ```
    /// let breaker = riprap::breaker::BreakerBuilder::object_store().build()?;
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn object_store() -> Self {
        BreakerBuilder::with_policy(CountWindow::preset(
            200,
            0.5,
            50,
            Some((Duration::from_secs(10), 0.8)),
        ))
        .open_growing(Duration::from_secs(5), Duration::from_secs(60))
        .half_open_probes(5)
        .close_after(5)
    }
}
