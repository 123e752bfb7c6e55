//! The retry [`Service`].

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::{CloneRequest, GiveUp, ResponseFuture, RetryError, Shared};
use crate::backoff::MakeBackoff;
use crate::budget::Budget;
use crate::classify::Classify;

/// Retries the inner service's failures by its layer's policies; made by
/// [`RetryLayer`](super::RetryLayer).
///
/// Each call is one logical request: a first attempt, then retries while the classifier calls
/// the failure retryable, attempts remain, the deadline allows the wait, the request can be
/// copied and the budget pays. The inner service is cloned per call, as `tower::retry` does,
/// so every retry can wait for it to be ready.
pub struct Retry<S, C, P, B, R> {
    inner: S,
    core: Arc<Core<S, C, P, B, R>>,
}

/// What a service's response futures share: the layer's policies, and a clone of the inner
/// service kept unready, from which a request that fails takes the service its retries go to.
/// The first attempt goes through the caller's ready service, so a request that succeeds at
/// once clones no service.
pub(crate) struct Core<S, C, P, B, R> {
    pub(crate) shared: Arc<Shared<C, P, B, R>>,
    pub(crate) template: S,
}

impl<S: Clone, C, P, B, R> Retry<S, C, P, B, R> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<C, P, B, R>>) -> Self {
        let template = inner.clone();
        Retry {
            inner,
            core: Arc::new(Core { shared, template }),
        }
    }
}

impl<S, C, P, B, R> Retry<S, C, P, B, R> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The budget this service draws on.
    pub fn budget(&self) -> &B {
        &self.core.shared.rules.budget
    }
}

impl<S: Clone, C, P, B, R> Clone for Retry<S, C, P, B, R> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            core: Arc::clone(&self.core),
        }
    }
}

impl<S: fmt::Debug, C, P, B, R> fmt::Debug for Retry<S, C, P, B, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("max_attempts", &self.core.shared.rules.max_attempts)
            .finish_non_exhaustive()
    }
}

impl<S, Req, C, P, B, R> Service<Req> for Retry<S, C, P, B, R>
where
    S: Service<Req> + Clone,
    C: Classify<S::Response, S::Error>,
    P: MakeBackoff,
    B: Budget + Clone,
    R: CloneRequest<Req>,
{
    type Response = S::Response;
    type Error = RetryError<S::Error>;
    type Future = ResponseFuture<S, Req, C, P, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let shared = &self.core.shared;
        self.inner.poll_ready(cx).map_err(|e| {
            let class = shared.classifier.classify(Err(&e));
            RetryError::new(GiveUp::NotReady, 0, e).with_class(class)
        })
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        // The first attempt goes through this ready service; a retry takes its own clone.
        ResponseFuture::start(&mut self.inner, req, Arc::clone(&self.core))
    }
}
