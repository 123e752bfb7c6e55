//! Acknowledgements, and the committed position they add up to.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::error::AckError;
use super::offset::Offset;
use crate::error::ConfigError;
use crate::sync::{Arc, AtomicU64, AtomicWaker, Mutex, MutexGuard};

/// Proof that one item was delivered; hand it back to [`AckHandle::ack`] once the item's work
/// is done. An `Ack` dropped without being acknowledged holds the committed position before
/// its item forever (that is the point: the item was not finished).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an item that is never acknowledged is never committed"]
pub struct Ack<O> {
    offset: O,
    seq: u64,
    stream: u64,
}

impl<O> Ack<O> {
    /// The delivered item's offset.
    pub fn offset(&self) -> &O {
        &self.offset
    }

    /// The item's place in delivery order (0 for the first item of this run).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// Turns acknowledgements, in any order, into a committed position: the offset of the last
/// item of the longest acknowledged prefix of the delivery order.
///
/// [`Checkpointed`](super::Checkpointed) uses one internally; it is public for consumers that
/// fan items out to workers and for tests. The tracker is the producer's end (not `Clone`);
/// [`AckHandle`]s are the consumers' ends.
///
/// At most `max_unacked` items may be outstanding past the acknowledged prefix: after that
/// [`track`](AckTracker::track) refuses until the oldest outstanding item is acknowledged,
/// which bounds the memory held for out-of-order acks.
///
/// ```
/// use riprap::stream::AckTracker;
///
/// let mut tracker = AckTracker::new(16)?;
/// let acker = tracker.handle();
/// let a = tracker.track(10u64).unwrap();
/// let b = tracker.track(11u64).unwrap();
/// let c = tracker.track(12u64).unwrap();
///
/// acker.ack(c)?; // out of order: 10 and 11 are still in flight
/// assert_eq!(acker.committed(), None);
/// acker.ack(a)?;
/// assert_eq!(acker.committed(), Some(10));
/// acker.ack(b)?;
/// assert_eq!(acker.committed(), Some(12)); // the prefix closed
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AckTracker<O> {
    shared: Arc<Shared<O>>,
    next_seq: u64,
    /// `acked + max_unacked` as last seen; reloaded only when `next_seq` reaches it, so the
    /// per-item path reads no shared state.
    window_end: u64,
}

/// A consumer's end of an [`AckTracker`]: acknowledges items, from any task. Clones share
/// the tracker.
#[derive(Debug)]
pub struct AckHandle<O> {
    shared: Arc<Shared<O>>,
}

impl<O> Clone for AckHandle<O> {
    fn clone(&self) -> Self {
        AckHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug)]
struct Shared<O> {
    id: u64,
    max_unacked: u64,
    /// Length of the acknowledged prefix (`Window::acked`), readable without the lock.
    acked: AtomicU64,
    producer: AtomicWaker,
    window: Mutex<Window<O>>,
}

#[derive(Debug)]
struct Window<O> {
    acked: u64,
    /// Acks for seqs `acked..`, slot `i` for seq `acked + i`; at most `max_unacked` long.
    pending: VecDeque<Option<O>>,
    committed: Option<O>,
    /// The producer asked to be woken once `acked` reaches this.
    wake_at: u64,
}

// Plain std even under loom: a process-wide counter, not part of any model.
static STREAM_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl<O: Offset> AckTracker<O> {
    /// A tracker allowing `max_unacked` outstanding items (at least 1).
    pub fn new(max_unacked: usize) -> Result<Self, ConfigError> {
        NonZeroUsize::new(max_unacked)
            .map(Self::with_window)
            .ok_or_else(|| ConfigError::new("commit.max_unacked", "must be at least 1"))
    }

    /// A tracker allowing `max_unacked` outstanding items.
    pub fn with_window(max_unacked: NonZeroUsize) -> Self {
        let max_unacked = max_unacked.get() as u64;
        AckTracker {
            shared: Arc::new(Shared {
                id: STREAM_IDS.fetch_add(1, Ordering::Relaxed),
                max_unacked,
                acked: AtomicU64::new(0),
                producer: AtomicWaker::new(),
                window: Mutex::new(Window {
                    acked: 0,
                    pending: VecDeque::new(),
                    committed: None,
                    wake_at: u64::MAX,
                }),
            }),
            next_seq: 0,
            window_end: max_unacked,
        }
    }

    /// Set the committed position that holds before any item is acknowledged (the position
    /// loaded from the store).
    pub fn start_after(&mut self, position: Option<O>) {
        self.shared.lock().committed = position;
    }

    /// Record delivery of the item at `offset`, returning its [`Ack`]; or give `offset` back
    /// if `max_unacked` items are outstanding (wait with
    /// [`poll_capacity`](AckTracker::poll_capacity)).
    #[inline]
    pub fn track(&mut self, offset: O) -> Result<Ack<O>, O> {
        if self.next_seq >= self.window_end && !self.has_room() {
            return Err(offset);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(Ack {
            offset,
            seq,
            stream: self.shared.id,
        })
    }

    /// Whether [`track`](AckTracker::track) would accept an item now.
    pub fn has_room(&mut self) -> bool {
        if self.next_seq < self.window_end {
            return true;
        }
        self.window_end = self
            .shared
            .acked
            .load(Ordering::Acquire)
            .saturating_add(self.shared.max_unacked);
        self.next_seq < self.window_end
    }

    /// Ready once [`track`](AckTracker::track) would accept an item; otherwise arranges for
    /// the task to be woken when an ack makes room.
    pub fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.has_room() {
            return Poll::Ready(());
        }
        let needed = self.next_seq + 1 - self.shared.max_unacked;
        if self.wake_when_acked(cx, needed) {
            self.window_end = self
                .shared
                .acked
                .load(Ordering::Acquire)
                .saturating_add(self.shared.max_unacked);
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Register `cx` to be woken once the acknowledged prefix reaches `acked` items; `true`
    /// if it already has.
    pub(crate) fn wake_when_acked(&self, cx: &mut Context<'_>, acked: u64) -> bool {
        self.shared.producer.register(cx.waker());
        // Under the lock every ack takes: an ack either sees this threshold and wakes us, or
        // ran before it and we see its prefix here.
        let mut w = self.shared.lock();
        if w.acked >= acked {
            return true;
        }
        w.wake_at = acked;
        false
    }

    /// A consumer's handle.
    pub fn handle(&self) -> AckHandle<O> {
        AckHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Items delivered so far through this tracker.
    pub fn delivered(&self) -> u64 {
        self.next_seq
    }

    /// Length of the acknowledged prefix of the delivery order.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::Acquire)
    }

    /// The committed position: see [`AckHandle::committed`].
    pub fn committed(&self) -> Option<O> {
        self.shared.lock().committed.clone()
    }
}

impl<O: Offset> AckHandle<O> {
    /// Acknowledge one delivered item. Acks may come in any order and more than once (a
    /// repeat is ignored); the committed position advances only over a contiguous prefix.
    pub fn ack(&self, ack: Ack<O>) -> Result<(), AckError> {
        self.ack_many(std::iter::once(ack))
    }

    /// Acknowledge a batch of items under one lock: cheaper than one [`ack`](AckHandle::ack)
    /// per item when a worker finishes items in batches. Stops at the first foreign ack; the
    /// acks before it count.
    pub fn ack_many(&self, acks: impl IntoIterator<Item = Ack<O>>) -> Result<(), AckError> {
        let shared = &*self.shared;
        let mut w = shared.lock();
        let before = w.acked;
        let mut result = Ok(());
        for ack in acks {
            if ack.stream != shared.id {
                result = Err(AckError::ForeignStream);
                break;
            }
            w.record(ack);
        }
        if w.acked == before {
            return result;
        }
        // Published under the lock so concurrent acks cannot publish out of order.
        let acked = w.acked;
        shared.acked.store(acked, Ordering::Release);
        let wake = acked >= w.wake_at;
        if wake {
            w.wake_at = u64::MAX;
        }
        drop(w);
        if wake {
            shared.producer.wake();
        }
        result
    }

    /// The committed position: the offset of the last item of the longest acknowledged prefix
    /// of the delivery order, or the start position if no prefix is acknowledged yet. Never
    /// past an unacknowledged item.
    pub fn committed(&self) -> Option<O> {
        self.shared.lock().committed.clone()
    }

    /// Length of the acknowledged prefix of the delivery order.
    pub fn acked(&self) -> u64 {
        self.shared.acked.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> (u64, Option<O>) {
        let w = self.shared.lock();
        (w.acked, w.committed.clone())
    }
}

impl<O> Window<O> {
    #[inline]
    fn record(&mut self, ack: Ack<O>) {
        if ack.seq < self.acked {
            return;
        }
        // `track` hands out seqs below `acked + max_unacked`, and `acked` only grows.
        let slot = (ack.seq - self.acked) as usize;
        if slot == 0 && self.pending.is_empty() {
            // In-order ack: the common case touches no queue.
            self.committed = Some(ack.offset);
            self.acked += 1;
            return;
        }
        if self.pending.len() <= slot {
            self.pending.resize_with(slot + 1, || None);
        }
        self.pending[slot] = Some(ack.offset);
        while let Some(Some(_)) = self.pending.front() {
            if let Some(Some(offset)) = self.pending.pop_front() {
                self.committed = Some(offset);
                self.acked += 1;
            }
        }
    }
}

impl<O> Shared<O> {
    fn lock(&self) -> MutexGuard<'_, Window<O>> {
        // Every update leaves the window consistent before anything that can panic, so a
        // poisoned lock still guards valid state.
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }
}
