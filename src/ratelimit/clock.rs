//! governor's GCRA driven by tokio's clock.
//!
//! governor reads time through its own `Clock` trait and waits on real time; riprap gives it a
//! clock over [`tokio::time::Instant`] instead, so a paused runtime (`start_paused = true`)
//! freezes the quota along with everything else, and waits are `tokio::time::sleep_until`.

use std::cell::Cell;
use std::ops::Add;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;
use tokio::time::Instant;

use crate::time::nanos;

/// A point in time as nanoseconds since the limiter was created.
///
/// The same representation is stored in the gate's atomics, so a reading of this clock is
/// compared with them directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Tick(pub(crate) u64);

impl Tick {
    pub(crate) fn nanos(self) -> u64 {
        self.0
    }

    pub(crate) fn after(self, d: Duration) -> Tick {
        Tick(self.0.saturating_add(nanos(d)))
    }

    /// Time from `self` until `later` (zero if `later` is not later).
    pub(crate) fn until(self, later: Tick) -> Duration {
        Duration::from_nanos(later.0.saturating_sub(self.0))
    }
}

impl Add<Nanos> for Tick {
    type Output = Tick;

    fn add(self, other: Nanos) -> Tick {
        Tick(self.0.saturating_add(other.as_u64()))
    }
}

impl Reference for Tick {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_sub(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        Tick(self.0.saturating_sub(duration.as_u64()))
    }
}

/// governor's view of `tokio::time`: nanoseconds since `base`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokioClock {
    base: Instant,
}

thread_local! {
    /// A reading this thread has already taken, lent to governor's checks: the lending
    /// clock's base and the tick it read, so the checks skip both the read and the
    /// conversion. Clocks with the same base read the same ticks, so the base is the key.
    static READING: Cell<Option<(Instant, Tick)>> = const { Cell::new(None) };
}

/// Lends one clock reading to every governor check made while it lives on this thread.
///
/// Reading the clock is the most expensive part of a check; governor reads it inside
/// `check`, riprap has already read it for the gate, so the checks reuse that reading.
pub(crate) struct Lent(());

impl Drop for Lent {
    fn drop(&mut self) {
        READING.with(|r| r.set(None));
    }
}

impl TokioClock {
    /// Read the clock once and lend the reading to governor checks until the guard drops.
    #[inline]
    pub(crate) fn read_and_lend(&self) -> (Tick, Lent) {
        let now = self.tick(Instant::now());
        READING.with(|r| r.set(Some((self.base, now))));
        (now, Lent(()))
    }

    #[inline]
    pub(crate) fn tick(&self, at: Instant) -> Tick {
        Tick(nanos(at.saturating_duration_since(self.base)))
    }

    pub(crate) fn new() -> Self {
        TokioClock {
            base: Instant::now(),
        }
    }

    /// The tokio instant of a tick, for `sleep_until`.
    pub(crate) fn instant(&self, t: Tick) -> Instant {
        self.base + Duration::from_nanos(t.0)
    }
}

impl Clock for TokioClock {
    type Instant = Tick;

    #[inline]
    fn now(&self) -> Tick {
        match READING.with(Cell::get) {
            Some((base, lent)) if base == self.base => lent,
            _ => self.tick(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let clock = TokioClock::new();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(t0.until(clock.now()), Duration::from_secs(3));
        assert_eq!(clock.instant(clock.now()), Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn lends_one_reading() {
        let clock = TokioClock::new();
        let (t, lent) = clock.read_and_lend();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(clock.now(), t, "the lent reading, not a new one");
        drop(lent);
        assert_eq!(clock.now(), t.after(Duration::from_secs(1)));
    }

    #[test]
    fn saturates() {
        assert_eq!(
            Tick(u64::MAX - 1).after(Duration::from_secs(1)),
            Tick(u64::MAX)
        );
        assert_eq!(Tick(5).until(Tick(2)), Duration::ZERO);
        assert_eq!(Reference::saturating_sub(&Tick(5), Nanos::from(9)), Tick(0));
    }
}
