//! The tower `Service`.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::error::{BreakerError, Rejected};
use super::future::ResponseFuture;
use super::handle::CircuitBreaker;
use super::policy::{ConsecutiveFailures, TripPolicy};
use super::state::{Holder, Shared, Ticket};
use crate::classify::{ByError, Classify};

/// What a response future needs at completion, shared by every clone of one service.
pub(crate) struct Handle<P, C> {
    pub(crate) breaker: CircuitBreaker<P>,
    pub(crate) classifier: C,
}

impl<P: TripPolicy, C> Holder for Arc<Handle<P, C>> {
    type Policy = P;
    fn shared(&self) -> &Shared<P> {
        &self.breaker.shared
    }
}

/// A service behind a circuit breaker; see the [module guide](super).
///
/// # `poll_ready`
///
/// While the breaker is open (or isolated), `poll_ready` answers `Ready` at once without
/// polling the inner service, and the next `call` fails fast: a dead dependency's
/// backpressure (a pool waiting for a connection that will never come) must not hold callers
/// up. Otherwise it polls the inner service. No permit is taken in `poll_ready`, so a caller
/// that never calls leaks nothing; the admission decision (and any half-open permit) is made
/// in `call`, and a call refused there leaves the inner service's readiness reserved for the
/// next call, as tower allows.
///
/// Cloning is a reference-count increment; every clone shares the breaker.
pub struct CircuitBreakerService<S, P = ConsecutiveFailures, C = ByError> {
    inner: S,
    handle: Arc<Handle<P, C>>,
    refuse: Option<Rejected>,
    /// Calls made through a handle shared with other clones; see [`PRIVATE_AFTER`].
    shared_calls: u32,
}

/// A clone that has made this many calls takes a handle of its own.
///
/// Every call's future holds a reference to the handle. Clones made per request (as retry
/// layers make them) should share one and cost no allocation; a long-lived clone per worker
/// thread should not bounce one reference count between cores on every call. A clone that
/// proves long-lived gets its own handle, one allocation for its lifetime.
const PRIVATE_AFTER: u32 = 16;

impl<S, P: TripPolicy, C> CircuitBreakerService<S, P, C> {
    /// Put `inner` behind `breaker`, classifying outcomes with `classifier`.
    pub fn new(inner: S, breaker: CircuitBreaker<P>, classifier: C) -> Self {
        CircuitBreakerService {
            inner,
            handle: Arc::new(Handle {
                breaker,
                classifier,
            }),
            refuse: None,
            // The service `new` builds owns its handle already.
            shared_calls: PRIVATE_AFTER,
        }
    }

    /// The breaker, for manual control and metrics.
    pub fn breaker(&self) -> &CircuitBreaker<P> {
        &self.handle.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Clones share one handle: `tower::retry` and riprap's retry clone their inner service on
/// every request, so a clone must cost a reference count, not an allocation.
impl<S: Clone, P, C> Clone for CircuitBreakerService<S, P, C> {
    fn clone(&self) -> Self {
        CircuitBreakerService {
            inner: self.inner.clone(),
            handle: Arc::clone(&self.handle),
            refuse: None,
            shared_calls: 0,
        }
    }
}

impl<S: std::fmt::Debug, P, C> std::fmt::Debug for CircuitBreakerService<S, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("breaker", &self.handle.breaker)
            .finish_non_exhaustive()
    }
}

impl<S, P, C, Req> Service<Req> for CircuitBreakerService<S, P, C>
where
    S: Service<Req>,
    P: TripPolicy,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = BreakerError<S::Error>;
    type Future = ResponseFuture<S::Future, P, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let shared = &self.handle.breaker.shared;
        if let Some(why) = shared.would_reject() {
            self.refuse = Some(why);
            return Poll::Ready(Ok(()));
        }
        self.refuse = None;
        self.inner.poll_ready(cx).map_err(BreakerError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let shared = &self.handle.breaker.shared;
        if let Some(decided) = self.refuse.take() {
            // The inner service was not polled ready, so it must not be called.
            return ResponseFuture::rejected(shared.reject_now(decided));
        }
        match shared.admit() {
            Ok(adm) => {
                if self.shared_calls < PRIVATE_AFTER {
                    self.shared_calls += 1;
                    if self.shared_calls == PRIVATE_AFTER {
                        self.handle = Arc::new(Handle {
                            breaker: self.handle.breaker.clone(),
                            classifier: self.handle.classifier.clone(),
                        });
                    }
                }
                let ticket = Ticket::new(Arc::clone(&self.handle), adm);
                ResponseFuture::called(self.inner.call(req), ticket)
            }
            Err(why) => ResponseFuture::rejected(why),
        }
    }
}
