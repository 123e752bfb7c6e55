//! [`Hedge`]: the service [`HedgeLayer`](super::HedgeLayer) builds.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::config::Shared;
use super::future::ResponseFuture;
use crate::budget::{Budget, RatioBudget};
use crate::classify::{ByError, Classify};
use crate::request::{ByClone, CloneRequest};

/// A service whose calls are hedged; see the [module guide](super).
///
/// `poll_ready` polls the inner service, and `call` sends the original request at once.
/// Each hedge is sent through a clone of the inner service, driven to readiness first, so a
/// hedge waiting for a connection or a permit is not yet sent (and is refunded if the
/// request is answered meanwhile). A request the copy policy declines is sent once, with no
/// timer and no clone of the service.
pub struct Hedge<S, C = ByError, R = ByClone, B = RatioBudget> {
    inner: S,
    shared: Arc<Shared<C, R, B>>,
}

impl<S, C, R, B> Hedge<S, C, R, B> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<C, R, B>>) -> Self {
        Hedge { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, C, R, B> Clone for Hedge<S, C, R, B> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: std::fmt::Debug, C, R, B> std::fmt::Debug for Hedge<S, C, R, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, C, R, B, Req> Service<Req> for Hedge<S, C, R, B>
where
    S: Service<Req> + Clone,
    C: Classify<S::Response, S::Error>,
    R: CloneRequest<Req>,
    B: Budget + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, Req, C, R, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        if self.shared.deposits {
            self.shared.budget.deposit();
        }
        // The copy is made before the original is sent, which consumes it.
        let copy = self.shared.copy.clone_request(&request);
        let fut = self.inner.call(request);
        let hedging = copy.map(|copy| (self.inner.clone(), copy));
        ResponseFuture::new(fut, hedging, Arc::clone(&self.shared))
    }
}
