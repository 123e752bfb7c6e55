//! The stacked service: the layers' nested errors flattened into one [`StackError`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::StackError;
use crate::breaker::BreakerError;
use crate::bulkhead::BulkheadError;
use crate::classify::Classify;
use crate::engine::Progress;
use crate::ratelimit::RateLimitedError;
use crate::retry::RetryError;
use crate::timeout::TimeoutError;

/// The error every layer of a stack nests around the client's error `E`.
pub(super) type Nested<E> =
    TimeoutError<RetryError<BreakerError<RateLimitedError<BulkheadError<TimeoutError<E>>>>>>;

/// The default response mode: every response comes back as `Ok`, whatever its class, as from
/// `tower::retry`; only errors become a [`StackError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AsOk;

/// The response mode of [`StackBuilder::responses_as_errors`](super::StackBuilder::responses_as_errors):
/// a response the stack gave up on comes back as a [`StackError`] holding it.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsErrors;

/// A client behind a [stack](super), with its errors flattened into [`StackError`].
///
/// `M` is the response mode, [`AsOk`] or [`AsErrors`].
#[derive(Debug, Clone)]
pub struct StackService<S, C, M = AsOk> {
    inner: S,
    classifier: C,
    mode: M,
}

impl<S, C, M> StackService<S, C, M> {
    pub(super) fn new(inner: S, classifier: C, mode: M) -> Self {
        StackService {
            inner,
            classifier,
            mode,
        }
    }

    /// The composed layers.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, C, Req, E> Service<Req> for StackService<S, C, AsOk>
where
    S: Service<Req, Error = Nested<E>>,
{
    type Response = S::Response;
    type Error = StackError<E>;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(StackError::flatten)
    }

    #[inline]
    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            mode: AsOk,
        }
    }
}

impl<S, C, Req, E> Service<Req> for StackService<S, C, AsErrors>
where
    S: Service<Req, Error = Nested<E>>,
    S::Future: Progress,
    C: Classify<S::Response, E> + Clone,
{
    type Response = S::Response;
    type Error = StackError<E, S::Response>;
    type Future = ResponseFuture<S::Future, Classifying<C>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| StackError::flatten(e).with_response_type())
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let _ = &self.mode;
        ResponseFuture {
            inner: self.inner.call(req),
            mode: Classifying(self.classifier.clone()),
        }
    }
}

/// What a [`ResponseFuture`] of a stack returning failing responses as errors carries: the
/// stack's classifier, to judge the last response.
#[derive(Debug, Clone)]
pub struct Classifying<C>(C);

pin_project! {
    /// The response future of [`StackService`]. `M` is [`AsOk`] when responses come back as
    /// they are, and [`Classifying`] when failing ones come back as errors.
    pub struct ResponseFuture<F, M = AsOk> {
        #[pin]
        inner: F,
        mode: M,
    }
}

impl<F, T, E> Future for ResponseFuture<F, AsOk>
where
    F: Future<Output = Result<T, Nested<E>>>,
{
    type Output = Result<T, StackError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(ready!(self.project().inner.poll(cx)).map_err(StackError::flatten))
    }
}

impl<F, T, E, C> Future for ResponseFuture<F, Classifying<C>>
where
    F: Future<Output = Result<T, Nested<E>>> + Progress,
    C: Classify<T, E>,
{
    type Output = Result<T, StackError<E, T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        match ready!(this.inner.as_mut().poll(cx)) {
            Ok(response) => {
                let class = this.mode.0.classify(Ok(&response));
                if class.is_success() {
                    Poll::Ready(Ok(response))
                } else {
                    let (attempts, gave_up) = (this.inner.attempts(), this.inner.gave_up());
                    Poll::Ready(Err(StackError::response(
                        response, class, attempts, gave_up,
                    )))
                }
            }
            Err(e) => Poll::Ready(Err(StackError::flatten(e).with_response_type())),
        }
    }
}
