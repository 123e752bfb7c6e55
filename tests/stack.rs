//! The full stack over seeded chaos: exact, reproducible counts; and build-time validation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::backoff::BackoffPolicy;
use riprap::breaker::{BreakerEvent, BreakerState, CircuitBreaker, ConsecutiveFailures};
use riprap::chaos::{ChaosError, ChaosLayer};
use riprap::classify::{ByError, Class};
use riprap::events::Event;
use riprap::ratelimit::{RateLimitConfig, RateLimitEvent};
use riprap::retry::{RetryConfig, RetryEvent};
use riprap::stack::{Failure, StackBuilder};
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    requests: u32,
    succeeded: u32,
    upstream_calls: u64,
    retries: u32,
    breaker_transitions: Vec<(BreakerState, BreakerState)>,
    gate_closures: u32,
    rejected_by_breaker: u32,
    breaker_rejections: u64,
    deadline_or_timeout: u32,
}

async fn run_scenario(seed: u64) -> Counts {
    let retries = Arc::new(Mutex::new(0u32));
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let gates = Arc::new(Mutex::new(0u32));

    let r = Arc::clone(&retries);
    let t = Arc::clone(&transitions);
    let g = Arc::clone(&gates);
    let stack = StackBuilder::new(ByError)
        .total_deadline(Duration::from_secs(20))
        .attempt_timeout(Duration::from_secs(2))
        .retry(
            RetryConfig::new().max_attempts(3).backoff(
                BackoffPolicy::exponential(Duration::from_millis(100))
                    .max_delay(Duration::from_secs(2))
                    .seed(seed)
                    .build()
                    .unwrap(),
            ),
        )
        .breaker(
            CircuitBreaker::builder()
                .policy(ConsecutiveFailures::new(5).unwrap())
                .open_for(Duration::from_secs(3))
                .half_open_probes(1)
                .close_after(1),
        )
        .rate_limit(RateLimitConfig::builder().seed(seed))
        // One listener for every layer of the stack.
        .listener(move |e: &Event<'_>| {
            if let Some(RetryEvent::Attempt { delay: Some(_), .. }) = e.downcast_ref() {
                *r.lock().unwrap() += 1;
            }
            if let Some(BreakerEvent::Transition { from, to, .. }) = e.downcast_ref() {
                t.lock().unwrap().push((*from, *to));
            }
            if let Some(RateLimitEvent::GateClosed { .. }) = e.downcast_ref() {
                *g.lock().unwrap() += 1;
            }
        })
        .build()
        .unwrap();

    let chaos = ChaosLayer::builder()
        .seed(seed)
        .error_rate(0.15)
        .throttle_rate(0.03, Duration::from_secs(1))
        .outage(Duration::from_secs(20), Duration::from_secs(35))
        .build()
        .unwrap();
    let client = chaos.layer(service_fn(|x: u32| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok::<_, ChaosError>(x)
    }));
    let mut svc = stack.layer(client);

    let mut counts = Counts::default();
    // One request every 250 ms for 60 s, one at a time: a deterministic schedule.
    for i in 0..240u32 {
        counts.requests += 1;
        match svc.ready().await.unwrap().call(i).await {
            Ok(v) => {
                assert_eq!(v, i);
                counts.succeeded += 1;
            }
            Err(e) => match e.failure() {
                Failure::Rejected(_) => counts.rejected_by_breaker += 1,
                Failure::Deadline(_) | Failure::AttemptTimeout(_) => {
                    counts.deadline_or_timeout += 1
                }
                _ => {}
            },
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    counts.upstream_calls = chaos.calls();
    counts.retries = *retries.lock().unwrap();
    counts.breaker_transitions = transitions.lock().unwrap().clone();
    counts.gate_closures = *gates.lock().unwrap();
    counts.breaker_rejections = stack.breaker().metrics().rejected;
    counts
}

#[tokio::test(start_paused = true)]
async fn full_stack_over_chaos_gives_exact_counts() {
    let counts = run_scenario(42).await;
    println!("{counts:#?}");
    // The same seed replays the same run, call for call.
    assert_eq!(counts, run_scenario(42).await);

    use BreakerState::*;
    assert_eq!(counts.requests, 240);
    // Every attempt (first or retry) reached the chaos layer unless the breaker refused it.
    assert_eq!(
        counts.upstream_calls,
        u64::from(counts.requests + counts.retries) - counts.breaker_rejections
    );
    // The outage opened the breaker, and it closed again once the dependency healed.
    assert!(counts.breaker_transitions.contains(&(Closed, Open)));
    assert_eq!(counts.breaker_transitions.last(), Some(&(HalfOpen, Closed)));
    assert!(counts.rejected_by_breaker > 0);
    // Throttles closed the shared gate.
    assert!(counts.gate_closures > 0);
    // Exact figures for seed 42: any change to the layers' decisions shows here.
    assert_eq!(
        (
            counts.succeeded,
            counts.upstream_calls,
            counts.retries,
            counts.breaker_transitions.len(),
            counts.gate_closures,
            counts.rejected_by_breaker,
        ),
        GOLDEN
    );
}

const GOLDEN: (u32, u64, u32, usize, u32, u32) = (233, 286, 56, 11, 11, 5);

fn expect_knob<C, P, W, R>(b: riprap::stack::StackBuilder<C, P, W, R>, knob: &str)
where
    C: Clone,
    P: riprap::breaker::TripPolicy,
{
    match b.build() {
        Ok(_) => panic!("expected {knob} to be rejected"),
        Err(e) => {
            assert_eq!(e.knob(), knob, "{e}");
            assert!(e.to_string().contains(knob), "{e}");
        }
    }
}

#[test]
fn validation_names_the_knob() {
    let s = Duration::from_secs;
    // The attempt timeout must be shorter than the total deadline.
    expect_knob(
        StackBuilder::new(ByError)
            .total_deadline(s(5))
            .attempt_timeout(s(5)),
        "stack.attempt_timeout",
    );
    // Zero limits.
    expect_knob(
        StackBuilder::new(ByError).total_deadline(Duration::ZERO),
        "stack.total_deadline",
    );
    expect_knob(
        StackBuilder::new(ByError).attempt_timeout(Duration::ZERO),
        "stack.attempt_timeout",
    );
    // The retry layer's own deadline must fit in the total.
    expect_knob(
        StackBuilder::new(ByError)
            .total_deadline(s(5))
            .retry(RetryConfig::new().deadline(s(10))),
        "retry.deadline",
    );
    // The worst-case backoff must fit in the total deadline: 5 retries capped at 5 s can
    // take 25 s, which a 10 s deadline cannot hold.
    expect_knob(
        StackBuilder::new(ByError).total_deadline(s(10)).retry(
            RetryConfig::new().max_attempts(6).backoff(
                BackoffPolicy::exponential(s(5))
                    .max_delay(s(5))
                    .build()
                    .unwrap(),
            ),
        ),
        "stack.total_deadline",
    );
    // A bad knob inside a layer is reported by that layer.
    expect_knob(
        StackBuilder::new(ByError).retry(RetryConfig::new().max_attempts(0)),
        "retry.max_attempts",
    );
    // The presets are valid as shipped.
    StackBuilder::llm_api(ByError).build().unwrap();
    StackBuilder::object_store(ByError).build().unwrap();
    StackBuilder::database(ByError).build().unwrap();
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_pass_through_once_and_classify_as_final() {
    let stack = StackBuilder::new(ByError).build().unwrap();
    let calls = Arc::new(Mutex::new(0));
    let c = Arc::clone(&calls);
    let mut svc = stack.layer(service_fn(move |_: ()| {
        *c.lock().unwrap() += 1;
        async { Err::<(), _>(std::io::Error::from(std::io::ErrorKind::PermissionDenied)) }
    }));
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(
        matches!(err.failure(), Failure::Inner(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
    );
    assert_eq!(err.attempts(), Some(1));
    assert_eq!(*calls.lock().unwrap(), 1);
    assert_eq!(err.class(), Class::Permanent);
}

#[tokio::test(start_paused = true)]
async fn a_hung_attempt_times_out_and_is_retried() {
    let stack = StackBuilder::new(ByError)
        .total_deadline(Duration::from_secs(10))
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let calls = Arc::new(Mutex::new(0u32));
    let c = Arc::clone(&calls);
    let mut svc = stack.layer(service_fn(move |_: ()| {
        let n = {
            let mut g = c.lock().unwrap();
            *g += 1;
            *g
        };
        async move {
            if n == 1 {
                std::future::pending::<()>().await;
            }
            Ok::<_, std::io::Error>(n)
        }
    }));
    assert_eq!(svc.ready().await.unwrap().call(()).await.unwrap(), 2);
}

/// The README's stack: an HTTP client under `StackBuilder::llm_api`, with the provider's headers read
/// by the rate limiter. A 429 with `Retry-After: 20` is waited out, then the call succeeds.
#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn http_stack_honours_retry_after() {
    use riprap::classify::HttpStatus;
    use riprap::ratelimit::HeaderSignal;

    let stack = StackBuilder::llm_api(HttpStatus::new())
        .rate_limit(
            RateLimitConfig::builder()
                .requests(500, Duration::from_secs(60))
                .cost(200_000, Duration::from_secs(60)),
        )
        .read_signal(HeaderSignal::new())
        .build()
        .unwrap();
    let calls = Arc::new(Mutex::new(0u32));
    let c = Arc::clone(&calls);
    let client = service_fn(move |_: ()| {
        let n = {
            let mut g = c.lock().unwrap();
            *g += 1;
            *g
        };
        async move {
            let resp = if n == 1 {
                http::Response::builder()
                    .status(429)
                    .header("retry-after", "20")
                    .body(())
                    .unwrap()
            } else {
                http::Response::builder().status(200).body(()).unwrap()
            };
            Ok::<_, std::io::Error>(resp)
        }
    });
    let mut svc = stack.layer(client);
    let start = tokio::time::Instant::now();
    let resp = svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(*calls.lock().unwrap(), 2);
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(20), "{waited:?}");
    assert!(waited < Duration::from_secs(22), "{waited:?}");
}

/// "This attempt timed out" travels through classification like every other verdict, so a
/// budget that prices timeouts sees the stack's attempt timeout however deep it sits. (The
/// retry layer used to look for timeouts by downcasting; inside the stack the timeout is
/// wrapped by the rate-limit and breaker errors, and a timeout cost never applied.)
#[tokio::test(start_paused = true)]
async fn an_attempt_timeout_inside_the_stack_costs_a_timeout_price() {
    use riprap::budget::RetryQuota;
    use std::sync::atomic::{AtomicU32, Ordering};
    let quota = RetryQuota::builder().capacity(15).build().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let client = service_fn(move |_: ()| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<(), std::io::Error>(())
        }
    });
    let stack = StackBuilder::new(ByError)
        .attempt_timeout(Duration::from_secs(1))
        .retry(RetryConfig::new().max_attempts(3).budget(quota.clone()))
        .build()
        .unwrap();
    let err = stack.layer(client).oneshot(()).await.unwrap_err();
    assert!(matches!(err.failure(), Failure::AttemptTimeout(_)));
    // A timeout costs 10: the first retry is paid, a second (10 more) is not.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(quota.available(), 5);
}

/// A stacked source feeds a resumable stream: a `StackError` classifies by the stack's
/// verdict on the final failure, so a transient give-up is reconnected after (the stack used
/// to call every give-up permanent, and the first would end the stream), and a permanent one
/// ends it. The stream's items and the stacked connect share the `StackError` type.
#[tokio::test(start_paused = true)]
async fn a_stacked_source_feeds_a_resumable_stream() {
    use futures_util::StreamExt;
    use riprap::backoff::BackoffPolicy;
    use riprap::stack::StackError;
    use riprap::stream::{Resumable, ResumeError};
    use std::io;

    // Connects: three resets (one stack call gives up after its 3 attempts), then a log of
    // 0..6 that breaks after 3 items once, then the rest.
    let connects = Arc::new(Mutex::new(0u32));
    let c = Arc::clone(&connects);
    let connect = service_fn(move |after: Option<u64>| {
        let n = {
            let mut g = c.lock().unwrap();
            *g += 1;
            *g
        };
        async move {
            if n <= 3 {
                return Err(io::Error::from(io::ErrorKind::ConnectionReset));
            }
            let from = after.map_or(0, |a| a + 1);
            let mut items: Vec<Result<(u64, u64), io::Error>> =
                (from..6).map(|i| Ok((i, i * 10))).collect();
            if n == 4 {
                items.truncate(3);
                items.push(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
            }
            Ok(futures_util::stream::iter(items))
        }
    });
    let stack = StackBuilder::new(ByError)
        .retry(
            RetryConfig::new().max_attempts(3).backoff(
                BackoffPolicy::constant(Duration::from_millis(10))
                    .build()
                    .unwrap(),
            ),
        )
        .build()
        .unwrap();
    let source = stack.layer(connect);
    let backoff = BackoffPolicy::constant(Duration::from_millis(100))
        .build()
        .unwrap();
    type Item = Result<(u64, u64), ResumeError<StackError<io::Error>, u64>>;
    let items: Vec<Item> = Resumable::new(source, backoff).take(6).collect().await;
    let offsets: Vec<u64> = items.into_iter().map(|r| r.unwrap().0).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4, 5]);
    assert_eq!(*connects.lock().unwrap(), 5);

    // A permanent give-up ends the stream.
    let denied = service_fn(|_: Option<u64>| async {
        Err::<futures_util::stream::Iter<std::vec::IntoIter<Result<(u64, u64), io::Error>>>, _>(
            io::Error::from(io::ErrorKind::PermissionDenied),
        )
    });
    let backoff = BackoffPolicy::constant(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut s = Resumable::new(stack.layer(denied), backoff);
    match s.next().await {
        Some(Err(ResumeError::Permanent(e))) => {
            assert_eq!(e.class(), Class::Permanent);
            assert_eq!(e.attempts(), Some(1));
        }
        other => panic!("expected a permanent end, got {other:?}"),
    }
}

/// A request that is not `Clone`: only a copy policy can send it twice.
#[derive(Debug)]
struct Body(u32);

/// The copy policy is the stack's own knob: choosing the retry knobs after it (or a preset
/// doing so) keeps it, instead of putting `Clone` back.
#[tokio::test(start_paused = true)]
async fn the_copy_policy_survives_a_later_retry_config() {
    let copies = |b: &Body| Some(Body(b.0));
    let stack = StackBuilder::new(ByError)
        .clone_requests(copies)
        .retry(RetryConfig::new().max_attempts(3))
        .build()
        .unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let svc = stack.layer(service_fn(move |b: Body| {
        let mut seen = seen.lock().unwrap();
        seen.push(b.0);
        let reset = seen.len() < 3;
        async move {
            if reset {
                Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
            } else {
                Ok(b.0)
            }
        }
    }));
    assert_eq!(svc.oneshot(Body(7)).await.unwrap(), 7);
    assert_eq!(*calls.lock().unwrap(), [7, 7, 7]);
}
