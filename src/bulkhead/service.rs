//! [`BulkheadService`]: the service [`BulkheadLayer`](super::BulkheadLayer) builds.

use std::task::{Context, Poll};

use tower_service::Service;

use super::config::Priority;
use super::error::{BulkheadError, Rejected};
use super::future::ResponseFuture;
use super::handle::Bulkhead;
use super::layer::{Prioritize, SelectBulkhead};
use super::state::Permit;
use crate::classify::{ByError, Classify};

/// A service behind a bulkhead; see the [module guide](super).
///
/// # Readiness
///
/// `poll_ready` polls the inner service. The permit is taken in `call`, where the request
/// (and so its priority and key) is known: a free permit is taken without a lock and the
/// inner service called at once; otherwise the call waits in the queue with the readied
/// inner service, leaving a clone in its place (the way `tower::buffer` and retry layers
/// do), and drives it to readiness again once admitted. A full bulkhead refuses in `call`
/// without touching the inner service.
#[derive(Debug, Clone)]
pub struct BulkheadService<S, L = Bulkhead, P = Priority, C = ByError> {
    inner: S,
    select: L,
    priority: P,
    classifier: C,
}

impl<S, L, P, C> BulkheadService<S, L, P, C> {
    /// Wrap `inner`; prefer [`BulkheadLayer`](super::BulkheadLayer).
    pub fn new(inner: S, select: L, priority: P, classifier: C) -> Self {
        BulkheadService {
            inner,
            select,
            priority,
            classifier,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, L, P, C, Req> Service<Req> for BulkheadService<S, L, P, C>
where
    S: Service<Req> + Clone,
    L: SelectBulkhead<Req>,
    P: Prioritize<Req>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BulkheadError<S::Error>;
    type Future = ResponseFuture<S, Req, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(BulkheadError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let bulkhead = self.select.select(&request);
        let classifier = self.classifier.clone();
        if let Some(n) = bulkhead.core.try_acquire() {
            let permit = Permit::new(bulkhead.core, n);
            return ResponseFuture::called(self.inner.call(request), permit, classifier);
        }
        if bulkhead.core.settings.max_queue == 0 {
            // Nobody ever waits here: the permits are all taken.
            return ResponseFuture::refused(bulkhead.core.refuse(Rejected::Full), classifier);
        }
        let priority = self.priority.priority(&request);
        // The readied service goes with the call; its clone stays for the next one.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::waiting(bulkhead.into_acquire(priority), ready, request, classifier)
    }
}
