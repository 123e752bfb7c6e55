//! Circuit breaker: model-based properties, cancellation, concurrency, paused-clock timing.

mod common;

#[path = "checks/breaker_ops.rs"]
mod breaker_ops_check;

use proptest::prelude::*;

#[test]
fn fuzz_corpus_replays() {
    common::replay_corpus("breaker_ops", breaker_ops_check::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random ops (outcomes, durations, clock advances, dropped futures, manual commands)
    /// against the reference model: state and counts agree after every step.
    #[test]
    fn breaker_agrees_with_model(data in proptest::collection::vec(any::<u8>(), 14..600)) {
        breaker_ops_check::run(&data);
    }
}

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use riprap::breaker::{
    BreakerError, BreakerEvent, BreakerState, CircuitBreaker, CircuitBreakerLayer,
    ConsecutiveFailures, Counted, KeyedCircuitBreakerLayer, Rejected, TripPolicy,
};
use riprap::classify::{ByError, Class, Classified, Classify, classify_fn};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// An inner service that fails while `down` is set and counts its calls.
#[derive(Clone)]
struct Dependency {
    down: Arc<AtomicBool>,
    calls: Arc<AtomicU32>,
}

impl Dependency {
    fn new() -> Self {
        Dependency {
            down: Arc::new(AtomicBool::new(false)),
            calls: Arc::new(AtomicU32::new(0)),
        }
    }
}

impl Service<()> for Dependency {
    type Response = ();
    type Error = io::Error;
    type Future = std::future::Ready<Result<(), io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: ()) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(if self.down.load(Ordering::SeqCst) {
            Err(io::ErrorKind::ConnectionRefused.into())
        } else {
            Ok(())
        })
    }
}

fn recorder() -> (
    Arc<Mutex<Vec<BreakerEvent>>>,
    impl riprap::events::Listener + Clone,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    (
        events,
        riprap::events::only(move |e: &BreakerEvent| sink.lock().unwrap().push(e.clone())),
    )
}

fn opened_for(events: &[BreakerEvent]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::Transition { open_for, .. } => *open_for,
            _ => None,
        })
        .collect()
}

async fn call<S>(svc: &mut S) -> Result<(), BreakerError<io::Error>>
where
    S: Service<(), Response = (), Error = BreakerError<io::Error>>,
{
    svc.ready().await?.call(()).await
}

#[tokio::test(start_paused = true)]
async fn open_fails_fast_without_calling_the_inner_service() {
    let dep = Dependency::new();
    dep.down.store(true, Ordering::SeqCst);
    let breaker = CircuitBreaker::builder()
        .open_for(secs(10))
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone())
        .classifier(ByError)
        .layer(dep.clone());
    for _ in 0..5 {
        assert!(matches!(call(&mut svc).await, Err(BreakerError::Inner(_))));
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    tokio::time::advance(secs(4)).await;
    let err = call(&mut svc).await.unwrap_err();
    assert_eq!(err.rejection(), Some(Rejected::Open { retry_in: secs(6) }));
    assert_eq!(
        dep.calls.load(Ordering::SeqCst),
        5,
        "inner not called while open"
    );
    assert_eq!(breaker.metrics().rejected, 1);
    assert_eq!(breaker.metrics().retry_in, Some(secs(6)));
}

#[tokio::test(start_paused = true)]
async fn fixed_open_duration_then_probes_close_it() {
    let dep = Dependency::new();
    dep.down.store(true, Ordering::SeqCst);
    let breaker = CircuitBreaker::builder()
        .open_for(secs(10))
        .close_after(2)
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(dep.clone());
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    tokio::time::advance(secs(10) - Duration::from_nanos(1)).await;
    assert!(call(&mut svc).await.unwrap_err().rejection().is_some());
    tokio::time::advance(Duration::from_nanos(1)).await;
    dep.down.store(false, Ordering::SeqCst);
    call(&mut svc).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    call(&mut svc).await.unwrap();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn open_duration_grows_on_failed_probes_within_jitter_bounds_and_cap() {
    let dep = Dependency::new();
    dep.down.store(true, Ordering::SeqCst);
    let (events, listener) = recorder();
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(1).unwrap())
        .open_growing(secs(1), secs(8))
        .listener(listener)
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(dep.clone());
    let _ = call(&mut svc).await;
    for _ in 0..8 {
        let wait = breaker.metrics().retry_in.unwrap();
        tokio::time::advance(wait).await;
        let _ = call(&mut svc).await; // the probe fails and reopens
    }
    let opens = opened_for(&events.lock().unwrap());
    assert_eq!(opens.len(), 9);
    for (k, d) in opens.iter().enumerate() {
        let envelope = secs(1 << k.min(3));
        assert!(
            *d >= envelope / 2 && *d <= envelope,
            "open #{k}: {d:?} outside [{:?}, {envelope:?}]",
            envelope / 2
        );
    }
    // Closing starts the growth over.
    dep.down.store(false, Ordering::SeqCst);
    tokio::time::advance(breaker.metrics().retry_in.unwrap()).await;
    for _ in 0..3 {
        call(&mut svc).await.unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    dep.down.store(true, Ordering::SeqCst);
    let _ = call(&mut svc).await;
    let last = *opened_for(&events.lock().unwrap()).last().unwrap();
    assert!(last <= secs(1), "growth restarts after closing: {last:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fleet_spreads_its_probes() {
    let template = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(1).unwrap())
        .build()
        .unwrap();
    let mut waits = Vec::new();
    for _ in 0..32 {
        // Separately built breakers, as in separate processes.
        let b = CircuitBreaker::builder()
            .policy(ConsecutiveFailures::new(1).unwrap())
            .build()
            .unwrap();
        b.try_acquire().unwrap().record(Class::Transient);
        waits.push(b.metrics().retry_in.unwrap());
    }
    drop(template);
    waits.sort();
    waits.dedup();
    assert!(
        waits.len() > 16,
        "open durations should differ across a fleet: {waits:?}"
    );
    assert!(waits.iter().all(|w| *w >= secs(5) / 2 && *w <= secs(5)));
}

#[tokio::test(start_paused = true)]
async fn recovers_within_one_open_duration_plus_the_probes() {
    let dep = Dependency::new();
    dep.down.store(true, Ordering::SeqCst);
    let breaker = CircuitBreaker::builder()
        .open_growing(secs(1), secs(4))
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(dep.clone());
    let tick = ms(50);
    // Callers every 50 ms through a 30 s outage.
    for _ in 0..600 {
        let _ = call(&mut svc).await;
        tokio::time::advance(tick).await;
    }
    assert_ne!(breaker.state(), BreakerState::Closed);
    dep.down.store(false, Ordering::SeqCst);
    let healed = tokio::time::Instant::now();
    while breaker.state() != BreakerState::Closed {
        let _ = call(&mut svc).await;
        tokio::time::advance(tick).await;
    }
    // At most one (capped) open duration, plus three probe calls, plus one tick of slack.
    let took = healed.elapsed();
    assert!(took <= secs(4) + tick * 4, "closed {took:?} after healing");
}

/// A probe that never finishes unless polled to completion.
fn slow_service() -> impl Service<
    u64,
    Response = (),
    Error = io::Error,
    Future = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>,
> + Clone {
    tower::service_fn(|d: u64| {
        Box::pin(async move {
            tokio::time::sleep(ms(d)).await;
            Ok(())
        }) as Pin<Box<dyn Future<Output = io::Result<()>> + Send>>
    })
}

#[tokio::test(start_paused = true)]
async fn dropped_probes_are_never_stuck_and_never_over_granted() {
    let permits = 2u16;
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(1).unwrap())
        .open_for(secs(1))
        .half_open_probes(permits)
        .close_after(2)
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(slow_service());
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..300 {
        // Trip it, wait out the open period.
        breaker.reset();
        breaker.try_acquire().unwrap().record(Class::Transient);
        tokio::time::advance(secs(1)).await;
        assert_eq!(breaker.state(), BreakerState::Open);

        // Start up to four probes; drop them at random points.
        let mut futs = Vec::new();
        for _ in 0..(next() % 5) {
            svc.ready().await.unwrap();
            let fut = svc.call(20 + next() % 50);
            futs.push(Box::pin(fut));
            assert!(
                breaker.metrics().probes_in_flight <= u32::from(permits),
                "round {round}"
            );
        }
        for _ in 0..(next() % 4) {
            if futs.is_empty() {
                break;
            }
            let i = (next() as usize) % futs.len();
            let _ = (&mut futs[i]).now_or_never(); // polled once, still pending
            if next() % 3 == 0 {
                tokio::time::advance(ms(next() % 30)).await;
            }
            if next() % 2 == 0 {
                drop(futs.swap_remove(i));
            }
        }
        assert!(
            breaker.metrics().probes_in_flight <= u32::from(permits),
            "round {round}"
        );
        // Drop whatever is left, at whatever point it reached (some may have completed:
        // their successes count).
        futs.clear();
        assert_eq!(
            breaker.metrics().probes_in_flight,
            0,
            "round {round}: a dropped probe kept its permit"
        );
        // Never stuck: new probes are admitted and decide.
        if breaker.state() == BreakerState::HalfOpen || breaker.state() == BreakerState::Open {
            tokio::time::advance(secs(1)).await;
            for _ in 0..2 {
                if breaker.state() == BreakerState::Closed {
                    break;
                }
                svc.ready().await.unwrap();
                svc.call(1).await.unwrap();
            }
        }
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "round {round}: stuck"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_closed_call_counts_nothing() {
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(1).unwrap())
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(slow_service());
    for _ in 0..10 {
        svc.ready().await.unwrap();
        let mut fut = Box::pin(svc.call(100));
        let _ = (&mut fut).now_or_never();
        drop(fut);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().consecutive_failures, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_lose_no_transition_and_never_over_grant() {
    const PROBES: u16 = 3;
    let (events, listener) = recorder();
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(3).unwrap())
        .open_for(Duration::from_micros(200))
        .half_open_probes(PROBES)
        .close_after(2)
        .listener(listener)
        .build()
        .unwrap();
    let probing = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let breaker = breaker.clone();
        let probing = Arc::clone(&probing);
        tasks.push(tokio::spawn(async move {
            let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for i in 0..2_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Phases: mostly down, then mostly up.
                let failing = if (i / 250) % 2 == 0 {
                    x % 10 < 8
                } else {
                    x % 10 < 1
                };
                match breaker.try_acquire() {
                    Ok(permit) => {
                        let probe = permit.is_probe();
                        if probe {
                            let n = probing.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(n <= i64::from(PROBES), "{n} probes in flight");
                        }
                        if x % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                        if probe {
                            probing.fetch_sub(1, Ordering::SeqCst);
                        }
                        match x % 13 {
                            0 => drop(permit), // cancelled
                            _ if failing => permit.record(Class::Transient),
                            _ => permit.record(Class::Success),
                        }
                    }
                    Err(_) => tokio::task::yield_now().await,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(breaker.metrics().probes_in_flight, 0);

    // Every transition is reported once, in a gap-free chain.
    let mut transitions: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::Transition {
                from,
                to,
                generation,
                ..
            } => Some((*generation, *from, *to)),
            _ => None,
        })
        .collect();
    transitions.sort_by_key(|t| t.0);
    assert!(
        transitions.len() > 10,
        "the test should exercise transitions"
    );
    let mut state = BreakerState::Closed;
    for (i, (generation, from, to)) in transitions.iter().enumerate() {
        assert_eq!(*generation as usize, i + 1, "lost or duplicated transition");
        assert_eq!(
            *from, state,
            "transition {generation} does not follow the last one"
        );
        state = *to;
    }
    assert_eq!(breaker.state(), state);
}

/// Pending forever once `stuck` is set, as a pool waiting for a dead host's connection.
#[derive(Clone)]
struct Stuck(Arc<AtomicBool>);

impl Service<()> for Stuck {
    type Response = ();
    type Error = io::Error;
    type Future = std::future::Ready<io::Result<()>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.0.load(Ordering::SeqCst) {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, _: ()) -> Self::Future {
        std::future::ready(Err(io::ErrorKind::TimedOut.into()))
    }
}

#[tokio::test(start_paused = true)]
async fn poll_ready_does_not_wait_on_a_dead_dependency_while_open() {
    let stuck = Arc::new(AtomicBool::new(false));
    let breaker = CircuitBreaker::builder().build().unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(Stuck(Arc::clone(&stuck)));
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    stuck.store(true, Ordering::SeqCst);
    assert_eq!(breaker.state(), BreakerState::Open);
    // Ready at once, and the call fails fast.
    let ready = svc.ready().now_or_never();
    assert!(matches!(ready, Some(Ok(_))));
    assert!(svc.call(()).await.unwrap_err().rejection().is_some());
    // Closed: backpressure passes through.
    breaker.reset();
    assert!(svc.ready().now_or_never().is_none());
}

#[tokio::test(start_paused = true)]
async fn throttles_and_permanent_errors_do_not_trip_by_default() {
    let outcome = Arc::new(Mutex::new(Class::Throttled { retry_after: None }));
    let o = Arc::clone(&outcome);
    let classifier = classify_fn(move |_: Result<&(), &io::Error>| *o.lock().unwrap());
    let breaker = CircuitBreaker::builder().build().unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone())
        .classifier(classifier.clone())
        .layer(Dependency::new());
    for class in [
        Class::Throttled {
            retry_after: Some(secs(1)),
        },
        Class::Permanent,
    ] {
        *outcome.lock().unwrap() = class;
        for _ in 0..20 {
            let _ = call(&mut svc).await;
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "{class}");
    }
    let counting = CircuitBreaker::builder()
        .count_throttled_as(Counted::Failure)
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(counting.clone())
        .classifier(classifier)
        .layer(Dependency::new());
    *outcome.lock().unwrap() = Class::Throttled { retry_after: None };
    for _ in 0..5 {
        let _ = call(&mut svc).await;
    }
    assert_eq!(counting.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_tells_a_retry_layer_outside_when_to_come_back() {
    let dep = Dependency::new();
    dep.down.store(true, Ordering::SeqCst);
    let breaker = CircuitBreaker::builder()
        .open_for(secs(30))
        .build()
        .unwrap();
    // Behind a Buffer the error is boxed; classification still finds the rejection.
    let mut svc = ServiceBuilder::new()
        .buffer(8)
        .layer(CircuitBreakerLayer::new(breaker.clone()).classifier(ByError))
        .service(dep.clone());
    for _ in 0..5 {
        let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
        assert_eq!(ByError.classify(Err::<&(), _>(&err)), Class::Transient);
    }
    tokio::time::advance(secs(10)).await;
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert_eq!(
        ByError.classify(Err::<&(), _>(&err)),
        Class::Refused {
            retry_after: Some(secs(20))
        }
    );
    // Unboxed, the typed error classifies itself.
    let typed: BreakerError<io::Error> = Rejected::Isolated.into();
    assert_eq!(typed.class(), Class::Permanent);
    assert_eq!(
        BreakerError::Inner(io::Error::from(io::ErrorKind::ConnectionReset)).class(),
        Class::Transient
    );
}

#[tokio::test(start_paused = true)]
async fn manual_control() {
    let (events, listener) = recorder();
    let dep = Dependency::new();
    let breaker = CircuitBreaker::builder()
        .listener(listener)
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(dep.clone());

    breaker.force_open();
    assert_eq!(
        call(&mut svc).await.unwrap_err().rejection(),
        Some(Rejected::Isolated)
    );
    tokio::time::advance(secs(3600)).await;
    assert_eq!(
        breaker.state(),
        BreakerState::Isolated,
        "isolation does not time out"
    );

    dep.down.store(true, Ordering::SeqCst);
    breaker.force_closed();
    for _ in 0..50 {
        let _ = call(&mut svc).await;
    }
    assert_eq!(breaker.state(), BreakerState::ForcedClosed);

    breaker.disable();
    for _ in 0..10 {
        let _ = call(&mut svc).await;
    }
    assert_eq!(breaker.state(), BreakerState::Disabled);
    let would = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, BreakerEvent::WouldTrip { .. }))
        .count();
    assert_eq!(would, 2, "metrics only: reports each would-be trip");

    breaker.reset();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.metrics().consecutive_failures, Some(0));
}

#[tokio::test(start_paused = true)]
async fn keyed_breakers_are_capped_and_a_key_in_use_survives_a_flood() {
    let down = Arc::new(Mutex::new(String::from("bad")));
    let d = Arc::clone(&down);
    let inner = tower::service_fn(move |key: String| {
        let failing = *d.lock().unwrap() == key;
        async move {
            if failing {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused))
            } else {
                Ok(())
            }
        }
    });
    let layer = KeyedCircuitBreakerLayer::new(
        CircuitBreaker::builder().build().unwrap(),
        8,
        |k: &String| k.clone(),
    )
    .unwrap()
    .classifier(ByError);
    let breakers = Arc::clone(layer.breakers());
    let mut svc = layer.layer(inner);
    for _ in 0..5 {
        let _ = svc.ready().await.unwrap().call("bad".into()).await;
    }
    assert_eq!(
        breakers.get(&"bad".into()).unwrap().state(),
        BreakerState::Open
    );
    // A flood of one-off keys: memory stays capped, and the key in use (its breaker open)
    // survives it, because one-off keys only recycle the probation area.
    for i in 0..10_000 {
        svc.ready()
            .await
            .unwrap()
            .call(format!("k{i}"))
            .await
            .unwrap();
        assert!(breakers.len() <= 8);
    }
    let bad = breakers
        .get(&"bad".into())
        .expect("a key in use survives a flood of one-off keys");
    assert_eq!(bad.state(), BreakerState::Open);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call("bad".into())
        .await
        .unwrap_err();
    assert!(err.rejection().is_some());
    assert_eq!(bad.name(), Some("\"bad\""));
}

#[tokio::test(start_paused = true)]
async fn keyed_new_keys_get_their_own_breaker_when_every_slot_is_open() {
    let inner = tower::service_fn(|k: u32| async move {
        if k < 100 {
            Err(io::Error::from(io::ErrorKind::ConnectionRefused))
        } else {
            Ok(())
        }
    });
    let layer = KeyedCircuitBreakerLayer::new(
        CircuitBreaker::builder()
            .policy(ConsecutiveFailures::new(1).unwrap())
            .build()
            .unwrap(),
        2,
        |k: &u32| *k,
    )
    .unwrap();
    let breakers = Arc::clone(layer.breakers());
    let mut svc = layer.layer(inner);
    for k in 0..3 {
        let _ = svc.ready().await.unwrap().call(k).await;
    }
    assert_eq!(breakers.len(), 2, "the cap holds");
    // Every slot holds an open breaker still in its open time; a new key is still judged
    // by a breaker of its own.
    svc.ready()
        .await
        .unwrap()
        .call(100)
        .await
        .expect("a healthy new key passes");
    assert_eq!(breakers.get(&100).unwrap().state(), BreakerState::Closed);
    assert_eq!(breakers.len(), 2);
}

#[test]
fn builder_rejects_bad_knobs() {
    use riprap::breaker::{CountWindow, TimeWindow};
    let knob = |e: riprap::ConfigError| e.knob();
    assert_eq!(
        knob(
            CircuitBreaker::builder()
                .close_after(0)
                .build()
                .unwrap_err()
        ),
        "breaker.close_after"
    );
    assert_eq!(
        knob(
            CircuitBreaker::builder()
                .open_for(Duration::ZERO)
                .build()
                .unwrap_err()
        ),
        "breaker.open_for"
    );
    assert_eq!(
        knob(
            CircuitBreaker::builder()
                .open_growing(secs(2), secs(1))
                .build()
                .unwrap_err()
        ),
        "breaker.open_max"
    );
    assert_eq!(
        knob(
            CircuitBreaker::builder()
                .open_for(Duration::MAX)
                .build()
                .unwrap_err()
        ),
        "breaker.open_for"
    );
    assert_eq!(
        knob(ConsecutiveFailures::new(0).unwrap_err()),
        "breaker.consecutive_failures"
    );
    assert_eq!(
        knob(CountWindow::last(0).build().unwrap_err()),
        "breaker.count_window.size"
    );
    assert_eq!(
        knob(
            CountWindow::last(10)
                .failure_rate(f64::NAN)
                .build()
                .unwrap_err()
        ),
        "breaker.count_window.failure_rate"
    );
    assert_eq!(
        knob(CountWindow::last(10).failure_rate(1.5).build().unwrap_err()),
        "breaker.count_window.failure_rate"
    );
    assert_eq!(
        knob(
            CountWindow::last(10)
                .slow_calls(Duration::ZERO, 0.5)
                .build()
                .unwrap_err()
        ),
        "breaker.count_window.slow_threshold"
    );
    assert_eq!(
        knob(CountWindow::last(10).only_slow_calls().build().unwrap_err()),
        "breaker.count_window.failure_rate"
    );
    assert_eq!(
        knob(TimeWindow::last(secs(10)).buckets(0).build().unwrap_err()),
        "breaker.time_window.buckets"
    );
    assert_eq!(
        knob(
            TimeWindow::last(secs(10))
                .min_throughput(0)
                .build()
                .unwrap_err()
        ),
        "breaker.time_window.min_throughput"
    );
    assert!(
        KeyedCircuitBreakerLayer::<_, u8>::new(
            CircuitBreaker::builder().build().unwrap(),
            0,
            |k: &u8| *k
        )
        .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_a_window() {
    use riprap::breaker::CountWindow;
    let breaker = CircuitBreaker::builder()
        .policy(
            CountWindow::last(4)
                .only_slow_calls()
                .slow_calls(ms(100), 0.5)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(slow_service());
    for d in [10, 200, 10, 200] {
        svc.ready().await.unwrap().call(d).await.unwrap();
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    let m = breaker.metrics();
    assert_eq!(
        m.calls_in_window,
        Some(0),
        "the window starts over when it opens"
    );
    assert!(breaker.policy().needs_clock());
}

#[tokio::test(start_paused = true)]
async fn every_rejection_is_reported_once_with_its_reason() {
    let (events, listener) = recorder();
    let dep = Dependency::new();
    dep.down.store(true, Ordering::SeqCst);
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(1).unwrap())
        .open_for(secs(10))
        .half_open_probes(1)
        .name("inventory")
        .listener(listener)
        .build()
        .unwrap();
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(dep.clone());
    let _ = call(&mut svc).await; // opens
    let _ = call(&mut svc).await; // refused while open (decided in `poll_ready`)
    let _ = breaker.try_acquire(); // refused while open (decided in `try_acquire`)
    tokio::time::advance(secs(10)).await;
    let probe = breaker.try_acquire().unwrap();
    let _ = breaker.try_acquire(); // refused: the only probe slot is taken
    drop(probe);
    breaker.force_open();
    let _ = call(&mut svc).await; // refused: isolated

    let rejections: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            BreakerEvent::Rejected { name, rejected } => {
                assert_eq!(name.as_deref(), Some("inventory"));
                Some(rejected.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(rejections, ["open", "open", "half_open", "isolated"]);
    assert_eq!(breaker.metrics().rejected, 4);
}

/// Layers composed by hand agree by default: every layer's default classifier is `ByError`,
/// so an `InvalidInput` that the retry layer never retries does not trip the breaker either
/// (the breaker's default used to count every `Err` as a failure).
#[tokio::test(start_paused = true)]
async fn the_default_classifier_agrees_with_retry_on_a_validation_error() {
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(3).unwrap())
        .build()
        .unwrap();
    let inner = tower::service_fn(|_: ()| async {
        Err::<(), _>(io::Error::from(io::ErrorKind::InvalidInput))
    });
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(inner);
    for _ in 0..5 {
        let _ = svc.ready().await.unwrap().call(()).await;
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    // A dropped connection still counts.
    let inner = tower::service_fn(|_: ()| async {
        Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset))
    });
    let mut svc = CircuitBreakerLayer::new(breaker.clone()).layer(inner);
    for _ in 0..3 {
        let _ = svc.ready().await.unwrap().call(()).await;
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

// ---------------------------------------------------------------------------------------------
// Defects found against the peers' specs; each test failed before its fix.

/// A time window forgets its calls after any idle gap, including exactly
/// lcm(buckets, 65,536) bucket lengths, where 16-bit bucket tags used to match again.
#[test]
fn time_window_forgets_calls_after_a_tag_aliasing_idle() {
    use riprap::breaker::{Call, TimeWindow};
    // 10 buckets of 1 s: lcm(10, 65_536) = 327_680 bucket lengths.
    for gap in [327_680u64, 2 * 327_680, 65_536, 655_360, 1_000_000] {
        let w = TimeWindow::last(secs(10))
            .buckets(10)
            .failure_rate(0.5)
            .min_throughput(20)
            .build()
            .unwrap();
        for i in 0..19u64 {
            assert!(!w.record(Call::new(
                if i < 15 {
                    Class::Transient
                } else {
                    Class::Success
                },
                Duration::ZERO,
                ms(i * 10)
            )));
        }
        assert_eq!(w.stats(ms(190)).calls, Some(19));
        let later = secs(gap);
        assert_eq!(w.stats(later).calls, Some(0), "after {gap} s idle");
        // One more failure after the idle is one call in the window, not the twentieth.
        assert!(!w.record(Call::new(Class::Transient, Duration::ZERO, later)));
        assert_eq!(w.stats(later).calls, Some(1), "after {gap} s idle");
    }
}

/// Half-open judges slowness as closed does: a probe that succeeds but is slower than the
/// window's slow-call threshold counts as a failed probe and reopens the breaker, so a
/// dependency that is up but slow does not flap between open and closed.
#[tokio::test(start_paused = true)]
async fn a_slow_successful_probe_reopens_a_breaker_that_slow_calls_tripped() {
    use riprap::breaker::CountWindow;
    let policy = CountWindow::last(2)
        .slow_calls(secs(1), 0.5)
        .only_slow_calls()
        .build()
        .unwrap();
    let breaker = CircuitBreaker::builder()
        .policy(policy)
        .open_for(secs(5))
        .close_after(1)
        .build()
        .unwrap();
    for _ in 0..2 {
        let p = breaker.try_acquire().unwrap();
        tokio::time::advance(secs(2)).await;
        p.record(Class::Success);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
    tokio::time::advance(secs(5)).await;
    let probe = breaker.try_acquire().unwrap();
    assert!(probe.is_probe());
    tokio::time::advance(secs(2)).await;
    probe.record(Class::Success);
    assert_eq!(breaker.state(), BreakerState::Open, "a slow probe reopens");
    // A fast probe closes it.
    tokio::time::advance(secs(10)).await;
    let probe = breaker.try_acquire().unwrap();
    tokio::time::advance(ms(100)).await;
    probe.record(Class::Success);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A time window forgets every call older than its length, for any idle gap: a schedule of
    /// calls and gaps (short, up to ten years, and the boundaries of the ring and of the
    /// 16-bit bucket tag) agrees with an exact count of the calls whose bucket is still in the
    /// window, after every step.
    #[test]
    fn time_window_forgets_calls_older_than_its_length(
        buckets in prop::sample::select(vec![1u32, 2, 3, 5, 7, 10, 16, 1000]),
        bucket_ms in 1u64..2_000,
        steps in proptest::collection::vec((0u8..16, any::<u16>(), any::<bool>()), 1..120),
    ) {
        use riprap::breaker::{Call, TimeWindow};
        let w = TimeWindow::last(ms(bucket_ms * u64::from(buckets)))
            .buckets(buckets)
            .failure_rate(0.5)
            .min_throughput(u32::MAX)
            .build()
            .unwrap();
        let n = u64::from(buckets);
        let lcm = n / gcd(n, 1 << 16) * (1 << 16);
        let bucket = Duration::from_millis(bucket_ms);
        let mut now = Duration::ZERO;
        let mut calls: Vec<(u64, bool)> = Vec::new();
        for (kind, x, failed) in steps {
            let gap = match kind {
                0..=5 => Duration::ZERO,
                6..=8 => Duration::from_micros(u64::from(x) * 50),
                9 => bucket * (x as u32 % (2 * buckets + 2)),
                10 => bucket * ((1 << 16) + u32::from(x % 3) - 1),
                11 => bucket.saturating_mul((lcm * (1 + u64::from(x % 3)) - 1 + u64::from(x / 3 % 3)) as u32),
                12 => bucket.saturating_mul(u32::MAX),
                13 => secs(u64::from(x) * 86_400),
                14 => secs(3650 * 86_400),
                _ => ms(u64::from(x)),
            };
            // Keep the total within two centuries of nanoseconds.
            if now + gap > secs(200 * 365 * 86_400) {
                continue;
            }
            now += gap;
            let index = (now.as_nanos() / bucket.as_nanos()) as u64;
            if kind < 6 || kind == 15 {
                w.record(Call::new(if failed { Class::Transient } else { Class::Success }, Duration::ZERO, now));
                calls.push((index, failed));
            }
            let live: Vec<_> = calls.iter().filter(|(i, _)| i + n > index).collect();
            let stats = w.stats(now);
            prop_assert_eq!(stats.calls, Some(live.len() as u64), "at {:?}", now);
            let failures = live.iter().filter(|c| c.1).count() as f64;
            let rate = if live.is_empty() { 0.0 } else { failures / live.len() as f64 };
            prop_assert_eq!(stats.failure_rate, Some(rate));
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Trip policies see the class of every call, counted or not, so "trip after N
/// unauthenticated" can be written as a policy (a policy used to see only failed / elapsed /
/// at, and never the permanent errors a breaker does not count).
#[tokio::test(start_paused = true)]
async fn a_trip_policy_can_trip_on_a_class_the_breaker_does_not_count() {
    use riprap::breaker::Call;

    struct Unauthenticated(AtomicU32);
    impl TripPolicy for Unauthenticated {
        fn record(&self, call: Call) -> bool {
            match call.class() {
                Class::Permanent => self.0.fetch_add(1, Ordering::Relaxed) + 1 >= 3,
                _ => {
                    self.0.store(0, Ordering::Relaxed);
                    false
                }
            }
        }
        fn reset(&self) {
            self.0.store(0, Ordering::Relaxed);
        }
        fn fresh(&self) -> Self {
            Unauthenticated(AtomicU32::new(0))
        }
    }

    let breaker = CircuitBreaker::builder()
        .policy(Unauthenticated(AtomicU32::new(0)))
        .build()
        .unwrap();
    for _ in 0..2 {
        breaker.try_acquire().unwrap().record(Class::Permanent);
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
    breaker.try_acquire().unwrap().record(Class::Permanent);
    assert_eq!(breaker.state(), BreakerState::Open);
}
