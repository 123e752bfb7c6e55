//! [`Bulkhead`]: the shared handle.

use std::fmt;

use super::config::{BulkheadBuilder, Priority};
use super::error::Rejected;
use super::events::BulkheadMetrics;
use super::state::{Acquire, Core, MAX_PERMITS, Permit};
use crate::ConfigError;
use crate::sync::Arc;

/// A concurrency limit with a bounded, prioritised queue; see the [module guide](super).
///
/// Cloning is a reference-count increment; every clone shares the permits and the queue.
///
/// ```
/// use riprap::bulkhead::{Bulkhead, Priority, Rejected};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let bulkhead = Bulkhead::builder().max_concurrent(1).max_queue(1).build()?;
///
/// let first = bulkhead.acquire(Priority::NORMAL).await?;
/// let mut second = Box::pin(bulkhead.acquire(Priority::NORMAL));
/// assert!(futures_util::poll!(second.as_mut()).is_pending()); // waits in the queue
/// assert_eq!(bulkhead.try_acquire().unwrap_err(), Rejected::Full); // no room to wait
///
/// drop(first); // the permit goes straight to the waiting caller
/// let _second = second.await?;
/// assert_eq!(bulkhead.in_flight(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Bulkhead {
    pub(crate) core: Arc<Core>,
}

impl Bulkhead {
    /// A builder with 64 permits, no queue and three priority classes.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::default()
    }

    /// A bulkhead that limits nothing: a [`BulkheadService`](super::BulkheadService) over it
    /// calls straight through, takes no permit and counts nothing (its
    /// [`in_flight`](Self::in_flight) stays 0), at the cost of one branch. What a stack uses
    /// when no bulkhead is configured. [`try_acquire`](Self::try_acquire) and
    /// [`acquire`](Self::acquire) still hand out counted permits, up to [`MAX_PERMITS`].
    ///
    /// ```
    /// use riprap::bulkhead::{Bulkhead, MAX_PERMITS};
    /// assert_eq!(Bulkhead::unlimited().limit(), MAX_PERMITS);
    /// ```
    pub fn unlimited() -> Self {
        use super::state::Settings;
        Bulkhead::from_core(Core::new(
            MAX_PERMITS,
            Settings {
                max_queue: 0,
                queue_timeout: None,
                priorities: 1,
                max_bypass: 0,
                shed: None,
                unlimited: true,
                name: None,
                listener: None,
            },
            None,
        ))
    }

    pub(crate) fn from_core(core: Core) -> Self {
        Bulkhead {
            core: Arc::new(core),
        }
    }

    /// Take a permit if one is free and nobody waits for it; never waits. Lock-free.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        match self.core.try_acquire() {
            Some(n) => Ok(Permit::new(Arc::clone(&self.core), n)),
            None => Err(self.core.refuse(Rejected::Full)),
        }
    }

    /// Take a permit, waiting in the queue of `priority`'s class if none is free: see
    /// [`Acquire`].
    pub fn acquire(&self, priority: Priority) -> Acquire {
        Acquire::new(Arc::clone(&self.core), priority.0)
    }

    /// Like [`acquire`](Self::acquire), moving this handle into the future.
    pub(crate) fn into_acquire(self, priority: Priority) -> Acquire {
        Acquire::new(self.core, priority.0)
    }

    /// The limit on calls in flight.
    pub fn limit(&self) -> u32 {
        self.core.limit()
    }

    /// Permits held right now.
    pub fn in_flight(&self) -> u32 {
        self.core.in_flight()
    }

    /// Callers waiting right now.
    pub fn waiting(&self) -> u32 {
        self.core.waiting()
    }

    /// The bulkhead's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.core.settings.name.as_deref()
    }

    /// Set the limit by hand, from 1 to [`MAX_PERMITS`]: raised, it admits waiting callers
    /// at once; lowered, it takes effect as permits come back (calls in flight are not
    /// interrupted). With an adaptive limit the algorithm moves it again from its next
    /// sample.
    ///
    /// ```
    /// let bulkhead = riprap::bulkhead::Bulkhead::builder().max_concurrent(8).build()?;
    /// bulkhead.set_limit(2)?;
    /// assert_eq!(bulkhead.limit(), 2);
    /// assert_eq!(bulkhead.set_limit(0).unwrap_err().knob(), "bulkhead.max_concurrent");
    /// # Ok::<(), riprap::ConfigError>(())
    /// ```
    pub fn set_limit(&self, limit: u32) -> Result<(), ConfigError> {
        if limit == 0 || limit > MAX_PERMITS {
            return Err(ConfigError::new(
                "bulkhead.max_concurrent",
                format!("must be from 1 to {MAX_PERMITS} (got {limit})"),
            ));
        }
        self.core.set_limit(limit);
        Ok(())
    }

    /// A snapshot: the limit, permits held, callers waiting per class, rejections so far,
    /// and whether the queue is shedding. Takes the queue lock briefly.
    pub fn metrics(&self) -> BulkheadMetrics {
        let (waiting, shedding) = self.core.waiting_per_class();
        BulkheadMetrics {
            limit: self.core.limit(),
            in_flight: self.core.in_flight(),
            waiting,
            rejected: self.core.rejected(),
            shedding,
        }
    }

    /// Whether no permit is held, nobody waits, and no other handle exists: a keyed
    /// bulkhead may forget it.
    pub(crate) fn is_idle(&self) -> bool {
        Arc::strong_count(&self.core) == 1
    }
}

impl fmt::Debug for Bulkhead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("name", &self.name())
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("waiting", &self.waiting())
            .finish_non_exhaustive()
    }
}
