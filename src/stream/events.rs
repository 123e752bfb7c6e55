//! What a resumable stream reports: events as they happen, counters on demand.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::offset::Offset;
use crate::classify::Class;
use crate::engine::GiveUp;
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
        /// Why it stopped.
        reason: GiveUp,
    },
    /// A position was durably committed.
    Committed {
        /// The position saved.
        position: O,
    },
}

impl<O> StreamEvent<O> {
    /// The event's name in snake case, as in `tracing`'s `event` field and
    /// [`Event::kind`](crate::events::Event::kind): `"loaded"`, `"reconnecting"`, `"gap"`,
    /// `"gave_up"` or `"committed"`.
    ///
    /// ```
    /// use riprap::stream::StreamEvent;
    ///
    /// assert_eq!(StreamEvent::Committed { position: 7u64 }.as_str(), "committed");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            StreamEvent::Loaded { .. } => "loaded",
            StreamEvent::Reconnecting { .. } => "reconnecting",
            StreamEvent::Gap { .. } => "gap",
            StreamEvent::GaveUp { .. } => "gave_up",
            StreamEvent::Committed { .. } => "committed",
        }
    }
}

impl<O: Offset> StreamEvent<O> {
    /// The same event with its offsets borrowed as [`OffsetRef`]s: the form that travels in
    /// [`Event::Stream`](crate::events::Event::Stream), whatever the stream's offset type.
    /// Builds nothing on the heap.
    ///
    /// ```
    /// use riprap::stream::StreamEvent;
    ///
    /// let event = StreamEvent::Gap { expected: 5u64, found: 9 };
    /// assert_eq!(format!("{:?}", event.erased()), "Gap { expected: 5, found: 9 }");
    /// ```
    pub fn erased(&self) -> StreamEvent<OffsetRef<'_>> {
        match self {
            StreamEvent::Loaded { position } => StreamEvent::Loaded {
                position: position.as_ref().map(OffsetRef::new),
            },
            StreamEvent::Reconnecting {
                after,
                attempt,
                delay,
                class,
            } => StreamEvent::Reconnecting {
                after: after.as_ref().map(OffsetRef::new),
                attempt: *attempt,
                delay: *delay,
                class: *class,
            },
            StreamEvent::Gap { expected, found } => StreamEvent::Gap {
                expected: OffsetRef::new(expected),
                found: OffsetRef::new(found),
            },
            StreamEvent::GaveUp { attempts, reason } => StreamEvent::GaveUp {
                attempts: *attempts,
                reason: *reason,
            },
            StreamEvent::Committed { position } => StreamEvent::Committed {
                position: OffsetRef::new(position),
            },
        }
    }
}

/// A borrowed offset of any [`Offset`] type, as a stream's events carry them in
/// [`Event::Stream`](crate::events::Event::Stream): printable, comparable, and recoverable
/// as its own type with [`downcast_ref`](Self::downcast_ref).
///
/// ```
/// use riprap::stream::{ResumeToken, StreamEvent};
///
/// let committed = StreamEvent::Committed { position: 41u64 };
/// if let StreamEvent::Committed { position } = committed.erased() {
///     assert_eq!(position.downcast_ref::<u64>(), Some(&41));
///     assert_eq!(position.downcast_ref::<ResumeToken>(), None);
///     assert_eq!(format!("{position:?}"), "41");
/// }
/// ```
#[derive(Clone, Copy)]
pub struct OffsetRef<'a>(&'a dyn AnyOffset);

/// What `OffsetRef` needs of an offset, in a form that survives type erasure.
trait AnyOffset: fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn eq_any(&self, other: &dyn Any) -> bool;
}

impl<O: Offset> AnyOffset for O {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn eq_any(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<O>() == Some(self)
    }
}

impl<'a> OffsetRef<'a> {
    /// Borrow `offset`.
    pub fn new<O: Offset>(offset: &'a O) -> Self {
        OffsetRef(offset)
    }

    /// The offset as its own type, if it is an `O`.
    pub fn downcast_ref<O: Offset>(&self) -> Option<&'a O> {
        self.0.as_any().downcast_ref()
    }
}

impl fmt::Debug for OffsetRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

/// Equal when both are offsets of the same type and equal as such.
impl PartialEq for OffsetRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_any(other.0.as_any())
    }
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

    // The stream is the counter's only writer, so the per-item path counts with a plain load
    // and store instead of a locked read-modify-write.
    #[inline]
    pub(crate) fn bump_delivered(&self) {
        let c = &self.inner.delivered;
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
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
pub(crate) fn emit<O: fmt::Debug + 'static>(
    listener: Option<&SharedListener<StreamEvent<O>>>,
    event: StreamEvent<O>,
) {
    crate::events::trace::stream(&event);
    if let Some(l) = listener {
        l.on_event(&event);
    }
}
