//! The retry state machine.

use std::any::Any;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::{CloneRequest, GiveUp, RetryError, RetryEvent, Shared};
use crate::backoff::{Backoff, MakeBackoff};
use crate::budget::{Budget, Failure, Outcome, Withdrawal};
use crate::classify::{Class, Classify};
use crate::events::trace;

pin_project! {
    /// The response future of [`Retry`](super::Retry): calls, sleeps and calls again until an
    /// attempt succeeds or a rule says stop.
    ///
    /// Dropping it at any point is safe: budget withdrawals happen only at the instant a retry
    /// is sent, so a future dropped while it waits has spent nothing, and it owns no task.
    pub struct ResponseFuture<S, Req, C, P, B, R>
    where
        S: Service<Req>,
        P: MakeBackoff,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        // The copy kept for the next attempt; `None` once it cannot be copied again.
        request: Option<Req>,
        shared: Arc<Shared<C, P, B, R>>,
        attempts: u32,
        started: Option<Instant>,
        span: tracing::Span,
        // Everything only a retry needs, allocated at the first failure so the success path
        // stays small (the future is moved on every call) and allocation-free.
        retrying: Option<Box<Retrying<P::Backoff, S::Response, S::Error>>>,
    }
}

struct Retrying<K, Res, Err> {
    backoff: K,
    // Kept across retries and reset, so a request allocates at most one timer.
    sleep: Option<Pin<Box<Sleep>>>,
    // The failed outcome a pending retry follows, returned if that retry is never made.
    last: Option<Result<Res, Err>>,
    failure: Failure,
    spent: Withdrawal,
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
    B: Budget,
    R: CloneRequest<Req>,
{
    pub(crate) fn start(mut service: S, req: Req, shared: Arc<Shared<C, P, B, R>>) -> Self {
        shared.budget.deposit();
        let request = if shared.max_attempts > 1 {
            shared.requests.clone_request(&req)
        } else {
            None
        };
        let started = shared.deadline.map(|_| Instant::now());
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
            service,
            request,
            shared,
            attempts: 1,
            started,
            span,
            retrying: None,
        }
    }
}

impl<S, Req, C, P, B, R> Future for ResponseFuture<S, Req, C, P, B, R>
where
    S: Service<Req>,
    S::Error: 'static,
    C: Classify<S::Response, S::Error>,
    P: MakeBackoff,
    B: Budget,
    R: CloneRequest<Req>,
{
    type Output = Result<S::Response, RetryError<S::Error>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _enter = this.span.enter();
        let shared = &**this.shared;
        let output = loop {
            match this.state.as_mut().project() {
                StateProj::Calling { fut } => {
                    let outcome = ready!(fut.poll(cx));
                    let attempt = *this.attempts;
                    let class = shared.classifier.classify(outcome.as_ref());
                    if class.is_success() {
                        let spent = this.retrying.as_ref().map_or(Withdrawal::NONE, |r| r.spent);
                        shared.budget.record(Outcome::Success { spent });
                        shared.attempt(attempt, class, None);
                        this.state.set(State::Done);
                        break outcome.map_err(|e| shared.give_up(GiveUp::Permanent, attempt, e));
                    }
                    let timed_out = matches!(&outcome, Err(e) if is_timeout(e));
                    let failure = Failure::new(class).with_timeout(timed_out);
                    shared.budget.record(Outcome::Failure(failure));
                    let delay = match next_delay(
                        shared,
                        this.retrying,
                        this.request.is_some(),
                        *this.started,
                        attempt,
                        failure,
                    ) {
                        Ok(delay) => delay,
                        Err(reason) => {
                            shared.attempt(attempt, class, None);
                            this.state.set(State::Done);
                            break finish(shared, outcome, reason, attempt);
                        }
                    };
                    shared.attempt(attempt, class, Some(delay));
                    // `next_delay` made the retry state when it drew the first delay.
                    let Some(retrying) = this.retrying.as_deref_mut() else {
                        unreachable_state()
                    };
                    retrying.failure = failure;
                    retrying.last = Some(outcome);
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
                    if let Err(e) = ready!(this.service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        break Err(shared.give_up(GiveUp::NotReady, attempts, e));
                    }
                    let next = attempts + 1;
                    let req = match this.request.take() {
                        Some(kept) if next < shared.max_attempts => {
                            match shared.requests.clone_request(&kept) {
                                Some(copy) => {
                                    *this.request = Some(kept);
                                    Some(copy)
                                }
                                None => Some(kept),
                            }
                        }
                        kept => kept,
                    };
                    let Some(retrying) = this.retrying.as_deref_mut() else {
                        unreachable_state()
                    };
                    // Withdraw at the instant the retry is sent: a request dropped while it
                    // slept or waited for readiness has spent nothing.
                    let paid = req
                        .and_then(|r| shared.budget.try_withdraw(retrying.failure).map(|w| (r, w)));
                    let Some((req, withdrawal)) = paid else {
                        this.state.set(State::Done);
                        break match retrying.last.take() {
                            Some(last) => finish(shared, last, GiveUp::BudgetRefused, attempts),
                            None => unreachable_state(),
                        };
                    };
                    retrying.spent += withdrawal;
                    retrying.last = None;
                    *this.attempts = next;
                    let fut = this.service.call(req);
                    this.state.set(State::Calling { fut });
                }
                StateProj::Done => panic!("retry future polled after completion"),
            }
        };
        this.span.record("attempts", *this.attempts);
        Poll::Ready(output)
    }
}

/// A state the machine never reaches: the retry state and its last outcome are always set
/// while a retry is pending.
#[cold]
fn unreachable_state<T>() -> T {
    panic!("retry future lost its pending retry")
}

/// The wait before the next attempt, or why there is none. Makes the retry state (and draws
/// the backoff schedule) at the first failure.
fn next_delay<C, P, B, R, Res, Err>(
    shared: &Shared<C, P, B, R>,
    retrying: &mut Option<Box<Retrying<P::Backoff, Res, Err>>>,
    can_copy: bool,
    started: Option<Instant>,
    attempt: u32,
    failure: Failure,
) -> Result<Duration, GiveUp>
where
    P: MakeBackoff,
    B: Budget,
{
    let class = failure.class();
    if !class.is_retryable() {
        return Err(GiveUp::Permanent);
    }
    if attempt >= shared.max_attempts {
        return Err(GiveUp::AttemptsExhausted);
    }
    if !can_copy {
        return Err(GiveUp::NotRetryable);
    }
    let state = retrying.get_or_insert_with(|| {
        Box::new(Retrying {
            backoff: shared.backoff.make_backoff(),
            sleep: None,
            last: None,
            failure,
            spent: Withdrawal::NONE,
        })
    });
    let drawn = state.backoff.next_delay().ok_or(GiveUp::BackoffExhausted)?;
    // The server knows when it will have capacity; the backoff is only a guess.
    let delay = match class.retry_after() {
        Some(asked) => asked.min(shared.retry_after_ceiling),
        None => drawn,
    };
    if let (Some(deadline), Some(started)) = (shared.deadline, started) {
        let resume = Instant::now().checked_add(delay);
        let end = started.checked_add(deadline);
        if let (Some(resume), Some(end)) = (resume, end) {
            if resume >= end {
                return Err(GiveUp::Deadline);
            }
        }
    }
    if !shared.budget.can_withdraw(failure) {
        return Err(GiveUp::BudgetRefused);
    }
    Ok(delay)
}

/// End on a failed outcome: a failing response is handed back as it is; an error is wrapped
/// with the reason.
fn finish<C, P, B, R, Res, E>(
    shared: &Shared<C, P, B, R>,
    outcome: Result<Res, E>,
    reason: GiveUp,
    attempts: u32,
) -> Result<Res, RetryError<E>> {
    if outcome.is_ok() {
        shared.gave_up(reason, attempts);
    }
    outcome.map_err(|e| shared.give_up(reason, attempts, e))
}

/// Whether an error is (or wraps, boxed) a timeout, which costs more in some budgets.
fn is_timeout<E: 'static>(err: &E) -> bool {
    let any = err as &dyn Any;
    if let Some(boxed) = any.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        let mut cur: Option<&(dyn StdError + 'static)> = Some(&**boxed);
        while let Some(e) = cur {
            let io_timeout = e
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
            if io_timeout
                || e.is::<tower::timeout::error::Elapsed>()
                || e.is::<tokio::time::error::Elapsed>()
            {
                return true;
            }
            cur = e.source();
        }
        return false;
    }
    any.is::<tower::timeout::error::Elapsed>()
        || any.is::<tokio::time::error::Elapsed>()
        || any
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
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
        trace::retry(&event);
        if let Some(listener) = &self.listener {
            listener.on_event(&event);
        }
    }

    fn gave_up(&self, reason: GiveUp, attempts: u32) {
        self.report(RetryEvent::GaveUp { attempts, reason });
    }

    fn give_up<E>(&self, reason: GiveUp, attempts: u32, err: E) -> RetryError<E> {
        self.gave_up(reason, attempts);
        RetryError::new(reason, attempts, err)
    }
}
