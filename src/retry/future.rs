//! The retry state machine: the engine's rules, driven over a tower service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::service::Core;
use super::{CloneRequest, GiveUp, RetryError, RetryEvent, Shared};
use crate::backoff::MakeBackoff;
use crate::budget::Budget;
use crate::classify::{Class, Classify};
use crate::engine::{Progress, Retries, Stop};
use crate::events;

pin_project! {
    /// The response future of [`Retry`](super::Retry): calls, sleeps and calls again until an
    /// attempt succeeds or a rule says stop.
    ///
    /// Dropping it at any point is safe: a retry's budget withdrawal is held while it waits
    /// and handed back if the future is dropped before the retry is sent, and it owns no task.
    pub struct ResponseFuture<S, Req, C, P, B, R>
    where
        S: Service<Req>,
        P: MakeBackoff,
        B: Budget,
    {
        #[pin]
        state: State<S::Future>,
        // The copy kept for the next attempt; `None` once it cannot be copied again.
        request: Option<Req>,
        core: Arc<Core<S, C, P, B, R>>,
        attempts: u32,
        gave_up: Option<GiveUp>,
        started: Option<Instant>,
        span: tracing::Span,
        // Everything only a retry needs, allocated at the first failure so the success path
        // stays small (the future is moved on every call) and allocation-free.
        retrying: Option<Box<Retrying<S, P::Backoff, B>>>,
    }
}

struct Retrying<S, K, B: Budget> {
    // The engine's state for this request; dropping it hands back a held withdrawal.
    retries: Option<Retries<K, B>>,
    // Kept across retries and reset, so a request allocates at most one timer.
    sleep: Option<Pin<Box<Sleep>>>,
    // The service retries go to: a clone of the layer's, made at the first failure, so a
    // request that succeeds at once clones nothing.
    service: S,
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] fut: F },
        Sleeping,
        Readying,
        Done,
    }
}

impl<S, Req, C, P, B, R> ResponseFuture<S, Req, C, P, B, R>
where
    S: Service<Req>,
    P: MakeBackoff,
    B: Budget + Clone,
    R: CloneRequest<Req>,
{
    /// The first attempt, sent now through `service` (which the caller polled ready).
    pub(crate) fn start(service: &mut S, req: Req, core: Arc<Core<S, C, P, B, R>>) -> Self {
        let shared = &*core.shared;
        let started = shared.rules.begin();
        let request = if shared.rules.max_attempts > 1 {
            shared.requests.clone_request(&req)
        } else {
            None
        };
        let span = if debug_enabled() {
            tracing::debug_span!(target: "riprap::retry", "riprap.retry", attempts = tracing::field::Empty)
        } else {
            tracing::Span::none()
        };
        let fut = {
            let _enter = span.enter();
            service.call(req)
        };
        ResponseFuture {
            state: State::Calling { fut },
            request,
            core,
            attempts: 1,
            gave_up: None,
            started,
            span,
            retrying: None,
        }
    }
}

impl<S, Req, C, P, B, R> Future for ResponseFuture<S, Req, C, P, B, R>
where
    S: Service<Req> + Clone,
    C: Classify<S::Response, S::Error>,
    P: MakeBackoff,
    B: Budget + Clone,
    R: CloneRequest<Req>,
{
    type Output = Result<S::Response, RetryError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _enter = this.span.enter();
        let core = &**this.core;
        let shared = &*core.shared;
        let output = loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let outcome = ready!(fut.poll(cx));
                    let attempt = *this.attempts;
                    let class = shared.classifier.classify(outcome.as_ref());
                    if class.is_success() {
                        let retries = this.retrying.as_mut().and_then(|r| r.retries.as_mut());
                        shared.rules.succeeded(retries);
                        shared.attempt(attempt, class, None);
                        this.state.set(State::Done);
                        break outcome
                            .map_err(|e| shared.give_up(Stop::permanent(), class, attempt, e));
                    }
                    let retrying = this.retrying.get_or_insert_with(|| {
                        Box::new(Retrying {
                            retries: None,
                            sleep: None,
                            service: core.template.clone(),
                        })
                    });
                    let delay = match shared.rules.after_failure(
                        &mut retrying.retries,
                        attempt,
                        *this.started,
                        class,
                        this.request.is_some(),
                    ) {
                        Ok(delay) => delay,
                        Err(stop) => {
                            shared.attempt(attempt, class, None);
                            this.state.set(State::Done);
                            *this.gave_up = Some(stop.reason);
                            break finish(shared, outcome, stop, class, attempt);
                        }
                    };
                    shared.attempt(attempt, class, Some(delay));
                    match (retrying.sleep.as_mut(), Instant::now().checked_add(delay)) {
                        (Some(sleep), Some(at)) => sleep.as_mut().reset(at),
                        _ => retrying.sleep = Some(Box::pin(tokio::time::sleep(delay))),
                    }
                    this.state.set(State::Sleeping);
                }
                StateProj::Sleeping => {
                    if let Some(sleep) = this.retrying.as_mut().and_then(|r| r.sleep.as_mut()) {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    let attempts = *this.attempts;
                    let Some(retrying) = this.retrying.as_deref_mut() else {
                        unreachable_state()
                    };
                    if let Err(e) = ready!(retrying.service.poll_ready(cx)) {
                        // Dropping the retry state hands the held withdrawal back.
                        *this.retrying = None;
                        this.state.set(State::Done);
                        let class = shared.classifier.classify(Err(&e));
                        let stop = Stop::because(GiveUp::NotReady);
                        break Err(shared.give_up(stop, class, attempts, e));
                    }
                    let next = attempts + 1;
                    let req = match this.request.take() {
                        Some(kept) if next < shared.rules.max_attempts => {
                            match shared.requests.clone_request(&kept) {
                                Some(copy) => {
                                    *this.request = Some(kept);
                                    copy
                                }
                                None => kept,
                            }
                        }
                        Some(kept) => kept,
                        // A retry is scheduled only while a copy is kept.
                        None => unreachable_state(),
                    };
                    let Some(retrying) = this.retrying.as_deref_mut() else {
                        unreachable_state()
                    };
                    let Some(retries) = retrying.retries.as_mut() else {
                        unreachable_state()
                    };
                    shared.rules.sending(retries);
                    *this.attempts = next;
                    let fut = retrying.service.call(req);
                    this.state.set(State::Calling { fut });
                }
                StateProj::Done => panic!("retry future polled after completion"),
            }
        };
        this.span.record("attempts", *this.attempts);
        Poll::Ready(output)
    }
}

/// A state the machine never reaches: the retry state and the kept copy are always set while
/// a retry is pending.
#[cold]
fn unreachable_state<T>() -> T {
    panic!("retry future lost its pending retry")
}

/// End on a failed outcome: a failing response is handed back as it is; an error is wrapped
/// with the reason.
fn finish<C, P, B, R, Res, E>(
    shared: &Shared<C, P, B, R>,
    outcome: Result<Res, E>,
    stop: Stop,
    class: Class,
    attempts: u32,
) -> Result<Res, RetryError<E>> {
    if outcome.is_ok() {
        shared.gave_up(stop.reason, attempts);
    }
    outcome.map_err(|e| shared.give_up(stop, class, attempts, e))
}

/// Whether `tracing` output at `level` can be wanted at all: one relaxed load, so the success
/// path neither opens a span nor builds events nobody will see.
#[inline(always)]
fn enabled(level: tracing::level_filters::LevelFilter) -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    STATIC_MAX_LEVEL >= level && LevelFilter::current() >= level
}

#[inline(always)]
fn debug_enabled() -> bool {
    enabled(tracing::level_filters::LevelFilter::DEBUG)
}

#[inline(always)]
fn trace_enabled() -> bool {
    enabled(tracing::level_filters::LevelFilter::TRACE)
}

impl<C, P, B, R> Shared<C, P, B, R> {
    #[inline(always)]
    fn attempt(&self, attempt: u32, class: Class, delay: Option<Duration>) {
        // A first-try success is traced at trace level; skip building it unless that is on.
        if self.listener.is_some() || trace_enabled() {
            self.report(RetryEvent::Attempt {
                attempt,
                class,
                delay,
            });
        }
    }

    #[inline(never)]
    fn report(&self, event: RetryEvent) {
        event.trace();
        events::deliver(self.listener.as_ref(), &event);
    }

    fn gave_up(&self, reason: GiveUp, attempts: u32) {
        self.report(RetryEvent::GaveUp { attempts, reason });
    }

    fn give_up<E>(&self, stop: Stop, class: Class, attempts: u32, err: E) -> RetryError<E> {
        self.gave_up(stop.reason, attempts);
        RetryError::new(stop.reason, attempts, err)
            .retrying_at(stop.retry_at)
            .with_class(class)
    }
}

impl<S, Req, C, P, B, R> Progress for ResponseFuture<S, Req, C, P, B, R>
where
    S: Service<Req>,
    P: MakeBackoff,
    B: Budget,
{
    fn attempts(&self) -> u32 {
        self.attempts
    }

    fn gave_up(&self) -> Option<GiveUp> {
        self.gave_up
    }
}
