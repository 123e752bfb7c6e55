//! An online latency percentile: the exact percentile of the last [`WINDOW`] answers.

use crate::time::nanos;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Answers the percentile is taken over.
pub(crate) const WINDOW: usize = 256;
/// The percentile is recomputed after this many answers.
const REFRESH: u64 = 32;

/// The last [`WINDOW`] latencies in a ring of atomics: recording is a counter increment and
/// a store, lock-free; every [`REFRESH`] answers the recording caller recomputes the
/// percentile from a copy of the ring (an exact order statistic, so a latency that never
/// varies is returned as it is), and readers load the cached value.
pub(crate) struct Tracker {
    ring: Box<[AtomicU64]>,
    recorded: AtomicU64,
    cached: AtomicU64,
    quantile: f64,
    min_samples: u64,
}

impl Tracker {
    pub(crate) fn new(quantile: f64, min_samples: u32) -> Self {
        Tracker {
            ring: (0..WINDOW).map(|_| AtomicU64::new(0)).collect(),
            recorded: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            quantile,
            min_samples: u64::from(min_samples).min(WINDOW as u64),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        let nanos = nanos(latency);
        let i = self.recorded.fetch_add(1, Relaxed);
        if let Some(slot) = self.ring.get((i % WINDOW as u64) as usize) {
            slot.store(nanos, Relaxed);
        }
        let n = i + 1;
        if n >= self.min_samples && (n % REFRESH == 0 || n == self.min_samples) {
            self.refresh(n);
        }
    }

    fn refresh(&self, recorded: u64) {
        let filled = recorded.min(WINDOW as u64) as usize;
        let mut copy = [0u64; WINDOW];
        for (dst, src) in copy.iter_mut().zip(self.ring.iter()).take(filled) {
            *dst = src.load(Relaxed);
        }
        let Some(window) = copy.get_mut(..filled) else {
            return;
        };
        if window.is_empty() {
            return;
        }
        let k = ((filled - 1) as f64 * self.quantile).round() as usize;
        let k = k.min(filled - 1);
        let (_, nth, _) = window.select_nth_unstable(k);
        self.cached.store(*nth, Relaxed);
    }

    /// The percentile, once enough answers were seen.
    pub(crate) fn get(&self) -> Option<Duration> {
        (self.recorded.load(Relaxed) >= self.min_samples)
            .then(|| Duration::from_nanos(self.cached.load(Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_of_a_window_is_one_of_its_samples() {
        let t = Tracker::new(0.9, 10);
        for ms in 1..=9 {
            t.record(Duration::from_millis(ms));
        }
        assert_eq!(t.get(), None, "fewer than the minimum");
        t.record(Duration::from_millis(10));
        assert_eq!(t.get(), Some(Duration::from_millis(9)));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let t = Tracker::new(0.5, 10);
        for _ in 0..WINDOW {
            t.record(Duration::from_millis(100));
        }
        assert_eq!(t.get(), Some(Duration::from_millis(100)));
        for _ in 0..WINDOW {
            t.record(Duration::from_millis(10));
        }
        assert_eq!(t.get(), Some(Duration::from_millis(10)));
    }
}
