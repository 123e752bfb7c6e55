//! A time limit per call that keeps the inner error's type.
//!
//! `tower::timeout` boxes every error, so a classifier written for your client's error type
//! can no longer see it. riprap's [`TimeoutLayer`] returns [`TimeoutError<E>`]: either
//! [`Elapsed`](TimeoutError::Elapsed), classified as [`TimedOut`](crate::classify::Class::TimedOut), or your
//! [`Inner`](TimeoutError::Inner) error, untouched. The stack uses it for the attempt timeout
//! below the retry layer and for the total deadline above it.
//!
//! ```
//! use std::time::Duration;
//! use riprap::timeout::{TimeoutError, TimeoutLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mut svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(1)))
//!     .service_fn(|slow: bool| async move {
//!         if slow {
//!             tokio::time::sleep(Duration::from_secs(5)).await;
//!         }
//!         Ok::<_, std::io::Error>("done")
//!     });
//! assert_eq!(svc.ready().await.unwrap().call(false).await.unwrap(), "done");
//! let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
//! assert!(matches!(err, TimeoutError::Elapsed(d) if d == Duration::from_secs(1)));
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use crate::classify::{Class, Classified, LayerError, marker};
use crate::engine::{GiveUp, Progress};

/// Fail a call that takes longer than a limit; see the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Option<Duration>,
}

impl TimeoutLayer {
    /// Fail calls that take longer than `limit`.
    pub fn new(limit: Duration) -> Self {
        TimeoutLayer { limit: Some(limit) }
    }

    /// No limit: calls pass through untimed. Lets a stack keep one shape whether or not a
    /// limit is configured.
    pub fn unlimited() -> Self {
        TimeoutLayer { limit: None }
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`TimeoutLayer`] makes.
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    limit: Option<Duration>,
}

impl<S, Req> Service<Req> for Timeout<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = TimeoutError<S::Error>;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is not timed: waiting for capacity is the rate limiter's business, and a
        // deadline on it belongs to the caller.
        self.inner.poll_ready(cx).map_err(TimeoutError::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: self.limit.map(tokio::time::sleep),
            limit: self.limit.unwrap_or_default(),
        }
    }
}

pin_project! {
    /// The response future of [`Timeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Option<Sleep>,
        limit: Duration,
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<T, TimeoutError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.inner.poll(cx) {
            return Poll::Ready(out.map_err(TimeoutError::Inner));
        }
        match this.sleep.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(TimeoutError::Elapsed(*this.limit))),
            _ => Poll::Pending,
        }
    }
}

impl<F: Progress> Progress for ResponseFuture<F> {
    fn attempts(&self) -> u32 {
        self.inner.attempts()
    }

    fn gave_up(&self) -> Option<GiveUp> {
        self.inner.gave_up()
    }
}

/// A call that ran out of time, or the inner service's own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeoutError<E> {
    /// The call took longer than this limit and was dropped.
    Elapsed(Duration),
    /// The inner service failed in time.
    Inner(E),
}

impl<E> TimeoutError<E> {
    /// The inner error, if this is not a timeout.
    pub fn into_inner(self) -> Option<E> {
        match self {
            TimeoutError::Inner(e) => Some(e),
            TimeoutError::Elapsed(_) => None,
        }
    }

    /// Whether the call ran out of time.
    pub fn is_elapsed(&self) -> bool {
        matches!(self, TimeoutError::Elapsed(_))
    }
}

impl<E: fmt::Display> fmt::Display for TimeoutError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutError::Elapsed(d) => write!(f, "timed out after {d:?}"),
            TimeoutError::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TimeoutError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TimeoutError::Elapsed(_) => None,
            TimeoutError::Inner(e) => Some(e),
        }
    }

    // How a boxed chain learns that this link is a timeout, whatever `E` is; see
    // `ByError`'s chain rules.
    fn description(&self) -> &str {
        match self {
            TimeoutError::Elapsed(_) => marker::TIMED_OUT,
            TimeoutError::Inner(_) => "the service behind a timeout failed",
        }
    }
}

/// A timeout is [`Class::TimedOut`]; an inner error classifies itself.
impl<E: Classified> Classified for TimeoutError<E> {
    fn class(&self) -> Class {
        match self {
            TimeoutError::Elapsed(_) => Class::TimedOut,
            TimeoutError::Inner(e) => e.class(),
        }
    }
}

/// A timeout's own verdict is [`Class::TimedOut`]; anything else is the inner service's.
impl<E> LayerError for TimeoutError<E> {
    type Inner = E;

    fn layer_class(&self) -> Result<&E, Class> {
        match self {
            TimeoutError::Inner(e) => Ok(e),
            TimeoutError::Elapsed(_) => Err(Class::TimedOut),
        }
    }
}
