use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

pin_project! {
    /// The response future of [`Chaos`](super::Chaos): an optional injected delay, then either
    /// the inner call or the injected outcome.
    pub struct ResponseFuture<F, Res, Err> {
        #[pin]
        delay: Option<Sleep>,
        #[pin]
        kind: Kind<F, Res, Err>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, Res, Err> {
        Inner { #[pin] fut: F },
        Injected { outcome: Option<Result<Res, Err>> },
    }
}

impl<F, Res, Err> ResponseFuture<F, Res, Err> {
    pub(super) fn inner(fut: F, delay: Option<Duration>) -> Self {
        ResponseFuture {
            delay: delay.map(tokio::time::sleep),
            kind: Kind::Inner { fut },
        }
    }

    pub(super) fn injected(outcome: Result<Res, Err>, delay: Option<Duration>) -> Self {
        ResponseFuture {
            delay: delay.map(tokio::time::sleep),
            kind: Kind::Injected {
                outcome: Some(outcome),
            },
        }
    }
}

impl<F, Res, Err> Future for ResponseFuture<F, Res, Err>
where
    F: Future<Output = Result<Res, Err>>,
{
    type Output = Result<Res, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(delay) = this.delay.as_mut().as_pin_mut() {
            ready!(delay.poll(cx));
            this.delay.set(None);
        }
        match this.kind.project() {
            KindProj::Inner { fut } => fut.poll(cx),
            KindProj::Injected { outcome } => match outcome.take() {
                Some(out) => Poll::Ready(out),
                // Polled after completion: stay pending rather than panic.
                None => Poll::Pending,
            },
        }
    }
}
