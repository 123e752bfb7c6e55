use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::StackError;
use crate::breaker::BreakerError;
use crate::bulkhead::BulkheadError;
use crate::ratelimit::RateLimitedError;
use crate::retry::RetryError;
use crate::timeout::TimeoutError;

/// The error every layer of a stack nests around the client's error `E`.
pub(super) type Nested<E> =
    TimeoutError<RetryError<BreakerError<RateLimitedError<BulkheadError<TimeoutError<E>>>>>>;

/// A client behind a [stack](super), with its errors flattened into [`StackError`].
#[derive(Debug, Clone)]
pub struct StackService<S> {
    inner: S,
}

impl<S> StackService<S> {
    pub(super) fn new(inner: S) -> Self {
        StackService { inner }
    }

    /// The composed layers.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, Req, E> Service<Req> for StackService<S>
where
    S: Service<Req, Error = Nested<E>>,
{
    type Response = S::Response;
    type Error = StackError<E>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(StackError::flatten)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`StackService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, Nested<E>>>,
{
    type Output = Result<T, StackError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(ready!(self.project().inner.poll(cx)).map_err(StackError::flatten))
    }
}
