//! What can end a resumable stream, and what can go wrong with a checkpoint.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use tokio::time::Instant;

use crate::classify::{Class, Classified};
use crate::engine::GiveUp;

/// Why a [`Resumable`](super::Resumable) or [`Checkpointed`](super::Checkpointed) stream ended.
///
/// After yielding one of these the stream yields `None`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ResumeError<E, O> {
    /// The source failed in a way the classifier says another connection cannot fix.
    Permanent(E),
    /// Reconnecting stopped before the source delivered a new item, by the same rules as the
    /// retry layer: the reconnect bound or the backoff schedule ran out, the
    /// [retry budget](super::Resumable::budget) refused, or the server asked for a wait longer
    /// than [`max_retry_after`](super::ResumeConfig::max_retry_after).
    GaveUp {
        /// Why it stopped.
        reason: GiveUp,
        /// Reconnect attempts made in this outage.
        attempts: u32,
        /// When the server said it will take calls again, if the last failure said.
        retry_at: Option<Instant>,
        /// The last error, or `None` if the source kept ending instead of failing.
        last: Option<E>,
    },
    /// Dense offsets jumped: the items from `expected` up to (not including) `found` never
    /// arrived. Only with [`OnGap::Fail`](super::OnGap::Fail).
    Gap {
        /// The offset that should have come next.
        expected: O,
        /// The offset that came instead.
        found: O,
    },
    /// The committed position could not be loaded or saved.
    Checkpoint(CheckpointError),
}

impl<E: fmt::Display, O: fmt::Debug> fmt::Display for ResumeError<E, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeError::Permanent(e) => write!(f, "source failed permanently: {e}"),
            ResumeError::GaveUp {
                reason,
                attempts,
                last,
                ..
            } => {
                write!(
                    f,
                    "gave up reconnecting after {attempts} reconnects ({reason})"
                )?;
                match last {
                    Some(e) => write!(f, ": {e}"),
                    None => write!(f, ": the source kept ending"),
                }
            }
            ResumeError::Gap { expected, found } => {
                write!(f, "gap in the source: expected {expected:?}, got {found:?}")
            }
            ResumeError::Checkpoint(e) => write!(f, "checkpoint: {e}"),
        }
    }
}

impl<E, O> StdError for ResumeError<E, O>
where
    E: StdError + 'static,
    O: fmt::Debug,
{
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ResumeError::Permanent(e) | ResumeError::GaveUp { last: Some(e), .. } => Some(e),
            ResumeError::Checkpoint(e) => Some(e),
            _ => None,
        }
    }
}

/// A stream that gave up, or that the budget stopped, may work when restarted later; the rest
/// will not.
impl<E, O> Classified for ResumeError<E, O> {
    fn class(&self) -> Class {
        match self {
            ResumeError::GaveUp { .. } => Class::Transient,
            ResumeError::Checkpoint(e) => e.class(),
            _ => Class::Permanent,
        }
    }
}

/// A checkpoint could not be loaded or saved.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing the store failed.
    Io(io::Error),
    /// The stored checkpoint is damaged. Nothing is assumed: resuming from the start would
    /// silently replay everything, and resuming from a guess could skip items.
    Corrupt(Corruption),
    /// The checkpoint was written by a newer format version than this build reads.
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// A user-defined store's backend failed (a database, a remote service).
    Backend(Box<dyn StdError + Send + Sync + 'static>),
    /// The consumer's output could not be flushed, so the position was not saved: committing
    /// it would have put the checkpoint ahead of what the output durably holds (see
    /// [`FlushFirst`](super::FlushFirst)).
    Sink(io::Error),
}

impl CheckpointError {
    /// Wrap a backend's error, for [`OffsetStore`](super::OffsetStore) implementations.
    pub fn backend(err: impl Into<Box<dyn StdError + Send + Sync + 'static>>) -> Self {
        CheckpointError::Backend(err.into())
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io(e) => write!(f, "i/o error: {e}"),
            CheckpointError::Corrupt(c) => write!(f, "corrupt checkpoint: {c}"),
            CheckpointError::UnsupportedVersion { found } => {
                write!(
                    f,
                    "checkpoint format version {found} is newer than this build reads"
                )
            }
            CheckpointError::Backend(e) => write!(f, "store backend: {e}"),
            CheckpointError::Sink(e) => {
                write!(f, "flushing the output before the commit failed: {e}")
            }
        }
    }
}

impl StdError for CheckpointError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CheckpointError::Io(e) | CheckpointError::Sink(e) => Some(e),
            CheckpointError::Backend(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<io::Error> for CheckpointError {
    fn from(e: io::Error) -> Self {
        CheckpointError::Io(e)
    }
}

/// I/O errors by kind and unknown backend errors may pass; a damaged or too-new checkpoint
/// needs a person.
impl Classified for CheckpointError {
    fn class(&self) -> Class {
        match self {
            CheckpointError::Io(e) | CheckpointError::Sink(e) => e.class(),
            CheckpointError::Backend(e) => e.class(),
            CheckpointError::Corrupt(_) | CheckpointError::UnsupportedVersion { .. } => {
                Class::Permanent
            }
        }
    }
}

/// How a stored checkpoint is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The file does not start with riprap's checkpoint magic.
    BadMagic,
    /// The data ends early.
    Truncated {
        /// Bytes the header says there should be.
        expected: usize,
        /// Bytes there are.
        found: usize,
    },
    /// There are bytes after the checksum.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The declared payload is longer than any checkpoint riprap writes.
    TooLong {
        /// The declared length.
        declared: u32,
    },
    /// The checksum does not match the contents.
    Checksum {
        /// The checksum stored in the file.
        stored: u32,
        /// The checksum of the contents.
        computed: u32,
    },
    /// The checksum matches but the payload is not a valid offset of the requested type
    /// (including a checkpoint bound to a source version read as a plain offset).
    Offset,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::BadMagic => f.write_str("bad magic (not a riprap checkpoint)"),
            Corruption::Truncated { expected, found } => {
                write!(f, "truncated: expected {expected} bytes, found {found}")
            }
            Corruption::TrailingBytes { extra } => write!(f, "{extra} trailing bytes"),
            Corruption::TooLong { declared } => {
                write!(f, "declared payload of {declared} bytes is over the limit")
            }
            Corruption::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
                )
            }
            Corruption::Offset => f.write_str("payload is not a valid offset of this type"),
        }
    }
}

/// An acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckError {
    /// The [`Ack`](super::Ack) came from a different stream than this handle's.
    ForeignStream,
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::ForeignStream => f.write_str("ack belongs to a different stream"),
        }
    }
}

impl StdError for AckError {}
