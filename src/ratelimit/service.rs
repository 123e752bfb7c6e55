//! [`RateLimit`]: the service [`RateLimitLayer`](super::RateLimitLayer) builds.

use std::task::{Context, Poll};

use tower_service::Service;

use super::error::RateLimitedError;
use super::{Cost, ReadSignal, ResponseFuture, SelectLimiter};
use crate::classify::Classify;

/// Waits for the limiter's capacity before calling the inner service, then tells the limiter
/// how the call went. Built by [`RateLimitLayer`](super::RateLimitLayer).
///
/// Readiness: `poll_ready` is the inner service's. A request the limiter admits at once goes
/// straight to that ready service. A request that must wait parks on a clone of the inner
/// service that is not made ready until the request is admitted, so a parked request holds
/// nothing of the inner service (no connection, no concurrency permit) while it waits; the
/// ready service stays reserved for the next call.
#[derive(Debug, Clone)]
pub struct RateLimit<S, L, W, C, R> {
    inner: S,
    limiters: L,
    cost: W,
    classifier: C,
    signal: R,
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
        let limiter = self.limiters.select(&request);
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
