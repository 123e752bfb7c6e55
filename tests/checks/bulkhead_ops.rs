//! Arbitrary configs and operation sequences on a bulkhead, on a paused clock, against a
//! small reference model of its queue: building never panics (bad knobs are typed errors),
//! and whatever the sequence of acquires, releases, drops, limit changes and time passing,
//! every caller gets exactly what the model says (a permit now, a place in the queue, a
//! refusal, a grant in priority order under the starvation guard, a displacement, a shedding,
//! a queue timeout), the permits and waiters the bulkhead counts are the ones held, no caller
//! waits while a permit is free, and dropping everything leaves nothing held.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::noop_waker_ref;
use riprap::bulkhead::{Acquire, Bulkhead, Permit, Priority, Rejected};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

pub fn run(data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(drive(Bytes(data)));
}

/// What the model says became of a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Waiting,
    Granted,
    Displaced,
    Shed,
}

/// The queue as the documentation describes it, written plainly.
struct Model {
    limit: u32,
    in_flight: u32,
    max_queue: usize,
    max_bypass: u32,
    timeout: Option<u64>,
    shed: Option<(u64, u64)>,
    /// Per class: (enqueued at, caller id), oldest first.
    queue: Vec<VecDeque<(u64, usize)>>,
    skipped: Vec<u32>,
    above_since: Option<u64>,
    standing: bool,
    now: u64,
    fate: Vec<Fate>,
    class: Vec<usize>,
    enqueued: Vec<u64>,
}

impl Model {
    fn waiting(&self) -> usize {
        self.queue.iter().map(VecDeque::len).sum()
    }

    fn removed(&mut self, class: usize) {
        if self.waiting() == 0 {
            self.above_since = None;
            self.standing = false;
        }
        if self.queue[class].is_empty() {
            self.skipped[class] = 0;
        }
    }

    fn remove(&mut self, id: usize) {
        let c = self.class[id];
        if let Some(i) = self.queue[c].iter().position(|(_, w)| *w == id) {
            self.queue[c].remove(i);
            self.removed(c);
        }
    }

    /// A new caller `id` of `class`: `Some(true)` admitted, `Some(false)` refused, `None`
    /// queued (perhaps displacing someone).
    fn acquire(&mut self, id: usize, class: usize) -> Option<bool> {
        self.class.push(class);
        self.enqueued.push(self.now);
        self.fate.push(Fate::Waiting);
        if self.waiting() == 0 && self.in_flight < self.limit {
            self.in_flight += 1;
            self.fate[id] = Fate::Granted;
            return Some(true);
        }
        if self.max_queue == 0 {
            return Some(false);
        }
        if self.waiting() >= self.max_queue {
            let lowest = (class + 1..self.queue.len())
                .rev()
                .find(|&c| !self.queue[c].is_empty());
            let Some(lowest) = lowest else {
                return Some(false);
            };
            if let Some((_, victim)) = self.queue[lowest].pop_back() {
                self.fate[victim] = Fate::Displaced;
            }
            self.removed(lowest);
        }
        self.queue[class].push_back((self.now, id));
        None
    }

    fn pick(&self) -> Option<usize> {
        let n = self.queue.len();
        let mut best: Option<(u32, usize)> = None;
        for c in 0..n {
            if !self.queue[c].is_empty()
                && self.skipped[c] >= self.max_bypass
                && best.is_none_or(|(s, _)| self.skipped[c] > s)
            {
                best = Some((self.skipped[c], c));
            }
        }
        best.map(|(_, c)| c)
            .or_else(|| (0..n).find(|&c| !self.queue[c].is_empty()))
    }

    fn admit(&mut self) {
        while self.in_flight < self.limit {
            let Some(class) = self.pick() else { return };
            let Some((at, id)) = self.queue[class].pop_front() else {
                return;
            };
            let waited = self.now - at;
            if let Some((target, interval)) = self.shed {
                if waited < target {
                    self.above_since = None;
                    self.standing = false;
                } else {
                    let since = *self.above_since.get_or_insert(self.now);
                    if self.now - since >= interval {
                        self.standing = true;
                    }
                    if self.standing && waited >= interval {
                        self.fate[id] = Fate::Shed;
                        self.removed(class);
                        continue;
                    }
                }
            }
            self.removed(class);
            for c in 0..self.queue.len() {
                if c == class {
                    self.skipped[c] = 0;
                } else if !self.queue[c].is_empty() {
                    self.skipped[c] = self.skipped[c].saturating_add(1);
                }
            }
            self.in_flight += 1;
            self.fate[id] = Fate::Granted;
        }
    }

    fn release(&mut self) {
        self.in_flight -= 1;
        if self.waiting() > 0 {
            self.admit();
        }
    }

    fn set_limit(&mut self, limit: u32) {
        let raised = limit > self.limit;
        self.limit = limit;
        if raised {
            self.admit();
        }
    }

    fn expired(&self, id: usize) -> bool {
        self.timeout
            .is_some_and(|t| self.now >= self.enqueued[id] + t)
    }
}

async fn drive(mut b: Bytes<'_>) {
    let limit = u32::from(b.u8() % 4) + 1;
    let max_queue = b.u8() % 7;
    let classes = b.u8() % 4 + 1;
    let max_bypass = u32::from(b.u8() % 5);
    // Timeouts and shedding thresholds end on 5 ms while time moves in steps of 10 ms, so a
    // deadline never falls on the instant a poll happens.
    let timeout = (b.u8() % 2 == 1).then(|| u64::from(b.u8() % 8) * 10 + 15);
    let shed = (b.u8() % 3 == 2).then(|| {
        let target = u64::from(b.u8() % 3) * 10 + 5;
        (target, target + u64::from(b.u8() % 4) * 10)
    });
    let mut builder = Bulkhead::builder()
        .max_concurrent(limit)
        .max_queue(u32::from(max_queue))
        .priorities(classes)
        .max_bypass(max_bypass);
    builder = match timeout {
        Some(t) => builder.queue_timeout(Duration::from_millis(t)),
        None => builder.no_queue_timeout(),
    };
    if let Some((target, interval)) = shed {
        builder = builder.shed_by_age(
            Duration::from_millis(target),
            Duration::from_millis(interval),
        );
    }
    let bulkhead = match builder.build() {
        Ok(b) => b,
        Err(e) => panic!("a valid config was refused: {e}"),
    };
    // Out-of-range knobs are typed errors, never panics.
    for (q, p) in [(u32::MAX, 3), (1, 0), (1, 9)] {
        assert!(
            Bulkhead::builder()
                .max_queue(q)
                .priorities(p)
                .build()
                .is_err()
        );
    }

    let mut model = Model {
        limit,
        in_flight: 0,
        max_queue: usize::from(max_queue),
        max_bypass,
        timeout,
        shed,
        queue: (0..classes).map(|_| VecDeque::new()).collect(),
        skipped: vec![0; usize::from(classes)],
        above_since: None,
        standing: false,
        now: 0,
        fate: Vec::new(),
        class: Vec::new(),
        enqueued: Vec::new(),
    };
    let mut waiters: Vec<(usize, Acquire)> = Vec::new();
    let mut permits: Vec<(usize, Permit)> = Vec::new();
    let mut next_id = 0usize;
    let cx = &mut Context::from_waker(noop_waker_ref());

    for _ in 0..200 {
        if b.done() {
            break;
        }
        match b.u8() % 6 {
            0 | 1 => {
                let p = b.u8() % 5;
                let class = usize::from(p.min(classes - 1));
                let id = next_id;
                next_id += 1;
                let expect = model.acquire(id, class);
                let mut w = bulkhead.acquire(Priority(p));
                match (Pin::new(&mut w).poll(cx), expect) {
                    (Poll::Ready(Ok(permit)), Some(true)) => permits.push((id, permit)),
                    (Poll::Ready(Err(Rejected::Full)), Some(false)) => {}
                    (Poll::Pending, None) => waiters.push((id, w)),
                    (got, want) => panic!("caller {id}: got {got:?}, the model says {want:?}"),
                }
            }
            2 => {
                if !permits.is_empty() {
                    let i = usize::from(b.u8()) % permits.len();
                    drop(permits.remove(i));
                    model.release();
                }
            }
            3 => {
                if !waiters.is_empty() {
                    let i = usize::from(b.u8()) % waiters.len();
                    let (id, w) = waiters.remove(i);
                    drop(w);
                    match model.fate[id] {
                        // A permit granted but not collected goes back.
                        Fate::Granted => model.release(),
                        Fate::Waiting => model.remove(id),
                        Fate::Displaced | Fate::Shed => {}
                    }
                }
            }
            4 => {
                let n = u32::from(b.u8() % 5) + 1;
                bulkhead.set_limit(n).expect("a valid limit");
                model.set_limit(n);
            }
            _ => {
                let steps = u64::from(b.u8() % 4) + 1;
                tokio::time::advance(Duration::from_millis(10 * steps)).await;
                model.now += 10 * steps;
            }
        }
        // Every waiter, in order: what the model says it is now.
        let mut i = 0;
        while i < waiters.len() {
            let id = waiters[i].0;
            let got = Pin::new(&mut waiters[i].1).poll(cx);
            let expired = model.fate[id] == Fate::Waiting && model.expired(id);
            match (got, model.fate[id]) {
                (Poll::Ready(Ok(p)), Fate::Granted) => {
                    permits.push((id, p));
                    drop(waiters.remove(i));
                }
                (Poll::Ready(Err(Rejected::Displaced { .. })), Fate::Displaced)
                | (Poll::Ready(Err(Rejected::Shed { .. })), Fate::Shed) => {
                    drop(waiters.remove(i));
                }
                (Poll::Ready(Err(Rejected::QueueTimeout { waited })), Fate::Waiting) if expired => {
                    assert!(waited >= Duration::from_millis(model.timeout.unwrap_or(0)));
                    model.remove(id);
                    drop(waiters.remove(i));
                }
                (Poll::Pending, Fate::Waiting) if !expired => i += 1,
                (got, fate) => panic!("caller {id}: got {got:?}, the model says {fate:?}"),
            }
        }
        assert_eq!(bulkhead.in_flight(), model.in_flight);
        assert_eq!(bulkhead.in_flight() as usize, permits.len());
        assert_eq!(bulkhead.waiting() as usize, waiters.len());
        assert_eq!(bulkhead.waiting() as usize, model.waiting());
        assert!(waiters.len() <= usize::from(max_queue));
        if bulkhead.in_flight() < bulkhead.limit() {
            assert!(waiters.is_empty(), "a caller waits while a permit is free");
        }
    }
    drop(waiters);
    drop(permits);
    assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
}
