//! Hooks for watching the layers work.
//!
//! Every layer emits its events through `tracing` and, when you give it one, a [`Listener`]:
//! feed your metrics from it, or assert on it in tests.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use riprap::events::Listener;
//!
//! #[derive(Debug)]
//! enum Ping { Hello }
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! let listener = move |e: &Ping| sink.lock().unwrap().push(format!("{e:?}"));
//! listener.on_event(&Ping::Hello);
//! assert_eq!(seen.lock().unwrap().as_slice(), ["Hello"]);
//! ```

use std::sync::Arc;

/// Receives a layer's events. Implemented for every `Fn(&E) + Send + Sync`.
///
/// Called inline on the request path: keep it cheap (increment a counter, push to a channel).
pub trait Listener<E>: Send + Sync + 'static {
    /// One event happened.
    fn on_event(&self, event: &E);
}

impl<E, F> Listener<E> for F
where
    F: Fn(&E) + Send + Sync + 'static,
{
    fn on_event(&self, event: &E) {
        self(event)
    }
}

/// A shared, type-erased listener, as layers store them.
pub type SharedListener<E> = Arc<dyn Listener<E>>;
