//! [`Fallback`]: the service [`FallbackLayer`](super::FallbackLayer) builds.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower_service::Service;

use super::error::FallbackError;
use super::future::ResponseFuture;
use super::layer::Settings;
use super::when::{FallbackOn, FallbackWhen};
use crate::classify::{ByError, Classify};
use crate::request::{ByClone, CloneRequest};

/// A primary service with a fallback; see the [module guide](super).
///
/// `poll_ready` polls the primary only: the fallback is driven to readiness (through a
/// clone) when a request needs it, so a fallback that is slow to connect does not hold up
/// requests the primary serves.
pub struct Fallback<P, F, C = ByError, R = ByClone, W = FallbackOn> {
    primary: P,
    fallback: F,
    classifier: C,
    copy: R,
    when: W,
    settings: Arc<Settings>,
}

impl<P, F, C, R, W> Fallback<P, F, C, R, W> {
    pub(crate) fn new(
        primary: P,
        fallback: F,
        classifier: C,
        copy: R,
        when: W,
        settings: Arc<Settings>,
    ) -> Self {
        Fallback {
            primary,
            fallback,
            classifier,
            copy,
            when,
            settings,
        }
    }

    /// The primary service.
    pub fn primary(&self) -> &P {
        &self.primary
    }

    /// The fallback service.
    pub fn fallback(&self) -> &F {
        &self.fallback
    }
}

impl<P: Clone, F: Clone, C: Clone, R: Clone, W: Clone> Clone for Fallback<P, F, C, R, W> {
    fn clone(&self) -> Self {
        Fallback {
            primary: self.primary.clone(),
            fallback: self.fallback.clone(),
            classifier: self.classifier.clone(),
            copy: self.copy.clone(),
            when: self.when.clone(),
            settings: Arc::clone(&self.settings),
        }
    }
}

impl<P, F, C, R, W> std::fmt::Debug for Fallback<P, F, C, R, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback")
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

impl<P, F, C, R, W, Req> Service<Req> for Fallback<P, F, C, R, W>
where
    P: Service<Req>,
    F: Service<Req, Response = P::Response> + Clone,
    C: Classify<P::Response, P::Error> + Clone,
    R: CloneRequest<Req>,
    W: FallbackWhen + Clone,
{
    type Response = P::Response;
    type Error = FallbackError<P::Error, F::Error>;
    type Future = ResponseFuture<P::Future, F, Req, C, W>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.primary.poll_ready(cx).map_err(FallbackError::Primary)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let copy = self.copy.clone_request(&request);
        ResponseFuture::new(
            self.primary.call(request),
            copy.map(|c| (self.fallback.clone(), c)),
            self.classifier.clone(),
            self.when.clone(),
            Arc::clone(&self.settings),
        )
    }
}
