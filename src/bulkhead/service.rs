//! [`BulkheadService`]: the service [`BulkheadLayer`](super::BulkheadLayer) builds.

use std::task::{Context, Poll};

use tower_service::Service;

use super::config::Priority;
use super::error::{BulkheadError, Rejected};
use super::future::ResponseFuture;
use super::handle::Bulkhead;
use super::layer::{Prioritize, SelectBulkhead};
use super::state::{Owner, Permit, Private};
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
///
/// # Cost
///
/// Every call's permit holds a reference to the bulkhead. Clones made per request (as retry
/// layers make them) share the bulkhead's reference count; a clone that proves long-lived
/// (a worker's own) takes a handle of its own after a few calls, one allocation for its
/// lifetime, so that threads calling through their own clones do not bounce one reference
/// count between cores on every call.
pub struct BulkheadService<S, L = Bulkhead, P = Priority, C = ByError> {
    inner: S,
    select: L,
    priority: P,
    classifier: C,
    private: Option<std::sync::Arc<Private>>,
    /// Calls made through the shared reference count; see [`PRIVATE_AFTER`].
    shared_calls: u32,
}

/// A clone that has made this many calls takes a handle of its own.
const PRIVATE_AFTER: u32 = 16;

impl<S: Clone, L: Clone, P: Clone, C: Clone> Clone for BulkheadService<S, L, P, C> {
    fn clone(&self) -> Self {
        // A clone starts on the shared handle: if it is made per request, it never needs one
        // of its own.
        BulkheadService {
            inner: self.inner.clone(),
            select: self.select.clone(),
            priority: self.priority.clone(),
            classifier: self.classifier.clone(),
            private: None,
            shared_calls: 0,
        }
    }
}

impl<S: std::fmt::Debug, L: std::fmt::Debug, P, C> std::fmt::Debug for BulkheadService<S, L, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkheadService")
            .field("inner", &self.inner)
            .field("select", &self.select)
            .finish_non_exhaustive()
    }
}

impl<S, L, P, C> BulkheadService<S, L, P, C> {
    /// Wrap `inner`; prefer [`BulkheadLayer`](super::BulkheadLayer).
    pub fn new(inner: S, select: L, priority: P, classifier: C) -> Self {
        BulkheadService {
            inner,
            select,
            priority,
            classifier,
            private: None,
            shared_calls: 0,
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
        // The path every call takes while a permit is free is kept small enough to inline
        // into the caller, so the future is built in place rather than copied out.
        if let Some(only) = self.select.only() {
            let Some(core) = &only.core else {
                // Unlimited: straight through.
                let fut = self.inner.call(request);
                return ResponseFuture::unlimited(fut, self.classifier.clone());
            };
            if core.try_acquire() {
                let owner = match &self.private {
                    Some(p) => Owner::Private(std::sync::Arc::clone(p)),
                    None => shared_owner(&mut self.private, &mut self.shared_calls, core),
                };
                let permit = Permit::held_by(owner);
                let fut = self.inner.call(request);
                return ResponseFuture::called(fut, permit, self.classifier.clone());
            }
        }
        self.call_slow(request)
    }
}

/// The owner of a permit taken through the shared handle, counting the calls that took one
/// so that a long-lived clone moves to a handle of its own.
#[cold]
fn shared_owner(
    private: &mut Option<std::sync::Arc<Private>>,
    calls: &mut u32,
    core: &crate::sync::Arc<super::state::Core>,
) -> Owner {
    *calls += 1;
    if *calls >= PRIVATE_AFTER {
        *private = Some(std::sync::Arc::new(Private { core: core.clone() }));
    }
    Owner::Shared(core.clone())
}

impl<S, L, P, C> BulkheadService<S, L, P, C> {
    /// Every call that does not find a free permit on the one bulkhead: a keyed bulkhead, a
    /// full one, one with a queue.
    #[inline(never)]
    fn call_slow<Req>(&mut self, request: Req) -> ResponseFuture<S, Req, C>
    where
        S: Service<Req> + Clone,
        L: SelectBulkhead<Req>,
        P: Prioritize<Req>,
        C: Clone,
    {
        let bulkhead = self.select.select(&request);
        let classifier = self.classifier.clone();
        let Some(core) = &bulkhead.core else {
            return ResponseFuture::unlimited(self.inner.call(request), classifier);
        };
        if core.try_acquire() {
            let permit = Permit::new(core.clone());
            return ResponseFuture::called(self.inner.call(request), permit, classifier);
        }
        if core.settings.max_queue == 0 {
            // Nobody ever waits here: the permits are all taken.
            return ResponseFuture::refused(core.refuse(Rejected::Full), classifier);
        }
        let priority = self.priority.priority(&request);
        // The readied service goes with the call; its clone stays for the next one.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::waiting(bulkhead.into_acquire(priority), ready, request, classifier)
    }
}
