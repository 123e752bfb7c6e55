//! [`ResponseFuture`]: the original attempt, the hedges, and the first answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::config::Shared;
use super::events::{HedgeCause, HedgeEvent};
use crate::budget::{self, Budget, Withdrawal};
use crate::classify::{Class, Classify};
use crate::request::CloneRequest;

/// A withdrawal held for a hedge: handed back if the hedge is dropped before it is sent.
struct Held<B: Budget> {
    budget: B,
    withdrawal: Withdrawal,
    sent: bool,
}

impl<B: Budget> Held<B> {
    /// What the hedge spent: its withdrawal if it was sent.
    fn spent(&self) -> Withdrawal {
        if self.sent {
            self.withdrawal
        } else {
            Withdrawal::NONE
        }
    }
}

impl<B: Budget> Drop for Held<B> {
    fn drop(&mut self) {
        if !self.sent && self.withdrawal != Withdrawal::NONE {
            self.budget.refund(self.withdrawal);
        }
    }
}

pin_project! {
    /// One hedge: waiting for its service to be ready, then in flight.
    struct Attempt<S, Req, B>
    where
        S: Service<Req>,
        B: Budget,
    {
        number: u32,
        started: Option<Instant>,
        held: Held<B>,
        #[pin]
        state: AttemptState<S, Req>,
    }
}

pin_project! {
    #[project = AttemptProj]
    enum AttemptState<S, Req>
    where
        S: Service<Req>,
    {
        Readying { service: S, request: Option<Req> },
        Called { #[pin] fut: S::Future },
    }
}

impl<S: Service<Req>, Req, B: Budget> Future for Attempt<S, Req, B> {
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                AttemptProj::Readying { service, request } => {
                    if let Err(e) = std::task::ready!(service.poll_ready(cx)) {
                        return Poll::Ready(Err(e));
                    }
                    let Some(request) = request.take() else {
                        panic!("hedge polled after completion");
                    };
                    let fut = service.call(request);
                    this.held.sent = true;
                    this.state.set(AttemptState::Called { fut });
                }
                AttemptProj::Called { fut } => return fut.poll(cx),
            }
        }
    }
}

/// What the future holds to send hedges: absent for a request that cannot be copied.
struct Hedging<S, Req, B>
where
    S: Service<Req>,
    B: Budget,
{
    service: S,
    copy: Option<Req>,
    /// Hedges not sent yet.
    left: u32,
    /// Hedges sent so far (the next one's number is this plus one).
    sent: u32,
    /// A throttle or a local refusal was seen: send nothing more.
    stopped: bool,
    attempts: Vec<Pin<Box<Attempt<S, Req, B>>>>,
    spent: Withdrawal,
}

pin_project! {
    /// The future of a [`Hedge`](super::Hedge) call: the original attempt, then hedges after
    /// the delay or a failure; resolves to the first answer.
    ///
    /// Dropped, it drops every attempt in flight and hands back the budget held for a hedge
    /// that was not yet sent.
    pub struct ResponseFuture<S, Req, C, R, B>
    where
        S: Service<Req>,
        B: Budget,
    {
        #[pin]
        primary: Option<S::Future>,
        #[pin]
        timer: Option<Sleep>,
        started: Option<Instant>,
        hedging: Option<Hedging<S, Req, B>>,
        // The failure to return if every attempt fails: the original's, unless an attempt was
        // throttled or refused, whose floor on the next attempt a retry above must see.
        kept: Option<(u32, bool, Result<S::Response, S::Error>)>,
        shared: Arc<Shared<C, R, B>>,
    }
}

impl<S, Req, C, R, B> ResponseFuture<S, Req, C, R, B>
where
    S: Service<Req>,
    B: Budget,
{
    pub(crate) fn new(
        fut: S::Future,
        hedging: Option<(S, Req)>,
        shared: Arc<Shared<C, R, B>>,
    ) -> Self {
        let (timer, started, hedging) = match hedging {
            Some((service, copy)) => (
                shared.delay.next().map(tokio::time::sleep),
                shared.delay.tracks().then(Instant::now),
                Some(Hedging {
                    service,
                    copy: Some(copy),
                    left: shared.max_hedged,
                    sent: 0,
                    stopped: false,
                    attempts: Vec::new(),
                    spent: Withdrawal::NONE,
                }),
            ),
            None => (None, None, None),
        };
        ResponseFuture {
            primary: Some(fut),
            timer,
            started,
            hedging,
            kept: None,
            shared,
        }
    }
}

/// An attempt that finished: its number, its latency if measured, its outcome.
type Finished<T, E> = (u32, Option<Duration>, Result<T, E>);

/// What an attempt's outcome means for the request.
enum Verdict {
    /// The answer: return it.
    Answer,
    /// A failure worth another attempt now.
    Again(Class),
    /// A throttle or a local refusal: wait for what is in flight, send nothing more.
    Stop,
}

fn verdict(class: Class) -> Verdict {
    if !class.is_retryable() {
        Verdict::Answer
    } else if class.is_throttled() || class.is_refused() {
        Verdict::Stop
    } else {
        Verdict::Again(class)
    }
}

impl<S, Req, B> Hedging<S, Req, B>
where
    S: Service<Req> + Clone,
    B: Budget + Clone,
{
    /// Send the next hedge, if one may go: copied, paid for, and through a fresh clone of
    /// the service. `false` when none was sent.
    fn launch<C, R: CloneRequest<Req>>(
        &mut self,
        shared: &Shared<C, R, B>,
        cause: HedgeCause,
    ) -> bool {
        if self.left == 0 || self.stopped {
            return false;
        }
        let number = self.sent + 1;
        let after = match cause {
            HedgeCause::Failed { class } => class,
            // A hedge sent because the original is slow pays as a retry after a transient
            // failure: the original has not failed, but it has not answered either.
            _ => Class::Transient,
        };
        let Some(withdrawal) = shared.budget.try_withdraw(after) else {
            self.left = 0;
            shared.emit(HedgeEvent::BudgetRefused { attempt: number });
            return false;
        };
        let held = Held {
            budget: shared.budget.clone(),
            withdrawal,
            sent: false,
        };
        // The last hedge takes the kept copy; the others copy it again.
        let request = if self.left == 1 {
            self.copy.take()
        } else {
            self.copy
                .as_ref()
                .and_then(|c| shared.copy.clone_request(c))
        };
        let Some(request) = request else {
            // `held` goes back to the budget as it drops.
            self.left = 0;
            return false;
        };
        self.left -= 1;
        self.sent = number;
        self.attempts.push(Box::pin(Attempt {
            number,
            started: shared.delay.tracks().then(Instant::now),
            held,
            state: AttemptState::Readying {
                service: self.service.clone(),
                request: Some(request),
            },
        }));
        shared.emit(HedgeEvent::Hedged {
            attempt: number,
            cause,
        });
        true
    }

    fn can_launch(&self) -> bool {
        self.left > 0 && !self.stopped
    }

    /// Cancel whatever is in flight: dropping an attempt not yet sent refunds it.
    fn cancel(&mut self) {
        for a in self.attempts.drain(..) {
            self.spent += a.held.spent();
        }
    }
}

impl<S, Req, C, R, B> Future for ResponseFuture<S, Req, C, R, B>
where
    S: Service<Req> + Clone,
    C: Classify<S::Response, S::Error>,
    R: CloneRequest<Req>,
    B: Budget + Clone,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = &**this.shared;
        loop {
            let mut progressed = false;
            // Every attempt that finished, the original first: (attempt, latency, outcome).
            let mut finished: Option<Finished<S::Response, S::Error>> = None;
            if let Some(fut) = this.primary.as_mut().as_pin_mut() {
                if let Poll::Ready(out) = fut.poll(cx) {
                    this.primary.set(None);
                    finished = Some((0, this.started.map(|s| s.elapsed()), out));
                }
            }
            if finished.is_none() {
                if let Some(h) = this.hedging.as_mut() {
                    let mut i = 0;
                    while i < h.attempts.len() {
                        let Some(a) = h.attempts.get_mut(i) else {
                            break;
                        };
                        if let Poll::Ready(out) = a.as_mut().poll(cx) {
                            let a = h.attempts.remove(i);
                            h.spent += a.held.spent();
                            finished = Some((a.number, a.started.map(|s| s.elapsed()), out));
                            break;
                        }
                        i += 1;
                    }
                }
            }
            if let Some((number, latency, out)) = finished {
                progressed = true;
                let class = shared.classifier.classify(out.as_ref());
                match verdict(class) {
                    Verdict::Answer => {
                        if let Some(latency) = latency {
                            shared.delay.record(latency);
                        }
                        let spent = match this.hedging.as_mut() {
                            Some(h) => {
                                h.cancel();
                                h.spent
                            }
                            None => Withdrawal::NONE,
                        };
                        this.primary.set(None);
                        this.timer.set(None);
                        if number > 0 {
                            shared.emit(HedgeEvent::HedgeWon { attempt: number });
                        }
                        shared.budget.record(if class.is_success() {
                            budget::Attempt::Succeeded { spent }
                        } else {
                            budget::Attempt::Failed(class)
                        });
                        return Poll::Ready(out);
                    }
                    verdict => {
                        shared.budget.record(budget::Attempt::Failed(class));
                        let throttle = matches!(verdict, Verdict::Stop);
                        let keep = match this.kept {
                            None => true,
                            Some((n, kept_throttle, _)) => {
                                (throttle && !*kept_throttle)
                                    || (throttle == *kept_throttle && number < *n)
                            }
                        };
                        if keep {
                            *this.kept = Some((number, throttle, out));
                        }
                        match (verdict, this.hedging.as_mut()) {
                            (Verdict::Again(class), Some(h)) => {
                                let sent = h.launch(shared, HedgeCause::Failed { class });
                                // The timer counts from the last attempt sent.
                                if let (true, Some(d)) = (sent, shared.delay.next()) {
                                    this.timer
                                        .set(h.can_launch().then(|| tokio::time::sleep(d)));
                                }
                            }
                            (_, Some(h)) => {
                                h.stopped = true;
                                this.timer.set(None);
                            }
                            _ => {}
                        }
                    }
                }
            }
            if let Some(t) = this.timer.as_mut().as_pin_mut() {
                if t.poll(cx).is_ready() {
                    let after = shared.delay.next().unwrap_or_default();
                    this.timer.set(None);
                    if let Some(h) = this.hedging.as_mut() {
                        if h.launch(shared, HedgeCause::Slow { after }) && h.can_launch() {
                            this.timer.set(Some(tokio::time::sleep(after)));
                        }
                    }
                    progressed = true;
                }
            }
            let in_flight = this.primary.is_some()
                || this
                    .hedging
                    .as_ref()
                    .is_some_and(|h| !h.attempts.is_empty());
            if !in_flight {
                if let Some((_, _, out)) = this.kept.take() {
                    this.timer.set(None);
                    if let Some(h) = this.hedging.as_mut() {
                        h.left = 0;
                    }
                    return Poll::Ready(out);
                }
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

impl<S, Req, C, R, B> fmt::Debug for ResponseFuture<S, Req, C, R, B>
where
    S: Service<Req>,
    B: Budget,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("hedges_sent", &self.hedging.as_ref().map_or(0, |h| h.sent))
            .finish_non_exhaustive()
    }
}
