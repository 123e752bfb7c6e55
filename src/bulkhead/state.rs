//! The permit counter, the callers waiting on it, and the permits it hands out.
//!
//! One atomic word holds both counts: permits in flight (low 32 bits) and callers waiting
//! (high 32 bits). The hot path is a compare-and-swap on it: a caller takes a permit when
//! nobody waits and one is free, and gives it back when nobody waits. Only when callers wait
//! does anything take the queue lock, and then every change to the waiting count is made
//! under that lock, so a returned permit is always handed to a waiter (never lost), and a
//! caller never queues while a permit is free.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::PoisonError;
use std::sync::atomic::Ordering::{self, AcqRel, Relaxed, Release};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::adaptive::{LimitAlgorithm, Sample};
use super::error::Rejected;
use super::events::{BulkheadEvent, trace};
use super::queue::{Popped, Queue, Shed};
use crate::classify::Class;
use crate::events::SharedListener;
use crate::sync::{Arc, AtomicU64, AtomicWaker, Mutex, MutexGuard};
use crate::time::nanos;

/// The most permits a bulkhead may hand out at once, and the most callers that may wait.
pub const MAX_PERMITS: u32 = 1 << 30;

const ONE_WAITER: u64 = 1 << 32;

#[inline]
fn in_flight(state: u64) -> u32 {
    state as u32
}

#[inline]
fn waiting(state: u64) -> u32 {
    (state >> 32) as u32
}

// A waiter's status: what became of it.
const WAITING: u64 = 0;
const GRANTED: u64 = 1;
const DISPLACED: u64 = 2;
const SHED: u64 = 3;

/// One caller in the queue.
pub(crate) struct Waiter {
    status: AtomicU64,
    waker: AtomicWaker,
    class: usize,
    enqueued: Instant,
}

impl Waiter {
    /// Decide this waiter's fate (under the queue lock) and wake it.
    fn finish(&self, status: u64) {
        self.status.store(status, Release);
        self.waker.wake();
    }
}

/// What a caller that found no free permit got from the queue.
enum Enqueued {
    /// A permit came free after all.
    Admitted,
    /// It waits.
    Waiting(Arc<Waiter>),
}

/// The immutable settings of one bulkhead.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) max_queue: u32,
    pub(crate) queue_timeout: Option<Duration>,
    pub(crate) priorities: u8,
    pub(crate) max_bypass: u32,
    pub(crate) shed: Option<Shed>,
    pub(crate) name: Option<std::sync::Arc<str>>,
    pub(crate) listener: Option<SharedListener>,
}

/// Keeps the permit word on its own cache line (128 bytes covers adjacent-line
/// prefetching), away from the reference counts every call also touches.
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

pub(crate) struct Core {
    state: Padded<AtomicU64>,
    limit: AtomicU64,
    queue: Mutex<Queue<Arc<Waiter>>>,
    pub(crate) settings: Settings,
    adaptive: Option<std::sync::Mutex<Box<dyn LimitAlgorithm>>>,
    /// The instant permits' admission times count from (adaptive bulkheads only), so a
    /// permit carries one word for it rather than an `Option<Instant>`.
    epoch: Instant,
    rejected: std::sync::atomic::AtomicU64,
}

impl Core {
    pub(crate) fn new(
        limit: u32,
        settings: Settings,
        adaptive: Option<Box<dyn LimitAlgorithm>>,
    ) -> Self {
        Core {
            state: Padded(AtomicU64::new(0)),
            limit: AtomicU64::new(u64::from(limit.clamp(1, MAX_PERMITS))),
            queue: Mutex::new(Queue::new(
                settings.priorities,
                settings.max_bypass,
                settings.shed,
            )),
            settings,
            adaptive: adaptive.map(std::sync::Mutex::new),
            epoch: Instant::now(),
            rejected: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The core of an unlimited bulkhead's hand-taken permits: counted, never full.
    pub(crate) fn unlimited() -> Self {
        Core::new(
            MAX_PERMITS,
            Settings {
                max_queue: 0,
                queue_timeout: None,
                priorities: 1,
                max_bypass: 0,
                shed: None,
                name: None,
                listener: None,
            },
            None,
        )
    }

    fn lock(&self) -> MutexGuard<'_, Queue<Arc<Waiter>>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit.load(Relaxed) as u32
    }

    pub(crate) fn in_flight(&self) -> u32 {
        in_flight(self.state.load(Relaxed))
    }

    pub(crate) fn waiting(&self) -> u32 {
        waiting(self.state.load(Relaxed))
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }

    /// Now, as nanoseconds since the epoch plus one (never zero), for an adaptive bulkhead;
    /// zero otherwise, so the clock is read only when someone learns from latency.
    #[inline]
    fn admission_stamp(&self) -> u64 {
        if self.adaptive.is_none() {
            return 0;
        }
        let since = Instant::now().saturating_duration_since(self.epoch);
        nanos(since).min(u64::MAX - 1) + 1
    }

    pub(crate) fn waiting_per_class(&self) -> (Vec<usize>, bool) {
        let q = self.lock();
        (q.per_class().collect(), q.standing())
    }

    /// The class a priority waits in.
    pub(crate) fn class_of(&self, priority: u8) -> usize {
        usize::from(priority).min(usize::from(self.settings.priorities.max(1)) - 1)
    }

    /// Take a permit if one is free and nobody waits for it: the lock-free path.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        let limit = self.limit.load(Relaxed) as u32;
        let mut s = self.state.load(Relaxed);
        loop {
            if waiting(s) != 0 || in_flight(s) >= limit {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// The slow path of an acquire: take a permit freed meanwhile, or wait in `class`, or be
    /// refused because the queue is full.
    fn enqueue(&self, class: usize) -> Result<Enqueued, Rejected> {
        let mut q = self.lock();
        loop {
            let limit = self.limit.load(Ordering::Acquire) as u32;
            let s = self.state.load(Ordering::Acquire);
            if waiting(s) == 0 && in_flight(s) < limit {
                if self
                    .state
                    .compare_exchange(s, s + 1, AcqRel, Relaxed)
                    .is_ok()
                {
                    return Ok(Enqueued::Admitted);
                }
                continue;
            }
            if self.settings.max_queue == 0 {
                return Err(Rejected::Full);
            }
            let now = Instant::now();
            let waiter = || {
                Arc::new(Waiter {
                    status: AtomicU64::new(WAITING),
                    waker: AtomicWaker::new(),
                    class,
                    enqueued: now,
                })
            };
            if waiting(s) >= self.settings.max_queue {
                // Full: a more urgent caller takes the place of the youngest less urgent one.
                // The waiting count stays as it is, so the word needs no update.
                let Some((_, victim)) = q.displace_for(class) else {
                    return Err(Rejected::Full);
                };
                victim.finish(DISPLACED);
                let waiter = waiter();
                q.push(class, now, Arc::clone(&waiter));
                return Ok(Enqueued::Waiting(waiter));
            }
            // Queue only if no permit came back since the load: the swap fails otherwise,
            // and the loop looks again.
            if self
                .state
                .compare_exchange(s, s + ONE_WAITER, AcqRel, Relaxed)
                .is_err()
            {
                continue;
            }
            let waiter = waiter();
            q.push(class, now, Arc::clone(&waiter));
            return Ok(Enqueued::Waiting(waiter));
        }
    }

    /// Give a permit back: to the next waiter if any, else to the counter.
    #[inline]
    pub(crate) fn release(&self) {
        let mut s = self.state.load(Relaxed);
        loop {
            if waiting(s) != 0 {
                let mut q = self.lock();
                self.release_locked(&mut q);
                let flip = q.take_flip();
                drop(q);
                self.report_flip(flip);
                return;
            }
            match self.state.compare_exchange_weak(s, s - 1, Release, Relaxed) {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    fn release_locked(&self, q: &mut Queue<Arc<Waiter>>) {
        self.state.fetch_sub(1, AcqRel);
        self.admit_waiters(q);
    }

    /// Admit waiters while permits are free (under the queue lock). While anyone waits the
    /// word changes only under this lock: lock-free acquires refuse and lock-free releases
    /// come here.
    fn admit_waiters(&self, q: &mut Queue<Arc<Waiter>>) {
        loop {
            let limit = self.limit.load(Ordering::Acquire) as u32;
            let s = self.state.load(Ordering::Acquire);
            if waiting(s) == 0 || in_flight(s) >= limit {
                return;
            }
            match q.pop(Instant::now()) {
                Popped::Next(waiter) => {
                    // One more in flight, one fewer waiting: the permit passes to the waiter.
                    self.state.fetch_add(1u64.wrapping_sub(ONE_WAITER), AcqRel);
                    waiter.finish(GRANTED);
                }
                Popped::Shed(waiter) => {
                    self.state.fetch_sub(ONE_WAITER, AcqRel);
                    waiter.finish(SHED);
                }
                Popped::Empty => return,
            }
        }
    }

    /// A waiter gives up (its future was dropped, or its queue timeout passed). Returns what
    /// had become of it if its fate was decided first; a permit granted to it goes back.
    fn abandon(&self, waiter: &Arc<Waiter>, keep_grant: bool) -> Option<u64> {
        let mut q = self.lock();
        let status = waiter.status.load(Ordering::Acquire);
        let out = match status {
            WAITING => {
                if q.remove(waiter.class, |w| Arc::ptr_eq(w, waiter)) {
                    self.state.fetch_sub(ONE_WAITER, AcqRel);
                }
                None
            }
            GRANTED if !keep_grant => {
                self.release_locked(&mut q);
                None
            }
            _ => Some(status),
        };
        let flip = q.take_flip();
        drop(q);
        self.report_flip(flip);
        out
    }

    fn report_flip(&self, flip: Option<bool>) {
        match flip {
            Some(true) => self.emit(BulkheadEvent::SheddingStarted {
                name: self.settings.name.clone(),
            }),
            Some(false) => self.emit(BulkheadEvent::SheddingStopped {
                name: self.settings.name.clone(),
            }),
            None => {}
        }
    }

    /// Set the limit; a raised limit admits waiters at once.
    pub(crate) fn set_limit(&self, limit: u32) -> u32 {
        let limit = limit.clamp(1, MAX_PERMITS);
        let from = self.limit.swap(u64::from(limit), AcqRel) as u32;
        if limit > from {
            let mut q = self.lock();
            self.admit_waiters(&mut q);
            let flip = q.take_flip();
            drop(q);
            self.report_flip(flip);
        }
        from
    }

    /// A call admitted at `stamp` (see [`admission_stamp`](Self::admission_stamp)) finished
    /// as `class`, its permit still held: feed the adaptive limit.
    fn sample(&self, stamp: u64, class: &Class) {
        let in_flight = self.in_flight();
        let admitted = self
            .epoch
            .checked_add(Duration::from_nanos(stamp.saturating_sub(1)))
            .unwrap_or(self.epoch);
        let Some(algorithm) = &self.adaptive else {
            return;
        };
        // A throttle or a timeout is the dependency saying "too much"; a success or a
        // permanent answer is a latency measured under load; other failures (a refused
        // connection, a local refusal below) say nothing about load.
        let dropped = class.is_timeout() || class.is_throttled();
        if !dropped && class.is_retryable() {
            return;
        }
        // A latency sample lost to contention changes nothing measurable; a drop must count.
        let mut algorithm = if dropped {
            algorithm.lock().unwrap_or_else(PoisonError::into_inner)
        } else {
            match algorithm.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::WouldBlock) => return,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            }
        };
        let now = Instant::now();
        let from = self.limit();
        let mut sample = Sample::new(
            admitted,
            now.saturating_duration_since(admitted),
            in_flight,
            from,
            dropped,
        );
        if class.is_timeout() {
            sample = sample.timed_out();
        }
        let to = algorithm.update(&sample).clamp(1, MAX_PERMITS);
        if to == from {
            return;
        }
        // Set under the algorithm's lock, so limits land in the order they were computed.
        self.limit.store(u64::from(to), Release);
        drop(algorithm);
        if to > from {
            let mut q = self.lock();
            self.admit_waiters(&mut q);
            let flip = q.take_flip();
            drop(q);
            self.report_flip(flip);
        }
        self.emit(BulkheadEvent::LimitChanged {
            name: self.settings.name.clone(),
            from,
            to,
            dropped,
        });
    }

    pub(crate) fn refuse(&self, rejected: Rejected) -> Rejected {
        self.rejected.fetch_add(1, Relaxed);
        self.emit(BulkheadEvent::Rejected {
            name: self.settings.name.clone(),
            rejected,
        });
        rejected
    }

    pub(crate) fn emit(&self, event: BulkheadEvent) {
        trace(&event);
        if let Some(l) = &self.settings.listener {
            l.on_event(&crate::events::Event::new(&event));
        }
    }
}

/// A handle on a bulkhead private to one long-lived service clone: a call clones this one's
/// reference count, which no other thread touches, instead of the bulkhead's, which every
/// thread does.
pub(crate) struct Private {
    pub(crate) core: Arc<Core>,
}

/// What a permit holds on to, to give itself back.
pub(crate) enum Owner {
    Shared(Arc<Core>),
    Private(std::sync::Arc<Private>),
}

impl Owner {
    #[inline]
    fn core(&self) -> &Core {
        match self {
            Owner::Shared(c) => c,
            Owner::Private(p) => &p.core,
        }
    }
}

/// A permit from a [`Bulkhead`](super::Bulkhead): one call in flight. Dropping it gives the
/// permit back (to the next caller waiting, if any).
///
/// With an adaptive limit, hand the call's verdict back with [`record`](Permit::record)
/// instead of dropping it, so the limit learns from the call's latency; the tower layer does
/// this for you.
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit {
    owner: Owner,
    /// When it was admitted, for an adaptive limit: see `Core::admission_stamp`.
    admitted: u64,
}

impl Permit {
    #[inline]
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Permit::held_by(Owner::Shared(core))
    }

    #[inline]
    pub(crate) fn held_by(owner: Owner) -> Self {
        let admitted = owner.core().admission_stamp();
        Permit { owner, admitted }
    }

    /// Give the permit back, telling an adaptive limit how the call went: a success or a
    /// permanent error is a latency sample, a throttle or a timeout shrinks the limit, and
    /// other failures are not counted. Without an adaptive limit, the same as dropping it.
    ///
    /// ```
    /// use riprap::bulkhead::Bulkhead;
    /// use riprap::classify::Class;
    ///
    /// let bulkhead = Bulkhead::builder().max_concurrent(2).build()?;
    /// let permit = bulkhead.try_acquire()?;
    /// assert_eq!(bulkhead.in_flight(), 1);
    /// permit.record(&Class::Success);
    /// assert_eq!(bulkhead.in_flight(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn record(self, class: &Class) {
        if self.admitted != 0 {
            self.owner.core().sample(self.admitted, class);
        }
    }

    /// Whether recording the call's verdict feeds an adaptive limit.
    pub(crate) fn samples(&self) -> bool {
        self.admitted != 0
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        self.owner.core().release();
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// Waiting for a permit: [`Bulkhead::acquire`](super::Bulkhead::acquire).
///
/// Resolves to a [`Permit`], or to the reason the caller was turned away: the queue was
/// full, the caller waited past the queue timeout, it was shed from a standing queue, or a
/// more urgent caller took its place. Dropped at any point, it leaves nothing behind: its
/// place in the queue is given up, and a permit granted to it but not yet collected goes to
/// the next caller.
#[must_use = "futures do nothing unless polled"]
pub struct Acquire {
    core: Arc<Core>,
    state: AcquireState,
}

enum AcquireState {
    Start {
        class: usize,
    },
    Waiting {
        waiter: Arc<Waiter>,
        timeout: Option<Pin<Box<Sleep>>>,
    },
    Done,
}

impl Acquire {
    pub(crate) fn new(core: Arc<Core>, priority: u8) -> Self {
        let class = core.class_of(priority);
        Acquire {
            core,
            state: AcquireState::Start { class },
        }
    }
}

/// The outcome a waiter's decided status stands for.
fn decided(core: &Arc<Core>, waiter: &Waiter, status: u64) -> Option<Result<Permit, Rejected>> {
    {
        let waited = || Instant::now().saturating_duration_since(waiter.enqueued);
        match status {
            WAITING => None,
            GRANTED => {
                let w = waited();
                core.emit(BulkheadEvent::Waited {
                    name: core.settings.name.clone(),
                    waited: w,
                });
                Some(Ok(Permit::new(Arc::clone(core))))
            }
            DISPLACED => Some(Err(core.refuse(Rejected::Displaced { waited: waited() }))),
            _ => Some(Err(core.refuse(Rejected::Shed { waited: waited() }))),
        }
    }
}

impl Future for Acquire {
    type Output = Result<Permit, Rejected>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            AcquireState::Start { class } => {
                let class = *class;
                if this.core.try_acquire() {
                    this.state = AcquireState::Done;
                    return Poll::Ready(Ok(Permit::new(Arc::clone(&this.core))));
                }
                match this.core.enqueue(class) {
                    Ok(Enqueued::Admitted) => {
                        this.state = AcquireState::Done;
                        Poll::Ready(Ok(Permit::new(Arc::clone(&this.core))))
                    }
                    Ok(Enqueued::Waiting(waiter)) => {
                        waiter.waker.register(cx.waker());
                        let timeout = this
                            .core
                            .settings
                            .queue_timeout
                            .and_then(|t| waiter.enqueued.checked_add(t))
                            .map(|at| Box::pin(tokio::time::sleep_until(at)));
                        this.state = AcquireState::Waiting { waiter, timeout };
                        // Decided while the waker was being registered?
                        Pin::new(this).poll(cx)
                    }
                    Err(rejected) => {
                        this.state = AcquireState::Done;
                        Poll::Ready(Err(this.core.refuse(rejected)))
                    }
                }
            }
            AcquireState::Waiting { waiter, timeout } => {
                let waiter = Arc::clone(waiter);
                waiter.waker.register(cx.waker());
                let status = waiter.status.load(Ordering::Acquire);
                if let Some(out) = decided(&this.core, &waiter, status) {
                    this.state = AcquireState::Done;
                    return Poll::Ready(out);
                }
                let expired = timeout
                    .as_mut()
                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                // Out of time, unless its fate was decided in the meantime: then that stands.
                let out = match this.core.abandon(&waiter, true) {
                    Some(status) => decided(&this.core, &waiter, status),
                    None => None,
                };
                this.state = AcquireState::Done;
                Poll::Ready(out.unwrap_or_else(|| {
                    Err(this.core.refuse(Rejected::QueueTimeout {
                        waited: Instant::now().saturating_duration_since(waiter.enqueued),
                    }))
                }))
            }
            AcquireState::Done => panic!("`Acquire` polled after completion"),
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        if let AcquireState::Waiting { waiter, .. } = &self.state {
            // Dropped while waiting: leave the queue, and hand on a permit granted meanwhile.
            self.core.abandon(waiter, false);
        }
    }
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            AcquireState::Start { .. } => "start",
            AcquireState::Waiting { .. } => "waiting",
            AcquireState::Done => "done",
        };
        f.debug_struct("Acquire")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
