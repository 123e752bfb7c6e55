//! The future a `CacheService` call returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::events::Observer;
use super::flight::{Landing, Receiver};
use super::{CacheError, CacheEvent};
use crate::classify::Class;

type Wait<V, E> = Pin<Box<dyn Future<Output = Option<Landing<V, E>>> + Send>>;

pin_project! {
    /// Resolves to the cached or loaded value. A hit is answered without allocating; a miss
    /// waits on its key's single load. Dropping it at any point leaves the load running for
    /// the other waiters.
    pub struct ResponseFuture<V, E> {
        state: State<V, E>,
    }
}

enum State<V, E> {
    Ready(Option<Result<V, CacheError<E>>>),
    Waiting {
        wait: Wait<V, E>,
        // The expired value and the end of its stale-if-error window.
        stale: Option<(V, Instant)>,
        observer: Arc<Observer>,
    },
}

impl<V, E> ResponseFuture<V, E>
where
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    #[inline]
    pub(crate) fn ready(out: Result<V, CacheError<E>>) -> Self {
        ResponseFuture {
            state: State::Ready(Some(out)),
        }
    }

    pub(crate) fn waiting(
        mut rx: Receiver<V, E>,
        stale: Option<(V, Instant)>,
        observer: Arc<Observer>,
    ) -> Self {
        let wait = Box::pin(async move {
            match rx.wait_for(Option::is_some).await {
                Ok(landing) => landing.clone(),
                Err(_) => None, // the load's task ended without landing
            }
        });
        ResponseFuture {
            state: State::Waiting {
                wait,
                stale,
                observer,
            },
        }
    }
}

impl<V, E> Future for ResponseFuture<V, E> {
    type Output = Result<V, CacheError<E>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.state {
            State::Ready(out) => match out.take() {
                Some(out) => Poll::Ready(out),
                None => Poll::Pending, // polled after completion
            },
            State::Waiting {
                wait,
                stale,
                observer,
            } => {
                let landing = ready!(wait.as_mut().poll(cx));
                let failed = match &landing {
                    None => true,
                    Some(l) => !matches!(
                        (&l.outcome, l.class),
                        (Ok(_), Class::Success) | (_, Class::Permanent)
                    ),
                };
                if failed {
                    if let Some((v, until)) = stale.take() {
                        if Instant::now() < until {
                            observer.emit(CacheEvent::StaleIfError);
                            return Poll::Ready(Ok(v));
                        }
                    }
                }
                Poll::Ready(match landing {
                    None => Err(CacheError::Abandoned),
                    Some(Landing { outcome, .. }) => outcome.map_err(CacheError::Load),
                })
            }
        }
    }
}

impl<V, E> fmt::Debug for ResponseFuture<V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Ready(_) => "ready",
            State::Waiting { .. } => "waiting",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
