//! The shared gate: the server's "stop" and "slow down", seen by every clone.
//!
//! A closed gate is one instant (nanoseconds since the limiter's base) in an atomic: callers
//! before it wait, callers after it pass. Server pacing (quota left until a reset) is an even
//! spacing kept the same way. So that the hot path pays one load, `watch` holds the latest
//! instant any of them applies until; zero means "nothing to look at".
//!
//! When the gate reopens, one request goes first as a probe and the others wait for its
//! answer (or the probe timeout): a server counting in fixed windows may not have reset yet,
//! and the answer's headers say how much of the new window there is to pace. So a reopening
//! costs at most one 429, never one per waiting clone. Pacing that reaches the server's
//! reset keeps its last spacing (for as long as the probe timeout) until a fresh answer
//! arrives, for the same reason.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::clock::Tick;
use crate::time::nanos;

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

    /// Space requests by `interval` until the server's `reset`, and keep that spacing for up
    /// to `linger` beyond it, until a fresh answer replaces it: a window that resets must not
    /// see every paced caller go at once before anyone has heard how much the new one holds.
    pub(crate) fn pace(
        &self,
        pacer: &Pacer,
        now: Tick,
        interval: Duration,
        reset: Tick,
        linger: Duration,
    ) {
        if reset <= now {
            return;
        }
        let until = reset.after(linger);
        pacer.set(now, interval, reset, until);
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

/// Even spacing: `interval` per unit, the next free slot in `tat`, until `until`.
///
/// Checking and booking are separate (booking happens only once every other limit has let
/// the request through), so two callers may pass in the same slot; the spacing of those after
/// them absorbs it. Server pacing is advisory: the server's own counter stays the authority.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    interval: AtomicU64,
    /// The server's reset: the first caller after it goes at once.
    reset: AtomicU64,
    until: AtomicU64,
    tat: AtomicU64,
}

impl Pacer {
    /// Space the quota left over the time left: the next slot is one interval after the
    /// answer that reported it (the request that drew it already went). The newest answer
    /// supersedes what earlier ones booked.
    fn set(&self, now: Tick, interval: Duration, reset: Tick, until: Tick) {
        let interval = nanos(interval);
        self.interval.store(interval, Relaxed);
        self.reset.store(reset.nanos(), Relaxed);
        self.until.store(until.nanos(), Relaxed);
        self.tat
            .store(now.nanos().saturating_add(interval), Relaxed);
    }

    fn next_slot(&self, now: Tick) -> Option<Tick> {
        let until = self.until.load(Relaxed);
        if now.nanos() >= until {
            return None;
        }
        let reset = self.reset.load(Relaxed);
        if reset != 0 && now.nanos() >= reset {
            // The window reset: what was booked against the old one holds nobody back; the
            // old spacing goes on from here until a fresh answer.
            if self
                .reset
                .compare_exchange(reset, 0, Relaxed, Relaxed)
                .is_ok()
            {
                self.tat.fetch_min(now.nanos(), Relaxed);
            }
            return None;
        }
        let mut tat = self.tat.load(Relaxed).min(until);
        if reset != 0 {
            tat = tat.min(reset);
        }
        (tat > now.nanos()).then_some(Tick(tat))
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
    fn paces_until_reset_then_lingers() {
        let gate = Gate::default();
        let (interval, linger) = (Duration::from_millis(10), Duration::from_millis(40));
        gate.pace(&gate.requests, Tick(0), interval, Tick(25 * MS), linger);
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
        // The slot would be at 30 ms, but the first after the reset goes at once...
        assert_eq!(
            gate.verdict(Tick(21 * MS), 1, &mut r),
            Verdict::Paced(Tick(25 * MS))
        );
        assert_eq!(gate.verdict(Tick(25 * MS), 1, &mut r), Verdict::Open);
        gate.commit(Tick(25 * MS), 1);
        // ...and the old spacing holds until a fresh answer, or the linger runs out.
        assert_eq!(
            gate.verdict(Tick(26 * MS), 1, &mut r),
            Verdict::Paced(Tick(35 * MS))
        );
        assert_eq!(gate.verdict(Tick(65 * MS), 1, &mut r), Verdict::Open);
        assert!(gate.is_clear());
        assert!(!r);
    }
}
