//! [`FallbackLayer`]: send failed requests to another service.

use std::sync::Arc;

use tower_layer::Layer;

use super::events::FallbackEvent;
use super::service::Fallback;
use super::when::FallbackOn;
use crate::classify::ByError;
use crate::events::{Listener, SharedListener};
use crate::request::ByClone;

/// The settings every clone of one layer shares.
pub(crate) struct Settings {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) listener: Option<SharedListener>,
}

impl Settings {
    pub(crate) fn emit(&self, event: FallbackEvent) {
        super::events::trace(&event);
        if let Some(l) = &self.listener {
            l.on_event(&crate::events::Event::new(&event));
        }
    }
}

/// Wraps a primary service so that a request it fails with a chosen class of failure goes to
/// `fallback` instead; see the [module guide](super).
///
/// ```
/// use riprap::classify::Class;
/// use riprap::fallback::{FallbackLayer, FallbackOn};
/// use tower::{Layer, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let primary = service_fn(|_: String| async {
///     Err::<&str, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
/// });
/// let secondary = service_fn(|_: String| async { Ok::<_, std::io::Error>("from the fallback") });
///
/// let svc = FallbackLayer::new(secondary)
///     .on(FallbackOn::failures())
///     .name("secondary")
///     .layer(primary);
/// assert_eq!(svc.oneshot("prompt".to_string()).await?, "from the fallback");
/// # Ok(()) }
/// ```
pub struct FallbackLayer<F, C = ByError, R = ByClone, W = FallbackOn> {
    fallback: F,
    classifier: C,
    copy: R,
    when: W,
    settings: Arc<Settings>,
}

impl<F> FallbackLayer<F> {
    /// Fall back to `fallback` on any failure another try may fix ([`FallbackOn::failures`]),
    /// classifying the primary's outcomes with [`ByError`] and copying requests with `Clone`.
    pub fn new(fallback: F) -> Self {
        FallbackLayer {
            fallback,
            classifier: ByError,
            copy: ByClone,
            when: FallbackOn::failures(),
            settings: Arc::new(Settings {
                name: None,
                listener: None,
            }),
        }
    }
}

impl<F, C, R, W> FallbackLayer<F, C, R, W> {
    /// The classifier that judges the primary's outcomes (an HTTP 503 may arrive as
    /// `Ok(response)`).
    pub fn classifier<C2>(self, classifier: C2) -> FallbackLayer<F, C2, R, W> {
        FallbackLayer {
            fallback: self.fallback,
            classifier,
            copy: self.copy,
            when: self.when,
            settings: self.settings,
        }
    }

    /// Which of the primary's failures go to the fallback: a [`FallbackOn`] set, or any
    /// `Fn(&Class) -> bool`.
    pub fn on<W2>(self, when: W2) -> FallbackLayer<F, C, R, W2> {
        FallbackLayer {
            fallback: self.fallback,
            classifier: self.classifier,
            copy: self.copy,
            when,
            settings: self.settings,
        }
    }

    /// How the request is copied for the fallback (the primary consumes the original): the
    /// copy is made before the primary is called, and a request the policy declines is not
    /// sent to the fallback.
    pub fn clone_requests<R2>(self, copy: R2) -> FallbackLayer<F, C, R2, W> {
        FallbackLayer {
            fallback: self.fallback,
            classifier: self.classifier,
            copy,
            when: self.when,
            settings: self.settings,
        }
    }

    /// The fallback's name, in events and logs (a provider, a model, a region).
    pub fn name(self, name: impl Into<Arc<str>>) -> Self {
        let listener = self.settings.listener.clone();
        FallbackLayer {
            settings: Arc::new(Settings {
                name: Some(name.into()),
                listener,
            }),
            ..self
        }
    }

    /// Report each fallback, and each fallback that failed too, to `listener`.
    pub fn listener(self, listener: impl Listener) -> Self {
        let name = self.settings.name.clone();
        FallbackLayer {
            settings: Arc::new(Settings {
                name,
                listener: Some(Arc::new(listener)),
            }),
            ..self
        }
    }
}

impl<F: Clone, C: Clone, R: Clone, W: Clone> Clone for FallbackLayer<F, C, R, W> {
    fn clone(&self) -> Self {
        FallbackLayer {
            fallback: self.fallback.clone(),
            classifier: self.classifier.clone(),
            copy: self.copy.clone(),
            when: self.when.clone(),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<F, C, R, W> std::fmt::Debug for FallbackLayer<F, C, R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackLayer")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

impl<S, F: Clone, C: Clone, R: Clone, W: Clone> Layer<S> for FallbackLayer<F, C, R, W> {
    type Service = Fallback<S, F, C, R, W>;

    fn layer(&self, primary: S) -> Self::Service {
        Fallback::new(
            primary,
            self.fallback.clone(),
            self.classifier.clone(),
            self.copy.clone(),
            self.when.clone(),
            Arc::clone(&self.settings),
        )
    }
}
