//! The retry [`Layer`].

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;
use tower_service::Service;

use super::{Retry, RetryConfig, Shared};
use crate::backoff::MakeBackoff;
use crate::budget::Budget;
use crate::classify::Classify;
use crate::request::CloneRequest;

/// Wraps services in [`Retry`]. Build one with [`RetryLayer::builder`] or a preset such as
/// [`RetryConfig::llm_api`]; every service it wraps shares its policies and budget.
///
/// ```
/// use riprap::retry::RetryLayer;
/// use tower::{Service, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = RetryLayer::builder().max_attempts(2).build()?;
/// let mut svc = layer.layer(service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n * 2) }));
/// assert_eq!(svc.ready().await?.call(21).await?, 42);
/// # Ok(()) }
/// ```
///
/// It is also a tower [`Layer`] for `ServiceBuilder`; its own [`layer`](RetryLayer::layer)
/// method checks the policies against the service first, so a misfit is named where it is
/// made rather than at the first call.
pub struct RetryLayer<C, P, B, R> {
    shared: Arc<Shared<C, P, B, R>>,
}

impl RetryLayer<(), (), (), ()> {
    /// A [`RetryConfig`] with the defaults, to build a layer from.
    pub fn builder() -> RetryConfig {
        RetryConfig::new()
    }
}

impl<C, P, B, R> RetryLayer<C, P, B, R> {
    pub(crate) fn from_shared(shared: Arc<Shared<C, P, B, R>>) -> Self {
        RetryLayer { shared }
    }

    /// The budget every wrapped service draws on.
    pub fn budget(&self) -> &B {
        &self.shared.rules.budget
    }

    /// Wrap `inner`, as [`Layer::layer`] does, checking first that the policies fit it: the
    /// classifier its responses and errors, the copy policy its requests. A misfit is
    /// reported here, naming the policy and the fix (an error type that is not
    /// [`Classified`](crate::classify::Classified), a request that is not `Clone`), rather
    /// than as an unsatisfied bound on the wrapped service's type at its first call.
    pub fn layer<S, Req>(&self, inner: S) -> Retry<S, C, P, B, R>
    where
        S: Service<Req> + Clone,
        C: Classify<S::Response, S::Error>,
        P: MakeBackoff,
        B: Budget + Clone,
        R: CloneRequest<Req>,
    {
        Retry::from_shared(inner, Arc::clone(&self.shared))
    }
}

impl<C, P, B, R> Clone for RetryLayer<C, P, B, R> {
    fn clone(&self) -> Self {
        RetryLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C, P, B, R> fmt::Debug for RetryLayer<C, P, B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_attempts", &self.shared.rules.max_attempts)
            .field("deadline", &self.shared.rules.deadline)
            .field("max_retry_after", &self.shared.rules.max_retry_after)
            .finish_non_exhaustive()
    }
}

impl<S: Clone, C, P, B, R> Layer<S> for RetryLayer<C, P, B, R> {
    type Service = Retry<S, C, P, B, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_shared(inner, Arc::clone(&self.shared))
    }
}
