//! One listener for every layer: the adapter that wraps each layer's event in an [`Event`].

use std::fmt;
use std::sync::Arc;

use super::{Event, EventListener, Listener};
use crate::breaker::BreakerEvent;
use crate::cache::CacheEvent;
use crate::ratelimit::RateLimitEvent;
use crate::retry::RetryEvent;
use crate::stream::{Offset, StreamEvent};

/// Hands every layer's events to one listener of [`Event`]s; made by [`forward`].
///
/// It is a [`Listener`] of [`RetryEvent`], [`BreakerEvent`], [`RateLimitEvent`],
/// [`CacheEvent`] and [`StreamEvent`] at once, so the same value goes to every layer. Clones share the listener
/// and the name (two reference counts, paid when building the stack); delivering an event
/// allocates nothing and clones nothing.
///
/// Layers that take `impl Listener<_>` take a clone; those that take a
/// [`SharedListener`](super::SharedListener) take `Arc::new(forward.clone())`.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use riprap::breaker::CircuitBreaker;
/// use riprap::cache::CacheConfig;
/// use riprap::events::{self, Event};
/// use riprap::ratelimit::{RateLimitConfig, RateLimiter};
/// use riprap::retry::RetryConfig;
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let events = events::forward(Arc::new(move |e: &Event<'_>| {
///     sink.lock().unwrap().push(format!("{} {}.{}", e.name().unwrap_or("-"), e.layer(), e.kind()))
/// }))
/// .named("llm");
///
/// let retry = RetryConfig::new().listener(events.clone()).build()?;
/// let breaker = CircuitBreaker::builder().listener(Arc::new(events.clone())).build()?;
/// let limiter = RateLimiter::with_listener(
///     RateLimitConfig::builder().requests(10, Duration::from_secs(1)).build()?,
///     Arc::new(events.clone()),
/// );
/// let cache = CacheConfig::builder().listener(events.clone()).build()?;
///
/// breaker.force_open();
/// assert_eq!(seen.lock().unwrap().as_slice(), ["llm breaker.transition"]);
/// # drop((retry, limiter, cache));
/// # Ok::<(), riprap::ConfigError>(())
/// ```
pub struct Forward<L: ?Sized = EventListener> {
    name: Option<Arc<str>>,
    listener: Arc<L>,
}

/// A [`Forward`] delivering every layer's events to `listener`, as [`Event`]s.
///
/// `listener` may be a concrete type (its calls are then direct) or an
/// `Arc<`[`EventListener`]`>` chosen at run time.
///
/// ```
/// use std::sync::Arc;
/// use riprap::events::{self, Event, EventListener, Listener};
/// use riprap::retry::{GiveUp, RetryEvent};
///
/// let listener: Arc<EventListener> = Arc::new(|e: &Event<'_>| assert_eq!(e.layer(), "retry"));
/// let events = events::forward(listener);
/// events.on_event(&RetryEvent::GaveUp { attempts: 1, reason: GiveUp::Permanent });
/// ```
pub fn forward<L>(listener: Arc<L>) -> Forward<L>
where
    L: ?Sized + for<'a> Listener<Event<'a>>,
{
    Forward {
        name: None,
        listener,
    }
}

impl<L: ?Sized> Forward<L> {
    /// Tag every event with `name` (say, the dependency: `"llm"`, `"orders-db"`), so one
    /// listener can tell several stacks apart.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use riprap::events::{self, Event};
    ///
    /// let events = events::forward(Arc::new(|_: &Event<'_>| {})).named("orders-db");
    /// assert_eq!(events.name(), Some("orders-db"));
    /// ```
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The name events are tagged with, if any.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use riprap::events::{self, Event};
    ///
    /// assert_eq!(events::forward(Arc::new(|_: &Event<'_>| {})).name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The listener events go to.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use riprap::events::{self, Event, Listener};
    /// use riprap::cache::CacheEvent;
    ///
    /// let events = events::forward(Arc::new(|e: &Event<'_>| assert_eq!(e.kind(), "hit")));
    /// events.listener().on_event(&Event::Cache { name: None, event: &CacheEvent::Hit });
    /// ```
    pub fn listener(&self) -> &Arc<L> {
        &self.listener
    }
}

impl<L: ?Sized> Clone for Forward<L> {
    fn clone(&self) -> Self {
        Forward {
            name: self.name.clone(),
            listener: Arc::clone(&self.listener),
        }
    }
}

impl<L: ?Sized> fmt::Debug for Forward<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forward")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

macro_rules! forward_layer {
    ($event:ty, $variant:ident) => {
        impl<L> Listener<$event> for Forward<L>
        where
            L: ?Sized + for<'a> Listener<Event<'a>>,
        {
            #[inline]
            fn on_event(&self, event: &$event) {
                self.listener.on_event(&Event::$variant {
                    name: self.name.as_deref(),
                    event,
                });
            }
        }
    };
}

forward_layer!(RetryEvent, Retry);
forward_layer!(BreakerEvent, Breaker);
forward_layer!(RateLimitEvent, RateLimit);
forward_layer!(CacheEvent, Cache);

/// A stream's offsets travel as [`OffsetRef`](crate::stream::OffsetRef)s (see [`Event::Stream`]), borrowed from the
/// stream's event: still nothing cloned or allocated.
impl<L, O> Listener<StreamEvent<O>> for Forward<L>
where
    L: ?Sized + for<'a> Listener<Event<'a>>,
    O: Offset,
{
    #[inline]
    fn on_event(&self, event: &StreamEvent<O>) {
        self.listener.on_event(&Event::Stream {
            name: self.name.as_deref(),
            event: &event.erased(),
        });
    }
}
