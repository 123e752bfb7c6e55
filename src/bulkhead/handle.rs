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
    /// `None` for [`Bulkhead::unlimited`], which shares nothing, so cloning it (as stacks do
    /// for every call) touches no reference count.
    pub(crate) core: Option<Arc<Core>>,
}

impl Bulkhead {
    /// A builder with 64 permits, no queue and three priority classes.
    pub fn builder() -> BulkheadBuilder {
        BulkheadBuilder::default()
    }

    /// A bulkhead that limits nothing and shares nothing: a
    /// [`BulkheadService`](super::BulkheadService) over it calls straight through, taking no
    /// permit, and cloning it costs nothing. What a stack uses when no bulkhead is configured.
    /// Its [`in_flight`](Self::in_flight) stays 0; a permit taken by hand from it counts
    /// nothing.
    ///
    /// ```
    /// use riprap::bulkhead::{Bulkhead, MAX_PERMITS};
    /// let unlimited = Bulkhead::unlimited();
    /// assert_eq!(unlimited.limit(), MAX_PERMITS);
    /// let _permit = unlimited.try_acquire()?;
    /// assert_eq!(unlimited.in_flight(), 0);
    /// # Ok::<(), riprap::bulkhead::Rejected>(())
    /// ```
    pub fn unlimited() -> Self {
        Bulkhead { core: None }
    }

    pub(crate) fn from_core(core: Core) -> Self {
        Bulkhead {
            core: Some(Arc::new(core)),
        }
    }

    /// The core behind this handle; a fresh, unshared one for an unlimited bulkhead, whose
    /// permits count nothing anyone reads.
    fn core(&self) -> Arc<Core> {
        match &self.core {
            Some(c) => Arc::clone(c),
            None => Arc::new(Core::unlimited()),
        }
    }

    /// Take a permit if one is free and nobody waits for it; never waits. Lock-free.
    pub fn try_acquire(&self) -> Result<Permit, Rejected> {
        let core = self.core();
        if core.try_acquire() {
            Ok(Permit::new(core))
        } else {
            Err(core.refuse(Rejected::Full))
        }
    }

    /// Take a permit, waiting in the queue of `priority`'s class if none is free: see
    /// [`Acquire`].
    pub fn acquire(&self, priority: Priority) -> Acquire {
        Acquire::new(self.core(), priority.0)
    }

    /// Like [`acquire`](Self::acquire), moving this handle into the future.
    pub(crate) fn into_acquire(self, priority: Priority) -> Acquire {
        match self.core {
            Some(core) => Acquire::new(core, priority.0),
            None => Acquire::new(Arc::new(Core::unlimited()), priority.0),
        }
    }

    /// The limit on calls in flight.
    pub fn limit(&self) -> u32 {
        self.core.as_ref().map_or(MAX_PERMITS, |c| c.limit())
    }

    /// Permits held right now.
    pub fn in_flight(&self) -> u32 {
        self.core.as_ref().map_or(0, |c| c.in_flight())
    }

    /// Callers waiting right now.
    pub fn waiting(&self) -> u32 {
        self.core.as_ref().map_or(0, |c| c.waiting())
    }

    /// The bulkhead's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.core.as_ref()?.settings.name.as_deref()
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
        match &self.core {
            Some(core) => {
                core.set_limit(limit);
                Ok(())
            }
            None => Err(ConfigError::new(
                "bulkhead.max_concurrent",
                "an unlimited bulkhead has no limit to set",
            )),
        }
    }

    /// A snapshot: the limit, permits held, callers waiting per class, rejections so far,
    /// and whether the queue is shedding. Takes the queue lock briefly.
    pub fn metrics(&self) -> BulkheadMetrics {
        let Some(core) = &self.core else {
            return BulkheadMetrics {
                limit: MAX_PERMITS,
                in_flight: 0,
                waiting: Vec::new(),
                rejected: 0,
                shedding: false,
            };
        };
        let (waiting, shedding) = core.waiting_per_class();
        BulkheadMetrics {
            limit: core.limit(),
            in_flight: core.in_flight(),
            waiting,
            rejected: core.rejected(),
            shedding,
        }
    }

    /// Whether no permit is held, nobody waits, and no other handle exists: a keyed
    /// bulkhead may forget it.
    pub(crate) fn is_idle(&self) -> bool {
        self.core.as_ref().is_none_or(|c| Arc::strong_count(c) == 1)
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
