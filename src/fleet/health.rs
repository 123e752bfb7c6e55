//! Whether a shared store is answering, and when to try it again: riprap's own backoff
//! between attempts while it is not.
//!
//! Every fleet layer asks [`Health::may_try`] before a round trip and reports the outcome.
//! While the store is degraded, one caller at a time is let through per backoff delay (the
//! others run on local state at once), so an unreachable store costs a timeout per delay,
//! not one per request.

use crate::time::nanos;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::events::{FleetEvent, Store, emit};
use crate::backoff::{Backoff, BackoffPolicy, MakeBackoff, Schedule};
use crate::events::SharedListener;

pub(crate) struct Health {
    store: Store,
    base: Instant,
    degraded: AtomicBool,
    /// While degraded: nanoseconds since `base` before which nobody tries.
    retry_at: AtomicU64,
    /// When the store was first found degraded, nanoseconds since `base`.
    since: AtomicU64,
    policy: BackoffPolicy,
    schedule: Mutex<Schedule>,
    /// Round trips made (answered or not).
    round_trips: AtomicU64,
    pub(crate) listener: Option<SharedListener>,
}

impl Health {
    pub(crate) fn new(
        store: Store,
        policy: BackoffPolicy,
        listener: Option<SharedListener>,
    ) -> Health {
        Health {
            store,
            base: Instant::now(),
            degraded: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
            since: AtomicU64::new(0),
            schedule: Mutex::new(policy.make_backoff()),
            policy,
            round_trips: AtomicU64::new(0),
            listener,
        }
    }

    fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.base))
    }

    /// Whether the store is taken to be answering.
    pub(crate) fn is_up(&self) -> bool {
        !self.degraded.load(Relaxed)
    }

    /// Whether a round trip would be let through now, without claiming it.
    pub(crate) fn due(&self) -> bool {
        !self.degraded.load(Relaxed) || self.now() >= self.retry_at.load(Relaxed)
    }

    /// Whether this caller may make a round trip now: always while the store answers; while
    /// it does not, one caller per backoff delay, which claims the attempt for `timeout`.
    pub(crate) fn may_try(&self, timeout: Duration) -> bool {
        if !self.degraded.load(Relaxed) {
            return true;
        }
        let now = self.now();
        let at = self.retry_at.load(Relaxed);
        now >= at
            && self
                .retry_at
                .compare_exchange(at, now.saturating_add(nanos(timeout)), Relaxed, Relaxed)
                .is_ok()
    }

    /// A round trip is about to be made.
    pub(crate) fn count(&self) {
        self.round_trips.fetch_add(1, Relaxed);
    }

    pub(crate) fn round_trips(&self) -> u64 {
        self.round_trips.load(Relaxed)
    }

    /// A round trip answered.
    pub(crate) fn succeeded(&self) {
        if self.degraded.load(Relaxed) && self.degraded.swap(false, Relaxed) {
            self.lock().reset();
            let after = Duration::from_nanos(self.now().saturating_sub(self.since.load(Relaxed)));
            self.emit(FleetEvent::Recovered {
                store: self.store,
                after,
            });
        }
    }

    /// A round trip failed or timed out: degrade, and schedule the next attempt.
    pub(crate) fn failed(&self) {
        let delay = {
            let mut s = self.lock();
            s.next_delay().unwrap_or_else(|| self.policy.max_delay())
        };
        let now = self.now();
        self.retry_at
            .store(now.saturating_add(nanos(delay)), Relaxed);
        if !self.degraded.swap(true, Relaxed) {
            self.since.store(now, Relaxed);
            self.emit(FleetEvent::Degraded {
                store: self.store,
                retry_in: delay,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        // A schedule is valid whatever a panicking holder left in it.
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: FleetEvent) {
        emit(self.listener.as_ref(), event);
    }
}
