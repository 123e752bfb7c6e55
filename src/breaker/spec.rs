//! A breaker's knobs and trip policies as plain data, for config files.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::ConsecutiveFailures;
use super::window::{CountWindow, TimeWindow};
use super::{
    BreakerBuilder, CircuitBreaker, Counted, DEFAULT_OPEN_BASE, DEFAULT_OPEN_MAX, TripPolicies,
};
use crate::error::ConfigError;

/// A [`CircuitBreaker`] as plain data, readable from TOML, YAML or JSON (feature `serde`).
///
/// **When to trip** is the set of policies listed: `consecutive_failures`, `count_window`,
/// `time_window`, any combination, tripping when any of them does (as
/// [`TripPolicyExt::or`](super::TripPolicyExt::or)); with none listed, riprap's default of 5
/// consecutive failures. **How long to stay open** is either `open_for` (fixed) or
/// `open_base` / `open_max` (growing, the default 5 s doubling to 60 s), not both. Every other
/// knob left out keeps [`BreakerBuilder`]'s default. Field names are the knob names a
/// [`ConfigError`] reports (`breaker.count_window.min_calls`), so an error points at its line.
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
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
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
    /// Probes let through at once while half-open (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_probes: Option<u16>,
    /// Successful probes that close the breaker (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_after: Option<u16>,
    /// How a throttle counts: `failure`, `success` or `ignored` (default `ignored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_throttled_as: Option<Counted>,
    /// How a permanent error counts: `failure`, `success` or `ignored` (default `ignored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_permanent_as: Option<Counted>,
    /// A name for events and logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Seed for the jitter of growing open durations (random unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A [`CountWindow`] as plain data; see [`BreakerSpec`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CountWindowSpec {
    /// Calls in the window (required).
    pub size: u32,
    /// Trip when this share of the window failed, in `(0, 1]` (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    /// Judge only the slow-call rate (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_slow_calls: bool,
    /// Calls slower than this count as slow; set with `slow_rate`.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_threshold: Option<Duration>,
    /// Trip when this share of the window was slow; set with `slow_threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_rate: Option<f64>,
    /// No verdict until this many calls are in the window (default `size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u32>,
}

/// A [`TimeWindow`] as plain data; see [`BreakerSpec`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindowSpec {
    /// The window's length (required).
    #[serde(with = "crate::config::duration")]
    pub span: Duration,
    /// How many steps the window rolls in (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
    /// Trip when this share of the window failed, in `(0, 1]` (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<f64>,
    /// Judge only the slow-call rate (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_slow_calls: bool,
    /// Calls slower than this count as slow; set with `slow_rate`.
    #[serde(
        default,
        with = "crate::config::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_threshold: Option<Duration>,
    /// Trip when this share of the window was slow; set with `slow_threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_rate: Option<f64>,
    /// No verdict until this many calls are in the window (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_throughput: Option<u32>,
}

impl CountWindowSpec {
    /// A window over the last `size` calls, every other knob at its default.
    pub fn new(size: u32) -> Self {
        CountWindowSpec {
            size,
            failure_rate: None,
            only_slow_calls: false,
            slow_threshold: None,
            slow_rate: None,
            min_calls: None,
        }
    }

    /// Check the knobs and build the policy.
    pub fn build(&self) -> Result<CountWindow, ConfigError> {
        let mut b = apply_rates(
            CountWindow::last(self.size),
            self.failure_rate,
            self.only_slow_calls,
            (self.slow_threshold, self.slow_rate),
            (
                "breaker.count_window.slow_threshold",
                "breaker.count_window.slow_rate",
            ),
        )?;
        if let Some(n) = self.min_calls {
            b = b.min_calls(n);
        }
        b.build()
    }
}

impl TimeWindowSpec {
    /// A window over the last `span`, every other knob at its default.
    pub fn new(span: Duration) -> Self {
        TimeWindowSpec {
            span,
            buckets: None,
            failure_rate: None,
            only_slow_calls: false,
            slow_threshold: None,
            slow_rate: None,
            min_throughput: None,
        }
    }

    /// Check the knobs and build the policy.
    pub fn build(&self) -> Result<TimeWindow, ConfigError> {
        let mut b = TimeWindow::last(self.span);
        if let Some(n) = self.buckets {
            b = b.buckets(n);
        }
        b = apply_rates(
            b,
            self.failure_rate,
            self.only_slow_calls,
            (self.slow_threshold, self.slow_rate),
            (
                "breaker.time_window.slow_threshold",
                "breaker.time_window.slow_rate",
            ),
        )?;
        if let Some(n) = self.min_throughput {
            b = b.min_throughput(n);
        }
        b.build()
    }
}

/// Set the rate knobs both window specs share on either window builder.
fn apply_rates<B: crate::breaker::window::RateKnobs>(
    mut b: B,
    failure_rate: Option<f64>,
    only_slow_calls: bool,
    (slow_threshold, slow_rate): (Option<Duration>, Option<f64>),
    (threshold_knob, rate_knob): (&'static str, &'static str),
) -> Result<B, ConfigError> {
    if let Some(r) = failure_rate {
        b = b.failure_rate(r);
    }
    if only_slow_calls {
        b = b.only_slow_calls();
    }
    if let Some((threshold, rate)) =
        slow_pair(slow_threshold, slow_rate, threshold_knob, rate_knob)?
    {
        b = b.slow_calls(threshold, rate);
    }
    Ok(b)
}

/// The builders take the slow-call threshold and rate together; a file may forget one.
fn slow_pair(
    threshold: Option<Duration>,
    rate: Option<f64>,
    threshold_knob: &'static str,
    rate_knob: &'static str,
) -> Result<Option<(Duration, f64)>, ConfigError> {
    match (threshold, rate) {
        (Some(t), Some(r)) => Ok(Some((t, r))),
        (None, None) => Ok(None),
        (None, Some(_)) => Err(ConfigError::new(
            threshold_knob,
            "is required with `slow_rate`: which calls count as slow?",
        )),
        (Some(_), None) => Err(ConfigError::new(
            rate_knob,
            "is required with `slow_threshold`: what share of slow calls trips?",
        )),
    }
}

impl BreakerSpec {
    /// The trip policies this spec lists, checked and built; with none listed, riprap's
    /// default of 5 consecutive failures.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::breaker::{BreakerSpec, Call, TripPolicy};
    /// use riprap::classify::Class;
    ///
    /// let spec: BreakerSpec = serde_json::from_str(r#"{ "consecutive_failures": 2 }"#)?;
    /// let policies = spec.trip_policies()?;
    /// let fail = Call::new(Class::Transient, Duration::ZERO, Duration::ZERO);
    /// assert!(!policies.record(fail));
    /// assert!(policies.record(fail));
    /// assert!(policies.count_window().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trip_policies(&self) -> Result<TripPolicies, ConfigError> {
        let listed = self.consecutive_failures.is_some()
            || self.count_window.is_some()
            || self.time_window.is_some();
        let mut policies = TripPolicies::new();
        match self.consecutive_failures {
            Some(n) => policies = policies.with_consecutive_failures(ConsecutiveFailures::new(n)?),
            None if !listed => {
                policies = policies.with_consecutive_failures(ConsecutiveFailures::new(5)?)
            }
            None => {}
        }
        if let Some(w) = &self.count_window {
            policies = policies.with_count_window(w.build()?);
        }
        if let Some(w) = &self.time_window {
            policies = policies.with_time_window(w.build()?);
        }
        Ok(policies)
    }

    /// The builder with this spec's knobs and policies set, for the knobs that are code
    /// ([`listener`](BreakerBuilder::listener)) before building.
    pub fn builder(&self) -> Result<BreakerBuilder<TripPolicies>, ConfigError> {
        let mut b = CircuitBreaker::builder().policy(self.trip_policies()?);
        match (self.open_for, self.open_base, self.open_max) {
            (Some(d), None, None) => b = b.open_for(d),
            (Some(_), _, _) => {
                return Err(ConfigError::new(
                    "breaker.open_for",
                    "set either `open_for` (fixed) or `open_base`/`open_max` (growing), not both",
                ));
            }
            (None, None, None) => {}
            (None, base, max) => {
                b = b.open_growing(
                    base.unwrap_or(DEFAULT_OPEN_BASE),
                    max.unwrap_or(DEFAULT_OPEN_MAX),
                )
            }
        }
        if let Some(n) = self.half_open_probes {
            b = b.half_open_probes(n);
        }
        if let Some(n) = self.close_after {
            b = b.close_after(n);
        }
        if let Some(c) = self.count_throttled_as {
            b = b.count_throttled_as(c);
        }
        if let Some(c) = self.count_permanent_as {
            b = b.count_permanent_as(c);
        }
        if let Some(name) = &self.name {
            b = b.name(name.as_str());
        }
        if let Some(seed) = self.seed {
            b = b.seed(seed);
        }
        Ok(b)
    }

    /// Check every knob and build the breaker.
    pub fn build(&self) -> Result<CircuitBreaker<TripPolicies>, ConfigError> {
        self.builder()?.build()
    }
}
