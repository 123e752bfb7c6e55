//! Offset-tracked resumable streams: no gaps, no lost acknowledgements.
//!
//! A near-real-time log stream built without offsets loses whatever was in flight at every
//! disconnect or maintenance window, and nothing can fill that gap afterwards. This module is
//! the other way to build it:
//!
//! - a **source** opens a stream *after* a position: a [`tower::Service`] called with
//!   `Option<O>` ([`None`] = from the start) answering with a stream of
//!   `Result<(offset, item), error>`; since it is a service, the (re)connect call can sit behind
//!   riprap's retry, breaker and rate-limit layers;
//! - [`Resumable`] tracks the last offset it delivered, reconnects after it with backoff when
//!   the source fails transiently or ends unexpectedly, drops what the source replays, and
//!   detects gaps in dense offsets;
//! - [`Checkpointed`] lets the consumer acknowledge items (in any order, from any task) and
//!   commits the acknowledged position to an [`OffsetStore`] ([`MemoryStore`], the crash-safe
//!   [`FileStore`], or your database), so a restart resumes where work actually finished.
//!
//! Offsets implement [`Offset`]: `u64`/`i64`/`u32` sequence numbers (dense: a jump is a gap),
//! [`BytePosition`] (ordered, not dense) and [`ResumeToken`] (opaque: SSE `Last-Event-ID`,
//! change-stream tokens).
//!
//! # The log stream, resumable
//!
//! ```
//! use std::time::Duration;
//! use futures_util::{stream, StreamExt};
//! use riprap::backoff::BackoffPolicy;
//! use riprap::stream::{CommitConfig, FileStore, Resumable};
//!
//! /// Stand-in for a log service: `GET /logs?after=N` streams entries N+1, N+2, ...,
//! /// and the connection drops every 250 entries.
//! async fn open_logs(after: Option<u64>) -> std::io::Result<impl futures_core::Stream<
//!     Item = std::io::Result<(u64, String)>,
//! >> {
//!     let from = after.map_or(0, |n| n + 1);
//!     let entries = (from..from + 250).map(|seq| Ok((seq, format!("GET /index.html #{seq}"))));
//!     let drop = std::iter::once(Err(std::io::ErrorKind::ConnectionReset.into()));
//!     Ok(stream::iter(entries.chain(drop)))
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("riprap-guide-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let backoff = BackoffPolicy::exponential(Duration::from_millis(100))
//!     .max_delay(Duration::from_secs(10))
//!     .build()?;
//! let commits = CommitConfig::builder().every(100).interval(Duration::from_secs(5)).build()?;
//! let mut logs = Resumable::new(tower::service_fn(open_logs), backoff)
//!     .checkpointed(FileStore::new(dir.join("access-logs.ckpt")), commits);
//! let acker = logs.acker();
//!
//! let mut shipped = 0;
//! while let Some(delivery) = logs.next().await {
//!     let (line, ack) = delivery?.into_parts();
//!     // ... ship `line` to the customer's warehouse ...
//!     # let _ = line;
//!     acker.ack(ack)?; // only once the line is safely shipped
//!     shipped += 1;
//!     if shipped == 1_000 { break; }
//! }
//! logs.flush().await?; // commit the last acks before shutting down
//! assert_eq!(logs.stats().snapshot().reconnects, 3); // three dropped connections, no gaps
//! assert_eq!(logs.committed(), Some(999));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Delivery guarantees, precisely
//!
//! **Within one run** (one `Resumable`), the consumer sees each item the source offers at
//! most once, in offset order: an item is delivered only if its offset is
//! [after](Offset::is_after) the last delivered offset, so whatever a reconnect replays is
//! dropped (and counted as `replays_dropped`). Nothing is skipped *by riprap*: a reconnect asks
//! the source for everything after the last delivered offset, whatever the consumer has or
//! has not acknowledged.
//!
//! **A gap** is the source skipping: for dense offsets (integers), an item whose offset is not
//! the [successor](Offset::successor) of the last one means the items in between never
//! arrived, typically because the source no longer has them (retention expired, a topic was
//! compacted, a producer lost them). riprap cannot bring them back; it makes the loss loud:
//! [`OnGap::Fail`] (the default) ends the stream with [`ResumeError::Gap`], [`OnGap::Report`]
//! emits [`StreamEvent::Gap`] and counts it. Byte positions and resume tokens are not dense,
//! so a source that skips them cannot be caught here. Resume tokens are ordered only by
//! arrival: the one replay recognised is the resume token itself sent again.
//!
//! **Across restarts** (with [`Checkpointed`]) delivery is **at-least-once**. The committed
//! position is the offset of the last item of the longest *acknowledged prefix* of the
//! delivery order, so it never passes an unacknowledged item, and a restart resumes after it.
//! Duplicates appear only after a restart that was not preceded by a completed
//! [`flush`](Checkpointed::flush) (a crash, a kill, a panic), and are exactly the items
//! delivered after the durable position: those acknowledged since the last commit (fewer than
//! [`CommitConfig::every`], or [`CommitConfig::interval`]'s worth) plus those still in flight
//! (at most [`CommitConfig::max_unacked`]). For effectively-once, commit the position in the
//! same transaction as the consumer's own writes (see [`OffsetStore`]).
//!
//! **The consumer's output is part of the contract.** An item acknowledged once it is
//! *written* may still sit in a buffer or the page cache; a position saved before those bytes
//! are durable outlives them in a crash, and the restart resumes after bytes that are gone.
//! Wrap the store with [`OffsetStore::flush_first`] (see [`FlushFirst`]) and every commit
//! flushes the output first; [`FileSink`] is such an output for files, which also cuts back
//! whatever a crash left past the committed position.
//!
//! **A position is only good in the version of the source it was taken in.** A byte offset
//! into an object replaced while the process was down points into different bytes. Bind
//! positions to the source's version with [`Versioned`] (as `ObjectSource` does with the
//! object's entity tag, feature `object_store`) and a resume against a changed source is
//! refused, never spliced.
//!
//! **Damaged checkpoints** are never read as "start over": [`FileStore`] reports
//! [`CheckpointError::Corrupt`] (bad magic, truncation, checksum mismatch) or
//! [`CheckpointError::UnsupportedVersion`], and the stream ends with that error. Only a
//! missing file means "nothing committed yet".
//!
//! # Reconnecting
//!
//! The classifier ([`ByError`](crate::classify::ByError) by default) decides: transient and
//! throttled errors reconnect (after at least the server's `Retry-After`), permanent ones end
//! the stream with [`ResumeError::Permanent`]. An end of the source's stream reconnects too
//! unless [`OnEnd::Finish`] says the source ends when it is done. Each outage draws a fresh
//! schedule from the backoff policy and may make at most
//! [`ResumeConfig::max_reconnects`] attempts; replays do not end an outage, new items do.
//! Running out ends the stream with [`ResumeError::GaveUp`].
//!
//! A fleet of streams dropped at once (a broker restart) reconnects at once. To bound that,
//! give every stream reading from the same dependency one shared retry
//! [budget](crate::budget) with [`Resumable::budget`]: each reconnect is paid for out of it,
//! and a refused one ends that stream with [`ResumeError::GaveUp`] (reason
//! [`GiveUp::BudgetRefused`]) instead of adding to the stampede. Reconnects follow the retry
//! layer's rules, from the same engine: a server's delay is a floor, and one longer than
//! [`ResumeConfig::max_retry_after`] ends the stream at once rather than reconnecting early.
//!
//! # Watching it
//!
//! [`StreamEvent`]s go to `tracing` and an optional [`Listener`](crate::events::Listener);
//! [`StreamStats::snapshot`] gives delivered, reconnects, replays dropped, gaps, commits and
//! the commit lag (delivered but not yet durably committed). Per-item counts are not events:
//! an event per item would cost the hot path. The scheme is the
//! [events guide](crate::events)'s; offsets are logged in their `Debug` form:
//!
//! | target | message | level | fields |
//! |---|---|---|---|
//! | `riprap::stream` | `loaded the committed position` (once per run) | info | `event="loaded"`, `position` |
//! | `riprap::stream` | `source failed or ended, reconnecting` | debug | `event="reconnecting"`, `after`, `attempt`, `delay_ms`, `class` |
//! | `riprap::stream` | `offsets skipped: items lost` | warn | `event="gap"`, `expected`, `found` |
//! | `riprap::stream` | `gave up reconnecting` | warn | `event="gave_up"`, `attempts`, `reason` |
//! | `riprap::stream` | `committed` | debug | `event="committed"`, `position` |
//!
//! With the `metrics` feature, a `MetricsListener` publishes:
//!
//! | metric | type | labels | counts |
//! |---|---|---|---|
//! | `riprap_stream_loads_total` | counter | `from` (`committed`, `start`) | checkpoint loads at start, by whether a position was committed |
//! | `riprap_stream_reconnects_total` | counter | `class` | reconnects scheduled, by the verdict on the failure (`transient` for an unexpected end) |
//! | `riprap_stream_reconnect_delay_seconds` | histogram | | waits before them |
//! | `riprap_stream_gaps_total` | counter | | jumps in dense offsets (items lost at the source) |
//! | `riprap_stream_giveups_total` | counter | `reason` | streams that stopped reconnecting |
//! | `riprap_stream_commits_total` | counter | | positions durably committed |

mod ack;
mod checkpointed;
pub mod codec;
mod config;
mod error;
mod events;
mod file;
#[cfg(feature = "object_store")]
mod object;
mod offset;
mod resumable;
mod sink;
mod store;
mod versioned;

pub use crate::engine::GiveUp;
pub use ack::{Ack, AckHandle, AckTracker};
pub use checkpointed::{Checkpointed, Delivery};
pub use config::{
    CommitConfig, CommitConfigBuilder, OnEnd, OnGap, ResumeConfig, ResumeConfigBuilder,
};
pub use error::{AckError, CheckpointError, Corruption, ResumeError};
pub use events::{StreamEvent, StreamMetrics, StreamStats};
pub use file::FileStore;
#[cfg(feature = "object_store")]
pub use object::{
    ObjectChunks, ObjectPosition, ObjectReadError, ObjectSource, ObjectVersion, OnChange,
};
pub use offset::{BytePosition, Offset, ResumeToken};
pub use resumable::Resumable;
pub use sink::{FileSink, Flush, FlushFirst};
pub use store::{MemoryStore, OffsetStore};
pub use versioned::{SourceVersion, Versioned};
