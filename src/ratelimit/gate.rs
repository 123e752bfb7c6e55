//! The shared gate: the server's "stop" and "slow down", seen by every clone.
//!
//! A closed gate is one instant (nanoseconds since the limiter's base) in an atomic: callers
//! before it wait, callers after it pass. Server pacing (quota left until a reset) is an even
//! spacing kept the same way. So that the hot path pays one load, `watch` holds the latest
//! instant any of them applies until; zero means "nothing to look at".
//!
//! When the gate reopens, or pacing runs to the server's reset, one request goes first as a
//! probe and the others wait for its answer (or the probe timeout): a server counting in
//! fixed windows may not have reset yet, and the answer's headers say how much of the new
//! window there is to pace. So a reset costs at most one 429, never one per waiting clone.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::clock::{Tick, duration_nanos};

#[derive(Debug, Default)]
pub(crate) struct Gate {
    watch: AtomicU64,
    closed_until: AtomicU64,
    /// While a probe is out: until when the others wait for its answer (0: no probe).
    probe_until: AtomicU64,
    /// When the probe went; only the answer to a request sent then or later ends it.
    probe_from: AtomicU64,
    pub(crate) requests: Pacer,
    pub(crate) cost: Pacer,
}

/// What the gate says to a caller at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Open,
    /// Closed until then.
    Closed(Tick),
    /// Paced: the next slot is then.
    Paced(Tick),
}

impl Gate {
    /// The hot-path test: nothing to consult?
    #[inline]
    pub(crate) fn is_clear(&self) -> bool {
        self.watch.load(Relaxed) == 0
    }

    /// Close the gate until `until` (never earlier than an existing closing). Returns `true` if
    /// this moved the reopening later.
    pub(crate) fn close_until(&self, until: Tick) -> bool {
        let until = until.nanos().max(1);
        let prev = self.closed_until.fetch_max(until, Relaxed);
        self.watch.fetch_max(until, Relaxed);
        until > prev
    }

    /// The reopening instant, if closed at `now`.
    pub(crate) fn closed_until(&self, now: Tick) -> Option<Tick> {
        let c = self.closed_until.load(Relaxed);
        (c > now.nanos()).then_some(Tick(c))
    }

    pub(crate) fn pace(&self, pacer: &Pacer, now: Tick, interval: Duration, until: Tick) {
        if until <= now {
            return;
        }
        pacer.set(now, interval, until);
        self.watch.fetch_max(until.nanos(), Relaxed);
    }

    /// The slow-path look at everything the server said. `reopened` is set when this caller
    /// is the one that found the gate newly open: it is to go as the probe.
    pub(crate) fn verdict(&self, now: Tick, cost: u32, reopened: &mut bool) -> Verdict {
        let watch = self.watch.load(Relaxed);
        if watch == 0 {
            return Verdict::Open;
        }
        let closed = self.closed_until.load(Relaxed);
        if closed != 0 {
            if now.nanos() < closed {
                return Verdict::Closed(Tick(closed));
            }
            // A concurrent closing moves it later and makes this fail: it stays closed.
            *reopened = self
                .closed_until
                .compare_exchange(closed, 0, Relaxed, Relaxed)
                .is_ok();
        }
        if !*reopened {
            // Pacing ran to the server's reset: the new window is unknown, so go as a probe
            // just as after a closing, rather than let every paced caller go at once.
            let expired = |p: &Pacer| p.expire(now);
            *reopened = expired(&self.requests) | expired(&self.cost);
        }
        if !*reopened {
            let probe = self.probe_until.load(Relaxed);
            if probe != 0 {
                if now.nanos() < probe {
                    return Verdict::Closed(Tick(probe));
                }
                let _ = self
                    .probe_until
                    .compare_exchange(probe, 0, Relaxed, Relaxed);
            }
        }
        if now.nanos() >= watch {
            let _ = self.watch.compare_exchange(watch, 0, Relaxed, Relaxed);
            return Verdict::Open;
        }
        let slot = match (self.requests.next_slot(now), self.cost.next_slot(now)) {
            (Some(a), Some(b)) if cost > 0 => a.max(b),
            (Some(a), _) => a,
            (None, Some(b)) if cost > 0 => b,
            _ => return Verdict::Open,
        };
        Verdict::Paced(slot)
    }

    /// The caller that reopened the gate is going: hold the others until its answer, at most
    /// until `until`.
    pub(crate) fn start_probe(&self, now: Tick, until: Tick) {
        if until <= now {
            return;
        }
        self.probe_from.store(now.nanos(), Relaxed);
        self.probe_until.store(until.nanos(), Relaxed);
        self.watch.fetch_max(until.nanos(), Relaxed);
    }

    /// An answer arrived to a request sent at `sent_at`. Returns `true` if it ended a probe.
    pub(crate) fn answered(&self, sent_at: Tick) -> bool {
        let probe = self.probe_until.load(Relaxed);
        probe != 0
            && sent_at.nanos() >= self.probe_from.load(Relaxed)
            && self
                .probe_until
                .compare_exchange(probe, 0, Relaxed, Relaxed)
                .is_ok()
    }

    /// Book the slot a passing request used.
    pub(crate) fn commit(&self, now: Tick, cost: u32) {
        if self.watch.load(Relaxed) == 0 {
            return;
        }
        self.requests.commit(now, 1);
        if cost > 0 {
            self.cost.commit(now, cost);
        }
    }
}

/// Even spacing until an instant: `interval` per unit, the next free slot in `tat`.
///
/// Checking and booking are separate (booking happens only once every other limit has let
/// the request through), so two callers may pass in the same slot; the spacing of those after
/// them absorbs it. Server pacing is advisory: the server's own counter stays the authority.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    interval: AtomicU64,
    until: AtomicU64,
    tat: AtomicU64,
}

impl Pacer {
    /// Space the quota left over the time left: the next slot is one interval after the
    /// answer that reported it, since the request that drew that answer already went.
    fn set(&self, now: Tick, interval: Duration, until: Tick) {
        let interval = duration_nanos(interval);
        self.interval.store(interval, Relaxed);
        self.until.store(until.nanos(), Relaxed);
        self.tat
            .fetch_max(now.nanos().saturating_add(interval), Relaxed);
    }

    fn next_slot(&self, now: Tick) -> Option<Tick> {
        let until = self.until.load(Relaxed);
        if now.nanos() >= until {
            return None;
        }
        let tat = self.tat.load(Relaxed);
        (tat > now.nanos()).then_some(Tick(tat.min(until)))
    }

    /// If pacing has run out by `now`, forget it; `true` for the one caller that did.
    fn expire(&self, now: Tick) -> bool {
        let until = self.until.load(Relaxed);
        until != 0
            && until <= now.nanos()
            && self
                .until
                .compare_exchange(until, 0, Relaxed, Relaxed)
                .is_ok()
    }

    fn commit(&self, now: Tick, units: u32) {
        if now.nanos() >= self.until.load(Relaxed) {
            return;
        }
        let step = self.interval.load(Relaxed).saturating_mul(u64::from(units));
        let _ = self.tat.fetch_update(Relaxed, Relaxed, |tat| {
            Some(tat.max(now.nanos()).saturating_add(step))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn closes_reopens_and_clears() {
        let gate = Gate::default();
        assert!(gate.is_clear());
        assert!(gate.close_until(Tick(30 * MS)));
        assert!(!gate.close_until(Tick(10 * MS)), "never moves earlier");
        let mut reopened = false;
        assert_eq!(
            gate.verdict(Tick(0), 1, &mut reopened),
            Verdict::Closed(Tick(30 * MS))
        );
        assert_eq!(gate.verdict(Tick(30 * MS), 1, &mut reopened), Verdict::Open);
        assert!(reopened);
        assert!(gate.is_clear());
    }

    #[test]
    fn paces_until_reset() {
        let gate = Gate::default();
        let interval = Duration::from_millis(10);
        gate.pace(&gate.requests, Tick(0), interval, Tick(25 * MS));
        let mut r = false;
        assert_eq!(
            gate.verdict(Tick(0), 1, &mut r),
            Verdict::Paced(Tick(10 * MS))
        );
        assert_eq!(gate.verdict(Tick(10 * MS), 1, &mut r), Verdict::Open);
        gate.commit(Tick(10 * MS), 1);
        assert_eq!(
            gate.verdict(Tick(11 * MS), 1, &mut r),
            Verdict::Paced(Tick(20 * MS))
        );
        gate.commit(Tick(20 * MS), 1);
        // The slot would be at 30 ms, but pacing ends at the reset...
        assert_eq!(
            gate.verdict(Tick(21 * MS), 1, &mut r),
            Verdict::Paced(Tick(25 * MS))
        );
        assert!(!r);
        // ...where the first caller goes as the probe for the new window.
        assert_eq!(gate.verdict(Tick(25 * MS), 1, &mut r), Verdict::Open);
        assert!(r);
    }
}
