use std::time::Duration;

use super::{Backoff, MakeBackoff};

/// A policy from the unmaintained `backoff` crate, usable wherever riprap wants a
/// [`Backoff`] or [`MakeBackoff`]. Enabled by the off-by-default `backoff-compat` feature.
///
/// The `backoff` crate is flagged by RustSec (RUSTSEC-2025-0012) as unmaintained; this adapter
/// exists so a migration can happen one call site at a time. New code should use
/// [`BackoffPolicy`](super::BackoffPolicy).
///
/// ```
/// use riprap::backoff::{Backoff, BackoffCrate, MakeBackoff};
///
/// let old = backoff::ExponentialBackoff::default();
/// let policy = BackoffCrate(old);
/// let mut schedule = policy.make_backoff();
/// assert!(schedule.next_delay().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct BackoffCrate<B>(pub B);

impl<B: backoff::backoff::Backoff> Backoff for BackoffCrate<B> {
    fn next_delay(&mut self) -> Option<Duration> {
        self.0.next_backoff()
    }

    fn reset(&mut self) {
        self.0.reset()
    }
}

impl<B: backoff::backoff::Backoff + Clone> MakeBackoff for BackoffCrate<B> {
    type Backoff = BackoffCrate<B>;

    fn make_backoff(&self) -> BackoffCrate<B> {
        let mut fresh = self.0.clone();
        fresh.reset();
        BackoffCrate(fresh)
    }
}
