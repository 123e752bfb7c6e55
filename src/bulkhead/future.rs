//! [`ResponseFuture`]: wait for a permit, call, give the permit back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::{BulkheadError, Rejected};
use super::state::{Acquire, Permit};
use crate::classify::Classify;

pin_project! {
    /// The future of a [`BulkheadService`](super::BulkheadService) call.
    ///
    /// Holds the call's permit until the inner call finishes; dropped at any point, it
    /// gives up its place in the queue or its permit, whichever it holds.
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S, Req>,
        permit: Option<Permit>,
        classifier: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Req>
    where
        S: Service<Req>,
    {
        // Boxed: only a call that queues pays for the room, not every call's future (in a
        // stack, every layer above holds this future).
        Queued { queued: Box<Queued<S, Req>> },
        Called { #[pin] fut: S::Future },
        Refused { rejected: Rejected },
    }
}

/// A call waiting for its permit, then for its service to be ready again.
struct Queued<S, Req> {
    acquire: Option<Acquire>,
    service: S,
    request: Option<Req>,
}

impl<S: Service<Req>, Req, C> ResponseFuture<S, Req, C> {
    #[inline]
    pub(crate) fn called(fut: S::Future, permit: Permit, classifier: C) -> Self {
        ResponseFuture {
            state: State::Called { fut },
            permit: Some(permit),
            classifier,
        }
    }

    #[inline]
    pub(crate) fn unlimited(fut: S::Future, classifier: C) -> Self {
        ResponseFuture {
            state: State::Called { fut },
            permit: None,
            classifier,
        }
    }

    pub(crate) fn waiting(acquire: Acquire, service: S, request: Req, classifier: C) -> Self {
        ResponseFuture {
            state: State::Queued {
                queued: Box::new(Queued {
                    acquire: Some(acquire),
                    service,
                    request: Some(request),
                }),
            },
            permit: None,
            classifier,
        }
    }

    pub(crate) fn refused(rejected: Rejected, classifier: C) -> Self {
        ResponseFuture {
            state: State::Refused { rejected },
            permit: None,
            classifier,
        }
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error>,
{
    type Output = Result<S::Response, BulkheadError<S::Error>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Queued { queued } => {
                    let q = &mut **queued;
                    if let Some(acquire) = q.acquire.as_mut() {
                        let permit =
                            ready!(Pin::new(acquire).poll(cx)).map_err(BulkheadError::Rejected)?;
                        *this.permit = Some(permit);
                        q.acquire = None;
                    }
                    if let Err(e) = ready!(q.service.poll_ready(cx)) {
                        // The permit goes back: nothing was sent.
                        *this.permit = None;
                        return Poll::Ready(Err(BulkheadError::Inner(e)));
                    }
                    let Some(request) = q.request.take() else {
                        panic!("`ResponseFuture` polled after completion");
                    };
                    let fut = q.service.call(request);
                    this.state.set(State::Called { fut });
                }
                StateProj::Called { fut } => {
                    let out = ready!(fut.poll(cx));
                    if this.permit.as_ref().is_some_and(Permit::samples) {
                        if let Some(permit) = this.permit.take() {
                            permit.record(&this.classifier.classify(out.as_ref()));
                        }
                    } else {
                        // Given back where it lies: moving it out first would copy it for
                        // nothing.
                        *this.permit = None;
                    }
                    return Poll::Ready(out.map_err(BulkheadError::Inner));
                }
                StateProj::Refused { rejected } => {
                    return Poll::Ready(Err(BulkheadError::Rejected(*rejected)));
                }
            }
        }
    }
}

impl<S: Service<Req>, Req, C> fmt::Debug for ResponseFuture<S, Req, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}
