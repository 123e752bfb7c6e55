//! Adaptive rate: AIMD on an even pacing interval.
//!
//! governor's quotas are fixed once built, so the adaptive rate is not a quota: it is a
//! pacing interval (nanoseconds per request) in an atomic, applied in front of the quotas.
//! A throttle multiplies the rate by `decrease`; each success adds `increase` requests per
//! second, up to the maximum. Throttles answering requests sent before the last cut are the
//! same congestion seen late and do not cut again, as TCP cuts once per window.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::clock::Tick;
use super::config::AdaptiveConfig;

const NANOS_PER_SEC: f64 = 1e9;

#[derive(Debug)]
pub(crate) struct Adaptive {
    config: AdaptiveConfig,
    min_interval: u64,
    max_interval: u64,
    interval: AtomicU64,
    tat: AtomicU64,
    /// The tick of the last cut, plus one; zero before the first.
    last_cut: AtomicU64,
}

/// What a change of rate amounted to, for the events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Change {
    None,
    Decreased(f64),
    Recovered(f64),
}

fn interval_of(rate: f64) -> u64 {
    // Config validation keeps rates in [1e-9, 1e9): the interval fits and is at least 1 ns.
    (NANOS_PER_SEC / rate).round().clamp(1.0, u64::MAX as f64) as u64
}

fn rate_of(interval: u64) -> f64 {
    NANOS_PER_SEC / interval.max(1) as f64
}

impl Adaptive {
    pub(crate) fn new(config: AdaptiveConfig) -> Self {
        let min_interval = interval_of(config.max_rate);
        Adaptive {
            config,
            min_interval,
            max_interval: interval_of(config.min_rate),
            interval: AtomicU64::new(min_interval),
            tat: AtomicU64::new(0),
            last_cut: AtomicU64::new(0),
        }
    }

    /// The rate the interval stands for; whole nanoseconds round very high rates, so it is
    /// reported within the configured bounds.
    pub(crate) fn rate(&self) -> f64 {
        self.clamp(rate_of(self.interval.load(Relaxed)))
    }

    fn clamp(&self, rate: f64) -> f64 {
        rate.clamp(self.config.min_rate, self.config.max_rate)
    }

    /// The next free slot, if it is later than `now`.
    #[inline]
    pub(crate) fn next_slot(&self, now: Tick) -> Option<Tick> {
        let tat = self.tat.load(Relaxed);
        (tat > now.nanos()).then_some(Tick(tat))
    }

    pub(crate) fn commit(&self, now: Tick) {
        let step = self.interval.load(Relaxed);
        let _ = self.tat.fetch_update(Relaxed, Relaxed, |tat| {
            Some(tat.max(now.nanos()).saturating_add(step))
        });
    }

    pub(crate) fn on_throttle(&self, sent_at: Tick, now: Tick) -> Change {
        let stamp = now.nanos().saturating_add(1);
        let cut = self.last_cut.fetch_update(Relaxed, Relaxed, |last| {
            (last == 0 || sent_at.nanos() >= last).then_some(stamp)
        });
        if cut.is_err() {
            return Change::None;
        }
        let (decrease, max_interval) = (self.config.decrease, self.max_interval);
        let prev = self.interval.fetch_update(Relaxed, Relaxed, |i| {
            Some(interval_of(rate_of(i) * decrease).clamp(1, max_interval))
        });
        match prev {
            Ok(i) => Change::Decreased(self.clamp(rate_of(
                interval_of(rate_of(i) * decrease).min(max_interval),
            ))),
            Err(_) => Change::None,
        }
    }

    pub(crate) fn on_success(&self) -> Change {
        if self.interval.load(Relaxed) <= self.min_interval {
            return Change::None;
        }
        let (increase, max_rate, min_interval) = (
            self.config.increase,
            self.config.max_rate,
            self.min_interval,
        );
        // Snap to the maximum within rounding, so the rate does recover fully.
        let next = |i: u64| {
            let rate = rate_of(i) + increase;
            if rate >= max_rate * (1.0 - 1e-6) {
                min_interval
            } else {
                interval_of(rate).max(min_interval)
            }
        };
        match self
            .interval
            .fetch_update(Relaxed, Relaxed, |i| (i > min_interval).then(|| next(i)))
        {
            Ok(i) if next(i) == min_interval => Change::Recovered(self.config.max_rate),
            _ => Change::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adaptive() -> Adaptive {
        Adaptive::new(AdaptiveConfig {
            max_rate: 100.0,
            min_rate: 10.0,
            decrease: 0.5,
            increase: 10.0,
        })
    }

    #[test]
    fn aimd_between_floor_and_max() {
        let a = adaptive();
        assert_eq!(a.rate(), 100.0);
        assert_eq!(a.on_throttle(Tick(0), Tick(5)), Change::Decreased(50.0));
        // Sent before the cut: same congestion, no second cut.
        assert_eq!(a.on_throttle(Tick(4), Tick(6)), Change::None);
        assert_eq!(a.on_throttle(Tick(7), Tick(8)), Change::Decreased(25.0));
        assert_eq!(a.on_throttle(Tick(9), Tick(10)), Change::Decreased(12.5));
        assert_eq!(a.on_throttle(Tick(11), Tick(12)), Change::Decreased(10.0));
        assert_eq!(a.rate(), 10.0);
        for _ in 0..8 {
            assert_eq!(a.on_success(), Change::None);
        }
        assert_eq!(a.on_success(), Change::Recovered(100.0));
        assert_eq!(a.rate(), 100.0);
        assert_eq!(a.on_success(), Change::None);
    }

    #[test]
    fn paces_at_the_current_rate() {
        let a = adaptive();
        assert_eq!(a.next_slot(Tick(0)), None);
        a.commit(Tick(0));
        assert_eq!(a.next_slot(Tick(0)), Some(Tick(10_000_000)));
        assert_eq!(a.next_slot(Tick(10_000_000)), None);
    }
}
