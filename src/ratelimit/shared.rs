//! Capacity and a server gate kept beyond this process, which a limiter consults besides its
//! own: the hook through which [`fleet`](crate::fleet) puts a limiter's quota and gate in a
//! store every process shares.
//!
//! Both are consulted on the hot path, so both answer from state held in this process (an
//! atomic or two): the round trips to the shared store happen in the implementation's own
//! background tasks, never in a caller's acquire.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::future::Future;
use std::pin::Pin;

use tokio::time::Instant;

/// What a shared quota answers to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Capacity taken.
    Taken,
    /// No capacity before then; look again at that instant.
    Until(Instant),
    /// Capacity is on its way (a refill is in flight): wait for [`SharedQuota::changed`].
    Pending,
    /// More than the quota can ever grant at once.
    TooLarge {
        /// The most it grants at once.
        burst: u32,
    },
}

/// A quota whose capacity is shared with other processes.
pub(crate) trait SharedQuota: Send + Sync + 'static {
    /// Take one request costing `cost` from what this process holds. Never waits, never does
    /// I/O; starts a refill in the background when the capacity held runs low.
    fn try_take(&self, cost: u32) -> Take;

    /// Ready when an answer [`Take::Pending`] waited for has arrived (or failed).
    fn changed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// A server gate shared with other processes: a pause any of them saw pauses all of them.
pub(crate) trait SharedGate: Send + Sync + 'static {
    /// Until when the fleet was last heard to be paused, if that is still ahead. One load.
    fn closed_until(&self) -> Option<Instant>;

    /// The server asked this process to pause until `until`: tell the others. Never waits.
    fn close_until(&self, until: Instant);
}
