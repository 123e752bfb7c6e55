//! The one event type every listener hears, and what a layer's event must say about itself.

use std::any::Any;
use std::fmt;

use super::Measure;

/// What every layer's event type says about itself, so that one [`Listener`](super::Listener),
/// one metrics exporter and one log scheme serve every layer without knowing any of them.
///
/// Each layer implements it for its own event type, next to the type: adding an event or a
/// layer touches that layer's folder and nothing here.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a layer's event",
    note = "implement `riprap::events::LayerEvent` for it (layer, kind, the metrics it feeds, `as_any`)"
)]
pub trait LayerEvent: fmt::Debug + Send + Sync + 'static {
    /// Which layer it came from, as the last segment of its `tracing` target: `"retry"`,
    /// `"breaker"`, `"ratelimit"`, `"cache"`, `"stream"`, ...
    fn layer(&self) -> &'static str;

    /// What happened, in snake case: `"attempt"`, `"transition"`, `"gate_closed"`, ...
    fn kind(&self) -> &'static str;

    /// Feed the metrics this event counts into `into`. The default feeds none.
    fn measure(&self, into: &dyn Measure) {
        let _ = into;
    }

    /// The event as [`Any`], so [`Event::downcast_ref`] can give it back typed.
    fn as_any(&self) -> &dyn Any;
}

/// One thing a layer did, as a [`Listener`](super::Listener) hears it: the layer's own event,
/// borrowed, and the name of the [`Named`](super::Named) listener that delivered it, if any.
///
/// Building one is two pointer writes: listeners run inline on the request path, and nothing
/// is cloned or allocated on the way to them. Get the layer's event back, typed, with
/// [`downcast_ref`](Self::downcast_ref).
///
/// ```
/// use riprap::events::Event;
/// use riprap::retry::{GiveUp, RetryEvent};
///
/// let gave_up = RetryEvent::GaveUp { attempts: 3, reason: GiveUp::AttemptsExhausted };
/// let event = Event::new(&gave_up);
/// assert_eq!((event.layer(), event.kind(), event.name()), ("retry", "gave_up", None));
///
/// if let Some(RetryEvent::GaveUp { reason, .. }) = event.downcast_ref() {
///     assert_eq!(reason.as_str(), "attempts_exhausted");
/// }
/// ```
#[derive(Clone, Copy)]
pub struct Event<'a> {
    name: Option<&'a str>,
    event: &'a dyn LayerEvent,
}

impl<'a> Event<'a> {
    /// An event carrying `event`, with no name.
    #[inline]
    pub fn new(event: &'a dyn LayerEvent) -> Self {
        Event { name: None, event }
    }

    /// The same event, tagged with `name`.
    #[inline]
    pub fn with_name(self, name: &'a str) -> Self {
        Event {
            name: Some(name),
            event: self.event,
        }
    }

    /// The name of the [`Named`](super::Named) listener that delivered it, if any: one
    /// listener can tell two stacks apart by it.
    pub fn name(&self) -> Option<&'a str> {
        self.name
    }

    /// Which layer it came from; see [`LayerEvent::layer`].
    pub fn layer(&self) -> &'static str {
        self.event.layer()
    }

    /// What happened; see [`LayerEvent::kind`].
    pub fn kind(&self) -> &'static str {
        self.event.kind()
    }

    /// The layer's own event, if it is an `E`.
    ///
    /// ```
    /// use riprap::breaker::{BreakerEvent, Rejected};
    /// use riprap::events::Event;
    /// use riprap::retry::RetryEvent;
    ///
    /// let rejected = BreakerEvent::Rejected { name: None, rejected: Rejected::Isolated };
    /// let event = Event::new(&rejected);
    /// assert!(event.downcast_ref::<RetryEvent>().is_none());
    /// assert!(event.downcast_ref::<BreakerEvent>().is_some());
    /// ```
    pub fn downcast_ref<E: LayerEvent>(&self) -> Option<&'a E> {
        self.event.as_any().downcast_ref()
    }

    /// The layer's own event, untyped.
    pub fn get(&self) -> &'a dyn LayerEvent {
        self.event
    }

    /// Feed this event's metrics into `into`; see [`LayerEvent::measure`].
    pub fn measure(&self, into: &dyn Measure) {
        self.event.measure(into)
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("name", &self.name)
            .field("event", &self.event)
            .finish()
    }
}
