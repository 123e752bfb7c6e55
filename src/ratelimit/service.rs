//! [`RateLimit`]: the service [`RateLimitLayer`](super::RateLimitLayer) builds.

use std::ops::Deref;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::error::RateLimitedError;
use super::{Cost, RateLimiter, ReadSignal, ResponseFuture, SelectLimiter};
use crate::classify::Classify;

/// Waits for the limiter's capacity before calling the inner service, then tells the limiter
/// how the call went. Built by [`RateLimitLayer`](super::RateLimitLayer).
///
/// Readiness: `poll_ready` is the inner service's. A request the limiter admits at once goes
/// straight to that ready service. A request that must wait parks on a clone of the inner
/// service that is not made ready until the request is admitted, so a parked request holds
/// nothing of the inner service (no connection, no concurrency permit) while it waits; the
/// ready service stays reserved for the next call.
///
/// A call's future holds the limiter until the response has been seen. Over one shared
/// limiter, a long-lived service (a worker's own clone) takes a handle of its own after a few
/// calls, one allocation for its lifetime, so that threads calling through their own clones
/// do not bounce the limiter's reference count between cores on every call.
#[derive(Debug)]
pub struct RateLimit<S, L, W, C, R> {
    inner: S,
    limiters: L,
    cost: W,
    classifier: C,
    signal: R,
    private: Option<Arc<RateLimiter>>,
    /// Calls made through the shared reference count; see [`PRIVATE_AFTER`].
    shared_calls: u32,
}

/// A service that has made this many calls takes a handle of its own on its limiter.
const PRIVATE_AFTER: u32 = 16;

impl<S: Clone, L: Clone, W: Clone, C: Clone, R: Clone> Clone for RateLimit<S, L, W, C, R> {
    fn clone(&self) -> Self {
        // A clone starts on the shared handle: one made per request never needs its own.
        RateLimit {
            inner: self.inner.clone(),
            limiters: self.limiters.clone(),
            cost: self.cost.clone(),
            classifier: self.classifier.clone(),
            signal: self.signal.clone(),
            private: None,
            shared_calls: 0,
        }
    }
}

/// The limiter a call's future holds: the shared handle, or the service's own.
#[derive(Debug)]
pub(crate) enum Handle {
    Shared(RateLimiter),
    Private(Arc<RateLimiter>),
}

impl Deref for Handle {
    type Target = RateLimiter;

    #[inline]
    fn deref(&self) -> &RateLimiter {
        match self {
            Handle::Shared(l) => l,
            Handle::Private(l) => l,
        }
    }
}

/// A handle on `only` for one call, taking the service's own once it has made enough calls.
#[inline]
fn handle(only: &RateLimiter, private: &mut Option<Arc<RateLimiter>>, calls: &mut u32) -> Handle {
    if let Some(own) = private {
        return Handle::Private(Arc::clone(own));
    }
    *calls += 1;
    if *calls >= PRIVATE_AFTER {
        let own = Arc::new(only.clone());
        *private = Some(Arc::clone(&own));
        return Handle::Private(own);
    }
    Handle::Shared(only.clone())
}

impl<S, L, W, C, R> RateLimit<S, L, W, C, R> {
    /// Wrap `inner`; prefer [`RateLimitLayer`](super::RateLimitLayer).
    pub fn new(inner: S, limiters: L, cost: W, classifier: C, signal: R) -> Self {
        RateLimit {
            inner,
            limiters,
            cost,
            classifier,
            signal,
            private: None,
            shared_calls: 0,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, L, W, C, R, Req> Service<Req> for RateLimit<S, L, W, C, R>
where
    S: Service<Req> + Clone,
    L: SelectLimiter<Req>,
    W: Cost<Req>,
    C: Classify<S::Response, S::Error> + Clone,
    R: ReadSignal<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = RateLimitedError<S::Error>;
    type Future = ResponseFuture<S, Req, C, R>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(RateLimitedError::Inner)
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let limiter = match self.limiters.only() {
            Some(only) => handle(only, &mut self.private, &mut self.shared_calls),
            None => Handle::Shared(self.limiters.select(&request)),
        };
        let mut acquire = limiter.acquire(self.cost.cost(&request));
        let (classifier, signal) = (self.classifier.clone(), self.signal.clone());
        match acquire.take_ready() {
            // Admitted at once: the ready service takes it, nothing is cloned.
            Some(Ok(admitted)) => {
                let fut = self.inner.call(request);
                ResponseFuture::called(fut, admitted, limiter, classifier, signal)
            }
            Some(Err(refused)) => ResponseFuture::refused(refused, limiter, classifier, signal),
            None => ResponseFuture::waiting(
                acquire,
                self.inner.clone(),
                request,
                limiter,
                classifier,
                signal,
            ),
        }
    }
}
