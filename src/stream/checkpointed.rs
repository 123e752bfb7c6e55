//! Committing the consumer's acknowledged position to an [`OffsetStore`].

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_core::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::ack::{Ack, AckHandle, AckTracker};
use super::config::CommitConfig;
use super::error::{CheckpointError, ResumeError};
use super::events::{StreamEvent, StreamStats, emit};
use super::offset::Offset;
use super::resumable::Resumable;
use super::store::OffsetStore;
use crate::backoff::MakeBackoff;
use crate::classify::Classify;
use crate::events::SharedListener;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How often (in items) the per-item path looks at the commit timer.
const TIMER_CHECK_EVERY: u32 = 64;

/// One item from a [`Checkpointed`] stream, with the [`Ack`] to hand back when it is done.
#[derive(Debug)]
pub struct Delivery<O, T> {
    item: T,
    ack: Ack<O>,
}

impl<O, T> Delivery<O, T> {
    /// The item's offset.
    pub fn offset(&self) -> &O {
        self.ack.offset()
    }

    /// The item.
    pub fn item(&self) -> &T {
        &self.item
    }

    /// The item and its ack, to process the one and then send the other to
    /// [`AckHandle::ack`].
    pub fn into_parts(self) -> (T, Ack<O>) {
        (self.item, self.ack)
    }
}

pin_project! {
    /// A [`Resumable`] stream whose consumer acknowledges items, with the acknowledged
    /// position committed to an [`OffsetStore`].
    ///
    /// On the first poll it loads the committed position and resumes after it. It yields
    /// [`Delivery`]s; the consumer acknowledges each through an [`AckHandle`] (from
    /// [`acker`](Checkpointed::acker)) when its work is done, in any order, from any task.
    /// The committed position is the offset of the last item of the longest acknowledged
    /// prefix of the delivery order. It is saved once [`CommitConfig::every`] more items are
    /// acknowledged, at least every [`CommitConfig::interval`] while acks arrive (both
    /// checked while the stream is polled), when a [`OnEnd::Finish`](super::OnEnd::Finish)
    /// source ends, and on [`flush`](Checkpointed::flush), which the consumer should await
    /// after its last ack before shutting down.
    ///
    /// ```
    /// use std::time::Duration;
    /// use futures_util::{stream, StreamExt};
    /// use riprap::backoff::BackoffPolicy;
    /// use riprap::stream::{CommitConfig, MemoryStore, OnEnd, ResumeConfig, Resumable};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let source = tower::service_fn(|after: Option<u64>| async move {
    ///     let from = after.map_or(0, |a| a + 1);
    ///     let items = (from..100).map(|n| Ok::<_, std::io::Error>((n, n * 10)));
    ///     Ok::<_, std::io::Error>(stream::iter(items))
    /// });
    /// let store = MemoryStore::with_position(49u64); // a previous run committed 0..=49
    /// let mut logs = Resumable::new(source, BackoffPolicy::constant(Duration::from_secs(1)).build()?)
    ///     .config(ResumeConfig::builder().on_end(OnEnd::Finish).build()?)
    ///     .checkpointed(store.clone(), CommitConfig::builder().every(10).build()?);
    /// let acker = logs.acker();
    ///
    /// let mut first = None;
    /// while let Some(delivery) = logs.next().await {
    ///     let (value, ack) = delivery?.into_parts();
    ///     first.get_or_insert(value);
    ///     acker.ack(ack)?; // after the work is done
    /// }
    /// logs.flush().await?;
    /// assert_eq!(first, Some(500)); // resumed after 49
    /// assert_eq!(store.position(), Some(99));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "streams do nothing unless polled"]
    pub struct Checkpointed<S, O, C, B, St>
    where
        S: Service<Option<O>>,
        B: MakeBackoff,
    {
        #[pin]
        inner: Resumable<S, O, C, B>,
        tracker: AckTracker<O>,
        shared: Arc<Committer<O, St>>,
        load: Option<BoxFuture<Result<Option<O>, CheckpointError>>>,
        commit: Option<BoxFuture<Result<Option<O>, CheckpointError>>>,
        poll_commit: bool,
        timer: Option<Pin<Box<Sleep>>>,
        timer_fired: bool,
        countdown: u32,
        last_commit_acked: u64,
        config: CommitConfig,
        phase: Phase,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// The source finished: one last commit, then the end.
    Finishing,
    Done,
}

/// What a commit needs, shared by the stream and [`Checkpointed::flush`].
struct Committer<O, St> {
    store: St,
    acks: AckHandle<O>,
    /// Length of the acknowledged prefix saved last; the lock also keeps saves one at a time.
    saved: tokio::sync::Mutex<u64>,
    stats: StreamStats,
    listener: Option<SharedListener>,
}

impl<O: Offset, St: OffsetStore<O>> Committer<O, St> {
    async fn commit(self: Arc<Self>) -> Result<Option<O>, CheckpointError> {
        let mut saved = self.saved.lock().await;
        let (acked, position) = self.acks.snapshot();
        if acked <= *saved {
            return Ok(None);
        }
        let Some(position) = position else {
            return Ok(None);
        };
        self.store.save(&position).await?;
        *saved = acked;
        self.stats.record_commit(acked);
        emit(
            self.listener.as_ref(),
            StreamEvent::Committed {
                position: position.clone(),
            },
        );
        Ok(Some(position))
    }
}

impl<S, O, C, B> Resumable<S, O, C, B>
where
    O: Offset,
    S: Service<Option<O>>,
    B: MakeBackoff,
{
    /// Acknowledge-and-commit through `store`: see [`Checkpointed`].
    pub fn checkpointed<St: OffsetStore<O>>(
        self,
        store: St,
        config: CommitConfig,
    ) -> Checkpointed<S, O, C, B, St> {
        Checkpointed::new(self, store, config)
    }
}

impl<S, O, C, B, St> Checkpointed<S, O, C, B, St>
where
    O: Offset,
    S: Service<Option<O>>,
    B: MakeBackoff,
    St: OffsetStore<O>,
{
    /// Wrap `inner`, committing to `store` as `config` says. `inner`'s start position is
    /// replaced by the one loaded from `store`.
    pub fn new(inner: Resumable<S, O, C, B>, store: St, config: CommitConfig) -> Self {
        // `CommitConfig`'s builder rejects 0; a hand-built config with 0 gets the smallest window.
        let window = NonZeroUsize::new(config.max_unacked).unwrap_or(NonZeroUsize::MIN);
        let tracker = AckTracker::with_window(window);
        let shared = Arc::new(Committer {
            store,
            acks: tracker.handle(),
            saved: tokio::sync::Mutex::new(0),
            stats: inner.stats(),
            listener: inner.listener_ref().cloned(),
        });
        let loader = Arc::clone(&shared);
        Checkpointed {
            inner,
            tracker,
            load: Some(Box::pin(async move { loader.store.load().await })),
            shared,
            commit: None,
            poll_commit: false,
            timer: None,
            timer_fired: false,
            countdown: TIMER_CHECK_EVERY,
            last_commit_acked: 0,
            config,
            phase: Phase::Running,
        }
    }

    /// A handle for acknowledging delivered items; clone it for each worker.
    pub fn acker(&self) -> AckHandle<O> {
        self.tracker.handle()
    }

    /// A live view of the counters.
    pub fn stats(&self) -> StreamStats {
        self.inner.stats()
    }

    /// The committed position as of the acks so far (saved or not yet).
    pub fn committed(&self) -> Option<O> {
        self.tracker.committed()
    }

    /// Save the committed position now, if acks moved it since the last save; returns the
    /// position saved, or `None` if there was nothing new. Await it after the last ack
    /// before shutting down.
    ///
    /// A commit the stream started and that has not finished yet is finished first, so
    /// saves stay in order.
    pub async fn flush(&mut self) -> Result<Option<O>, CheckpointError> {
        if let Some(in_flight) = self.commit.take() {
            in_flight.await?;
        }
        Arc::clone(&self.shared).commit().await
    }
}

impl<S, O, T, E, E1, C, B, St> Stream for Checkpointed<S, O, C, B, St>
where
    O: Offset,
    S: Service<Option<O>, Error = E>,
    S::Response: Stream<Item = Result<(O, T), E1>>,
    E1: Into<E>,
    C: Classify<T, E>,
    B: MakeBackoff,
    St: OffsetStore<O>,
{
    type Item = Result<Delivery<O, T>, ResumeError<E, O>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        if let Some(load) = this.load.as_mut() {
            let loaded = ready!(load.as_mut().poll(cx));
            *this.load = None;
            match loaded {
                Ok(position) => {
                    emit(
                        this.shared.listener.as_ref(),
                        StreamEvent::Loaded {
                            position: position.clone(),
                        },
                    );
                    this.tracker.start_after(position.clone());
                    this.inner.as_mut().resume_after(position);
                }
                Err(e) => {
                    *this.phase = Phase::Done;
                    return Poll::Ready(Some(Err(ResumeError::Checkpoint(e))));
                }
            }
        }
        let mut commit_polled = false;
        loop {
            // The in-flight commit is polled when it starts, every `TIMER_CHECK_EVERY` items
            // and before parking, not per item: once the task's cooperative budget is spent,
            // polling it would self-wake the task on every item.
            let poll_now = *this.poll_commit || *this.phase != Phase::Running;
            if let (Some(commit), true) = (this.commit.as_mut(), poll_now) {
                *this.poll_commit = false;
                commit_polled = true;
                if let Poll::Ready(result) = commit.as_mut().poll(cx) {
                    *this.commit = None;
                    if let Err(e) = result {
                        *this.phase = Phase::Done;
                        return Poll::Ready(Some(Err(ResumeError::Checkpoint(e))));
                    }
                }
            }
            if this.commit.is_none() && *this.phase != Phase::Done {
                let acked = this.tracker.acked();
                let fired = std::mem::take(this.timer_fired);
                let due = acked >= this.last_commit_acked.saturating_add(this.config.every)
                    || (fired && acked > *this.last_commit_acked)
                    || *this.phase == Phase::Finishing;
                if due {
                    if *this.phase == Phase::Finishing {
                        *this.phase = Phase::Done;
                    }
                    *this.last_commit_acked = acked;
                    *this.commit = Some(Box::pin(Arc::clone(this.shared).commit()));
                    *this.poll_commit = true;
                    continue;
                }
            }
            // While a commit is in flight its completion wakes the stream; acks need to only
            // once none is (waking for them then would spin until the save finished).
            let next_commit_at = match this.commit {
                Some(_) => u64::MAX,
                None => this.last_commit_acked.saturating_add(this.config.every),
            };
            match this.phase {
                Phase::Running => {}
                // The last commit is in flight and was polled above.
                Phase::Finishing => return Poll::Pending,
                Phase::Done => {
                    return match this.commit {
                        Some(_) => Poll::Pending,
                        None => Poll::Ready(None),
                    };
                }
            }
            if !this.tracker.has_room() {
                // Wait for the ack that frees a slot, or the one that makes a commit due.
                let room_at = this.tracker.delivered() + 1 - this.config.max_unacked as u64;
                if this
                    .tracker
                    .wake_when_acked(cx, room_at.min(next_commit_at))
                {
                    continue;
                }
                if poll_timer(this.timer, this.config, cx) {
                    *this.timer_fired = true;
                    continue;
                }
                if this.commit.is_some() && !commit_polled {
                    *this.poll_commit = true;
                    continue;
                }
                return Poll::Pending;
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok((offset, item)))) => {
                    *this.countdown -= 1;
                    if *this.countdown == 0 {
                        *this.countdown = TIMER_CHECK_EVERY;
                        *this.timer_fired |= poll_timer(this.timer, this.config, cx);
                        *this.poll_commit = true;
                    }
                    return match this.tracker.track(offset) {
                        Ok(ack) => Poll::Ready(Some(Ok(Delivery { item, ack }))),
                        // Unreachable: `has_room` said yes and nothing else tracks items.
                        Err(_) => Poll::Ready(None),
                    };
                }
                Poll::Ready(Some(Err(e))) => {
                    // The inner stream ends after an error; what was acked is committed as
                    // it ends, and later acks by `flush`.
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    *this.phase = Phase::Finishing;
                }
                Poll::Pending => {
                    if next_commit_at != u64::MAX
                        && this.tracker.wake_when_acked(cx, next_commit_at)
                    {
                        continue;
                    }
                    if poll_timer(this.timer, this.config, cx) {
                        *this.timer_fired = true;
                        continue;
                    }
                    if this.commit.is_some() && !commit_polled {
                        *this.poll_commit = true;
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Poll the commit timer, arming it on first use; `true` (and re-armed) when it fired.
fn poll_timer(
    timer: &mut Option<Pin<Box<Sleep>>>,
    config: &CommitConfig,
    cx: &mut Context<'_>,
) -> bool {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(config.interval)));
    if sleep.as_mut().poll(cx).is_pending() {
        return false;
    }
    sleep.as_mut().reset(Instant::now() + config.interval);
    // Register the re-armed deadline with this task.
    let _ = sleep.as_mut().poll(cx);
    true
}
