//! A breaker's trip policies as plain data, for config files, and building a [`BreakerSpec`]
//! (defined with the knobs it lists, in `config.rs`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::ConsecutiveFailures;
use super::window::{CountWindow, TimeWindow};
use super::{
    BreakerBuilder, BreakerSpec, CircuitBreaker, DEFAULT_OPEN_BASE, DEFAULT_OPEN_MAX, TripPolicies,
};
use crate::error::ConfigError;

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
        let mut b = self.set_knobs(CircuitBreaker::builder().policy(self.trip_policies()?));
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
        if let Some(name) = &self.name {
            b = b.name(name.as_str());
        }
        Ok(b)
    }

    /// Check every knob and build the breaker.
    pub fn build(&self) -> Result<CircuitBreaker<TripPolicies>, ConfigError> {
        self.builder()?.build()
    }
}
