//! What a resumable stream reports: events as they happen, counters on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::classify::Class;
use crate::events::SharedListener;

/// Something a [`Resumable`](super::Resumable) or [`Checkpointed`](super::Checkpointed)
/// stream did. Also emitted through `tracing` (target `riprap::stream`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StreamEvent<O> {
    /// A committed position was loaded at start (`None`: nothing committed yet).
    Loaded {
        /// The position the stream resumes after.
        position: Option<O>,
    },
    /// The source failed or ended; the stream will reconnect after `after` once `delay` passes.
    Reconnecting {
        /// The last delivered offset (`None`: from the start).
        after: Option<O>,
        /// The attempt number in this outage, from 1.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// What the failure was (`Transient` for an unexpected end).
        class: Class,
    },
    /// Dense offsets jumped: `expected` up to (not including) `found` never arrived.
    Gap {
        /// The offset that should have come next.
        expected: O,
        /// The offset that came instead.
        found: O,
    },
    /// The stream gave up reconnecting.
    GaveUp {
        /// Attempts made in the outage.
        attempts: u32,
    },
    /// A position was durably committed.
    Committed {
        /// The position saved.
        position: O,
    },
}

/// A snapshot of a stream's counters, from [`StreamStats::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StreamMetrics {
    /// Items delivered to the consumer.
    pub delivered: u64,
    /// Reconnect attempts.
    pub reconnects: u64,
    /// Replayed items dropped (at or before the last delivered offset).
    pub replays_dropped: u64,
    /// Gaps seen in dense offsets.
    pub gaps: u64,
    /// Delivered items durably committed in this run.
    pub committed: u64,
    /// Successful commits.
    pub commits: u64,
}

impl StreamMetrics {
    /// Delivered items not yet durably committed: what a crash now would redeliver.
    pub fn commit_lag(&self) -> u64 {
        self.delivered.saturating_sub(self.committed)
    }
}

/// A live view of a stream's counters; clones share them.
///
/// ```
/// use riprap::stream::StreamStats;
///
/// let stats = StreamStats::default();
/// assert_eq!(stats.snapshot().delivered, 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    reconnects: AtomicU64,
    replays_dropped: AtomicU64,
    gaps: AtomicU64,
    committed: AtomicU64,
    commits: AtomicU64,
}

impl StreamStats {
    /// The counters now.
    pub fn snapshot(&self) -> StreamMetrics {
        let c = &self.inner;
        StreamMetrics {
            delivered: c.delivered.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            replays_dropped: c.replays_dropped.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            committed: c.committed.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
        }
    }

    // The stream is the counters' only writer, so the per-item path publishes with a plain
    // store of its own running count instead of a read-modify-write.
    #[inline]
    pub(crate) fn set_delivered(&self, n: u64) {
        self.inner.delivered.store(n, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn set_replays_dropped(&self, n: u64) {
        self.inner.replays_dropped.store(n, Ordering::Relaxed);
    }

    pub(crate) fn add_reconnect(&self) {
        self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_gap(&self) {
        self.inner.gaps.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_commit(&self, committed_items: u64) {
        self.inner
            .committed
            .fetch_max(committed_items, Ordering::Relaxed);
        self.inner.commits.fetch_add(1, Ordering::Relaxed);
    }
}

/// Hand an event to `tracing` and the listener, if any.
pub(crate) fn emit<O: std::fmt::Debug + 'static>(
    listener: Option<&SharedListener<StreamEvent<O>>>,
    event: StreamEvent<O>,
) {
    match &event {
        StreamEvent::Gap { .. } | StreamEvent::GaveUp { .. } => {
            tracing::warn!(target: "riprap::stream", event = ?event, "stream")
        }
        _ => tracing::debug!(target: "riprap::stream", event = ?event, "stream"),
    }
    if let Some(l) = listener {
        l.on_event(&event);
    }
}
