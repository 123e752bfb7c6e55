//! [`TripPolicies`]: any of the built-in trip policies, chosen at run time.

use std::time::Duration;

use super::policy::{Call, ConsecutiveFailures, PolicyStats, TripPolicy};
use super::window::{CountWindow, TimeWindow};

/// Any of the built-in trip policies, chosen at run time: trips when any of those listed
/// trips. A config file's `BreakerSpec` (feature `serde`) builds one; so can code that picks
/// policies from settings, with one breaker type whichever were chosen.
///
/// Each listed policy sees every outcome, as with [`TripPolicyExt::or`](super::TripPolicyExt::or);
/// a call is slow if any listed window says so; the metrics take each figure from the first
/// policy that has it (consecutive failures, then the count window, then the time window).
/// With none listed, it never trips.
///
/// ```
/// use std::time::Duration;
/// use riprap::breaker::{CircuitBreaker, ConsecutiveFailures, CountWindow, TripPolicies};
/// use riprap::classify::Class;
///
/// let high_traffic = true; // from your settings
/// let mut policies = TripPolicies::new().with_consecutive_failures(ConsecutiveFailures::new(2)?);
/// if high_traffic {
///     policies = policies.with_count_window(CountWindow::last(100).min_calls(20).build()?);
/// }
/// let breaker: CircuitBreaker<TripPolicies> = CircuitBreaker::builder().policy(policies).build()?;
/// assert_eq!(breaker.policy().count_window().unwrap().size(), 100);
///
/// breaker.try_acquire().unwrap().record(Class::Transient);
/// breaker.try_acquire().unwrap().record(Class::Transient); // two in a row trip it
/// assert!(breaker.try_acquire().is_err());
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Default)]
pub struct TripPolicies {
    consecutive: Option<ConsecutiveFailures>,
    count_window: Option<CountWindow>,
    time_window: Option<TimeWindow>,
}

impl TripPolicies {
    /// No policy listed yet: add them with the `with_` methods.
    pub fn new() -> Self {
        TripPolicies::default()
    }

    /// List a consecutive-failure policy, replacing any listed before.
    pub fn with_consecutive_failures(mut self, policy: ConsecutiveFailures) -> Self {
        self.consecutive = Some(policy);
        self
    }

    /// List a count window, replacing any listed before.
    pub fn with_count_window(mut self, window: CountWindow) -> Self {
        self.count_window = Some(window);
        self
    }

    /// List a time window, replacing any listed before.
    pub fn with_time_window(mut self, window: TimeWindow) -> Self {
        self.time_window = Some(window);
        self
    }

    /// The consecutive-failure policy, if listed.
    pub fn consecutive_failures(&self) -> Option<&ConsecutiveFailures> {
        self.consecutive.as_ref()
    }

    /// The count window, if listed.
    pub fn count_window(&self) -> Option<&CountWindow> {
        self.count_window.as_ref()
    }

    /// The time window, if listed.
    pub fn time_window(&self) -> Option<&TimeWindow> {
        self.time_window.as_ref()
    }
}

impl TripPolicy for TripPolicies {
    fn record(&self, call: Call) -> bool {
        // Every policy must see the outcome, so no short-circuit.
        let a = self.consecutive.as_ref().is_some_and(|p| p.record(call));
        let b = self.count_window.as_ref().is_some_and(|p| p.record(call));
        let c = self.time_window.as_ref().is_some_and(|p| p.record(call));
        a | b | c
    }

    fn reset(&self) {
        if let Some(p) = &self.consecutive {
            p.reset();
        }
        if let Some(p) = &self.count_window {
            p.reset();
        }
        if let Some(p) = &self.time_window {
            p.reset();
        }
    }

    fn fresh(&self) -> Self {
        TripPolicies {
            consecutive: self.consecutive.as_ref().map(TripPolicy::fresh),
            count_window: self.count_window.as_ref().map(TripPolicy::fresh),
            time_window: self.time_window.as_ref().map(TripPolicy::fresh),
        }
    }

    fn needs_clock(&self) -> bool {
        self.consecutive.as_ref().is_some_and(|p| p.needs_clock())
            || self.count_window.as_ref().is_some_and(|p| p.needs_clock())
            || self.time_window.as_ref().is_some_and(|p| p.needs_clock())
    }

    fn stats(&self, now: Duration) -> PolicyStats {
        let all = [
            self.consecutive.as_ref().map(|p| p.stats(now)),
            self.count_window.as_ref().map(|p| p.stats(now)),
            self.time_window.as_ref().map(|p| p.stats(now)),
        ];
        all.into_iter()
            .flatten()
            .fold(PolicyStats::default(), |acc, s| PolicyStats {
                calls: acc.calls.or(s.calls),
                failure_rate: acc.failure_rate.or(s.failure_rate),
                slow_rate: acc.slow_rate.or(s.slow_rate),
                consecutive_failures: acc.consecutive_failures.or(s.consecutive_failures),
            })
    }

    fn is_slow(&self, elapsed: Duration) -> bool {
        // As `AnyOf` does: a probe that any listed window calls slow must not close the breaker.
        self.consecutive
            .as_ref()
            .is_some_and(|p| p.is_slow(elapsed))
            || self
                .count_window
                .as_ref()
                .is_some_and(|p| p.is_slow(elapsed))
            || self
                .time_window
                .as_ref()
                .is_some_and(|p| p.is_slow(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::{BreakerState, CircuitBreaker};
    use crate::classify::Class;

    fn slow_window() -> CountWindow {
        CountWindow::last(2)
            .slow_calls(Duration::from_secs(1), 0.5)
            .build()
            .unwrap()
    }

    #[test]
    fn a_call_is_slow_if_any_listed_window_says_so() {
        let policies = TripPolicies::new()
            .with_consecutive_failures(ConsecutiveFailures::new(3).unwrap())
            .with_count_window(slow_window());
        assert!(policies.is_slow(Duration::from_secs(2)));
        assert!(!policies.is_slow(Duration::from_millis(500)));
        assert!(!TripPolicies::new().is_slow(Duration::MAX));
    }

    /// The same breaker as `ConsecutiveFailures.or(window)` written in code: a probe that
    /// succeeds slowly reopens it.
    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_reopens_as_with_any_of() {
        let policies = TripPolicies::new()
            .with_consecutive_failures(ConsecutiveFailures::new(1).unwrap())
            .with_count_window(slow_window());
        let breaker = CircuitBreaker::builder()
            .policy(policies)
            .open_for(Duration::from_secs(5))
            .half_open_probes(1)
            .close_after(1)
            .build()
            .unwrap();
        breaker.try_acquire().unwrap().record(Class::Transient);
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = breaker.try_acquire().unwrap();
        assert!(probe.is_probe());
        tokio::time::advance(Duration::from_secs(2)).await;
        probe.record(Class::Success);
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
