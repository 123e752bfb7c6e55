//! The one event type every layer's events travel in.

use crate::breaker::BreakerEvent;
use crate::cache::CacheEvent;
use crate::ratelimit::RateLimitEvent;
use crate::retry::RetryEvent;
use crate::stream::{OffsetRef, StreamEvent};

/// One thing a layer did, tagged with the layer and the name it was given, as a
/// [`Forward`](super::Forward) hands it to a listener for every layer.
///
/// It borrows the layer's own event rather than owning a copy: listeners run inline on the
/// request path, and building an `Event` is two pointer writes, never a clone (the breaker's
/// events hold an `Arc`) or an allocation.
///
/// `name` is the name given to the [`Forward`](super::Forward) that delivered it, so one
/// listener can tell two stacks apart. A breaker's own name (for a keyed breaker, its key) is
/// in its [`BreakerEvent`].
///
/// ```
/// use riprap::events::Event;
/// use riprap::retry::{GiveUp, RetryEvent};
///
/// let gave_up = RetryEvent::GaveUp { attempts: 3, reason: GiveUp::AttemptsExhausted };
/// let event = Event::Retry { name: Some("llm"), event: &gave_up };
/// assert_eq!((event.layer(), event.kind(), event.name()), ("retry", "gave_up", Some("llm")));
///
/// match event {
///     Event::Retry { event: RetryEvent::GaveUp { reason, .. }, .. } => {
///         assert_eq!(reason.as_str(), "attempts_exhausted")
///     }
///     _ => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// From a [`Retry`](crate::retry::Retry) layer.
    Retry {
        /// The name of the forward that delivered it.
        name: Option<&'a str>,
        /// What the retry layer did.
        event: &'a RetryEvent,
    },
    /// From a [`CircuitBreaker`](crate::breaker::CircuitBreaker).
    Breaker {
        /// The name of the forward that delivered it.
        name: Option<&'a str>,
        /// What the breaker did (it carries the breaker's own name too).
        event: &'a BreakerEvent,
    },
    /// From a [`RateLimiter`](crate::ratelimit::RateLimiter).
    RateLimit {
        /// The name of the forward that delivered it.
        name: Option<&'a str>,
        /// What the rate limiter did.
        event: &'a RateLimitEvent,
    },
    /// From a [`Cache`](crate::cache::Cache).
    Cache {
        /// The name of the forward that delivered it.
        name: Option<&'a str>,
        /// What the cache did.
        event: &'a CacheEvent,
    },
    /// From a [`Resumable`](crate::stream::Resumable) or
    /// [`Checkpointed`](crate::stream::Checkpointed) stream.
    ///
    /// Streams are generic over their offset type, so the offsets arrive as [`OffsetRef`]s
    /// (see [`StreamEvent::erased`]); [`OffsetRef::downcast_ref`] gives them back typed.
    Stream {
        /// The name of the forward that delivered it.
        name: Option<&'a str>,
        /// What the stream did.
        event: &'a StreamEvent<OffsetRef<'a>>,
    },
}

impl<'a> Event<'a> {
    /// The name of the [`Forward`](super::Forward) that delivered the event, if it has one.
    ///
    /// ```
    /// use riprap::cache::CacheEvent;
    /// use riprap::events::Event;
    ///
    /// assert_eq!(Event::Cache { name: None, event: &CacheEvent::Hit }.name(), None);
    /// ```
    pub fn name(&self) -> Option<&'a str> {
        match *self {
            Event::Retry { name, .. }
            | Event::Breaker { name, .. }
            | Event::RateLimit { name, .. }
            | Event::Cache { name, .. }
            | Event::Stream { name, .. } => name,
        }
    }

    /// Which layer it came from: `"retry"`, `"breaker"`, `"ratelimit"`, `"cache"` or
    /// `"stream"` (the same word as the `tracing` target's last segment).
    ///
    /// ```
    /// use riprap::events::Event;
    /// use riprap::ratelimit::RateLimitEvent;
    ///
    /// let e = Event::RateLimit { name: None, event: &RateLimitEvent::GateReopened };
    /// assert_eq!(e.layer(), "ratelimit");
    /// ```
    pub fn layer(&self) -> &'static str {
        match self {
            Event::Retry { .. } => "retry",
            Event::Breaker { .. } => "breaker",
            Event::RateLimit { .. } => "ratelimit",
            Event::Cache { .. } => "cache",
            Event::Stream { .. } => "stream",
        }
    }

    /// What happened, as the layer's event names it in snake case (`"attempt"`,
    /// `"transition"`, `"gate_closed"`, `"stale_hit"`, ...).
    ///
    /// ```
    /// use riprap::cache::CacheEvent;
    /// use riprap::events::Event;
    ///
    /// let e = Event::Cache { name: Some("config"), event: &CacheEvent::StaleHit };
    /// assert_eq!(format!("{}.{}", e.layer(), e.kind()), "cache.stale_hit");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Retry { event, .. } => event.as_str(),
            Event::Breaker { event, .. } => event.as_str(),
            Event::RateLimit { event, .. } => event.as_str(),
            Event::Cache { event, .. } => event.as_str(),
            Event::Stream { event, .. } => event.as_str(),
        }
    }
}
