//! What a bulkhead enforces, validated when built.

use std::sync::Arc;
use std::time::Duration;

use super::adaptive::LimitAlgorithm;
use super::handle::Bulkhead;
use super::queue::{MAX_PRIORITIES, Shed};
use super::state::{Core, MAX_PERMITS, Settings};
use crate::ConfigError;
use crate::error::check_duration;
use crate::events::{Listener, SharedListener};

/// How urgent a call is: `0` is the most urgent. A bulkhead with `n` priority classes
/// serves class 0 first, then 1, and so on; priorities from `n - 1` up share the last class.
///
/// ```
/// use riprap::bulkhead::Priority;
///
/// assert!(Priority::HIGH < Priority::NORMAL && Priority::NORMAL < Priority::LOW);
/// assert_eq!(Priority::default(), Priority::NORMAL);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub u8);

impl Priority {
    /// Class 0: served first (a suspicious transaction to review, an interactive request).
    pub const HIGH: Priority = Priority(0);
    /// Class 1: the default.
    pub const NORMAL: Priority = Priority(1);
    /// Class 2: served last (a batch job, a backfill).
    pub const LOW: Priority = Priority(2);
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// Builder for a [`Bulkhead`]; every knob is checked in [`build`](Self::build).
///
/// | knob | default | |
/// |---|---|---|
/// | [`max_concurrent`](Self::max_concurrent) | 64 | permits; or [`adaptive`](Self::adaptive) |
/// | [`max_queue`](Self::max_queue) | 0 | callers that may wait; 0 fails fast |
/// | [`queue_timeout`](Self::queue_timeout) | 30 s | the longest a caller waits |
/// | [`priorities`](Self::priorities) | 3 | classes, served most urgent first |
/// | [`max_bypass`](Self::max_bypass) | 8 | the starvation guard |
/// | [`shed_by_age`](Self::shed_by_age) | off | CoDel-like shedding of a standing queue |
///
/// ```
/// use std::time::Duration;
/// use riprap::bulkhead::Bulkhead;
///
/// let bulkhead = Bulkhead::builder()
///     .max_concurrent(16)
///     .max_queue(100)
///     .queue_timeout(Duration::from_secs(2))
///     .build()?;
/// assert_eq!(bulkhead.limit(), 16);
///
/// let err = Bulkhead::builder().max_concurrent(0).build().unwrap_err();
/// assert_eq!(err.knob(), "bulkhead.max_concurrent");
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[must_use = "a builder does nothing until `build()` is called"]
pub struct BulkheadBuilder {
    max_concurrent: Option<u32>,
    max_queue: u32,
    queue_timeout: Option<Duration>,
    priorities: u8,
    max_bypass: u32,
    shed: Option<Shed>,
    adaptive: Option<Box<dyn LimitAlgorithm>>,
    name: Option<Arc<str>>,
    listener: Option<SharedListener>,
}

impl Clone for BulkheadBuilder {
    fn clone(&self) -> Self {
        BulkheadBuilder {
            max_concurrent: self.max_concurrent,
            max_queue: self.max_queue,
            queue_timeout: self.queue_timeout,
            priorities: self.priorities,
            max_bypass: self.max_bypass,
            shed: self.shed,
            adaptive: self.adaptive.as_ref().map(|a| a.fresh()),
            name: self.name.clone(),
            listener: self.listener.clone(),
        }
    }
}

impl std::fmt::Debug for BulkheadBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadBuilder")
            .field("max_concurrent", &self.max_concurrent)
            .field("max_queue", &self.max_queue)
            .field("queue_timeout", &self.queue_timeout)
            .field("priorities", &self.priorities)
            .field("max_bypass", &self.max_bypass)
            .field("shed", &self.shed)
            .field("adaptive", &self.adaptive.as_ref().map(|a| a.name()))
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The default number of permits.
pub const DEFAULT_MAX_CONCURRENT: u32 = 64;

impl Default for BulkheadBuilder {
    fn default() -> Self {
        BulkheadBuilder {
            max_concurrent: None,
            max_queue: 0,
            queue_timeout: Some(Duration::from_secs(30)),
            priorities: 3,
            max_bypass: 8,
            shed: None,
            adaptive: None,
            name: None,
            listener: None,
        }
    }
}

impl BulkheadBuilder {
    /// At most this many calls in flight at once (default 64). Not with
    /// [`adaptive`](Self::adaptive), whose own bounds apply.
    pub fn max_concurrent(mut self, permits: u32) -> Self {
        self.max_concurrent = Some(permits);
        self
    }

    /// Find the limit from measured latency, throttles and timeouts with `algorithm`
    /// ([`Gradient`](super::Gradient), [`Vegas`](super::Vegas), [`Aimd`](super::Aimd) or
    /// your own); see the [adaptive guide](super::adaptive).
    pub fn adaptive(mut self, algorithm: impl LimitAlgorithm) -> Self {
        self.adaptive = Some(Box::new(algorithm));
        self
    }

    /// At most this many callers wait for a permit (default 0: a full bulkhead refuses at
    /// once with [`Rejected::Full`](super::Rejected::Full)).
    pub fn max_queue(mut self, callers: u32) -> Self {
        self.max_queue = callers;
        self
    }

    /// A caller waits at most this long, then gets
    /// [`Rejected::QueueTimeout`](super::Rejected::QueueTimeout) (default 30 s).
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = Some(timeout);
        self
    }

    /// Callers wait as long as it takes (they may still drop their future): for callers
    /// that bound the wait themselves, such as under a total deadline.
    pub fn no_queue_timeout(mut self) -> Self {
        self.queue_timeout = None;
        self
    }

    /// Priority classes, from 1 to 8 (default 3: [`Priority::HIGH`], [`Priority::NORMAL`],
    /// [`Priority::LOW`]). Waiters are served most urgent class first, in arrival order
    /// within a class, and when the queue is full an urgent caller takes the place of the
    /// youngest caller of the least urgent class that waits (which gets
    /// [`Rejected::Displaced`](super::Rejected::Displaced)).
    pub fn priorities(mut self, classes: u8) -> Self {
        self.priorities = classes;
        self
    }

    /// The starvation guard: a class that waits is passed over by more urgent ones at most
    /// this many times in a row before its oldest caller goes first (default 8). With
    /// `classes` classes no waiting class is ever passed over more than
    /// `max_bypass + classes - 1` times in a row, so the least urgent class gets at least
    /// one permit in every `max_bypass + classes` handed out while it waits. Zero serves
    /// the waiting classes in turn.
    pub fn max_bypass(mut self, grants: u32) -> Self {
        self.max_bypass = grants;
        self
    }

    /// Shed callers from a standing queue, after CoDel: when every caller admitted over the
    /// last `interval` had waited longer than `target`, the queue is not absorbing a burst
    /// but standing, and callers that have waited longer than `interval` are turned away
    /// with [`Rejected::Shed`](super::Rejected::Shed) instead of being served late. It stops
    /// once a caller is admitted within `target`. (CoDel's own defaults are 5 ms and 100 ms;
    /// scale them to your calls.)
    pub fn shed_by_age(mut self, target: Duration, interval: Duration) -> Self {
        self.shed = Some(Shed { target, interval });
        self
    }

    /// The bulkhead's name, in its events and logs.
    pub fn name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Report rejections, waits, limit changes and shedding to `listener`.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    pub(crate) fn set_name(&mut self, name: Option<Arc<str>>) {
        self.name = name;
    }

    /// Check every knob and build the bulkhead.
    pub fn build(self) -> Result<Bulkhead, ConfigError> {
        if let Some(n) = self.max_concurrent {
            if n == 0 || n > MAX_PERMITS {
                return Err(ConfigError::new(
                    "bulkhead.max_concurrent",
                    format!("must be from 1 to {MAX_PERMITS} (got {n})"),
                ));
            }
            if self.adaptive.is_some() {
                return Err(ConfigError::new(
                    "bulkhead.max_concurrent",
                    "is set by the adaptive algorithm: give it a max instead",
                ));
            }
        }
        if self.max_queue > MAX_PERMITS {
            return Err(ConfigError::new(
                "bulkhead.max_queue",
                format!("must be at most {MAX_PERMITS} (got {})", self.max_queue),
            ));
        }
        if let Some(t) = self.queue_timeout {
            check_duration("bulkhead.queue_timeout", t)?;
            if t.is_zero() {
                return Err(ConfigError::new(
                    "bulkhead.queue_timeout",
                    "must be greater than zero (for no waiting, set max_queue to 0)",
                ));
            }
        }
        if self.priorities == 0 || self.priorities > MAX_PRIORITIES {
            return Err(ConfigError::new(
                "bulkhead.priorities",
                format!(
                    "must be from 1 to {MAX_PRIORITIES} (got {})",
                    self.priorities
                ),
            ));
        }
        if let Some(shed) = self.shed {
            check_duration("bulkhead.shed.target", shed.target)?;
            check_duration("bulkhead.shed.interval", shed.interval)?;
            if shed.target.is_zero() {
                return Err(ConfigError::new(
                    "bulkhead.shed.target",
                    "must be greater than zero",
                ));
            }
            if shed.interval < shed.target {
                return Err(ConfigError::new(
                    "bulkhead.shed.interval",
                    format!(
                        "must be at least the target {:?} (got {:?})",
                        shed.target, shed.interval
                    ),
                ));
            }
        }
        super::error::register();
        let limit = match &self.adaptive {
            Some(a) => a.initial_limit(),
            None => self.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT),
        };
        let settings = Settings {
            max_queue: self.max_queue,
            queue_timeout: self.queue_timeout,
            priorities: self.priorities,
            max_bypass: self.max_bypass,
            shed: self.shed,
            name: self.name,
            listener: self.listener,
        };
        Ok(Bulkhead::from_core(Core::new(
            limit,
            settings,
            self.adaptive,
        )))
    }
}
