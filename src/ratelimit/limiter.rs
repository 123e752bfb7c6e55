//! The shared limiter: local quotas, the server's gate and the adaptive rate, behind one `Arc`.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{self, Either};
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter as Gcra};
use tracing::Instrument;

use super::adaptive::{Adaptive, Change};
use super::clock::{Tick, TokioClock};
use super::config::{QuotaConfig, RateLimitConfig};
use super::gate::{Gate, Verdict};
use super::shared::{SharedGate, SharedQuota, Take};
use super::{LimitedBy, RateLimitError, RateLimitEvent};
use crate::backoff::SplitMix64;
use crate::classify::Class;
use crate::classify::headers::{MAX_SERVER_DELAY, RateLimitSignal};
use crate::events;
use crate::time::nanos;

type Direct = Gcra<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Tick>>;

/// A rate limiter shared by every clone: local quotas (requests and weighted cost per window,
/// on governor's GCRA), a gate the server's throttle signals close for every clone, and an
/// optional adaptive rate.
///
/// Use it directly (`acquire`, send, `observe`) or through
/// [`RateLimitLayer`](super::RateLimitLayer), which does both for every request.
///
/// ```
/// use std::time::Duration;
/// use riprap::classify::Class;
/// use riprap::ratelimit::{RateLimitConfig, RateLimiter};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = RateLimiter::new(RateLimitConfig::builder().requests(2, Duration::from_secs(1)).build()?);
/// let worker = limiter.clone(); // shares the quota and the gate
///
/// let admitted = worker.acquire(1).await?;
/// // ... send the request; the server answers 429 with `Retry-After: 30` ...
/// worker.observe(admitted, &Class::Throttled { retry_after: Some(Duration::from_secs(30)) }, None);
///
/// assert_eq!(limiter.reopens_in(), Some(Duration::from_secs(30)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    clock: TokioClock,
    requests: Option<Direct>,
    cost: Option<(Direct, u32)>,
    gate: Gate,
    adaptive: Option<Adaptive>,
    config: RateLimitConfig,
    line: tokio::sync::Mutex<()>,
    /// Wakes the callers parked on the gate when a probe's answer reopens it.
    probe_answered: tokio::sync::Notify,
    seed: u64,
    waiters: AtomicU64,
    /// A quota shared with other processes, consulted after the local ones.
    shared_quota: Option<Arc<dyn SharedQuota>>,
    /// A gate shared with other processes: their pauses close this gate, and this one's
    /// closings reach them.
    shared_gate: Option<Arc<dyn SharedGate>>,
}

/// Proof that a request was let through, and when: hand it back to
/// [`RateLimiter::observe`] with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    sent_at: Tick,
}

fn gcra(q: QuotaConfig, clock: TokioClock) -> Direct {
    // `build()` checked that `per / rate` is positive and the burst non-zero.
    let period = (q.per / q.rate).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(q.burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    Gcra::direct_with_clock(quota, clock)
}

enum Hold {
    Gate(Tick),
    Until(Tick, LimitedBy),
    /// The shared quota's refill is in flight.
    Shared,
}

fn limited(now: Tick, hold: Hold) -> RateLimitError {
    let (t, by) = match hold {
        Hold::Gate(t) => (t, LimitedBy::Server),
        Hold::Until(t, by) => (t, by),
        Hold::Shared => {
            return RateLimitError::Limited {
                by: LimitedBy::Quota,
                retry_after: None,
            };
        }
    };
    RateLimitError::Limited {
        by,
        retry_after: Some(now.until(t)),
    }
}

impl RateLimiter {
    /// A limiter enforcing `config`; clones share it.
    pub fn new(config: RateLimitConfig) -> Self {
        Self::build_shared(config, None, None)
    }

    /// A limiter that also consults a quota and a gate shared with other processes.
    pub(crate) fn build_shared(
        config: RateLimitConfig,
        shared_quota: Option<Arc<dyn SharedQuota>>,
        shared_gate: Option<Arc<dyn SharedGate>>,
    ) -> Self {
        super::error::register();
        let clock = TokioClock::new();
        let seed = config.seed.unwrap_or_else(|| SplitMix64::random_seed(0));
        RateLimiter {
            shared: Arc::new(Shared {
                clock,
                requests: config.requests.map(|q| gcra(q, clock)),
                cost: config.cost.map(|q| (gcra(q, clock), q.burst)),
                gate: Gate::default(),
                adaptive: config.adaptive.map(Adaptive::new),
                line: tokio::sync::Mutex::new(()),
                probe_answered: tokio::sync::Notify::new(),
                seed,
                waiters: AtomicU64::new(0),
                shared_quota,
                shared_gate,
                config,
            }),
        }
    }

    /// The configuration this limiter enforces.
    pub fn config(&self) -> &RateLimitConfig {
        &self.shared.config
    }

    /// Wait for capacity for a request costing `cost` units of the cost quota (each request
    /// also takes one unit of the request quota). A cost of zero passes the cost quota
    /// untouched.
    ///
    /// Fails with [`RateLimitError::Limited`] when capacity would come after the maximum wait,
    /// and [`RateLimitError::CostExceedsBurst`] when it never can. Dropping the future gives up
    /// its place and holds nothing.
    #[inline]
    pub fn acquire(&self, cost: u32) -> Acquire {
        let (now, lent) = self.shared.clock.read_and_lend();
        let first = self.shared.try_pass(now, cost);
        drop(lent);
        match first {
            Ok(()) => Acquire::done(Ok(Admission { sent_at: now })),
            Err(Err(e)) => Acquire::done(Err(self.shared.reject(e))),
            // A shared quota's round trip is waited for even without a wait: it is bounded by
            // the shared store's own timeout.
            Err(Ok(hold))
                if self.shared.config.max_wait.is_zero() && !matches!(hold, Hold::Shared) =>
            {
                Acquire::done(Err(self.shared.reject(limited(now, hold))))
            }
            Err(Ok(_)) => self.wait(now, cost),
        }
    }

    /// The slow path, out of line so the fast path stays small.
    #[cold]
    #[inline(never)]
    fn wait(&self, start: Tick, cost: u32) -> Acquire {
        // A span, so a trace viewer shows the wait as a bar under the request it held up.
        let span = tracing::debug_span!(target: "riprap::ratelimit", "riprap.ratelimit.wait", cost);
        let waiting = Arc::clone(&self.shared).wait(start, cost).instrument(span);
        Acquire {
            state: AcquireState::Waiting(Box::pin(waiting)),
        }
    }

    /// Take capacity now or fail with the time it would take; never waits.
    pub fn try_acquire(&self, cost: u32) -> Result<Admission, RateLimitError> {
        let (now, _lent) = self.shared.clock.read_and_lend();
        self.shared.try_now(now, cost)
    }

    /// Tell the limiter how an admitted request went: a throttle closes the gate for every
    /// clone (for its `retry_after`, never shortened, or the default pause), and
    /// cuts the adaptive rate; a success lets the adaptive rate recover. The `signal` read
    /// from the response's headers closes the gate when a quota is at zero and paces the
    /// quota left until its reset.
    #[inline]
    pub fn observe(&self, admitted: Admission, class: &Class, signal: Option<&RateLimitSignal>) {
        let s = &*self.shared;
        // A plain success without headers, with no adaptive rate and the gate clear, is the
        // common case: it needs no clock reading and nothing is done.
        if class.is_success() && signal.is_none() && s.adaptive.is_none() && s.gate.is_clear() {
            return;
        }
        self.observe_slow(admitted, class, signal);
    }

    #[inline(never)]
    fn observe_slow(&self, admitted: Admission, class: &Class, signal: Option<&RateLimitSignal>) {
        let s = &*self.shared;
        if class.is_success() && signal.is_none() {
            if let Some(a) = &s.adaptive {
                s.rate_changed(a.on_success());
            }
            s.end_probe(admitted, class);
            return;
        }
        let now = s.clock.now();
        match class {
            Class::Throttled { retry_after } => {
                let pause = retry_after
                    .unwrap_or(s.config.default_pause)
                    .min(MAX_SERVER_DELAY);
                s.close_until(now, now.after(pause));
                if let Some(a) = &s.adaptive {
                    s.rate_changed(a.on_throttle(admitted.sent_at, now));
                }
            }
            Class::Success => {
                if let Some(a) = &s.adaptive {
                    s.rate_changed(a.on_success());
                }
            }
            // Failures, timeouts and refusals by other layers say nothing about the quota.
            _ => {}
        }
        if let Some(signal) = signal {
            s.apply_signal(now, signal);
        }
        // After the signal, so the callers it wakes see the pacing it brought.
        s.end_probe(admitted, class);
    }

    /// Close the gate for `pause` (at most [`MAX_SERVER_DELAY`]), as a server's throttle
    /// would.
    pub fn close_for(&self, pause: Duration) {
        let s = &*self.shared;
        let now = s.clock.now();
        s.close_until(now, now.after(pause.min(MAX_SERVER_DELAY)));
    }

    /// How long until the gate reopens, if it is closed.
    pub fn reopens_in(&self) -> Option<Duration> {
        let now = self.shared.clock.now();
        self.shared.gate.closed_until(now).map(|t| now.until(t))
    }

    /// The adaptive rate in requests per second, if adaptive rate is enabled.
    pub fn current_rate(&self) -> Option<f64> {
        self.shared.adaptive.as_ref().map(Adaptive::rate)
    }
}

impl Shared {
    /// Every limit at `now`, which the caller has lent to governor's checks: `Ok` lets the request through (booked), `Err(Ok(hold))` says what
    /// to wait for, `Err(Err(e))` that waiting cannot help.
    #[inline]
    fn try_pass(&self, now: Tick, cost: u32) -> Result<(), Result<Hold, RateLimitError>> {
        if let Some(g) = &self.shared_gate {
            // Another process's pause joins this gate, where the probe and the jitter apply.
            if let Some(until) = g.closed_until() {
                self.close_local(now, self.clock.tick(until));
            }
        }
        let watched = !self.gate.is_clear();
        let mut reopened = false;
        if watched {
            let verdict = self.gate.verdict(now, cost, &mut reopened);
            if reopened {
                self.emit(RateLimitEvent::GateReopened);
            }
            match verdict {
                Verdict::Open => {}
                Verdict::Closed(t) => return Err(Ok(Hold::Gate(t))),
                Verdict::Paced(t) => return Err(Ok(Hold::Until(t, LimitedBy::Server))),
            }
        }
        if let Some(a) = &self.adaptive {
            if let Some(t) = a.next_slot(now) {
                return Err(Ok(Hold::Until(t, LimitedBy::Adaptive)));
            }
        }
        if let Some((_, burst)) = &self.cost {
            if cost > *burst {
                return Err(Err(RateLimitError::CostExceedsBurst {
                    cost,
                    burst: *burst,
                }));
            }
        }
        // The request quota goes first: if the cost quota then refuses, the request cell is
        // lost (governor cannot refund), and a request cell is the cheaper of the two.
        if let Some(q) = &self.requests {
            if let Err(not_until) = q.check() {
                return Err(Ok(Hold::Until(
                    not_until.earliest_possible(),
                    LimitedBy::Quota,
                )));
            }
        }
        if let (Some((q, burst)), Some(n)) = (&self.cost, NonZeroU32::new(cost)) {
            match q.check_n(n) {
                Ok(Ok(())) => {}
                Ok(Err(not_until)) => {
                    return Err(Ok(Hold::Until(
                        not_until.earliest_possible(),
                        LimitedBy::Quota,
                    )));
                }
                Err(_) => {
                    return Err(Err(RateLimitError::CostExceedsBurst {
                        cost,
                        burst: *burst,
                    }));
                }
            }
        }
        if let Some(q) = &self.shared_quota {
            match q.try_take(cost) {
                Take::Taken => {}
                Take::Until(t) => {
                    return Err(Ok(Hold::Until(self.clock.tick(t), LimitedBy::Quota)));
                }
                Take::Pending => return Err(Ok(Hold::Shared)),
                Take::TooLarge { burst } => {
                    return Err(Err(RateLimitError::CostExceedsBurst { cost, burst }));
                }
            }
        }
        if let Some(a) = &self.adaptive {
            a.commit(now);
        }
        if watched {
            self.gate.commit(now, cost);
            if reopened {
                self.gate
                    .start_probe(now, now.after(self.config.probe_timeout));
            }
        }
        Ok(())
    }

    fn try_now(&self, now: Tick, cost: u32) -> Result<Admission, RateLimitError> {
        match self.try_pass(now, cost) {
            Ok(()) => Ok(Admission { sent_at: now }),
            Err(Ok(hold)) => Err(self.reject(limited(now, hold))),
            Err(Err(e)) => Err(self.reject(e)),
        }
    }

    /// The slow path: sleep until whatever held the request back, then look again.
    ///
    /// Callers waiting on a closed gate each sleep to its reopening plus their own jitter.
    /// Callers waiting on a quota or pacing queue in a FIFO line and only its head retries, so
    /// a heavy request is not starved by light ones slipping in, and a refused cost check
    /// wastes at most the head's request cell.
    async fn wait(self: Arc<Self>, start: Tick, cost: u32) -> Result<Admission, RateLimitError> {
        let deadline = start.after(self.config.max_wait);
        let mut line = None;
        let mut rng = None;
        let mut shared_waited = false;
        loop {
            // Registered before looking, so a probe answered in between is not missed.
            let mut answered = pin!(self.probe_answered.notified());
            answered.as_mut().enable();
            let (now, lent) = self.clock.read_and_lend();
            let passed = self.try_pass(now, cost);
            drop(lent);
            let mut gated = false;
            let (target, by) = match passed {
                Ok(()) => {
                    self.emit(RateLimitEvent::Waited {
                        waited: start.until(now),
                    });
                    return Ok(Admission { sent_at: now });
                }
                Err(Err(e)) => return Err(self.reject(e)),
                Err(Ok(Hold::Gate(reopen))) => {
                    // Do not hold the line while the server has everyone stopped.
                    line = None;
                    gated = true;
                    let rng = rng.get_or_insert_with(|| self.rng());
                    let jitter = rng.between(0, nanos(self.config.reopen_jitter));
                    let latest = reopen.max(deadline);
                    (
                        Tick(reopen.nanos().saturating_add(jitter)).min(latest),
                        LimitedBy::Server,
                    )
                }
                Err(Ok(Hold::Until(t, by))) => (t, by),
                Err(Ok(Hold::Shared)) => {
                    // The shared quota's answer is on its way: wait for it, not a guess.
                    // The first wait is not bounded by the deadline (the store's own timeout
                    // bounds it), so a caller that may not wait still gets the answer.
                    if now >= deadline && shared_waited {
                        return Err(self.reject(RateLimitError::Limited {
                            by: LimitedBy::Quota,
                            retry_after: None,
                        }));
                    }
                    shared_waited = true;
                    if let Some(changed) = self.shared_quota.as_ref().map(|q| q.changed()) {
                        changed.await;
                    }
                    continue;
                }
            };
            if target > deadline {
                return Err(self.reject(RateLimitError::Limited {
                    by,
                    retry_after: Some(now.until(target)),
                }));
            }
            if !gated && line.is_none() {
                let lock = self.line.lock();
                match tokio::time::timeout_at(self.clock.instant(deadline), lock).await {
                    Ok(guard) => line = Some(guard),
                    Err(_) => {
                        return Err(self.reject(RateLimitError::Limited {
                            by,
                            retry_after: None,
                        }));
                    }
                }
                // Whoever held the line may have changed everything: look again.
                continue;
            }
            let sleep = pin!(tokio::time::sleep_until(self.clock.instant(target)));
            if !gated {
                sleep.await;
                continue;
            }
            if let Either::Right(_) = future::select(sleep, answered).await {
                // The probe came back: resume, each after its own jitter.
                let rng = rng.get_or_insert_with(|| self.rng());
                let jitter = rng.between(0, nanos(self.config.reopen_jitter));
                let at = self.clock.now().nanos().saturating_add(jitter);
                tokio::time::sleep_until(self.clock.instant(Tick(at.min(deadline.nanos())))).await;
            }
        }
    }

    fn rng(&self) -> SplitMix64 {
        let n = self.waiters.fetch_add(1, Relaxed);
        SplitMix64::new(SplitMix64::mix(self.seed, n))
    }

    /// A probe's answer that is not a throttle reopens the gate for the callers parked on it.
    fn end_probe(&self, admitted: Admission, class: &Class) {
        if !class.is_throttled() && !self.gate.is_clear() && self.gate.answered(admitted.sent_at) {
            self.probe_answered.notify_waiters();
        }
    }

    fn reject(&self, e: RateLimitError) -> RateLimitError {
        let by = match e {
            RateLimitError::Limited { by, .. } => Some(by),
            RateLimitError::CostExceedsBurst { .. } => None,
        };
        self.emit(RateLimitEvent::Rejected { by });
        e
    }

    /// A server signal seen here: close this gate, and the shared one.
    fn close_until(&self, now: Tick, until: Tick) {
        self.close_local(now, until);
        if let Some(g) = &self.shared_gate {
            if until > now {
                g.close_until(self.clock.instant(until));
            }
        }
    }

    fn close_local(&self, now: Tick, until: Tick) {
        if until > now && self.gate.close_until(until) {
            self.emit(RateLimitEvent::GateClosed {
                reopens_in: now.until(until),
            });
        }
    }

    fn apply_signal(&self, now: Tick, signal: &RateLimitSignal) {
        let ceiling = MAX_SERVER_DELAY;
        // The same pause the HTTP classifier puts in a throttle: `Retry-After`, or else the
        // latest reset of a quota at zero.
        if let Some(d) = signal.pause() {
            self.close_until(now, now.after(d.min(ceiling)));
        }
        let quotas = [
            (signal.requests, &self.gate.requests),
            (signal.tokens, &self.gate.cost),
        ];
        for (quota, pacer) in quotas {
            let Some(q) = quota else { continue };
            let (Some(remaining), Some(reset)) = (q.remaining, q.reset_after) else {
                continue;
            };
            let reset = reset.min(ceiling);
            if reset.is_zero() {
                continue;
            }
            if remaining > 0 {
                // One interval more than slots, so the last lands before the reset with room
                // for the answers' latency, not on it.
                let slots = u32::try_from(remaining.saturating_add(1)).unwrap_or(u32::MAX);
                let interval = reset / slots;
                let linger = self.config.probe_timeout;
                self.gate
                    .pace(pacer, now, interval, now.after(reset), linger);
                self.emit(RateLimitEvent::Pacing {
                    interval,
                    lasts: reset,
                });
            }
        }
    }

    fn rate_changed(&self, change: Change) {
        match change {
            Change::None => {}
            Change::Decreased(rate) => self.emit(RateLimitEvent::RateDecreased { rate }),
            Change::Recovered(rate) => self.emit(RateLimitEvent::RateRecovered { rate }),
        }
    }

    fn emit(&self, event: RateLimitEvent) {
        event.trace();
        events::deliver(self.config.listener.0.as_ref(), &event);
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("config", &self.shared.config)
            .field("reopens_in", &self.reopens_in())
            .field("current_rate", &self.current_rate())
            .finish_non_exhaustive()
    }
}

type WaitFuture = Pin<Box<dyn Future<Output = Result<Admission, RateLimitError>> + Send>>;

/// The future of [`RateLimiter::acquire`]: ready at once when capacity is there, otherwise
/// waiting (allocated only then).
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    state: AcquireState,
}

enum AcquireState {
    Done(Option<Result<Admission, RateLimitError>>),
    Waiting(WaitFuture),
}

impl Acquire {
    fn done(r: Result<Admission, RateLimitError>) -> Self {
        Acquire {
            state: AcquireState::Done(Some(r)),
        }
    }

    /// The answer, if it was known at once (admitted or refused without waiting).
    #[inline]
    pub(crate) fn take_ready(&mut self) -> Option<Result<Admission, RateLimitError>> {
        match &mut self.state {
            AcquireState::Done(r) => r.take(),
            AcquireState::Waiting(_) => None,
        }
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = matches!(self.state, AcquireState::Waiting(_));
        f.debug_struct("Acquire")
            .field("waiting", &waiting)
            .finish()
    }
}

impl Future for Acquire {
    type Output = Result<Admission, RateLimitError>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            AcquireState::Done(r) => match r.take() {
                Some(r) => Poll::Ready(r),
                None => panic!("`Acquire` polled after completion"),
            },
            AcquireState::Waiting(f) => f.as_mut().poll(cx),
        }
    }
}
