//! [`ResponseFuture`]: the primary, then perhaps the fallback.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::error::FallbackError;
use super::events::FallbackEvent;
use super::layer::Settings;
use super::when::FallbackWhen;
use crate::classify::Classify;

pin_project! {
    #[project = StateProj]
    enum State<PF, F, Req>
    where
        F: Service<Req>,
    {
        Primary { #[pin] fut: PF, fallback: Option<(F, Req)> },
        Fallback { #[pin] call: Oneshot<F, Req> },
    }
}

pin_project! {
    /// The future of a [`Fallback`](super::Fallback) call.
    pub struct ResponseFuture<PF, F, Req, C, W>
    where
        F: Service<Req>,
    {
        #[pin]
        state: State<PF, F, Req>,
        classifier: C,
        when: W,
        settings: Arc<Settings>,
    }
}

impl<PF, F: Service<Req>, Req, C, W> ResponseFuture<PF, F, Req, C, W> {
    pub(crate) fn new(
        fut: PF,
        fallback: Option<(F, Req)>,
        classifier: C,
        when: W,
        settings: Arc<Settings>,
    ) -> Self {
        ResponseFuture {
            state: State::Primary { fut, fallback },
            classifier,
            when,
            settings,
        }
    }
}

impl<PF, F, Req, C, W, T, E> Future for ResponseFuture<PF, F, Req, C, W>
where
    PF: Future<Output = Result<T, E>>,
    F: Service<Req, Response = T>,
    C: Classify<T, E>,
    W: FallbackWhen,
{
    type Output = Result<T, FallbackError<E, F::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Primary { fut, fallback } => {
                    let out = ready!(fut.poll(cx));
                    let class = this.classifier.classify(out.as_ref());
                    if !class.is_success() && this.when.falls_back(&class) {
                        let name = this.settings.name.clone();
                        if let Some((svc, req)) = fallback.take() {
                            this.settings.emit(FallbackEvent::FellBack { name, class });
                            this.state.set(State::Fallback {
                                call: Oneshot::new(svc, req),
                            });
                            continue;
                        }
                        this.settings
                            .emit(FallbackEvent::NotReplayable { name, class });
                    }
                    return Poll::Ready(out.map_err(FallbackError::Primary));
                }
                StateProj::Fallback { call } => {
                    let out = ready!(call.poll(cx));
                    if out.is_err() {
                        this.settings.emit(FallbackEvent::FallbackFailed {
                            name: this.settings.name.clone(),
                        });
                    }
                    return Poll::Ready(out.map_err(FallbackError::Fallback));
                }
            }
        }
    }
}

impl<PF, F: Service<Req>, Req, C, W> fmt::Debug for ResponseFuture<PF, F, Req, C, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}
