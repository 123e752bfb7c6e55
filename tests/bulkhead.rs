//! Bulkhead behaviour on a paused clock: fail fast, the queue and its timeout, priorities and
//! the starvation guard, shedding by age, keyed bulkheads, cancellation at every await point,
//! adaptive limits, and the layer in a tower stack.

#[path = "../examples/support/adaptive_sim.rs"]
mod adaptive_sim;
#[path = "checks/bulkhead_ops.rs"]
mod bulkhead_ops_check;
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::noop_waker_ref;
use proptest::prelude::*;
use riprap::bulkhead::{
    Aimd, Bulkhead, BulkheadError, BulkheadEvent, BulkheadLayer, Gradient, KeyedBulkheads, Permit,
    Priority, Rejected, Vegas,
};
use riprap::classify::{ByError, Class, Classify, Through, classify_fn};
use riprap::timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Poll once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(noop_waker_ref()))
}

fn permit(p: Poll<Result<Permit, Rejected>>) -> Permit {
    match p {
        Poll::Ready(Ok(p)) => p,
        Poll::Ready(Err(r)) => panic!("rejected: {r}"),
        Poll::Pending => panic!("still waiting"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_bulkhead_without_a_queue_refuses_at_once_as_a_local_refusal() {
    let bulkhead = Bulkhead::builder().max_concurrent(2).build().unwrap();
    let a = bulkhead.try_acquire().unwrap();
    let _b = bulkhead.acquire(Priority::NORMAL).await.unwrap();
    let refused = bulkhead.acquire(Priority::HIGH).await.unwrap_err();
    assert_eq!(refused, Rejected::Full);
    assert_eq!(
        ByError.classify(Err::<&(), _>(&BulkheadError::<std::io::Error>::from(
            refused
        ))),
        Class::Refused { retry_after: None }
    );
    drop(a);
    assert!(bulkhead.try_acquire().is_ok());
    assert_eq!(bulkhead.metrics().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_admitted_in_arrival_order_and_time_out() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(2)
        .queue_timeout(ms(100))
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let mut first = bulkhead.acquire(Priority::NORMAL);
    let mut second = bulkhead.acquire(Priority::NORMAL);
    assert!(poll_once(&mut first).is_pending());
    tokio::time::advance(ms(10)).await;
    assert!(poll_once(&mut second).is_pending());
    assert_eq!(bulkhead.try_acquire().unwrap_err(), Rejected::Full);
    assert_eq!(
        bulkhead.acquire(Priority::NORMAL).await.unwrap_err(),
        Rejected::Full,
        "the queue holds two"
    );

    drop(held);
    let first = permit(poll_once(&mut first));
    assert!(poll_once(&mut second).is_pending());
    // The second waits its 100 ms out.
    let err = second.await.unwrap_err();
    assert_eq!(err, Rejected::QueueTimeout { waited: ms(100) });
    assert_eq!(bulkhead.waiting(), 0);
    drop(first);
    assert_eq!(bulkhead.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_most_urgent_class_goes_first_and_displaces_the_least_urgent_when_full() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(2)
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let mut low = bulkhead.acquire(Priority::LOW);
    let mut normal = bulkhead.acquire(Priority::NORMAL);
    assert!(poll_once(&mut low).is_pending());
    assert!(poll_once(&mut normal).is_pending());
    let mut high = bulkhead.acquire(Priority::HIGH);
    assert!(
        poll_once(&mut high).is_pending(),
        "it takes the low caller's place"
    );
    assert!(matches!(
        poll_once(&mut low),
        Poll::Ready(Err(Rejected::Displaced { .. }))
    ));
    assert_eq!(bulkhead.metrics().waiting, vec![1, 1, 0]);
    // Nobody less urgent than the low caller: it cannot displace anyone.
    assert_eq!(
        bulkhead.acquire(Priority::LOW).await.unwrap_err(),
        Rejected::Full
    );

    drop(held);
    let high = permit(poll_once(&mut high));
    assert!(poll_once(&mut normal).is_pending());
    drop(high);
    drop(permit(poll_once(&mut normal)));
    assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_after_its_grant_hands_the_permit_on() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(4)
        .build()
        .unwrap();
    let held = bulkhead.try_acquire().unwrap();
    let mut granted_then_dropped = bulkhead.acquire(Priority::NORMAL);
    let mut next = bulkhead.acquire(Priority::NORMAL);
    assert!(poll_once(&mut granted_then_dropped).is_pending());
    assert!(poll_once(&mut next).is_pending());
    drop(held); // the permit passes to the first waiter, which never polls again
    assert_eq!(bulkhead.in_flight(), 1);
    drop(granted_then_dropped);
    let next = permit(poll_once(&mut next));
    assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (1, 0));
    drop(next);
    assert_eq!(bulkhead.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn raising_the_limit_admits_waiters_and_lowering_it_waits_for_permits_back() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(4)
        .build()
        .unwrap();
    let a = bulkhead.try_acquire().unwrap();
    let mut b = bulkhead.acquire(Priority::NORMAL);
    assert!(poll_once(&mut b).is_pending());
    bulkhead.set_limit(2).unwrap();
    let b = permit(poll_once(&mut b));
    bulkhead.set_limit(1).unwrap();
    assert_eq!(
        bulkhead.in_flight(),
        2,
        "calls in flight are not interrupted"
    );
    let mut c = bulkhead.acquire(Priority::NORMAL);
    assert!(poll_once(&mut c).is_pending());
    drop(a);
    assert!(poll_once(&mut c).is_pending(), "still over the new limit");
    drop(b);
    drop(permit(poll_once(&mut c)));
    assert_eq!(bulkhead.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_standing_queue_sheds_its_oldest_callers_and_says_so() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(100)
        .shed_by_age(ms(5), ms(100))
        .listener(riprap::events::only(move |e: &BulkheadEvent| {
            sink.lock().unwrap().push(e.as_str())
        }))
        .build()
        .unwrap();
    // One call at a time, 50 ms each, and a caller every 10 ms: the queue stands.
    let mut held = Some(bulkhead.try_acquire().unwrap());
    let mut waiters = Vec::new();
    let (mut shed, mut served) = (0, 0);
    for tick in 1..=60u64 {
        tokio::time::advance(ms(10)).await;
        let mut w = bulkhead.acquire(Priority::NORMAL);
        if poll_once(&mut w).is_pending() {
            waiters.push(w);
        }
        if tick % 5 == 0 {
            held = None;
            waiters.retain_mut(|w| match poll_once(w) {
                Poll::Ready(Ok(p)) => {
                    served += 1;
                    held = Some(p);
                    false
                }
                Poll::Ready(Err(Rejected::Shed { waited })) => {
                    assert!(waited >= ms(100));
                    shed += 1;
                    false
                }
                Poll::Ready(Err(other)) => panic!("{other}"),
                Poll::Pending => true,
            });
        }
    }
    drop(held);
    assert!(shed > 0 && served > 0, "shed {shed}, served {served}");
    let seen = events.lock().unwrap();
    assert_eq!(
        seen.iter().filter(|e| **e == "shedding_started").count(),
        1,
        "one warning per episode: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keyed_bulkheads_isolate_tenants_and_cap_keys_with_an_overflow() {
    let keyed = KeyedBulkheads::new(Bulkhead::builder().max_concurrent(1), 2).unwrap();
    let acme = keyed.get(&"acme").try_acquire().unwrap();
    let _globex = keyed.get(&"globex").try_acquire().unwrap();
    assert!(keyed.get(&"acme").try_acquire().is_err());
    assert_eq!(keyed.get(&"acme").name(), Some("\"acme\""));
    // Both keys are busy: a third shares the overflow bulkhead.
    let third = keyed.get(&"initech");
    assert_eq!(third.name(), Some("<overflow>"));
    drop(third);
    drop(acme);
    // acme is idle now and can be forgotten to make room (sweeps run every 64 overflows).
    for i in 0..64 {
        let _ = keyed.get(&"x").try_acquire();
        let _ = i;
    }
    assert_eq!(keyed.get(&"initech").name(), Some("\"initech\""));
    assert_eq!(keyed.len(), 2);
}

/// A service that answers after `latency`, counting calls in flight at the dependency.
#[derive(Clone)]
struct Slow {
    latency: Duration,
    busy: Arc<Mutex<(u32, u32)>>,
}

impl Slow {
    fn new(latency: Duration) -> Self {
        Slow {
            latency,
            busy: Arc::new(Mutex::new((0, 0))),
        }
    }

    fn peak(&self) -> u32 {
        self.busy.lock().unwrap().1
    }
}

impl Service<u32> for Slow {
    type Response = u32;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<u32, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: u32) -> Self::Future {
        let (busy, latency) = (Arc::clone(&self.busy), self.latency);
        {
            let mut b = busy.lock().unwrap();
            b.0 += 1;
            b.1 = b.1.max(b.0);
        }
        Box::pin(async move {
            struct Done(Arc<Mutex<(u32, u32)>>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.lock().unwrap().0 -= 1;
                }
            }
            let _done = Done(busy);
            tokio::time::sleep(latency).await;
            Ok(req)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_layer_caps_calls_in_flight_and_queues_the_rest() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(3)
        .max_queue(100)
        .build()
        .unwrap();
    let inner = Slow::new(ms(100));
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(inner.clone());
    let start = Instant::now();
    let calls = (0..10).map(|i| svc.clone().oneshot(i));
    let out = futures_util::future::join_all(calls).await;
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(inner.peak(), 3);
    assert_eq!(start.elapsed(), ms(400), "four rounds of three");
    assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_response_future_dropped_mid_call_gives_its_permit_back() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(1)
        .build()
        .unwrap();
    let mut svc = BulkheadLayer::new(bulkhead.clone()).layer(Slow::new(ms(100)));
    let mut call = svc.ready().await.unwrap().call(1);
    assert!(poll_once(&mut call).is_pending());
    assert_eq!(bulkhead.in_flight(), 1);
    let mut queued = svc.ready().await.unwrap().call(2);
    assert!(poll_once(&mut queued).is_pending());
    assert_eq!(bulkhead.waiting(), 1);
    drop(call);
    drop(queued); // granted the permit when the first was dropped, dropped before calling
    assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn priorities_come_from_the_request() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(1)
        .max_queue(10)
        .build()
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&order);
    let svc = ServiceBuilder::new()
        .layer(BulkheadLayer::new(bulkhead).priority(|n: &u32| {
            if *n >= 100 {
                Priority::HIGH
            } else {
                Priority::LOW
            }
        }))
        .service_fn(move |n: u32| {
            let log = Arc::clone(&log);
            async move {
                tokio::time::sleep(ms(10)).await;
                log.lock().unwrap().push(n);
                Ok::<_, std::io::Error>(n)
            }
        });
    let calls = [1u32, 2, 3, 100, 101].map(|n| svc.clone().oneshot(n));
    let _ = futures_util::future::join_all(calls).await;
    // The first was already in; the urgent ones overtake the rest of the batch.
    assert_eq!(*order.lock().unwrap(), [1, 100, 101, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_throttle_or_a_timeout_shrinks_an_adaptive_limit() {
    for algorithm in ["aimd", "vegas", "gradient"] {
        let builder = Bulkhead::builder();
        let builder = match algorithm {
            "aimd" => builder.adaptive(Aimd::builder().initial(20).build().unwrap()),
            "vegas" => builder.adaptive(Vegas::builder().initial(20).build().unwrap()),
            _ => builder.adaptive(Gradient::builder().initial(20).build().unwrap()),
        };
        let bulkhead = builder.build().unwrap();
        let throttled = classify_fn(|out: Result<&u32, &std::io::Error>| match out {
            Ok(429) => Class::Throttled { retry_after: None },
            Ok(_) => Class::Success,
            Err(e) => riprap::classify::Classified::class(e),
        });
        let svc = BulkheadLayer::new(bulkhead.clone())
            .classifier(throttled)
            .layer(service_fn(
                |n: u32| async move { Ok::<_, std::io::Error>(n) },
            ));
        svc.clone().oneshot(429).await.unwrap();
        assert_eq!(bulkhead.limit(), 18, "{algorithm}: 20 × 0.9");

        // A timeout below the bulkhead: an attempt that ran out of time.
        let timed = BulkheadLayer::new(bulkhead.clone())
            .classifier(Through(ByError))
            .layer(TimeoutLayer::new(ms(50)).layer(Slow::new(ms(100))));
        tokio::time::advance(ms(1)).await;
        assert!(timed.oneshot(1).await.is_err());
        assert_eq!(bulkhead.limit(), 16, "{algorithm}: 18 × 0.9");
    }
}

#[tokio::test(start_paused = true)]
async fn one_congestion_event_cuts_the_limit_once() {
    let bulkhead = Bulkhead::builder()
        .adaptive(Aimd::builder().initial(10).build().unwrap())
        .build()
        .unwrap();
    // Ten calls in flight when the server starts answering 429: one cut, not ten.
    let permits: Vec<_> = (0..10).map(|_| bulkhead.try_acquire().unwrap()).collect();
    tokio::time::advance(ms(5)).await;
    for p in permits {
        p.record(&Class::Throttled { retry_after: None });
    }
    assert_eq!(bulkhead.limit(), 9);
    // A call admitted after the cut that is throttled again cuts again.
    tokio::time::advance(ms(5)).await;
    bulkhead
        .try_acquire()
        .unwrap()
        .record(&Class::Throttled { retry_after: None });
    assert_eq!(bulkhead.limit(), 8);
}

#[tokio::test(start_paused = true)]
async fn refused_and_transient_failures_do_not_move_the_limit() {
    let bulkhead = Bulkhead::builder()
        .adaptive(Aimd::builder().initial(10).min_samples(1).build().unwrap())
        .build()
        .unwrap();
    for class in [Class::Refused { retry_after: None }, Class::Transient] {
        bulkhead.try_acquire().unwrap().record(&class);
    }
    assert_eq!(bulkhead.limit(), 10);
}

#[tokio::test(start_paused = true)]
async fn events_report_rejections_waits_and_limit_changes() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let bulkhead = Bulkhead::builder()
        .name("llm")
        .adaptive(Aimd::builder().initial(1).build().unwrap())
        .max_queue(1)
        .listener(riprap::events::only(move |e: &BulkheadEvent| {
            sink.lock()
                .unwrap()
                .push((e.as_str(), e.name().map(str::to_owned)))
        }))
        .build()
        .unwrap();
    let p = bulkhead.try_acquire().unwrap();
    let _ = bulkhead.try_acquire();
    let mut w = bulkhead.acquire(Priority::NORMAL);
    assert!(poll_once(&mut w).is_pending());
    tokio::time::advance(ms(3)).await;
    drop(p);
    let q = permit(poll_once(&mut w));
    q.record(&Class::TimedOut);
    let seen = events.lock().unwrap();
    let kinds: Vec<_> = seen.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["rejected", "waited"]);
    assert!(seen.iter().all(|(_, n)| n.as_deref() == Some("llm")));
    // The limit was already at its floor of 1: no change to report.
    assert_eq!(bulkhead.limit(), 1);
}

// --- Cancellation: no permit leaks, whatever is dropped when -------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Start an acquire at this priority and poll it once.
    Acquire(u8),
    /// Poll the waiter at this index (modulo the waiters).
    Poll(usize),
    /// Drop the waiter at this index.
    DropWaiter(usize),
    /// Drop the permit at this index.
    Release(usize),
    /// Set the limit.
    Limit(u32),
    /// Let time pass.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4).prop_map(Op::Acquire),
        2 => any::<usize>().prop_map(Op::Poll),
        2 => any::<usize>().prop_map(Op::DropWaiter),
        3 => any::<usize>().prop_map(Op::Release),
        1 => (1u32..5).prop_map(Op::Limit),
        1 => (0u64..40).prop_map(Op::Advance),
    ]
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Acquires, polls, drops of waiters and permits, limit changes and time passing, in any
    /// order: the permits held are exactly the permits the bulkhead counts, never more than
    /// the limit unless it was lowered under them, and once everything is dropped nothing is
    /// held or waiting.
    #[test]
    fn permits_never_leak_under_random_drops(
        ops in proptest::collection::vec(op(), 1..120),
        queue in 0u32..6,
        shed in any::<bool>(),
    ) {
        paused_runtime().block_on(async move {
            let mut b = Bulkhead::builder()
                .max_concurrent(2)
                .max_queue(queue)
                .queue_timeout(ms(25));
            if shed {
                b = b.shed_by_age(ms(2), ms(10));
            }
            let bulkhead = b.build().unwrap();
            let mut waiters = Vec::new();
            let mut permits: Vec<Permit> = Vec::new();
            let mut lowered_under = false;
            for op in ops {
                match op {
                    Op::Acquire(p) => {
                        let mut w = bulkhead.acquire(Priority(p));
                        match poll_once(&mut w) {
                            Poll::Ready(Ok(p)) => permits.push(p),
                            Poll::Ready(Err(_)) => {}
                            Poll::Pending => waiters.push(w),
                        }
                    }
                    Op::Poll(i) if !waiters.is_empty() => {
                        let i = i % waiters.len();
                        match poll_once(&mut waiters[i]) {
                            Poll::Ready(Ok(p)) => { permits.push(p); drop(waiters.remove(i)); }
                            Poll::Ready(Err(_)) => { drop(waiters.remove(i)); }
                            Poll::Pending => {}
                        }
                    }
                    Op::DropWaiter(i) if !waiters.is_empty() => {
                        let i = i % waiters.len();
                        drop(waiters.remove(i));
                    }
                    Op::Release(i) if !permits.is_empty() => {
                        let i = i % permits.len();
                        drop(permits.remove(i));
                    }
                    Op::Limit(n) => {
                        if (n as usize) < permits.len() {
                            lowered_under = true;
                        }
                        bulkhead.set_limit(n).unwrap();
                    }
                    Op::Advance(n) => tokio::time::advance(ms(n)).await,
                    _ => {}
                }
                // Granted but not yet collected permits count too: collect them.
                let mut i = 0;
                while i < waiters.len() {
                    match poll_once(&mut waiters[i]) {
                        Poll::Ready(Ok(p)) => { permits.push(p); drop(waiters.remove(i)); }
                        Poll::Ready(Err(_)) => { drop(waiters.remove(i)); }
                        Poll::Pending => i += 1,
                    }
                }
                prop_assert_eq!(bulkhead.in_flight() as usize, permits.len());
                prop_assert_eq!(bulkhead.waiting() as usize, waiters.len());
                prop_assert!(bulkhead.waiting() <= queue);
                if !lowered_under {
                    prop_assert!(bulkhead.in_flight() <= bulkhead.limit());
                }
                if bulkhead.in_flight() < bulkhead.limit() {
                    prop_assert_eq!(bulkhead.waiting(), 0, "a caller waits while a permit is free");
                }
                if permits.len() <= bulkhead.limit() as usize {
                    lowered_under = false;
                }
            }
            drop(waiters);
            drop(permits);
            prop_assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
            Ok(())
        })?;
    }

    /// Response futures dropped at random points (waiting, readying, mid-call, done) leave
    /// no permit held.
    #[test]
    fn response_futures_dropped_anywhere_leave_no_permit_held(
        drops in proptest::collection::vec((0u64..60, any::<bool>()), 1..40),
    ) {
        paused_runtime().block_on(async move {
            let bulkhead = Bulkhead::builder().max_concurrent(2).max_queue(8).build().unwrap();
            let svc = BulkheadLayer::new(bulkhead.clone()).layer(Slow::new(ms(20)));
            let mut calls = Vec::new();
            for (after, keep) in drops {
                let mut c = Box::pin(svc.clone().oneshot(1));
                if poll_once(&mut c).is_pending() {
                    calls.push((c, after, keep));
                }
                tokio::time::advance(ms(3)).await;
                calls.retain_mut(|(c, after, keep)| {
                    if *after == 0 && !*keep {
                        return false;
                    }
                    *after = after.saturating_sub(3);
                    poll_once(c).is_pending()
                });
            }
            drop(calls);
            prop_assert_eq!((bulkhead.in_flight(), bulkhead.waiting()), (0, 0));
            Ok(())
        })?;
    }
}

// --- Acceptance: adaptive concurrency against a capacity drop -------------------------------

/// The scenario of `examples/adaptive_concurrency.rs` (which also draws `docs/adaptive.svg`):
/// 500 calls/s offered to a server of 40 workers at 100 ms whose latency grows with
/// concurrency, halved to 20 workers at 30 s, each call with a 250 ms attempt timeout. The
/// adaptive limits keep p99 (timeouts counted at their wait) within 2× of the unloaded p99
/// and serve at least 90 % of capacity, in each half and overall; a fixed limit set for the
/// first capacity collapses in the second.
#[tokio::test(start_paused = true)]
async fn adaptive_limits_ride_a_capacity_drop_that_collapses_a_fixed_limit() {
    use adaptive_sim::{HALVES_AT, OFFERED_PER_SEC, RUN};
    let unloaded = adaptive_sim::run(
        "unloaded",
        Bulkhead::builder().max_concurrent(1_000),
        20.0,
        1,
    )
    .await;
    let idle_p99 = unloaded.percentile(0.99);
    let mut reports = Vec::new();
    for (name, builder) in adaptive_sim::contenders().unwrap() {
        reports.push(adaptive_sim::run(name, builder, OFFERED_PER_SEC, 1).await);
    }
    println!(
        "unloaded p50 {:?}, p99 {idle_p99:?}\n{}",
        unloaded.percentile(0.5),
        adaptive_sim::table(&reports, idle_p99)
    );
    let find = |name: &str| reports.iter().find(|r| r.name.starts_with(name)).unwrap();
    for name in ["gradient", "vegas"] {
        let r = find(name);
        let p99 = r.percentile(0.99);
        assert!(
            p99 <= idle_p99 * 2,
            "{name}: p99 {p99:?} vs unloaded {idle_p99:?}"
        );
        for (from, to) in [
            (Duration::ZERO, HALVES_AT),
            (HALVES_AT, RUN),
            (Duration::ZERO, RUN),
        ] {
            let t = r.throughput(from, to);
            assert!(t >= 0.90, "{name}: throughput {t:.2} over {from:?}..{to:?}");
        }
    }
    let fixed = find("fixed");
    assert!(
        fixed.throughput(HALVES_AT, RUN) < 0.5,
        "the fixed limit collapses"
    );
    assert!(fixed.percentile(0.99) > idle_p99 * 2);
}

// --- Priorities: the starvation guard, and the urgent class under overload -----------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One permit, callers of random classes arriving between grants: whatever the order,
    /// a class that waits is passed over at most `max_bypass + classes - 1` times in a row,
    /// and within a class callers are served in arrival order.
    #[test]
    fn the_starvation_guard_bounds_how_often_a_waiting_class_is_passed_over(
        classes in 1u8..=4,
        max_bypass in 0u32..6,
        steps in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..4), 1..80),
    ) {
        paused_runtime().block_on(async move {
            let bulkhead = Bulkhead::builder()
                .max_concurrent(1)
                .max_queue(1_000)
                .priorities(classes)
                .max_bypass(max_bypass)
                .no_queue_timeout()
                .build()
                .unwrap();
            let mut holder = Some(bulkhead.try_acquire().unwrap());
            // (class, arrival number, future)
            let mut waiting: Vec<(usize, u64, riprap::bulkhead::Acquire)> = Vec::new();
            let mut passed_over = vec![0u32; usize::from(classes)];
            let mut last_served = vec![None::<u64>; usize::from(classes)];
            let mut n = 0u64;
            let bound = max_bypass + u32::from(classes) - 1;
            for arrivals in steps {
                for p in arrivals {
                    let class = usize::from(p.min(classes - 1));
                    let mut w = bulkhead.acquire(Priority(p));
                    prop_assert!(poll_once(&mut w).is_pending());
                    waiting.push((class, n, w));
                    n += 1;
                }
                // Hand the permit on and see who gets it.
                drop(holder.take());
                let mut granted = None;
                for (i, (_, _, w)) in waiting.iter_mut().enumerate() {
                    if let Poll::Ready(r) = poll_once(w) {
                        prop_assert!(granted.is_none(), "two callers got one permit");
                        holder = Some(r.unwrap());
                        granted = Some(i);
                    }
                }
                let Some(i) = granted else {
                    prop_assert!(waiting.is_empty());
                    holder = Some(bulkhead.try_acquire().unwrap());
                    continue;
                };
                let (class, seq, _) = waiting.remove(i);
                if let Some(prev) = last_served[class] {
                    prop_assert!(seq > prev, "class {} served out of arrival order", class);
                }
                last_served[class] = Some(seq);
                for (c, passed) in passed_over.iter_mut().enumerate() {
                    if c == class {
                        *passed = 0;
                    } else if waiting.iter().any(|(wc, _, _)| *wc == c) {
                        *passed += 1;
                        prop_assert!(
                            *passed <= bound,
                            "class {} passed over {} times (bound {})", c, *passed, bound
                        );
                    } else {
                        *passed = 0;
                    }
                }
            }
            Ok(())
        })?;
    }
}

/// What one class saw in the priority scenario.
#[derive(Default, Debug)]
struct ClassReport {
    latencies: Vec<Duration>,
    refused: u32,
}

impl ClassReport {
    fn p(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        let n = self.latencies.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.latencies[((n - 1) as f64 * q).round() as usize]
    }
}

/// Poisson arrivals of urgent (30/s) and, if `batch`, batch (100/s) calls at a bulkhead of 10
/// permits in front of a 100 ms dependency (capacity 100/s), for 60 s.
async fn priority_run(prioritised: bool, batch: bool) -> [ClassReport; 2] {
    const SERVICE: Duration = Duration::from_millis(100);
    let bulkhead = Bulkhead::builder()
        .max_concurrent(10)
        .max_queue(300)
        .queue_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let svc = BulkheadLayer::new(bulkhead)
        .priority(move |urgent: &bool| {
            if *urgent && prioritised {
                Priority::HIGH
            } else {
                Priority::LOW
            }
        })
        .layer(service_fn(|_: bool| async {
            tokio::time::sleep(SERVICE).await;
            Ok::<_, std::io::Error>(())
        }));
    let report = Arc::new(Mutex::new([ClassReport::default(), ClassReport::default()]));
    let mut rng = adaptive_sim::Rng::new(7);
    let start = Instant::now();
    let mut next = [start, start];
    let rates = [30.0, if batch { 100.0 } else { 0.0 }];
    let mut tasks = Vec::new();
    loop {
        let c = if rates[1] == 0.0 || next[0] <= next[1] {
            0
        } else {
            1
        };
        let at = next[c];
        if at.duration_since(start) >= Duration::from_secs(60) {
            break;
        }
        next[c] += Duration::from_secs_f64(-(1.0 - rng.unit()).ln() / rates[c]);
        tokio::time::sleep_until(at).await;
        let call = svc.clone().oneshot(c == 0);
        let report = Arc::clone(&report);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let out = call.await;
            let mut r = report.lock().unwrap();
            match out {
                Ok(()) => r[c].latencies.push(t0.elapsed()),
                Err(_) => r[c].refused += 1,
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    std::mem::take(&mut *report.lock().unwrap())
}

/// Under 1.3× overload (urgent 30/s and batch 100/s against a capacity of 100/s), the urgent
/// class's p99 latency stays within 2× of its latency with no batch traffic at all, while
/// the batch class absorbs the queue; in one FIFO queue the urgent calls wait behind the batch.
#[tokio::test(start_paused = true)]
async fn under_overload_the_urgent_class_keeps_its_latency_and_the_batch_absorbs_the_queue() {
    let [mut idle, _] = priority_run(true, false).await;
    let [mut urgent, mut batch] = priority_run(true, true).await;
    let [mut fifo_urgent, mut fifo_batch] = priority_run(false, true).await;
    let ms = |d: Duration| d.as_millis();
    println!(
        "{:<26} {:>8} {:>8} {:>9} {:>8}",
        "class", "p50 ms", "p99 ms", "served", "refused"
    );
    for (name, r) in [
        ("urgent, no batch traffic", &mut idle),
        ("urgent, prioritised", &mut urgent),
        ("batch, prioritised", &mut batch),
        ("urgent, one FIFO queue", &mut fifo_urgent),
        ("batch, one FIFO queue", &mut fifo_batch),
    ] {
        println!(
            "{name:<26} {:>8} {:>8} {:>9} {:>8}",
            ms(r.p(0.5)),
            ms(r.p(0.99)),
            r.latencies.len(),
            r.refused
        );
    }
    let idle_p99 = idle.p(0.99);
    assert!(
        urgent.p(0.99) <= idle_p99 * 2,
        "urgent p99 {:?} vs {idle_p99:?}",
        urgent.p(0.99)
    );
    assert_eq!(urgent.refused, 0);
    assert!(
        batch.p(0.99) > urgent.p(0.99) * 10,
        "the batch absorbs the queue"
    );
    assert!(batch.refused > 0);
    assert!(
        fifo_urgent.p(0.99) > idle_p99 * 10,
        "without priorities the urgent calls wait"
    );
}

// --- The fuzz target's model, on stable ---------------------------------------------------

#[test]
fn fuzz_corpus_bulkhead_ops() {
    common::replay_corpus("bulkhead_ops", bulkhead_ops_check::run);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The fuzz target's check on random inputs: the bulkhead against its reference model.
    #[test]
    fn bulkhead_ops_match_the_model(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        bulkhead_ops_check::run(&data);
    }
}

// --- Chaos: faults injected below an adaptive bulkhead -------------------------------------

/// The chaos layer throttles 20 % of calls (429s with `Retry-After`): each congestion event
/// cuts the adaptive limit, which settles well below where it started; with the throttles
/// gone, it grows back.
#[tokio::test(start_paused = true)]
async fn chaos_throttles_shrink_an_adaptive_limit_that_recovers_after() {
    use riprap::chaos::{ChaosError, ChaosLayer};
    let bulkhead = Bulkhead::builder()
        .adaptive(Aimd::builder().initial(40).min_samples(5).build().unwrap())
        .build()
        .unwrap();
    let chaos = ChaosLayer::builder()
        .seed(5)
        .throttle_rate(0.2, ms(500))
        .build()
        .unwrap();
    let throttled = BulkheadLayer::new(bulkhead.clone())
        .classifier(ByError)
        .layer(chaos.layer(service_fn(|_: u32| async {
            tokio::time::sleep(ms(20)).await;
            Ok::<_, ChaosError>(())
        })));
    for i in 0..200 {
        let _ = throttled.clone().oneshot(i).await;
        tokio::time::advance(ms(5)).await;
    }
    let cut = bulkhead.limit();
    assert!(cut < 20, "limit {cut} after sustained throttling");
    let clean = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|_: u32| async {
        tokio::time::sleep(ms(20)).await;
        Ok::<_, std::io::Error>(())
    }));
    // Enough concurrent traffic to use the limit, so the windows count.
    for round in 0..60u32 {
        let calls: Vec<_> = (0..cut.max(1))
            .map(|i| clean.clone().oneshot(round * 100 + i))
            .collect();
        let _ = futures_util::future::join_all(calls).await;
    }
    assert!(
        bulkhead.limit() > cut,
        "recovered to {} from {cut}",
        bulkhead.limit()
    );
}

/// The chaos layer adds 400 ms to a fifth of calls: the gradient limit reads the latency
/// rise and shrinks, and a fixed limit of the same size would not.
#[tokio::test(start_paused = true)]
async fn chaos_latency_shrinks_a_gradient_limit() {
    use riprap::chaos::{ChaosError, ChaosLayer, Latency};
    let bulkhead = Bulkhead::builder()
        .adaptive(
            Gradient::builder()
                .initial(30)
                .min_samples(5)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let calm = BulkheadLayer::new(bulkhead.clone()).layer(service_fn(|_: u32| async {
        tokio::time::sleep(ms(100)).await;
        Ok::<_, ChaosError>(())
    }));
    for round in 0..10u32 {
        let calls: Vec<_> = (0..30)
            .map(|i| calm.clone().oneshot(round * 100 + i))
            .collect();
        let _ = futures_util::future::join_all(calls).await;
    }
    let before = bulkhead.limit();
    let chaos = ChaosLayer::builder()
        .seed(9)
        .latency(0.2, Latency::Fixed(ms(400)))
        .build()
        .unwrap();
    let slow =
        BulkheadLayer::new(bulkhead.clone()).layer(chaos.layer(service_fn(|_: u32| async {
            tokio::time::sleep(ms(100)).await;
            Ok::<_, ChaosError>(())
        })));
    for round in 0..10u32 {
        let calls: Vec<_> = (0..30)
            .map(|i| slow.clone().oneshot(round * 100 + i))
            .collect();
        let _ = futures_util::future::join_all(calls).await;
    }
    assert!(
        bulkhead.limit() < before,
        "{} after the latency rise, {before} before",
        bulkhead.limit()
    );
}

// --- Config files --------------------------------------------------------------------------

#[test]
fn a_bulkhead_spec_round_trips_and_builds() {
    use riprap::bulkhead::BulkheadSpec;
    let toml_text = r#"
        max_queue = 50
        queue_timeout = "1s"
        priorities = 2
        max_bypass = 4
        shed = { target = "20ms", interval = "200ms" }

        [adaptive.gradient]
        initial = 10
        max = 100
        tolerance = 1.5
        baseline_window = "1m"
    "#;
    let spec: BulkheadSpec = toml::from_str(toml_text).unwrap();
    let back: BulkheadSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    let json: BulkheadSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(json, spec);
    let bulkhead = spec.build().unwrap();
    assert_eq!(bulkhead.limit(), 10);

    let both: BulkheadSpec =
        toml::from_str("max_concurrent = 4\n[adaptive.aimd]\nslow = \"2s\"").unwrap();
    assert_eq!(both.build().unwrap_err().knob(), "bulkhead.max_concurrent");
    let two: Result<BulkheadSpec, _> = toml::from_str("[adaptive]\naimd = {}\nvegas = {}");
    assert!(two.unwrap_err().to_string().contains("exactly one"));
    let bad: BulkheadSpec = toml::from_str("[adaptive.vegas]\nalpha = 5\nbeta = 2").unwrap();
    assert_eq!(bad.build().unwrap_err().knob(), "bulkhead.vegas.beta");
}

/// A long-lived service clone (a worker's own) takes a private handle after a few calls;
/// its permits are the bulkhead's all the same, and an unlimited bulkhead counts nothing.
#[tokio::test(start_paused = true)]
async fn a_long_lived_service_clone_and_an_unlimited_bulkhead_keep_the_books_straight() {
    let bulkhead = Bulkhead::builder().max_concurrent(2).build().unwrap();
    let mut svc = BulkheadLayer::new(bulkhead.clone()).layer(Slow::new(ms(10)));
    for i in 0..40 {
        let a = svc.ready().await.unwrap().call(i);
        let b = svc.ready().await.unwrap().call(i);
        let refused = svc.ready().await.unwrap().call(i).await.unwrap_err();
        assert_eq!(refused.rejection(), Some(Rejected::Full), "call {i}");
        assert_eq!(bulkhead.in_flight(), 2);
        let (a, b) = tokio::join!(a, b);
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(bulkhead.in_flight(), 0);
    }

    let unlimited = Bulkhead::unlimited();
    let inner = Slow::new(ms(10));
    let svc = BulkheadLayer::new(unlimited.clone()).layer(inner.clone());
    let calls = (0..100).map(|i| svc.clone().oneshot(i));
    assert!(
        futures_util::future::join_all(calls)
            .await
            .iter()
            .all(Result::is_ok)
    );
    assert_eq!(inner.peak(), 100);
    assert_eq!(unlimited.in_flight(), 0);
}

/// In the stack, the bulkhead sits between the rate limiter and the attempt timeout: its
/// refusal comes out as `Failure::Bulkhead` (a local refusal the retry layer may retry), and
/// an adaptive limit hears the attempt timeout below it.
#[tokio::test(start_paused = true)]
async fn the_stack_puts_the_bulkhead_above_the_attempt_timeout() {
    use riprap::retry::RetryConfig;
    use riprap::stack::{Failure, StackBuilder};
    let stack = StackBuilder::new(ByError)
        .attempt_timeout(ms(50))
        .retry(RetryConfig::new().max_attempts(1))
        .bulkhead(Bulkhead::builder().adaptive(Aimd::builder().initial(2).build().unwrap()))
        .build()
        .unwrap();
    let svc = stack.layer(Slow::new(ms(100)));
    let (a, b, c) = tokio::join!(
        svc.clone().oneshot(1),
        svc.clone().oneshot(2),
        svc.clone().oneshot(3)
    );
    let failures: Vec<_> = [a, b, c]
        .into_iter()
        .map(|r| match r.unwrap_err().into_failure() {
            Failure::Bulkhead(r) => format!("bulkhead {}", r.as_str()),
            Failure::AttemptTimeout(_) => "timeout".to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(failures, ["timeout", "timeout", "bulkhead full"]);
    assert_eq!(
        stack.bulkhead().limit(),
        1,
        "the timeouts cut the limit once: 2 × 0.9"
    );
    assert_eq!(stack.bulkhead().in_flight(), 0);
}
