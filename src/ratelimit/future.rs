//! [`ResponseFuture`]: wait for capacity, call, report the outcome.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::error::{RateLimitError, RateLimitedError};
use super::service::Handle;
use super::{Acquire, Admission, ReadSignal};
use crate::classify::Classify;

pin_project! {
    /// The future of [`RateLimit`](super::RateLimit): waits for capacity, calls the inner
    /// service, then feeds the outcome's class and header signal back to the limiter.
    ///
    /// Dropped while waiting, it gives up its place and holds nothing.
    pub struct ResponseFuture<S, Req, C, R>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
        limiter: Handle,
        classifier: C,
        signal: R,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        // Admitted at once, and sent through the layer's ready service.
        Called { #[pin] fut: S::Future, admitted: Admission },
        // Refused at once.
        Refused { refused: Option<RateLimitError> },
        // Waiting for capacity, with an unready clone of the inner service.
        Acquiring { acquire: Acquire, call: Option<(S, Req)> },
        // Admitted after a wait: the clone is made ready, then called.
        Calling { #[pin] call: Oneshot<S, Req>, admitted: Admission },
    }
}

impl<S: Service<Req>, Req, C, R> ResponseFuture<S, Req, C, R> {
    pub(crate) fn called(
        fut: S::Future,
        admitted: Admission,
        limiter: Handle,
        classifier: C,
        signal: R,
    ) -> Self {
        ResponseFuture {
            state: State::Called { fut, admitted },
            limiter,
            classifier,
            signal,
        }
    }

    pub(crate) fn refused(
        refused: RateLimitError,
        limiter: Handle,
        classifier: C,
        signal: R,
    ) -> Self {
        ResponseFuture {
            state: State::Refused {
                refused: Some(refused),
            },
            limiter,
            classifier,
            signal,
        }
    }

    pub(crate) fn waiting(
        acquire: Acquire,
        inner: S,
        request: Req,
        limiter: Handle,
        classifier: C,
        signal: R,
    ) -> Self {
        ResponseFuture {
            state: State::Acquiring {
                acquire,
                call: Some((inner, request)),
            },
            limiter,
            classifier,
            signal,
        }
    }
}

impl<S, Req, C, R> Future for ResponseFuture<S, Req, C, R>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error>,
    R: ReadSignal<S::Response>,
{
    type Output = Result<S::Response, RateLimitedError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { fut, admitted } => {
                    let outcome = ready!(fut.poll(cx));
                    let class = this.classifier.classify(outcome.as_ref());
                    let signal = outcome.as_ref().ok().and_then(|r| this.signal.signal(r));
                    this.limiter.observe(*admitted, &class, signal.as_ref());
                    return Poll::Ready(outcome.map_err(RateLimitedError::Inner));
                }
                StateProj::Refused { refused } => {
                    let Some(e) = refused.take() else {
                        panic!("`ResponseFuture` polled after completion");
                    };
                    return Poll::Ready(Err(RateLimitedError::Limited(e)));
                }
                StateProj::Acquiring { acquire, call } => {
                    let admitted =
                        ready!(Pin::new(acquire).poll(cx)).map_err(RateLimitedError::Limited)?;
                    let Some((inner, request)) = call.take() else {
                        panic!("`ResponseFuture` polled after completion");
                    };
                    this.state.set(State::Calling {
                        call: Oneshot::new(inner, request),
                        admitted,
                    });
                }
                StateProj::Calling { call, admitted } => {
                    let outcome = ready!(call.poll(cx));
                    let class = this.classifier.classify(outcome.as_ref());
                    let signal = outcome.as_ref().ok().and_then(|r| this.signal.signal(r));
                    this.limiter.observe(*admitted, &class, signal.as_ref());
                    return Poll::Ready(outcome.map_err(RateLimitedError::Inner));
                }
            }
        }
    }
}

impl<S: Service<Req>, Req, C, R> fmt::Debug for ResponseFuture<S, Req, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}
