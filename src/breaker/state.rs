//! The state machine: one packed atomic word, lock-free admission, transitions. The public
//! handle on it is in `handle.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::Padded;
use super::config::{Counted, Counting, Settings};
use super::error::Rejected;
use super::events::{BreakerEvent, BreakerMetrics, BreakerState};
use super::policy::{Call, TripPolicy};
use crate::backoff::Backoff;
use crate::classify::Class;
use crate::events;
use crate::time::nanos;

/// The mode in the low bits of the state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
    Isolated = 3,
    ForcedClosed = 4,
    Disabled = 5,
}

impl Mode {
    fn public(self) -> BreakerState {
        match self {
            Mode::Closed => BreakerState::Closed,
            Mode::Open => BreakerState::Open,
            Mode::HalfOpen => BreakerState::HalfOpen,
            Mode::Isolated => BreakerState::Isolated,
            Mode::ForcedClosed => BreakerState::ForcedClosed,
            Mode::Disabled => BreakerState::Disabled,
        }
    }
}

/// Everything that changes on the request path, in one word so that admission is one load
/// and a half-open permit is one compare-and-swap:
///
/// `generation:29 | probe successes:16 | probes in flight:16 | mode:3`
///
/// Every transition bumps the generation, so an outcome from a call admitted before the
/// transition can tell it is stale. (It wraps after 2^29 transitions; a call would have to
/// stay in flight across all of them to be confused.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

const MODE_MASK: u64 = 0b111;
const INFLIGHT_SHIFT: u32 = 3;
const SUCCESS_SHIFT: u32 = 19;
const GEN_SHIFT: u32 = 35;
const F16: u64 = 0xFFFF;
const GEN_MASK: u64 = (1 << 29) - 1;

impl Word {
    fn new(mode: Mode, generation: u32) -> Word {
        Word(((u64::from(generation) & GEN_MASK) << GEN_SHIFT) | mode as u64)
    }

    fn mode(self) -> Mode {
        match self.0 & MODE_MASK {
            0 => Mode::Closed,
            1 => Mode::Open,
            2 => Mode::HalfOpen,
            3 => Mode::Isolated,
            4 => Mode::ForcedClosed,
            _ => Mode::Disabled,
        }
    }

    fn inflight(self) -> u16 {
        ((self.0 >> INFLIGHT_SHIFT) & F16) as u16
    }

    fn successes(self) -> u16 {
        ((self.0 >> SUCCESS_SHIFT) & F16) as u16
    }

    fn generation(self) -> u32 {
        (self.0 >> GEN_SHIFT) as u32
    }

    fn next_generation(self) -> u32 {
        ((u64::from(self.generation()) + 1) & GEN_MASK) as u32
    }

    /// The next generation in `mode`. Probe permits still out carry over: a probe admitted
    /// before a transition is still a call in flight to the dependency, so it keeps its slot
    /// until it finishes or is dropped, and a new half-open phase cannot over-grant.
    fn enter(self, mode: Mode, inflight: u16) -> Word {
        Word::new(mode, self.next_generation()).with_probes(inflight, 0)
    }

    fn with_probes(self, inflight: u16, successes: u16) -> Word {
        let cleared = self.0 & !((F16 << INFLIGHT_SHIFT) | (F16 << SUCCESS_SHIFT));
        Word(
            cleared
                | (u64::from(inflight) << INFLIGHT_SHIFT)
                | (u64::from(successes) << SUCCESS_SHIFT),
        )
    }
}

/// What a call was admitted as: enough to report its outcome, or to hand its permit back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    generation: u32,
    mode: Mode,
    start: u64,
}

impl Admission {
    pub(crate) fn is_probe(&self) -> bool {
        self.mode == Mode::HalfOpen
    }
}

/// The open-duration schedule; touched only when the breaker opens, so a lock is fine.
struct Opens {
    schedule: Box<dyn Backoff + Send>,
    last: Duration,
}

impl Opens {
    fn next(&mut self) -> Duration {
        // A schedule that runs out keeps its last delay: a breaker must always reopen.
        if let Some(d) = self.schedule.next_delay() {
            self.last = d;
        }
        self.last
    }
}

pub(crate) struct Shared<P> {
    state: Padded<AtomicU64>,
    /// Nanoseconds since `origin` at which an open breaker lets the next probe through.
    /// Written under `opens` before the open state is published (release), so a caller that
    /// sees the open state (acquire) sees its deadline.
    open_until: AtomicU64,
    rejected: Padded<AtomicU64>,
    origin: Instant,
    clock: bool,
    pub(crate) policy: P,
    pub(crate) settings: Settings,
    opens: Mutex<Opens>,
}

impl<P> Shared<P> {
    /// A closed breaker with an empty window.
    pub(crate) fn new(policy: P, settings: Settings) -> Self
    where
        P: TripPolicy,
    {
        let clock = policy.needs_clock();
        let opens = Opens {
            schedule: settings.open.make(),
            last: settings.open.first_guess(),
        };
        Shared {
            state: Padded(AtomicU64::new(Word::new(Mode::Closed, 0).0)),
            open_until: AtomicU64::new(0),
            rejected: Padded(AtomicU64::new(0)),
            origin: Instant::now(),
            clock,
            policy,
            settings,
            opens: Mutex::new(opens),
        }
    }

    /// The state, read without ordering against anything: for `Debug`, which has no
    /// `TripPolicy` bound.
    pub(crate) fn peek(&self) -> BreakerState {
        Word(self.state.0.load(Ordering::Relaxed)).mode().public()
    }
}

impl<P: TripPolicy> Shared<P> {
    fn now(&self) -> u64 {
        nanos(Instant::now().saturating_duration_since(self.origin))
    }

    fn load(&self) -> Word {
        Word(self.state.0.load(Ordering::Acquire))
    }

    fn cas(&self, cur: Word, next: Word) -> Result<(), Word> {
        self.state
            .0
            .compare_exchange(cur.0, next.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Word)
    }

    fn reject(&self, why: Rejected) -> Rejected {
        self.rejected.0.fetch_add(1, Ordering::Relaxed);
        self.emit(|name| BreakerEvent::Rejected {
            name,
            rejected: why,
        });
        why
    }

    /// Report an event to `tracing` and the listener. The name is cloned into the event only
    /// for a listener: `tracing` borrows it.
    #[inline]
    fn emit(&self, event: impl Fn(Option<Arc<str>>) -> BreakerEvent) {
        let name = self.settings.name.as_deref();
        match &self.settings.listener {
            Some(l) => {
                let event = event(self.settings.name.clone());
                event.trace(name);
                l.on_event(&events::Event::new(&event));
            }
            None => event(None).trace(name),
        }
    }

    fn lock_opens(&self) -> std::sync::MutexGuard<'_, Opens> {
        // The schedule holds no invariant a panic elsewhere could break.
        self.opens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admit a call, or say why not. Closed: one load. Open: one load and a clock read.
    pub(crate) fn admit(&self) -> Result<Admission, Rejected> {
        let mut cur = self.load();
        loop {
            match cur.mode() {
                Mode::Closed | Mode::ForcedClosed | Mode::Disabled => {
                    let start = if self.clock { self.now() } else { 0 };
                    return Ok(Admission {
                        generation: cur.generation(),
                        mode: cur.mode(),
                        start,
                    });
                }
                Mode::Open => {
                    let now = self.now();
                    let until = self.open_until.load(Ordering::Acquire);
                    if now < until {
                        let retry_in = Duration::from_nanos(until - now);
                        return Err(self.reject(Rejected::Open { retry_in }));
                    }
                    if cur.inflight() >= self.settings.probes {
                        // Probes from an earlier half-open phase are still out.
                        return Err(self.reject(Rejected::HalfOpen));
                    }
                    // This caller is the first probe of the new phase.
                    let next = cur.enter(Mode::HalfOpen, cur.inflight() + 1);
                    match self.cas(cur, next) {
                        Ok(()) => {
                            self.emit_transition(Mode::Open, next, None);
                            return Ok(Admission {
                                generation: next.generation(),
                                mode: Mode::HalfOpen,
                                start: now,
                            });
                        }
                        Err(actual) => cur = actual,
                    }
                }
                Mode::HalfOpen => {
                    if cur.inflight() >= self.settings.probes {
                        return Err(self.reject(Rejected::HalfOpen));
                    }
                    let next = cur.with_probes(cur.inflight() + 1, cur.successes());
                    match self.cas(cur, next) {
                        Ok(()) => {
                            let start = if self.clock { self.now() } else { 0 };
                            return Ok(Admission {
                                generation: cur.generation(),
                                mode: Mode::HalfOpen,
                                start,
                            });
                        }
                        Err(actual) => cur = actual,
                    }
                }
                Mode::Isolated => return Err(self.reject(Rejected::Isolated)),
            }
        }
    }

    /// Whether a call made now would be refused, without taking anything or counting a
    /// rejection: what `poll_ready` asks.
    pub(crate) fn would_reject(&self) -> Option<Rejected> {
        let cur = self.load();
        match cur.mode() {
            Mode::Open => {
                let now = self.now();
                let until = self.open_until.load(Ordering::Acquire);
                (now < until).then(|| Rejected::Open {
                    retry_in: Duration::from_nanos(until - now),
                })
            }
            Mode::Isolated => Some(Rejected::Isolated),
            _ => None,
        }
    }

    /// Count a refusal decided in `poll_ready`. Its `retry_in` was measured there, a moment
    /// ago, so it can only overstate the wait; reading the clock again would double the cost
    /// of a rejection.
    pub(crate) fn reject_now(&self, decided: Rejected) -> Rejected {
        self.reject(decided)
    }

    /// Report a finished call's classified outcome.
    pub(crate) fn complete(&self, adm: &Admission, class: &Class) {
        let counted = self.settings.counting.of(class);
        match adm.mode {
            Mode::HalfOpen => match counted {
                Counted::Ignored => self.release(adm),
                // Slowness is judged in half-open as it is while closed: a slow success is a
                // failed probe, or a dependency that slow calls tripped would close again on
                // slow successes and flap.
                Counted::Success if self.clock && self.slow_probe(adm) => self.probe_failed(adm),
                Counted::Success => self.probe_succeeded(adm),
                Counted::Failure => self.probe_failed(adm),
            },
            Mode::Closed | Mode::Disabled => {
                // Every call reaches the policy, counted or not, so a policy can be written
                // on the class itself; the built-in ones skip what is not counted.
                let cur = self.load();
                if cur.generation() != adm.generation || cur.mode() != adm.mode {
                    return; // admitted before a transition: not this window's business
                }
                let (elapsed, at) = if self.clock {
                    let now = self.now();
                    (
                        Duration::from_nanos(now.saturating_sub(adm.start)),
                        Duration::from_nanos(now),
                    )
                } else {
                    (Duration::ZERO, Duration::ZERO)
                };
                let call = Call::new(*class, elapsed, at).counted_as(counted);
                if self.policy.record(call) {
                    if adm.mode == Mode::Closed {
                        self.trip(adm.generation);
                    } else {
                        self.would_trip(adm.generation);
                    }
                }
            }
            Mode::ForcedClosed | Mode::Open | Mode::Isolated => {}
        }
    }

    fn slow_probe(&self, adm: &Admission) -> bool {
        let elapsed = Duration::from_nanos(self.now().saturating_sub(adm.start));
        self.policy.is_slow(elapsed)
    }

    /// Hand a probe's permit back without a verdict (its future was dropped, or the outcome
    /// does not count).
    pub(crate) fn release(&self, _adm: &Admission) {
        self.free_probe_slot();
    }

    fn free_probe_slot(&self) {
        let mut cur = self.load();
        loop {
            // Whatever happened since, the slot this probe held is free again.
            let next = cur.with_probes(cur.inflight().saturating_sub(1), cur.successes());
            match self.cas(cur, next) {
                Ok(()) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    fn probe_succeeded(&self, adm: &Admission) {
        let mut cur = self.load();
        loop {
            if cur.mode() != Mode::HalfOpen || cur.generation() != adm.generation {
                // A probe from an earlier phase: its verdict is stale, its slot is not.
                return self.release(adm);
            }
            let successes = cur.successes().saturating_add(1);
            let next = if successes >= self.settings.close_after {
                cur.enter(Mode::Closed, cur.inflight().saturating_sub(1))
            } else {
                cur.with_probes(cur.inflight().saturating_sub(1), successes)
            };
            match self.cas(cur, next) {
                Ok(()) => {
                    if next.mode() == Mode::Closed {
                        self.emit_transition(Mode::HalfOpen, next, None);
                    }
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn probe_failed(&self, adm: &Admission) {
        let mut opens = self.lock_opens();
        let cur = self.load();
        if cur.mode() != Mode::HalfOpen || cur.generation() != adm.generation {
            drop(opens);
            return self.release(adm);
        }
        let open_for = opens.next();
        self.open(cur, open_for, opens, 1);
    }

    /// Closed → open: the policy tripped.
    fn trip(&self, generation: u32) {
        let mut opens = self.lock_opens();
        let cur = self.load();
        if cur.mode() != Mode::Closed || cur.generation() != generation {
            return; // another caller tripped it first
        }
        self.policy.reset();
        // It closed since it last opened, so the open duration starts over.
        opens.schedule.reset();
        let open_for = opens.next();
        self.open(cur, open_for, opens, 0);
    }

    /// Publish the open state for `open_for`, holding the schedule lock so that transitions
    /// that write `open_until` are serialised.
    /// `finished` is 1 when the transition is a failed probe's, whose slot it frees.
    fn open(
        &self,
        mut cur: Word,
        open_for: Duration,
        opens: std::sync::MutexGuard<'_, Opens>,
        finished: u16,
    ) {
        let from = cur.mode();
        self.open_until.store(
            self.now().saturating_add(nanos(open_for)),
            Ordering::Release,
        );
        let next = loop {
            // Only probe permits change without the lock, and only while half-open.
            let next = cur.enter(Mode::Open, cur.inflight().saturating_sub(finished));
            match self.cas(cur, next) {
                Ok(()) => break next,
                Err(actual) if actual.mode() == from && actual.generation() == cur.generation() => {
                    cur = actual
                }
                Err(_) => {
                    // Another transition won; a failed probe still gives its slot back.
                    drop(opens);
                    if finished > 0 {
                        self.free_probe_slot();
                    }
                    return;
                }
            }
        };
        drop(opens);
        self.emit_transition(from, next, Some(open_for));
    }

    fn would_trip(&self, generation: u32) {
        let cur = self.load();
        if cur.mode() != Mode::Disabled || cur.generation() != generation {
            return;
        }
        self.policy.reset();
        self.emit(|name| BreakerEvent::WouldTrip { name });
    }

    /// An operator's command: enter `mode` now, whatever the state.
    pub(crate) fn command(&self, mode: Mode) {
        let mut opens = self.lock_opens();
        if matches!(mode, Mode::Closed | Mode::Disabled | Mode::ForcedClosed) {
            self.policy.reset();
        }
        if mode == Mode::Closed {
            opens.schedule.reset();
        }
        let mut cur = self.load();
        let next = loop {
            let next = cur.enter(mode, cur.inflight());
            match self.cas(cur, next) {
                Ok(()) => break next,
                Err(actual) => cur = actual,
            }
        };
        drop(opens);
        self.emit_transition(cur.mode(), next, None);
    }

    fn emit_transition(&self, from: Mode, next: Word, open_for: Option<Duration>) {
        let (from, to) = (from.public(), next.mode().public());
        let generation = next.generation();
        self.emit(|name| BreakerEvent::Transition {
            name,
            from,
            to,
            open_for,
            generation,
        });
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.load().mode().public()
    }

    pub(crate) fn metrics(&self) -> BreakerMetrics {
        let cur = self.load();
        let now = self.now();
        let stats = self.policy.stats(Duration::from_nanos(now));
        let retry_in = (cur.mode() == Mode::Open).then(|| {
            Duration::from_nanos(self.open_until.load(Ordering::Acquire).saturating_sub(now))
        });
        let half_open = cur.mode() == Mode::HalfOpen;
        BreakerMetrics {
            state: cur.mode().public(),
            failure_rate: stats.failure_rate,
            slow_rate: stats.slow_rate,
            calls_in_window: stats.calls,
            consecutive_failures: stats.consecutive_failures,
            rejected: self.rejected.0.load(Ordering::Relaxed),
            probes_in_flight: u32::from(cur.inflight()),
            probe_successes: if half_open {
                u32::from(cur.successes())
            } else {
                0
            },
            retry_in,
        }
    }
}

/// Something that keeps a breaker alive while a call is in flight.
pub(crate) trait Holder {
    type Policy: TripPolicy;
    fn shared(&self) -> &Shared<Self::Policy>;
}

/// An admitted call: reports its outcome once, or on drop hands a probe permit back.
pub(crate) struct Ticket<H: Holder> {
    pub(crate) holder: H,
    pub(crate) adm: Admission,
    live: bool,
}

impl<H: Holder> Ticket<H> {
    pub(crate) fn new(holder: H, adm: Admission) -> Self {
        Ticket {
            holder,
            adm,
            live: true,
        }
    }

    pub(crate) fn finish(mut self, class: &Class) {
        self.live = false;
        self.holder.shared().complete(&self.adm, class);
    }
}

impl<H: Holder> Drop for Ticket<H> {
    fn drop(&mut self) {
        if self.live && self.adm.is_probe() {
            self.holder.shared().release(&self.adm);
        }
    }
}

impl Counting {
    pub(crate) fn of(&self, class: &Class) -> Counted {
        match class {
            Class::Success => Counted::Success,
            Class::Transient | Class::TimedOut => Counted::Failure,
            Class::Throttled { .. } => self.throttled,
            Class::Permanent => self.permanent,
            // A refusal by another of the caller's own layers says nothing about the dependency.
            _ => Counted::Ignored,
        }
    }
}
