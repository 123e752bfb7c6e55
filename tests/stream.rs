//! Resumable streams: reconnects, replays, gaps, acknowledgements, commits and checkpoints.

mod common;

#[path = "checks/ack_tracker.rs"]
mod ack_tracker_check;
#[path = "checks/checkpoint_decode.rs"]
mod checkpoint_decode_check;
#[path = "checks/resumable_ops.rs"]
mod resumable_ops_check;

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, BufRead, BufReader};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, stream};
use proptest::prelude::*;
use resumable_ops_check::Allowance;
use riprap::backoff::{BackoffPolicy, Jitter};
use riprap::classify::{Class, Classified, classify_fn};
use riprap::stream::{
    AckError, AckTracker, BytePosition, CheckpointError, CommitConfig, Corruption, FileSink,
    FileStore, GiveUp, MemoryStore, Offset, OffsetStore, OnEnd, OnGap, Resumable, ResumeConfig,
    ResumeError, ResumeToken, SourceVersion, StreamEvent, Versioned, codec,
};
use tokio::time::Instant;

type Item = io::Result<(u64, u64)>;
type Events<O> = Arc<Mutex<Vec<StreamEvent<O>>>>;

fn constant(ms: u64) -> BackoffPolicy {
    BackoffPolicy::constant(Duration::from_millis(ms))
        .build()
        .unwrap()
}

fn config(max_reconnects: u32, on_end: OnEnd, on_gap: OnGap) -> ResumeConfig {
    ResumeConfig::builder()
        .max_reconnects(max_reconnects)
        .on_end(on_end)
        .on_gap(on_gap)
        .build()
        .unwrap()
}

fn recorder<O: Offset>() -> (Events<O>, impl riprap::events::Listener) {
    let events: Events<O> = Arc::default();
    let sink = Arc::clone(&events);
    let listener = move |e: &StreamEvent<O>| sink.lock().unwrap().push(e.clone());
    (events, riprap::events::only(listener))
}

fn reset() -> io::Error {
    io::ErrorKind::ConnectionReset.into()
}

/// A log of offsets `0..len`, items equal to their offsets.
fn log_from(after: Option<u64>, len: u64) -> impl Iterator<Item = Item> {
    (after.map_or(0, |a| a + 1)..len).map(|n| Ok((n, n)))
}

// ---------------------------------------------------------------------------------------------
// Reconnecting, on a paused clock

#[tokio::test(start_paused = true)]
async fn reconnects_follow_the_backoff_and_stop_at_the_bound() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let source = tower::service_fn(move |after: Option<u64>| {
        seen.lock().unwrap().push(Instant::now());
        async move {
            let _ = after;
            Err::<stream::Iter<std::vec::IntoIter<Item>>, _>(reset())
        }
    });
    let backoff = BackoffPolicy::exponential(Duration::from_millis(100))
        .factor(2.0)
        .jitter(Jitter::None)
        .build()
        .unwrap();
    let (events, listener) = recorder::<u64>();
    let start = Instant::now();
    let mut s = Resumable::new(source, backoff)
        .config(config(4, OnEnd::Reconnect, OnGap::Fail))
        .listener(listener);
    match s.next().await {
        Some(Err(ResumeError::GaveUp {
            reason: GiveUp::AttemptsExhausted,
            attempts: 4,
            last: Some(e),
            ..
        })) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset)
        }
        other => panic!("expected GaveUp after 4, got {other:?}"),
    }
    assert!(s.next().await.is_none());
    let calls = calls.lock().unwrap();
    let offsets: Vec<_> = calls.iter().map(|t| (*t - start).as_millis()).collect();
    assert_eq!(offsets, [0, 100, 300, 700, 1500]);
    let delays: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Reconnecting {
                delay,
                attempt,
                class,
                ..
            } => {
                assert_eq!(*class, Class::Transient);
                Some((*attempt, delay.as_millis()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(delays, [(1, 100), (2, 200), (3, 400), (4, 800)]);
    assert_eq!(s.stats().snapshot().reconnects, 4);
}

#[tokio::test(start_paused = true)]
async fn the_backoff_schedule_ending_also_ends_the_stream() {
    let source = tower::service_fn(|_: Option<u64>| async {
        Err::<stream::Iter<std::vec::IntoIter<Item>>, _>(reset())
    });
    let backoff = BackoffPolicy::constant(Duration::from_secs(1))
        .max_retries(2)
        .build()
        .unwrap();
    let start = Instant::now();
    let mut s = Resumable::new(source, backoff);
    assert!(matches!(
        s.next().await,
        Some(Err(ResumeError::GaveUp { attempts: 2, .. }))
    ));
    assert_eq!(start.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn progress_ends_the_outage_and_resets_the_bound() {
    // Every connection delivers one new item, then drops: never more than 1 attempt per outage.
    let source = tower::service_fn(|after: Option<u64>| async move {
        let items: Vec<Item> = log_from(after, u64::MAX)
            .take(1)
            .chain([Err(reset())])
            .collect();
        Ok::<_, io::Error>(stream::iter(items))
    });
    let s = Resumable::new(source, constant(10)).config(config(1, OnEnd::Reconnect, OnGap::Fail));
    let got: Vec<u64> = s.take(50).map(|r| r.unwrap().0).collect().await;
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn unexpected_end_reconnects_but_finish_ends() {
    let source = || {
        tower::service_fn(|after: Option<u64>| async move {
            let items: Vec<Item> = log_from(after, 10).take(3).collect();
            Ok::<_, io::Error>(stream::iter(items))
        })
    };
    let got: Vec<u64> = Resumable::new(source(), constant(10))
        .take(10)
        .map(|r| r.unwrap().0)
        .collect()
        .await;
    assert_eq!(got, (0..10).collect::<Vec<_>>());

    let got: Vec<u64> = Resumable::new(source(), constant(10))
        .config(config(3, OnEnd::Finish, OnGap::Fail))
        .map(|r| r.unwrap().0)
        .collect()
        .await;
    assert_eq!(got, [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_ends_the_stream_without_reconnecting() {
    let connects = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&connects);
    let source = tower::service_fn(move |after: Option<u64>| {
        *counter.lock().unwrap() += 1;
        async move {
            let items: Vec<Item> = log_from(after, 2)
                .chain([Err(io::ErrorKind::PermissionDenied.into())])
                .collect();
            Ok::<_, io::Error>(stream::iter(items))
        }
    });
    let mut s = Resumable::new(source, constant(10));
    assert_eq!(s.next().await.unwrap().unwrap(), (0, 0));
    assert_eq!(s.next().await.unwrap().unwrap(), (1, 1));
    match s.next().await {
        Some(Err(ResumeError::Permanent(e))) => {
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied)
        }
        other => panic!("{other:?}"),
    }
    assert!(s.next().await.is_none());
    assert_eq!(*connects.lock().unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_throttle_waits_at_least_the_servers_delay() {
    let source = tower::service_fn(|after: Option<u64>| async move {
        let items: Vec<Item> = log_from(after, 100).take(1).chain([Err(reset())]).collect();
        Ok::<_, io::Error>(stream::iter(items))
    });
    let throttled = classify_fn(|_: Result<&u64, &io::Error>| Class::Throttled {
        retry_after: Some(Duration::from_secs(20)),
    });
    let start = Instant::now();
    let got: Vec<u64> = Resumable::new(source, constant(10))
        .classifier(throttled)
        .take(3)
        .map(|r| r.unwrap().0)
        .collect()
        .await;
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(start.elapsed(), Duration::from_secs(40));
}

/// Reconnects follow the retry layer's rules, from the same engine: a server delay beyond
/// `max_retry_after` is never cut short (it used to be waited out with no ceiling at all, where
/// the retry layer capped it); the stream ends at once, saying when the server will take
/// calls again.
#[tokio::test(start_paused = true)]
async fn a_reconnect_the_server_delays_too_long_ends_at_once_like_a_retry() {
    let connects = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&connects);
    let source = tower::service_fn(move |_after: Option<u64>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, io::Error>(stream::iter(vec![Err::<(u64, u64), _>(reset())])) }
    });
    let throttled = classify_fn(|_: Result<&u64, &io::Error>| Class::Throttled {
        retry_after: Some(Duration::from_secs(120)),
    });
    let start = Instant::now();
    let mut s = Resumable::new(source, constant(10)).classifier(throttled);
    match s.next().await {
        Some(Err(ResumeError::GaveUp {
            reason: GiveUp::WaitTooLong,
            attempts: 0,
            retry_at: Some(at),
            ..
        })) => assert_eq!(at, start + Duration::from_secs(120)),
        other => panic!("expected to give up at once, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(connects.load(Ordering::SeqCst), 1);

    // Within the allowance, the same delay is waited out in full.
    let config = ResumeConfig::builder()
        .max_retry_after(Duration::from_secs(300))
        .build()
        .unwrap();
    let source = tower::service_fn(|after: Option<u64>| async move {
        let items: Vec<Item> = log_from(after, 100).take(1).chain([Err(reset())]).collect();
        Ok::<_, io::Error>(stream::iter(items))
    });
    let got: Vec<u64> = Resumable::new(source, constant(10))
        .classifier(throttled)
        .config(config)
        .take(2)
        .map(|r| r.unwrap().0)
        .collect()
        .await;
    assert_eq!(got, [0, 1]);
    assert_eq!(start.elapsed(), Duration::from_secs(120));
}

// ---------------------------------------------------------------------------------------------
// Replays and gaps

#[tokio::test(start_paused = true)]
async fn replays_from_an_earlier_offset_are_dropped() {
    // Each reconnect rewinds 5 items and delivers 7.
    let source = tower::service_fn(|after: Option<u64>| async move {
        let from = after.map_or(0, |a| (a + 1).saturating_sub(5));
        let items: Vec<Item> = (from..from + 7)
            .map(|n| Ok((n, n)))
            .chain([Err(reset())])
            .collect();
        Ok::<_, io::Error>(stream::iter(items))
    });
    let mut s =
        Resumable::new(source, constant(1)).config(config(3, OnEnd::Reconnect, OnGap::Fail));
    let stats = s.stats();
    let mut got = Vec::new();
    while got.len() < 30 {
        got.push(s.next().await.unwrap().unwrap().0);
    }
    assert_eq!(got, (0..30).collect::<Vec<_>>());
    assert_eq!(stats.snapshot().replays_dropped, 5 * 12);
}

fn gappy_source() -> impl tower::Service<
    Option<u64>,
    Response = stream::Iter<std::vec::IntoIter<Item>>,
    Error = io::Error,
    Future = impl Send,
> {
    tower::service_fn(|_: Option<u64>| async {
        Ok::<_, io::Error>(stream::iter(vec![
            Ok((1, 1)),
            Ok((2, 2)),
            Ok((5, 5)),
            Ok((6, 6)),
        ]))
    })
}

#[tokio::test(start_paused = true)]
async fn a_gap_in_dense_offsets_fails_by_default() {
    let mut s = Resumable::new(gappy_source(), constant(1));
    assert_eq!(s.next().await.unwrap().unwrap().0, 1);
    assert_eq!(s.next().await.unwrap().unwrap().0, 2);
    assert!(matches!(
        s.next().await,
        Some(Err(ResumeError::Gap {
            expected: 3,
            found: 5
        }))
    ));
    assert!(s.next().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_gap_can_be_reported_instead() {
    let (events, listener) = recorder::<u64>();
    let s = Resumable::new(gappy_source(), constant(1))
        .config(config(3, OnEnd::Finish, OnGap::Report))
        .listener(listener);
    let stats = s.stats();
    let got: Vec<u64> = s.map(|r| r.unwrap().0).collect().await;
    assert_eq!(got, [1, 2, 5, 6]);
    assert_eq!(stats.snapshot().gaps, 1);
    assert!(events.lock().unwrap().contains(&StreamEvent::Gap {
        expected: 3,
        found: 5
    }));
}

#[tokio::test(start_paused = true)]
async fn a_start_position_is_the_first_gap_reference() {
    let mut s = Resumable::new(gappy_source(), constant(1)).start_after(Some(0));
    assert_eq!(s.next().await.unwrap().unwrap().0, 1);
    let mut s = Resumable::new(gappy_source(), constant(1)).start_after(Some(4));
    assert_eq!(s.next().await.unwrap().unwrap().0, 5); // 1 and 2 are replays
}

#[tokio::test(start_paused = true)]
async fn resume_tokens_drop_the_resent_resume_point() {
    let events = ["a", "b", "c", "d", "e"];
    let source = tower::service_fn(move |after: Option<ResumeToken>| async move {
        // Like many SSE servers, resend the Last-Event-ID event itself, then two more.
        let start = after.map_or(0, |t| {
            events.iter().position(|e| t.as_str() == Some(*e)).unwrap()
        });
        let items: Vec<io::Result<(ResumeToken, &str)>> = events[start..]
            .iter()
            .take(3)
            .map(|e| Ok((ResumeToken::from(*e), *e)))
            .collect();
        Ok::<_, io::Error>(stream::iter(items))
    });
    let got: Vec<&str> = Resumable::new(source, constant(1))
        .take(5)
        .map(|r| r.unwrap().1)
        .collect()
        .await;
    assert_eq!(got, events);
}

// ---------------------------------------------------------------------------------------------
// Acknowledgements and commits

#[test]
fn acks_commit_only_the_contiguous_prefix() {
    let mut tracker = AckTracker::new(8).unwrap();
    tracker.start_after(Some(99u64));
    let acker = tracker.handle();
    let acks: Vec<_> = (100..104).map(|o| tracker.track(o).unwrap()).collect();
    assert_eq!(acker.committed(), Some(99));
    acker.ack(acks[1].clone()).unwrap();
    acker.ack(acks[3].clone()).unwrap();
    assert_eq!(acker.committed(), Some(99));
    acker.ack(acks[0].clone()).unwrap();
    assert_eq!(acker.committed(), Some(101));
    acker.ack(acks[0].clone()).unwrap(); // a repeat is ignored
    acker.ack(acks[2].clone()).unwrap();
    assert_eq!(acker.committed(), Some(103));
    assert_eq!(acker.acked(), 4);

    let other = AckTracker::new(1).unwrap().track(1u64).unwrap();
    assert_eq!(acker.ack(other.clone()), Err(AckError::ForeignStream));

    // A batch counts up to its first foreign ack.
    let more: Vec<_> = (104..107).map(|o| tracker.track(o).unwrap()).collect();
    let batch = vec![more[1].clone(), more[0].clone(), other, more[2].clone()];
    assert_eq!(acker.ack_many(batch), Err(AckError::ForeignStream));
    assert_eq!(acker.committed(), Some(105));
    acker.ack_many(more).unwrap();
    assert_eq!(acker.committed(), Some(106));
}

#[test]
fn the_tracker_refuses_past_its_window_until_the_oldest_is_acked() {
    let mut tracker = AckTracker::new(2).unwrap();
    let acker = tracker.handle();
    let a = tracker.track(0u64).unwrap();
    let b = tracker.track(1u64).unwrap();
    assert_eq!(tracker.track(2), Err(2));
    acker.ack(b).unwrap();
    assert_eq!(tracker.track(2), Err(2)); // 0 still holds the window
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(tracker.poll_capacity(&mut cx).is_pending());
    acker.ack(a).unwrap();
    assert!(tracker.poll_capacity(&mut cx).is_ready());
    assert!(tracker.track(2).is_ok());
}

fn finite_log(
    len: u64,
) -> impl tower::Service<
    Option<u64>,
    Response = stream::Iter<std::vec::IntoIter<Item>>,
    Error = io::Error,
    Future = impl Send,
> + Send {
    tower::service_fn(move |after: Option<u64>| async move {
        Ok::<_, io::Error>(stream::iter(log_from(after, len).collect::<Vec<_>>()))
    })
}

#[tokio::test(start_paused = true)]
async fn commits_every_n_acked_items() {
    let store = MemoryStore::new();
    let mut s = Resumable::new(finite_log(100), constant(1))
        .config(config(3, OnEnd::Finish, OnGap::Fail))
        .checkpointed(
            store.clone(),
            CommitConfig::builder().every(10).build().unwrap(),
        );
    let acker = s.acker();
    for n in 0..25u64 {
        let (item, ack) = s.next().await.unwrap().unwrap().into_parts();
        assert_eq!(item, n);
        acker.ack(ack).unwrap();
        // A commit starts on the poll after the 10th ack and lands during it (memory store).
        let expect = match n {
            0..=9 => None,
            10..=19 => Some(9),
            _ => Some(19),
        };
        assert_eq!(store.position(), expect, "after item {n}");
    }
    assert_eq!(s.stats().snapshot().commits, 2);
}

#[tokio::test(start_paused = true)]
async fn commits_on_the_interval_while_the_source_is_quiet() {
    let store = MemoryStore::new();
    let source = tower::service_fn(|after: Option<u64>| async move {
        let items: Vec<Item> = log_from(after, 3).collect();
        Ok::<_, io::Error>(stream::iter(items).chain(stream::pending()))
    });
    let config = CommitConfig::builder()
        .every(1_000)
        .interval(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut s = Resumable::new(source, constant(1)).checkpointed(store.clone(), config);
    let acker = s.acker();
    for _ in 0..3 {
        let (_, ack) = s.next().await.unwrap().unwrap().into_parts();
        acker.ack(ack).unwrap();
    }
    // The source is quiet now; the stream is polled (and parked) by the consumer.
    let start = Instant::now();
    let quiet = tokio::time::timeout(Duration::from_secs(6), s.next()).await;
    assert!(quiet.is_err());
    assert_eq!(store.position(), Some(2));
    assert!(start.elapsed() >= Duration::from_secs(5) - Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn waits_for_acks_when_the_window_is_full() {
    let store = MemoryStore::new();
    let config = CommitConfig::builder()
        .every(2)
        .max_unacked(3)
        .build()
        .unwrap();
    let mut s = Resumable::new(finite_log(10), constant(1))
        .config(config_finish())
        .checkpointed(store.clone(), config);
    let acker = s.acker();
    let mut held = VecDeque::new();
    for _ in 0..3 {
        held.push_back(s.next().await.unwrap().unwrap().into_parts().1);
    }
    assert!(
        s.next().now_or_never().is_none(),
        "4th item must wait for an ack"
    );
    // Acking a later item frees nothing; acking the oldest does.
    acker.ack(held.pop_back().unwrap()).unwrap();
    assert!(s.next().now_or_never().is_none());
    acker.ack(held.pop_front().unwrap()).unwrap();
    let fourth = s.next().now_or_never().flatten().unwrap().unwrap();
    assert_eq!(*fourth.offset(), 3);
}

fn config_finish() -> ResumeConfig {
    config(3, OnEnd::Finish, OnGap::Fail)
}

#[tokio::test(start_paused = true)]
async fn a_parked_stream_wakes_when_acks_make_a_commit_due() {
    let store = MemoryStore::new();
    let source = tower::service_fn(|after: Option<u64>| async move {
        let items: Vec<Item> = log_from(after, 4).collect();
        Ok::<_, io::Error>(stream::iter(items).chain(stream::pending()))
    });
    let config = CommitConfig::builder()
        .every(4)
        .interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let mut s = Resumable::new(source, constant(1)).checkpointed(store.clone(), config);
    let acker = s.acker();
    let mut acks = Vec::new();
    for _ in 0..4 {
        acks.push(s.next().await.unwrap().unwrap().into_parts().1);
    }
    let view = store.clone();
    let consumer = tokio::spawn(async move {
        let _ = s.next().await; // parks: the source is quiet
    });
    tokio::task::yield_now().await;
    for ack in acks {
        acker.ack(ack).unwrap();
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(view.position(), Some(3));
    consumer.abort();
}

#[tokio::test(start_paused = true)]
async fn a_restart_resumes_after_the_committed_position() {
    let store = MemoryStore::with_position(41u64);
    let (events, listener) = recorder::<u64>();
    let mut s = Resumable::new(finite_log(50), constant(1))
        .config(config_finish())
        .listener(listener)
        .checkpointed(store.clone(), CommitConfig::default());
    let acker = s.acker();
    let mut got = Vec::new();
    while let Some(d) = s.next().await {
        let (item, ack) = d.unwrap().into_parts();
        got.push(item);
        acker.ack(ack).unwrap();
    }
    assert_eq!(got, (42..50).collect::<Vec<_>>());
    // The finished source's acks were committed as it ended.
    assert_eq!(store.position(), Some(49));
    assert_eq!(s.flush().await.unwrap(), None);
    let events = events.lock().unwrap();
    assert_eq!(events[0], StreamEvent::Loaded { position: Some(41) });
    assert!(events.contains(&StreamEvent::Committed { position: 49 }));
}

/// A store whose saves take a second.
#[derive(Clone, Default)]
struct SlowStore(MemoryStore<u64>);

impl OffsetStore<u64> for SlowStore {
    async fn load(&self) -> Result<Option<u64>, CheckpointError> {
        self.0.load().await
    }

    async fn save(&self, offset: &u64) -> Result<(), CheckpointError> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.0.save(offset).await
    }
}

#[tokio::test(start_paused = true)]
async fn flush_finishes_a_commit_the_stream_left_in_flight() {
    let store = SlowStore::default();
    let mut s = Resumable::new(finite_log(100), constant(1))
        .config(config_finish())
        .checkpointed(
            store.clone(),
            CommitConfig::builder().every(5).build().unwrap(),
        );
    let acker = s.acker();
    for _ in 0..7 {
        let (_, ack) = s.next().await.unwrap().unwrap().into_parts();
        acker.ack(ack).unwrap();
    }
    // The commit of 0..=4 started on the 6th poll and is still sleeping; stop consuming.
    assert_eq!(store.0.position(), None);
    let flushed = tokio::time::timeout(Duration::from_secs(10), s.flush()).await;
    assert_eq!(
        flushed.expect("flush must not wait on the stream").unwrap(),
        Some(6)
    );
    assert_eq!(store.0.position(), Some(6));
}

// ---------------------------------------------------------------------------------------------
// Checkpoint files

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("riprap-stream-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn file_store_round_trips_and_a_missing_file_is_no_checkpoint() {
    let dir = temp_dir("roundtrip");
    let store = FileStore::<BytePosition>::new(dir.join("ckpt"));
    assert_eq!(store.load().await.unwrap(), None);
    for n in [1u64, 1 << 20, u64::MAX] {
        store.save(&BytePosition(n)).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(BytePosition(n)));
    }
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ckpt"], "no temporary file is left behind");
    let tokens = FileStore::<ResumeToken>::new(dir.join("token"));
    tokens.save(&ResumeToken::from("8245:17")).await.unwrap();
    assert_eq!(
        tokens.load().await.unwrap(),
        Some(ResumeToken::from("8245:17"))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn damaged_checkpoint_files_give_typed_errors() {
    let dir = temp_dir("corrupt");
    let path = dir.join("ckpt");
    let store = FileStore::<u64>::new(&path);
    let good = codec::encode(&12_345u64).unwrap();

    type Check = fn(&CheckpointError) -> bool;
    let cases: Vec<(Vec<u8>, Check)> = vec![
        (Vec::new(), |e| {
            matches!(
                e,
                CheckpointError::Corrupt(Corruption::Truncated { found: 0, .. })
            )
        }),
        (b"{\"offset\": 12}".to_vec(), |e| {
            matches!(e, CheckpointError::Corrupt(Corruption::BadMagic))
        }),
        (good[..good.len() - 1].to_vec(), |e| {
            matches!(e, CheckpointError::Corrupt(Corruption::Truncated { .. }))
        }),
        (good[..12].to_vec(), |e| {
            matches!(e, CheckpointError::Corrupt(Corruption::Truncated { .. }))
        }),
        ([good.as_slice(), b"x"].concat(), |e| {
            matches!(
                e,
                CheckpointError::Corrupt(Corruption::TrailingBytes { extra: 1 })
            )
        }),
        (
            {
                let mut b = good.clone();
                b[16] ^= 0x40;
                b
            },
            |e| matches!(e, CheckpointError::Corrupt(Corruption::Checksum { .. })),
        ),
        (
            {
                let mut b = good.clone();
                b[8] = 3;
                b
            },
            |e| matches!(e, CheckpointError::UnsupportedVersion { found: 3 }),
        ),
        // A position bound to a source version is not a plain offset.
        (
            codec::encode(&Versioned::new(
                SourceVersion::new("etag").unwrap(),
                12_345u64,
            ))
            .unwrap(),
            |e| matches!(e, CheckpointError::Corrupt(Corruption::Offset)),
        ),
        (
            {
                let mut b = good.clone();
                b[12] = 0xff;
                b
            },
            |e| matches!(e, CheckpointError::Corrupt(Corruption::TooLong { .. })),
        ),
        // A valid file holding a 4-byte offset is not a u64.
        (codec::encode(&7u32).unwrap(), |e| {
            matches!(e, CheckpointError::Corrupt(Corruption::Offset))
        }),
    ];
    for (i, (bytes, check)) in cases.iter().enumerate() {
        std::fs::write(&path, bytes).unwrap();
        let err = store.load().await.unwrap_err();
        assert!(check(&err), "case {i}: {err}");
        assert_eq!(riprap::classify::Classified::class(&err), Class::Permanent);
    }

    // A stream over a damaged checkpoint ends with the error instead of starting over.
    std::fs::write(&path, &good[..good.len() - 2]).unwrap();
    let mut s =
        Resumable::new(finite_log(10), constant(1)).checkpointed(store, CommitConfig::default());
    assert!(matches!(
        s.next().await,
        Some(Err(ResumeError::Checkpoint(CheckpointError::Corrupt(_))))
    ));
    assert!(s.next().await.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// The consumer's output is durable before the position that covers it is committed

const CHUNKS: u64 = 60;
const CHUNK_LEN: u64 = 10;

fn chunk_bytes(i: u64) -> Vec<u8> {
    (i * CHUNK_LEN..(i + 1) * CHUNK_LEN)
        .map(|b| (b % 251) as u8)
        .collect()
}

type ByteChunks =
    std::pin::Pin<Box<dyn futures_core::Stream<Item = io::Result<(BytePosition, Vec<u8>)>> + Send>>;

/// A byte source: chunk `i` ends at byte `(i + 1) * 10`. Each chunk takes a moment to
/// arrive, as over a network, which gives in-flight commits their turn.
fn byte_source() -> impl tower::Service<
    Option<BytePosition>,
    Response = ByteChunks,
    Error = io::Error,
    Future = impl Send,
> + Send {
    tower::service_fn(|after: Option<BytePosition>| async move {
        let from = after.map_or(0, |p| p.0 / CHUNK_LEN);
        let items = stream::iter(from..CHUNKS).then(|i| async move {
            tokio::task::yield_now().await;
            Ok((BytePosition((i + 1) * CHUNK_LEN), chunk_bytes(i)))
        });
        Ok::<_, io::Error>(Box::pin(items) as ByteChunks)
    })
}

/// An output whose writes are lost in a crash unless flushed: what the page cache and a
/// power cut, or a buffered writer and a kill, do to a file.
#[derive(Clone, Default)]
struct ModelSink(Arc<Mutex<(Vec<u8>, Vec<u8>)>>);

impl ModelSink {
    /// Write at `start`, cutting back what follows, as `FileSink::append_at` does.
    fn write(&self, start: u64, bytes: &[u8]) {
        let mut g = self.0.lock().unwrap();
        let start = usize::try_from(start).unwrap();
        assert!(start <= g.0.len(), "a gap before byte {start}");
        g.0.truncate(start);
        g.0.extend_from_slice(bytes);
    }

    fn crash(&self) {
        let mut g = self.0.lock().unwrap();
        g.0 = g.1.clone();
    }

    fn durable(&self) -> Vec<u8> {
        self.0.lock().unwrap().1.clone()
    }
}

impl riprap::stream::Flush for ModelSink {
    async fn flush(&self) -> io::Result<()> {
        let written = self.0.lock().unwrap().0.clone();
        // A crash can land while a flush is under way.
        tokio::task::yield_now().await;
        self.0.lock().unwrap().1 = written;
        Ok(())
    }
}

/// One life of a consumer: resume from `store`, write chunks to `sink`, ack in batches of
/// `batch` (in reverse, as parallel workers would), and crash after `crash_after` chunks.
/// Returns whether the source was finished.
async fn consumer_life<St: OffsetStore<BytePosition>>(
    store: St,
    sink: &ModelSink,
    every: u64,
    batch: usize,
    crash_after: Option<usize>,
) -> bool {
    let commits = CommitConfig::builder().every(every).build().unwrap();
    let mut s = Resumable::new(byte_source(), constant(1))
        .config(config_finish())
        .checkpointed(store, commits);
    let acker = s.acker();
    let mut pending = Vec::new();
    let mut seen = 0;
    while let Some(d) = s.next().await {
        let d = d.unwrap();
        let start = d.offset().0 - d.item().len() as u64;
        let (bytes, ack) = d.into_parts();
        sink.write(start, &bytes);
        pending.push(ack);
        if pending.len() == batch {
            for ack in pending.drain(..).rev() {
                acker.ack(ack).unwrap();
            }
        }
        seen += 1;
        if crash_after == Some(seen) {
            return false; // the process dies: no flush, and unflushed writes are lost
        }
    }
    for ack in pending.drain(..) {
        acker.ack(ack).unwrap();
    }
    s.flush().await.unwrap();
    true
}

/// After a crash: the committed position is never ahead of what the output durably holds,
/// and what it holds up to there is right.
fn check_durable(store: &MemoryStore<BytePosition>, sink: &ModelSink) -> Result<(), String> {
    let committed = usize::try_from(store.position().map_or(0, |p| p.0)).unwrap();
    let durable = sink.durable();
    if committed > durable.len() {
        return Err(format!(
            "committed byte {committed}, but the output durably holds {}",
            durable.len()
        ));
    }
    let expected: Vec<u8> = (0..CHUNKS).flat_map(chunk_bytes).collect();
    if durable[..committed] != expected[..committed] {
        return Err("the durable output differs from the source".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Crashes at any point (mid-flush included) against the model: with `FlushFirst` the
    /// checkpoint never runs ahead of the durable output, and the last life's output is the
    /// source's, whole.
    #[test]
    fn flush_first_never_commits_ahead_of_the_output(
        every in 1u64..8,
        batch in 1usize..5,
        crashes in proptest::collection::vec(1usize..25, 0..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let store = MemoryStore::<BytePosition>::new();
            let sink = ModelSink::default();
            for crash_after in crashes {
                consumer_life(store.clone().flush_first(sink.clone()), &sink, every, batch, Some(crash_after)).await;
                sink.crash();
                check_durable(&store, &sink).map_err(TestCaseError::fail)?;
            }
            let finished = consumer_life(store.clone().flush_first(sink.clone()), &sink, every, batch, None).await;
            prop_assert!(finished);
            let expected: Vec<u8> = (0..CHUNKS).flat_map(chunk_bytes).collect();
            prop_assert_eq!(sink.durable(), expected);
            prop_assert_eq!(store.position(), Some(BytePosition(CHUNKS * CHUNK_LEN)));
            Ok(())
        })?;
    }
}

/// The same crash without `FlushFirst`: the checkpoint is ahead of the output, and the bytes
/// in between are gone for good (the restart resumes after them).
#[tokio::test(start_paused = true)]
async fn without_flush_first_a_crash_leaves_the_checkpoint_ahead() {
    let store = MemoryStore::<BytePosition>::new();
    let sink = ModelSink::default();
    consumer_life(store.clone(), &sink, 2, 1, Some(7)).await;
    sink.crash();
    let err = check_durable(&store, &sink).unwrap_err();
    assert_eq!(err, "committed byte 60, but the output durably holds 0");
    // With it, the same crash leaves the output ahead instead.
    let store = MemoryStore::<BytePosition>::new();
    let sink = ModelSink::default();
    consumer_life(
        store.clone().flush_first(sink.clone()),
        &sink,
        2,
        1,
        Some(7),
    )
    .await;
    sink.crash();
    check_durable(&store, &sink).unwrap();
    let committed = store.position().unwrap().0;
    assert!(committed > 0 && sink.durable().len() as u64 >= committed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_flush_saves_nothing() {
    let store = MemoryStore::<BytePosition>::new();
    let failing =
        || async { Err::<(), _>(io::Error::new(io::ErrorKind::StorageFull, "disk full")) };
    let commits = CommitConfig::builder().every(1).build().unwrap();
    let mut s = Resumable::new(byte_source(), constant(1))
        .config(config_finish())
        .checkpointed(store.clone().flush_first(failing), commits);
    let acker = s.acker();
    let (_, ack) = s.next().await.unwrap().unwrap().into_parts();
    acker.ack(ack).unwrap();
    let end = s.next().await.unwrap();
    let Err(ResumeError::Checkpoint(e @ CheckpointError::Sink(_))) = end else {
        panic!("expected a sink error, got {end:?}");
    };
    assert!(e.to_string().contains("disk full"), "{e}");
    assert_eq!(store.position(), None, "nothing was committed");
}

#[tokio::test]
async fn file_sink_cuts_back_and_refuses_gaps() {
    let dir = temp_dir("sink");
    let path = dir.join("out.bin");
    let sink = FileSink::open(&path).await.unwrap();
    assert!(sink.is_empty());
    sink.append_at(0, b"hello, ".to_vec()).await.unwrap();
    sink.append_at(7, b"world".to_vec()).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"hello, world");
    // A restart at byte 5 drops what followed it.
    sink.append_at(5, b"!".to_vec()).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"hello!");
    assert_eq!(sink.len(), 6);
    let gap = sink.append_at(10, b"x".to_vec()).await.unwrap_err();
    assert_eq!(gap.kind(), io::ErrorKind::InvalidInput);
    riprap::stream::Flush::flush(&sink).await.unwrap();
    // Reopening keeps the contents.
    let again = FileSink::open(&path).await.unwrap();
    assert_eq!(again.len(), 6);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A checkpoint file as format 1 wrote it, byte for byte: `FileStore<BytePosition>` at byte
/// 12,345 (as an object download committed it before positions carried the object's version).
const V1_FILE: [u8; 26] = [
    b'R', b'I', b'P', b'R', b'A', b'P', b'C', b'K', // magic
    0x01, 0x00, // format 1
    0x08, 0x00, 0x00, 0x00, // 8 bytes of payload
    0x39, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 12,345
    0x10, 0xd3, 0x5a, 0xf1, // CRC-32
];

#[test]
fn format_1_files_still_read_and_plain_offsets_still_write_them() {
    assert_eq!(codec::decode::<u64>(&V1_FILE).unwrap(), 12_345);
    assert_eq!(
        codec::decode::<BytePosition>(&V1_FILE).unwrap(),
        BytePosition(12_345)
    );
    // Plain offsets are written exactly as before, so older builds still read them.
    assert_eq!(codec::encode(&12_345u64).unwrap(), V1_FILE);
    assert_eq!(codec::encode(&BytePosition(12_345)).unwrap(), V1_FILE);

    // Read as a versioned position: the same byte, bound to no version, which matches none.
    let legacy = codec::decode::<Versioned<BytePosition>>(&V1_FILE).unwrap();
    assert_eq!(legacy.position(), &BytePosition(12_345));
    assert_eq!(legacy.version(), None);
    assert!(!legacy.is_in(&SourceVersion::new("any").unwrap()));
}

#[test]
fn versioned_positions_are_format_2_and_round_trip() {
    let version = SourceVersion::new("\"9b2cf535f27731c9\"").unwrap();
    let at = Versioned::new(version.clone(), BytePosition(1 << 20));
    let bytes = codec::encode(&at).unwrap();
    assert_eq!(&bytes[8..10], &[2, 0], "format 2");
    assert_eq!(
        &bytes[14..16],
        &[18, 0],
        "the version's length opens the payload"
    );
    assert_eq!(&bytes[16..34], version.as_bytes());
    assert_eq!(
        codec::decode::<Versioned<BytePosition>>(&bytes).unwrap(),
        at
    );
    // Any change to the version is caught by the checksum.
    let mut damaged = bytes.clone();
    damaged[20] ^= 0x20;
    assert!(matches!(
        codec::decode::<Versioned<BytePosition>>(&damaged),
        Err(CheckpointError::Corrupt(Corruption::Checksum { .. }))
    ));
    // Opaque tokens would read any payload: format 2 keeps them from misreading this one.
    assert!(matches!(
        codec::decode::<ResumeToken>(&bytes),
        Err(CheckpointError::Corrupt(Corruption::Offset))
    ));
    // Ordering: within a version by position; another version is always new.
    let other = Versioned::new(SourceVersion::new("v2").unwrap(), BytePosition(0));
    assert!(other.is_after(&at));
    assert!(!Versioned::new(version, BytePosition(10)).is_after(&at));
}

#[test]
fn checkpoint_decode_corpus() {
    common::replay_corpus("checkpoint_decode", checkpoint_decode_check::run);
}

#[test]
fn ack_tracker_corpus() {
    common::replay_corpus("ack_tracker", ack_tracker_check::run);
}

#[test]
fn resumable_ops_corpus() {
    common::replay_corpus("resumable_ops", resumable_ops_check::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Scripted sources (refusals, replays, skips, repeats, jumps, closes, transient,
    /// throttled and permanent failures) against the reference model: the same outputs,
    /// reconnect positions, waits and counters.
    #[test]
    fn resumable_agrees_with_model(data in proptest::collection::vec(any::<u8>(), 1..200)) {
        resumable_ops_check::run(&data);
    }
}

// ---------------------------------------------------------------------------------------------
// Reconnects paid for out of a retry budget

#[tokio::test(start_paused = true)]
async fn the_budget_pays_for_each_reconnect_and_a_refusal_ends_the_stream() {
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let source = tower::service_fn(move |_: Option<u64>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Err::<stream::Iter<std::vec::IntoIter<Item>>, _>(reset()) }
    });
    let budget = Allowance::new(2);
    let (events, listener) = recorder::<u64>();
    let start = Instant::now();
    let mut s = Resumable::new(source, constant(100))
        .budget(Arc::clone(&budget))
        .listener(listener);
    match s.next().await {
        Some(Err(ResumeError::GaveUp {
            reason: GiveUp::BudgetRefused,
            attempts: 2,
            last: Some(e),
            ..
        })) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        }
        other => panic!("expected a refusal after 2 reconnects, got {other:?}"),
    }
    assert!(s.next().await.is_none());
    // The first connect and two paid reconnects; the refusal came before a third wait.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(budget.ledger().deposits, 1, "one outage, one deposit");
    assert_eq!(budget.ledger().withdrawals, 2);
    assert_eq!(budget.ledger().failures, 3);
    assert_eq!(budget.ledger().refunds, 0);
    assert_eq!(
        events.lock().unwrap().last(),
        Some(&StreamEvent::GaveUp {
            attempts: 2,
            reason: GiveUp::BudgetRefused
        })
    );
}

#[tokio::test(start_paused = true)]
async fn an_outage_that_ends_reports_what_it_spent() {
    // Connections: 3 items then a reset; a refused connect; a reset; then the rest of the log.
    let script = Arc::new(Mutex::new(VecDeque::from([0u8, 1, 1, 2])));
    let source = tower::service_fn(move |after: Option<u64>| {
        let step = script.lock().unwrap().pop_front().unwrap_or(2);
        async move {
            let items: Vec<Item> = match step {
                0 => log_from(after, 10).take(3).chain([Err(reset())]).collect(),
                1 => return Err(reset()),
                _ => log_from(after, 10).collect(),
            };
            Ok(stream::iter(items))
        }
    });
    let budget = Allowance::new(100);
    let s = Resumable::new(source, constant(10))
        .config(config(5, OnEnd::Finish, OnGap::Fail))
        .budget(Arc::clone(&budget));
    let got: Vec<u64> = s.map(|r| r.unwrap().0).collect().await;
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(budget.ledger().deposits, 1);
    assert_eq!(budget.ledger().withdrawals, 3);
    assert_eq!(
        budget.ledger().successes,
        vec![3],
        "the outage cost 3 reconnects"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_dropped_while_it_waits_hands_the_reconnect_back() {
    let source = tower::service_fn(|_: Option<u64>| async {
        Ok::<_, io::Error>(stream::iter(vec![Err::<(u64, u64), _>(reset())]))
    });
    let budget = Allowance::new(5);
    let mut s = Resumable::new(source, constant(1_000)).budget(Arc::clone(&budget));
    // Connects, fails, pays for the reconnect, and starts waiting.
    assert!(s.next().now_or_never().is_none());
    assert_eq!(budget.ledger().withdrawals, 1);
    drop(s);
    assert_eq!(budget.ledger().refunds, 1);
    assert_eq!(budget.left(), 5, "nothing lost");
}

/// A log source whose first connection drops after 2 items and whose readiness then fails
/// once before it connects again.
struct NotReadyOnce {
    connects: u32,
    ready_failures: u32,
}

impl tower::Service<Option<u64>> for NotReadyOnce {
    type Response = stream::Iter<std::vec::IntoIter<Item>>;
    type Error = io::Error;
    type Future = std::future::Ready<Result<Self::Response, io::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        if self.connects == 1 && self.ready_failures == 0 {
            self.ready_failures += 1;
            return std::task::Poll::Ready(Err(reset()));
        }
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, after: Option<u64>) -> Self::Future {
        self.connects += 1;
        let items: Vec<Item> = if self.connects == 1 {
            log_from(after, 10).take(2).chain([Err(reset())]).collect()
        } else {
            log_from(after, 10).collect()
        };
        std::future::ready(Ok(stream::iter(items)))
    }
}

#[tokio::test(start_paused = true)]
async fn a_reconnect_the_source_was_not_ready_for_is_handed_back() {
    let source = NotReadyOnce {
        connects: 0,
        ready_failures: 0,
    };
    let budget = Allowance::new(5);
    let s = Resumable::new(source, constant(10))
        .config(config(5, OnEnd::Finish, OnGap::Fail))
        .budget(Arc::clone(&budget));
    let got: Vec<u64> = s.map(|r| r.unwrap().0).collect().await;
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    // Paid twice, once for the reconnect that readiness refused, which came back.
    assert_eq!(budget.ledger().withdrawals, 2);
    assert_eq!(budget.ledger().refunds, 1);
    assert_eq!(budget.left(), 4, "one reconnect spent");
}

#[test]
fn a_budget_refusal_classifies_as_transient_and_names_its_cause() {
    let e: ResumeError<io::Error, u64> = ResumeError::GaveUp {
        reason: GiveUp::BudgetRefused,
        attempts: 4,
        retry_at: None,
        last: Some(reset()),
    };
    assert_eq!(e.class(), Class::Transient);
    assert!(e.to_string().contains("budget refused"), "{e}");
    assert!(std::error::Error::source(&e).is_some());
}

// ---------------------------------------------------------------------------------------------
// No gaps, no duplicates: any schedule of faults against a model

#[derive(Debug, Clone)]
enum Fault {
    /// The connect call fails.
    ConnectError,
    /// Rewind `replay` items, deliver `len`, then drop with an error.
    Drop { replay: u8, len: u8 },
    /// Rewind `replay` items, deliver `len`, then end the stream.
    End { replay: u8, len: u8 },
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        1 => Just(Fault::ConnectError),
        3 => (0u8..8, 0u8..20).prop_map(|(replay, len)| Fault::Drop { replay, len }),
        2 => (0u8..8, 0u8..20).prop_map(|(replay, len)| Fault::End { replay, len }),
    ]
}

/// A log of `0..len` that follows a script of faults, then serves the rest cleanly.
fn scripted(
    len: u64,
    script: Vec<Fault>,
) -> impl tower::Service<
    Option<u64>,
    Response = stream::Iter<std::vec::IntoIter<Item>>,
    Error = io::Error,
    Future = impl Send,
> + Send {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    tower::service_fn(move |after: Option<u64>| {
        let next = script.lock().unwrap().pop_front();
        async move {
            let resume = after.map_or(0, |a| a + 1);
            let (replay, take, tail): (u8, u64, Option<io::Error>) = match next {
                Some(Fault::ConnectError) => return Err(reset()),
                Some(Fault::Drop { replay, len }) => (replay, u64::from(len), Some(reset())),
                Some(Fault::End { replay, len }) => (replay, u64::from(len), None),
                None => (0, u64::MAX, None),
            };
            let from = resume.saturating_sub(u64::from(replay));
            let items: Vec<Item> = (from..len)
                .take(usize::try_from(take).unwrap_or(usize::MAX))
                .map(|n| Ok((n, n * 3)))
                .chain(tail.map(Err))
                .collect();
            Ok(stream::iter(items))
        }
    })
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_offset_exactly_once_in_order_and_commits_never_pass_an_unacked_item(
        len in 1u64..200,
        script in proptest::collection::vec(fault(), 0..40),
        every in 1u64..20,
        max_unacked in 1usize..16,
        seed in 1u64..u64::MAX,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let store = MemoryStore::new();
            let commit = CommitConfig::builder().every(every).max_unacked(max_unacked).build().unwrap();
            let mut s = Resumable::new(scripted(len, script), constant(5))
                .config(config(64, OnEnd::Reconnect, OnGap::Fail))
                .checkpointed(store.clone(), commit);
            let acker = s.acker();
            let mut rng = seed;
            let mut received = Vec::new();
            let mut outstanding = Vec::new();
            let mut acked = BTreeSet::new();
            // The model: the committed position is the last offset of the acked prefix.
            let acked_prefix = |acked: &BTreeSet<u64>| {
                (0..len).take_while(|n| acked.contains(n)).count()
            };
            let model_committed = |acked: &BTreeSet<u64>| {
                (0..len).take_while(|n| acked.contains(n)).last()
            };
            while (received.len() as u64) < len {
                // Ack a random outstanding item now and then, and always while the window is
                // full (items past the acked prefix), or the stream would wait for us forever.
                while !outstanding.is_empty()
                    && (received.len() - acked_prefix(&acked) >= max_unacked
                        || xorshift(&mut rng) % 3 == 0)
                {
                    let i = (xorshift(&mut rng) % outstanding.len() as u64) as usize;
                    let ack: riprap::stream::Ack<u64> = outstanding.swap_remove(i);
                    acked.insert(*ack.offset());
                    acker.ack(ack).unwrap();
                    prop_assert_eq!(acker.committed(), model_committed(&acked));
                }
                let delivery = match s.next().await {
                    Some(Ok(d)) => d,
                    other => return Err(TestCaseError::fail(format!("stream ended: {other:?}"))),
                };
                let (item, ack) = delivery.into_parts();
                prop_assert_eq!(item, *ack.offset() * 3);
                received.push(*ack.offset());
                outstanding.push(ack);
                let durable = store.position();
                prop_assert!(durable <= model_committed(&acked),
                    "saved {:?} past the acked prefix {:?}", durable, model_committed(&acked));
            }
            prop_assert_eq!(&received, &(0..len).collect::<Vec<_>>());
            for ack in outstanding.drain(..) {
                acker.ack(ack).unwrap();
            }
            s.flush().await.unwrap();
            prop_assert_eq!(store.position(), Some(len - 1));
            Ok(())
        })?;
    }
}

// ---------------------------------------------------------------------------------------------
// Crash test: a child process consuming through the file store is SIGKILLed 50 times

const CRASH_ENV: &str = "RIPRAP_STREAM_CRASH_CHILD";
const CRASH_TOTAL: u64 = 4_000;

/// The child's side of `survives_sigkill_at_random_moments`; does nothing in a normal run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // The log drops the connection every 97 entries.
        let source = tower::service_fn(|after: Option<u64>| async move {
            let from = after.map_or(0, |a| a + 1);
            let end = (from + 97).min(CRASH_TOTAL);
            let mut items: Vec<Item> = (from..end).map(|n| Ok((n, n))).collect();
            if end < CRASH_TOTAL {
                items.push(Err(reset()));
            }
            Ok::<_, io::Error>(stream::iter(items))
        });
        let listener = |e: &StreamEvent<u64>| match e {
            StreamEvent::Loaded { position } => println!("START {position:?}"),
            // Emitted after `save` returned: the position is durable.
            StreamEvent::Committed { position } => println!("DURABLE {position}"),
            _ => {}
        };
        let commit = CommitConfig::builder()
            .every(10)
            .interval(Duration::from_millis(20))
            .build()
            .unwrap();
        let mut s = Resumable::new(source, constant(1))
            .config(config(5, OnEnd::Finish, OnGap::Fail))
            .listener(riprap::events::only(listener))
            .checkpointed(
                FileStore::new(std::path::Path::new(&dir).join("ckpt")),
                commit,
            );
        let acker = s.acker();
        let mut batch = Vec::new();
        while let Some(d) = s.next().await {
            let (item, ack) = d.unwrap().into_parts();
            println!("ITEM {item}");
            // Pace the child so a kill lands mid-run rather than after it raced to the end.
            std::thread::sleep(Duration::from_micros(100));
            batch.push(ack);
            if batch.len() == 4 {
                // Out of order, as parallel workers would.
                for ack in batch.drain(..).rev() {
                    acker.ack(ack).unwrap();
                }
            }
        }
        for ack in batch.drain(..) {
            acker.ack(ack).unwrap();
        }
        s.flush().await.unwrap();
        println!("DONE");
    });
}

#[test]
fn survives_sigkill_at_random_moments() {
    if std::env::var(CRASH_ENV).is_ok() {
        return;
    }
    let dir = temp_dir("crash");
    let exe = std::env::current_exe().unwrap();
    let mut rng = 0x5EED_u64;
    let mut durable: Option<u64> = None;
    let mut processed = BTreeSet::new();
    let mut duplicates = 0u64;
    let mut kills = 0;
    let mut finished = false;
    while !finished {
        let kill_after = if kills < 50 {
            Some(5 + xorshift(&mut rng) % 120)
        } else {
            None
        };
        let mut child = std::process::Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(CRASH_ENV, &dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let mut start: Option<Option<u64>> = None;
        let mut next_expected = None;
        let mut lines = 0;
        let mut killed = false;
        for line in out.lines() {
            let Ok(line) = line else { break };
            lines += 1;
            if let Some(pos) = line.strip_prefix("START ") {
                let pos = match pos {
                    "None" => None,
                    p => Some(
                        p.trim_start_matches("Some(")
                            .trim_end_matches(')')
                            .parse::<u64>()
                            .unwrap(),
                    ),
                };
                assert!(
                    pos >= durable,
                    "restart loaded {pos:?}, but {durable:?} was reported durable"
                );
                assert!(
                    pos.is_none_or(|p| processed.contains(&p)),
                    "committed an unprocessed item"
                );
                next_expected = Some(pos.map_or(0, |p| p + 1));
                start = Some(pos);
            } else if let Some(n) = line.strip_prefix("ITEM ") {
                let n: u64 = n.parse().unwrap();
                assert_eq!(Some(n), next_expected, "items arrive in order without gaps");
                next_expected = Some(n + 1);
                if !processed.insert(n) {
                    duplicates += 1;
                }
            } else if let Some(n) = line.strip_prefix("DURABLE ") {
                let n: u64 = n.parse().unwrap();
                assert!(Some(n) >= durable);
                durable = Some(n);
            } else if line == "DONE" {
                finished = true;
            }
            if !killed && kill_after == Some(lines) {
                child.kill().unwrap(); // SIGKILL
                killed = true;
                kills += 1;
            }
        }
        assert!(start.is_some(), "the child reported its start");
        let status = child.wait().unwrap();
        assert!(killed || status.success(), "child failed: {status}");
        assert!(finished || killed);
    }
    assert_eq!(kills, 50);
    assert_eq!(processed.len() as u64, CRASH_TOTAL, "no item lost");
    assert_eq!(processed.last(), Some(&(CRASH_TOTAL - 1)));
    assert_eq!(durable, Some(CRASH_TOTAL - 1));
    eprintln!("crash test: 50 kills, {duplicates} items redelivered after restarts");
    std::fs::remove_dir_all(&dir).unwrap();
}
