//! The stream that survives its source's disconnects.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower_service::Service;

use super::config::{OnEnd, OnGap, ResumeConfig};
use super::error::ResumeError;
use super::events::{StreamEvent, StreamStats, emit};
use super::offset::Offset;
use crate::backoff::MakeBackoff;
use crate::budget::{Budget, Unlimited};
use crate::classify::{ByError, Class, Classify};
use crate::engine::{GiveUp, Retries, Rules};
use crate::events::{Listener, SharedListener};

/// How a stream's budget is held: any budget, shared.
type SharedBudget = Arc<dyn Budget>;

pin_project! {
    /// A stream over a source that reconnects after the last delivered offset.
    ///
    /// The source is a [`Service`] called with `None` to start from the beginning or
    /// `Some(offset)` to resume after `offset`; it answers with a stream of
    /// `Result<(offset, item), error>`. Because reconnecting is an ordinary service call, it
    /// can sit behind riprap's retry, breaker and rate-limit layers.
    ///
    /// `Resumable` yields `(offset, item)` pairs whose offsets strictly advance:
    /// - an error the classifier calls retryable, or an end of the source's stream (with
    ///   [`OnEnd::Reconnect`]), makes it wait out the backoff (never less than a server's
    ///   requested delay) and call the source again after the last delivered offset; a new
    ///   item ends the outage and resets the schedule. Reconnects follow the same rules as the
    ///   retry layer, from the same engine;
    /// - items that are not [after](Offset::is_after) the last delivered offset are replays
    ///   and are dropped;
    /// - dense offsets that jump are a gap: an error or an event, per [`OnGap`];
    /// - a permanent error, a gap with [`OnGap::Fail`], running out of reconnects
    ///   ([`ResumeConfig::max_reconnects`] per outage, or the backoff schedule stopping), a
    ///   [budget](Resumable::budget) refusing a reconnect, or a server delay beyond
    ///   [`ResumeConfig::max_retry_after`] ends the stream with a [`ResumeError`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::{stream, StreamExt};
    /// use riprap::backoff::BackoffPolicy;
    /// use riprap::stream::Resumable;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A log of 0..10 whose connection drops after 3 items, replaying one on reconnect.
    /// let source = tower::service_fn(|after: Option<u64>| async move {
    ///     let from = after.map_or(0, |a| a.saturating_sub(1)); // replays one item
    ///     let items = (from..10).take(3).map(|n| Ok::<_, std::io::Error>((n, format!("line {n}"))));
    ///     Ok::<_, std::io::Error>(stream::iter(items))
    /// });
    /// let backoff = BackoffPolicy::constant(Duration::from_millis(100)).build()?;
    /// let lines: Vec<_> = Resumable::new(source, backoff)
    ///     .take(10)
    ///     .map(|r| r.map(|(offset, _line)| offset))
    ///     .collect::<Vec<_>>()
    ///     .await
    ///     .into_iter()
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(lines, (0..10).collect::<Vec<u64>>()); // no gaps, no duplicates
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Resumable<S, O, C, B>
    where
        S: Service<Option<O>>,
        B: MakeBackoff,
    {
        source: S,
        #[pin]
        state: State<S::Future, S::Response>,
        last: Option<O>,
        classifier: C,
        // The retry engine's rules: one attempt per connection, the first included.
        rules: Rules<B, SharedBudget>,
        // This outage's reconnect state; dropping it hands back a withdrawal still held.
        retries: Option<Retries<B::Backoff, SharedBudget>>,
        // Reconnects made in the current outage; zero while streaming normally.
        attempts: u32,
        config: ResumeConfig,
        replays: u64,
        stats: StreamStats,
        listener: Option<SharedListener>,
    }
}

/// The engine's rules for a stream with `config`, reconnecting with `backoff` and paying out of
/// `budget`.
fn rules<B>(config: &ResumeConfig, backoff: B, budget: SharedBudget) -> Rules<B, SharedBudget> {
    Rules {
        backoff,
        budget,
        // Reconnects per outage, plus the connection that failed first.
        max_attempts: config.max_reconnects.saturating_add(1),
        deadline: None,
        max_retry_after: config.max_retry_after,
    }
}

pin_project! {
    // The connect future and the sleep are boxed (once per connection, off the per-item path)
    // so that a `Resumable` over an `Unpin` response stream is itself `Unpin` and works with
    // `StreamExt::next` without pinning.
    #[project = StateProj]
    enum State<F, St> {
        Idle,
        Connecting { future: Pin<Box<F>> },
        Streaming { #[pin] stream: St },
        Waiting { sleep: Pin<Box<Sleep>> },
        Done,
    }
}

impl<S, O, B> Resumable<S, O, ByError, B>
where
    S: Service<Option<O>>,
    B: MakeBackoff,
{
    /// A resumable stream over `source`, reconnecting with delays from `backoff`, classifying
    /// errors with [`ByError`], with the default [`ResumeConfig`]. Nothing happens until it is
    /// polled.
    pub fn new(source: S, backoff: B) -> Self {
        let config = ResumeConfig::default();
        Resumable {
            source,
            state: State::Idle,
            last: None,
            classifier: ByError,
            rules: rules(&config, backoff, Arc::new(Unlimited)),
            retries: None,
            attempts: 0,
            config,
            replays: 0,
            stats: StreamStats::default(),
            listener: None,
        }
    }
}

impl<S, O, C, B> Resumable<S, O, C, B>
where
    S: Service<Option<O>>,
    B: MakeBackoff,
{
    /// Decide which errors reconnect ([`Class::Transient`], [`Class::Throttled`]) and which
    /// end the stream ([`Class::Permanent`]). Only the `Err` arm is ever shown to it.
    pub fn classifier<C2>(self, classifier: C2) -> Resumable<S, O, C2, B> {
        Resumable {
            source: self.source,
            state: self.state,
            last: self.last,
            classifier,
            rules: self.rules,
            retries: self.retries,
            attempts: self.attempts,
            config: self.config,
            replays: self.replays,
            stats: self.stats,
            listener: self.listener,
        }
    }

    /// Use `config` (see [`ResumeConfig::builder`]).
    pub fn config(mut self, config: ResumeConfig) -> Self {
        self.rules.max_attempts = config.max_reconnects.saturating_add(1);
        self.rules.max_retry_after = config.max_retry_after;
        self.config = config;
        self
    }

    /// Start after `position` instead of from the beginning, as after loading a checkpoint.
    pub fn start_after(mut self, position: Option<O>) -> Self {
        self.last = position;
        self
    }

    /// Pay for reconnects out of `budget`, shared with the other streams and retry layers
    /// that call the same dependency, so that a fleet of streams dropped at once cannot
    /// reconnect harder than the budget allows.
    ///
    /// Each outage is one logical request to the budget: its first failure deposits, each
    /// reconnect withdraws (before the backoff wait, handed back if the stream is dropped
    /// before the reconnect goes out), every failure is recorded, and the new item that ends
    /// the outage is recorded as a success with what the outage spent. A refused withdrawal
    /// ends the stream with [`ResumeError::GaveUp`] (reason
    /// [`GiveUp::BudgetRefused`](crate::retry::GiveUp::BudgetRefused)): with the whole fleet over budget,
    /// failing fast beats every stream waiting out its backoff only to be refused again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riprap::backoff::BackoffPolicy;
    /// use riprap::budget::RatioBudget;
    /// use riprap::stream::Resumable;
    /// # use futures_util::stream;
    ///
    /// # fn main() -> Result<(), riprap::ConfigError> {
    /// // One budget for every stream reading from the same broker.
    /// let budget = RatioBudget::builder().min_retries_per_sec(5).build()?;
    /// let backoff = BackoffPolicy::exponential(Duration::from_millis(100)).build()?;
    /// # let open_partition = |_after: Option<u64>| async {
    /// #     Ok::<_, std::io::Error>(stream::iter(Vec::<std::io::Result<(u64, String)>>::new()))
    /// # };
    /// let partitions: Vec<_> = (0..8)
    ///     .map(|_| {
    ///         Resumable::new(tower::service_fn(open_partition), backoff.clone())
    ///             .budget(budget.clone())
    ///     })
    ///     .collect();
    /// # assert_eq!(partitions.len(), 8);
    /// # Ok(())
    /// # }
    /// ```
    pub fn budget(mut self, budget: impl Budget + 'static) -> Self {
        self.rules.budget = Arc::new(budget);
        self
    }

    /// Report events to `listener` as well as to `tracing`.
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// A live view of the counters.
    pub fn stats(&self) -> StreamStats {
        self.stats.clone()
    }

    /// The offset of the last item delivered (or the start position, before the first).
    pub fn last_delivered(&self) -> Option<&O> {
        self.last.as_ref()
    }

    pub(crate) fn listener_ref(&self) -> Option<&SharedListener> {
        self.listener.as_ref()
    }

    pub(crate) fn resume_after(self: Pin<&mut Self>, position: Option<O>) {
        *self.project().last = position;
    }
}

impl<S, O, T, E, E1, C, B> Stream for Resumable<S, O, C, B>
where
    O: Offset,
    S: Service<Option<O>, Error = E>,
    S::Response: Stream<Item = Result<(O, T), E1>>,
    E1: Into<E>,
    C: Classify<T, E>,
    B: MakeBackoff,
{
    type Item = Result<(O, T), ResumeError<E, O>>;

    // Forced: the per-item path is a handful of instructions, and a call per item would be
    // most of its cost.
    #[inline(always)]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The per-item path: streaming, the next item strictly follows the last one, no
        // outage to end. Everything else is out of line, so this stays small enough for the
        // caller to inline.
        let this = self.as_mut().project();
        let StateProj::Streaming { stream } = this.state.project() else {
            return poll_slow(self, cx, None);
        };
        let next = match stream.poll_next(cx) {
            Poll::Ready(next) => next,
            Poll::Pending => return Poll::Pending,
        };
        if *this.attempts == 0 {
            if let (Some(Ok((offset, _))), Some(last)) = (&next, this.last.as_mut()) {
                // Dense offsets must be exactly the successor; any offset must be after the last.
                let follows = offset.is_after(last)
                    && last.successor().is_none_or(|expected| expected == *offset);
                if follows {
                    *last = offset.clone();
                    this.stats.bump_delivered();
                    // An item, so only the error type changes.
                    return Poll::Ready(
                        next.map(|r| r.map_err(|e| ResumeError::Permanent(e.into()))),
                    );
                }
            }
        }
        poll_slow(self, cx, Some(next))
    }
}

/// Everything but the per-item path: replays, gaps, the very first item, the first after an
/// outage, failures, ends, connecting and waiting. `first` is an outcome the fast path already took
/// from the source's stream.
#[inline(never)]
#[allow(clippy::type_complexity)]
fn poll_slow<S, O, T, E, E1, C, B>(
    resumable: Pin<&mut Resumable<S, O, C, B>>,
    cx: &mut Context<'_>,
    mut first: Option<Option<Result<(O, T), E1>>>,
) -> Poll<Option<Result<(O, T), ResumeError<E, O>>>>
where
    O: Offset,
    S: Service<Option<O>, Error = E>,
    S::Response: Stream<Item = Result<(O, T), E1>>,
    E1: Into<E>,
    C: Classify<T, E>,
    B: MakeBackoff,
{
    let mut this = resumable.project();
    loop {
        let failure = match this.state.as_mut().project() {
            StateProj::Streaming { stream } => {
                let next = match first.take() {
                    Some(outcome) => outcome,
                    None => ready!(stream.poll_next(cx)),
                };
                match next {
                    Some(Ok((offset, item))) => {
                        if let Some(last) = this.last.as_ref() {
                            if !offset.is_after(last) {
                                *this.replays += 1;
                                this.stats.set_replays_dropped(*this.replays);
                                continue;
                            }
                            if let Some(expected) = last.successor() {
                                if expected != offset {
                                    this.stats.add_gap();
                                    emit(
                                        this.listener.as_ref(),
                                        StreamEvent::Gap {
                                            expected: expected.clone(),
                                            found: offset.clone(),
                                        },
                                    );
                                    if this.config.on_gap == OnGap::Fail {
                                        this.state.set(State::Done);
                                        return Poll::Ready(Some(Err(ResumeError::Gap {
                                            expected,
                                            found: offset,
                                        })));
                                    }
                                }
                            }
                        }
                        if *this.attempts != 0 {
                            // New data: the outage is over, and the next starts a fresh schedule.
                            *this.attempts = 0;
                            this.rules.succeeded(this.retries.as_mut());
                            *this.retries = None;
                        }
                        *this.last = Some(offset.clone());
                        this.stats.bump_delivered();
                        return Poll::Ready(Some(Ok((offset, item))));
                    }
                    Some(Err(e)) => {
                        let e: E = e.into();
                        (this.classifier.classify(Err(&e)), Some(e))
                    }
                    None => match this.config.on_end {
                        OnEnd::Finish => {
                            this.state.set(State::Done);
                            return Poll::Ready(None);
                        }
                        OnEnd::Reconnect => (Class::Transient, None),
                    },
                }
            }
            StateProj::Idle => match ready!(this.source.poll_ready(cx)) {
                Ok(()) => {
                    if let Some(retries) = this.retries.as_mut() {
                        this.rules.sending(retries);
                    }
                    let future = this.source.call(this.last.clone());
                    this.state.set(State::Connecting {
                        future: Box::pin(future),
                    });
                    continue;
                }
                Err(e) => (this.classifier.classify(Err(&e)), Some(e)),
            },
            StateProj::Connecting { future } => match ready!(future.as_mut().poll(cx)) {
                Ok(stream) => {
                    this.state.set(State::Streaming { stream });
                    continue;
                }
                Err(e) => (this.classifier.classify(Err(&e)), Some(e)),
            },
            StateProj::Waiting { sleep } => {
                ready!(sleep.as_mut().poll(cx));
                this.state.set(State::Idle);
                continue;
            }
            StateProj::Done => return Poll::Ready(None),
        };

        // The source failed or ended: reconnect, or end the stream, by the engine's rules.
        let (class, error) = failure;
        let attempts = *this.attempts;
        if attempts == 0 {
            // The connection that just failed was the outage's first attempt.
            this.rules.begin();
        }
        let delay = match this.rules.after_failure(
            this.retries,
            attempts.saturating_add(1),
            None,
            class,
            true,
        ) {
            Ok(delay) => delay,
            Err(stop) => {
                this.state.set(State::Done);
                return Poll::Ready(Some(Err(match (stop.reason, error) {
                    (GiveUp::Permanent, Some(e)) => ResumeError::Permanent(e),
                    (reason, last) => {
                        emit::<O>(
                            this.listener.as_ref(),
                            StreamEvent::GaveUp { attempts, reason },
                        );
                        ResumeError::GaveUp {
                            reason,
                            attempts,
                            retry_at: stop.retry_at,
                            last,
                        }
                    }
                })));
            }
        };
        *this.attempts = attempts + 1;
        this.stats.add_reconnect();
        emit(
            this.listener.as_ref(),
            StreamEvent::Reconnecting {
                after: this.last.clone(),
                attempt: attempts + 1,
                delay,
                class,
            },
        );
        this.state.set(State::Waiting {
            sleep: Box::pin(tokio::time::sleep(delay)),
        });
    }
}

impl<S, O, C, B> std::fmt::Debug for Resumable<S, O, C, B>
where
    S: Service<Option<O>>,
    B: MakeBackoff,
    O: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumable")
            .field("last_delivered", &self.last)
            .field("attempts", &self.attempts)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
