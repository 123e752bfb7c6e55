//! [`RateLimit`]: the service [`RateLimitLayer`](super::RateLimitLayer) builds.

use std::task::{Context, Poll};

use tower_service::Service;

use super::error::RateLimitedError;
use super::{Cost, ReadSignal, ResponseFuture, SelectLimiter};
use crate::classify::Classify;

/// Waits for the limiter's capacity before calling the inner service, then tells the limiter
/// how the call went. Built by [`RateLimitLayer`](super::RateLimitLayer).
///
/// Readiness: `poll_ready` is always ready. Each call waits for capacity first and only then
/// drives a clone of the inner service to readiness, so a request parked on the rate limit
/// holds nothing of the inner service (no connection, no concurrency permit) while it waits.
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

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let limiter = self.limiters.select(&request);
        let acquire = limiter.acquire(self.cost.cost(&request));
        ResponseFuture::new(
            acquire,
            self.inner.clone(),
            request,
            limiter,
            self.classifier.clone(),
            self.signal.clone(),
        )
    }
}
