//! What a resumable stream reports: events as they happen, counters on demand.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::offset::Offset;
use crate::classify::Class;
use crate::engine::GiveUp;
use crate::events::{self, LayerEvent, Measure, Metric, SharedListener, ms};

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

impl<O: fmt::Debug> StreamEvent<O> {
    /// Emit the event through `tracing`. Offsets are logged in their `Debug` form: the
    /// stream's offset type is the caller's.
    pub(crate) fn trace(&self) {
        const T: &str = "riprap::stream";
        match self {
            StreamEvent::Loaded { position } => {
                // Once per run: where it resumes is what an operator checks after a restart.
                tracing::info!(target: T, event = "loaded", position = ?position, "loaded the committed position")
            }
            StreamEvent::Reconnecting {
                after,
                attempt,
                delay,
                class,
            } => {
                tracing::debug!(target: T, event = "reconnecting", after = ?after, attempt, delay_ms = ms(*delay), class = class.as_str(), "source failed or ended, reconnecting")
            }
            StreamEvent::Gap { expected, found } => {
                // Data the source no longer has: nothing downstream can bring it back.
                tracing::warn!(target: T, event = "gap", expected = ?expected, found = ?found, "offsets skipped: items lost")
            }
            StreamEvent::GaveUp { attempts, reason } => {
                tracing::warn!(target: T, event = "gave_up", attempts, reason = reason.as_str(), "gave up reconnecting")
            }
            StreamEvent::Committed { position } => {
                tracing::debug!(target: T, event = "committed", position = ?position, "committed")
            }
        }
    }
}

static LOADS: Metric = Metric::counter(
    "riprap_stream_loads_total",
    "Checkpoint loads at stream start, by whether a position was committed",
    &["from"],
    2,
);
static RECONNECTS: Metric = Metric::counter(
    "riprap_stream_reconnects_total",
    "Stream reconnects scheduled, by the classifier's verdict on the failure",
    &["class"],
    Class::CLASSES,
);
static RECONNECT_DELAY: Metric = Metric::histogram(
    "riprap_stream_reconnect_delay_seconds",
    "Waits scheduled before a stream reconnects",
    &[],
    1,
);
static GAPS: Metric = Metric::counter(
    "riprap_stream_gaps_total",
    "Jumps in dense offsets: items the source never delivered",
    &[],
    1,
);
static GIVEUPS: Metric = Metric::counter(
    "riprap_stream_giveups_total",
    "Streams that stopped reconnecting, by reason",
    &["reason"],
    GiveUp::REASONS,
);
static COMMITS: Metric = Metric::counter(
    "riprap_stream_commits_total",
    "Positions durably committed to an offset store",
    &[],
    1,
);

impl<O: Offset> LayerEvent for StreamEvent<O> {
    fn layer(&self) -> &'static str {
        "stream"
    }

    fn kind(&self) -> &'static str {
        self.as_str()
    }

    // No offset ever becomes a label.
    fn measure(&self, into: &dyn Measure) {
        match self {
            StreamEvent::Loaded { position } => {
                let (variant, from) = match position {
                    Some(_) => (0, "committed"),
                    None => (1, "start"),
                };
                into.count(&LOADS, variant, &[from], 1);
            }
            StreamEvent::Reconnecting { delay, class, .. } => {
                into.count(&RECONNECTS, class.ordinal(), &[class.as_str()], 1);
                into.record(&RECONNECT_DELAY, 0, &[], *delay);
            }
            StreamEvent::Gap { .. } => into.count(&GAPS, 0, &[], 1),
            StreamEvent::GaveUp { reason, .. } => {
                into.count(&GIVEUPS, reason.ordinal(), &[reason.as_str()], 1)
            }
            StreamEvent::Committed { .. } => into.count(&COMMITS, 0, &[], 1),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
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
pub(crate) fn emit<O: Offset>(listener: Option<&SharedListener>, event: StreamEvent<O>) {
    event.trace();
    events::deliver(listener, &event);
}
