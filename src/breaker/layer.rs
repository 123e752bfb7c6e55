//! The tower `Layer`.

use tower_layer::Layer;

use super::handle::CircuitBreaker;
use super::policy::{ConsecutiveFailures, TripPolicy};
use super::service::CircuitBreakerService;
use crate::classify::ByError;

/// Wraps services in a [`CircuitBreakerService`] sharing one breaker.
///
/// ```
/// use riprap::breaker::{CircuitBreaker, CircuitBreakerLayer};
/// use riprap::classify::ByError;
/// use tower::ServiceBuilder;
///
/// let breaker = CircuitBreaker::builder().name("search").build()?;
/// let svc = ServiceBuilder::new()
///     .layer(CircuitBreakerLayer::new(breaker.clone()).classifier(ByError))
///     .service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) });
/// # drop(svc);
/// // Later, from an admin endpoint:
/// breaker.force_open();
/// # Ok::<(), riprap::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<P = ConsecutiveFailures, C = ByError> {
    breaker: CircuitBreaker<P>,
    classifier: C,
}

impl<P: TripPolicy> CircuitBreakerLayer<P, ByError> {
    /// A layer for `breaker`, classifying outcomes with [`ByError`] (riprap's one default,
    /// the same as every other layer's) until you set a classifier with
    /// [`classifier`](Self::classifier).
    pub fn new(breaker: CircuitBreaker<P>) -> Self {
        CircuitBreakerLayer {
            breaker,
            classifier: ByError,
        }
    }
}

impl<P: TripPolicy, C> CircuitBreakerLayer<P, C> {
    /// Classify outcomes with `classifier`, the same policy the rest of the stack uses.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<P, C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The breaker, for manual control and metrics.
    pub fn breaker(&self) -> &CircuitBreaker<P> {
        &self.breaker
    }
}

impl<S, P: TripPolicy, C: Clone> Layer<S> for CircuitBreakerLayer<P, C> {
    type Service = CircuitBreakerService<S, P, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, self.breaker.clone(), self.classifier.clone())
    }
}
