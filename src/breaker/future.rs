//! The response future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::error::{BreakerError, Rejected};
use super::policy::TripPolicy;
use super::service::Handle;
use super::state::Ticket;
use crate::classify::Classify;

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] fut: F },
        Rejected { why: Rejected },
    }
}

pin_project! {
    /// The future of a [`CircuitBreakerService`](super::CircuitBreakerService) call.
    ///
    /// Holds the call's admission. Dropped before it completes, it reports nothing, and a
    /// half-open probe's permit goes back to the breaker.
    pub struct ResponseFuture<F, P, C>
    where
        P: TripPolicy,
    {
        #[pin]
        kind: Kind<F>,
        ticket: Option<Ticket<Arc<Handle<P, C>>>>,
    }
}

impl<F, P: TripPolicy, C> ResponseFuture<F, P, C> {
    pub(crate) fn called(fut: F, ticket: Ticket<Arc<Handle<P, C>>>) -> Self {
        ResponseFuture {
            kind: Kind::Called { fut },
            ticket: Some(ticket),
        }
    }

    pub(crate) fn rejected(why: Rejected) -> Self {
        ResponseFuture {
            kind: Kind::Rejected { why },
            ticket: None,
        }
    }
}

impl<F, P: TripPolicy, C> std::fmt::Debug for ResponseFuture<F, P, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, Res, Err, P, C> Future for ResponseFuture<F, P, C>
where
    F: Future<Output = Result<Res, Err>>,
    P: TripPolicy,
    C: Classify<Res, Err>,
{
    type Output = Result<Res, BreakerError<Err>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called { fut } => {
                let out = ready!(fut.poll(cx));
                if let Some(ticket) = this.ticket.take() {
                    let class = ticket.holder.classifier.classify(out.as_ref());
                    ticket.finish(&class);
                }
                Poll::Ready(out.map_err(BreakerError::Inner))
            }
            KindProj::Rejected { why } => Poll::Ready(Err(BreakerError::Rejected(*why))),
        }
    }
}
