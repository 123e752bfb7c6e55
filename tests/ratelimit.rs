//! Rate limiter behaviour on a paused clock: local quotas, the server's gate and pacing,
//! adaptive rate, keyed limits, cancellation, and the layer in a tower stack.

mod common;
#[path = "checks/ratelimit_ops.rs"]
mod ratelimit_ops_check;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use riprap::classify::Class;
use riprap::classify::headers::{Quota, RateLimitSignal};
use riprap::ratelimit::{
    KeyedRateLimiter, LimitedBy, RateLimitConfig, RateLimitError, RateLimitEvent, RateLimitLayer,
    RateLimiter,
};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

const SEC: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn limiter(b: riprap::ratelimit::RateLimitConfigBuilder) -> RateLimiter {
    RateLimiter::new(b.seed(7).build().unwrap())
}

/// A mock server: answers `status(n)` to the n-th request after `latency`, recording when
/// each request arrived (since `start`) and what it got.
#[allow(clippy::type_complexity)]
fn server(
    start: Instant,
    latency: Duration,
    status: impl Fn(usize) -> u16 + Clone + Send + 'static,
) -> (
    impl Service<(), Response = u16, Error = Infallible, Future = impl Send> + Clone + Send,
    Arc<Mutex<Vec<(Duration, u16)>>>,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    let count = Arc::new(AtomicUsize::new(0));
    let svc = service_fn(move |()| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let code = status(n);
        seen.lock().unwrap().push((start.elapsed(), code));
        async move {
            tokio::time::sleep(latency).await;
            Ok::<u16, Infallible>(code)
        }
    });
    (svc, log)
}

fn by_status(retry_after: Option<Duration>) -> impl Fn(Result<&u16, &Infallible>) -> Class + Clone {
    move |out| match out {
        Ok(429) => Class::Throttled { retry_after },
        Ok(s) if *s >= 500 => Class::Transient,
        _ => Class::Success,
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_30s_stops_every_clone_for_30s() {
    let start = Instant::now();
    // The 20th request is throttled with `Retry-After: 30`.
    let (server, log) = server(start, Duration::from_millis(10), |n| {
        if n == 20 { 429 } else { 200 }
    });
    let limiter = limiter(
        RateLimitConfig::builder()
            .reopen_jitter(Duration::from_millis(500))
            .max_wait(secs(60)),
    );
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()).classifier(by_status(Some(secs(30)))))
        .service(server);

    let workers: Vec<_> = (0..8)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    svc.clone().oneshot(()).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }

    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 80);
    let sent_429 = log.iter().find(|(_, s)| *s == 429).unwrap().0;
    let answered = sent_429 + Duration::from_millis(10);
    let after: Vec<Duration> = log
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t > answered)
        .collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|t| *t >= answered + secs(30)),
        "a clone sent during the 30 s pause: {after:?}"
    );
    // One probe goes first; the others wait for its answer (10 ms later), then resume each
    // after its own jitter, not all on one tick.
    let mut after = after;
    after.sort();
    let probe = after[0];
    assert!(probe <= answered + secs(30) + Duration::from_millis(500));
    let probe_answered = probe + Duration::from_millis(10);
    let rest = &after[1..];
    assert!(
        rest.iter().all(|t| *t >= probe_answered),
        "sent before the probe's answer: {rest:?}"
    );
    let mut first_wave: Vec<Duration> = rest
        .iter()
        .copied()
        .filter(|t| *t <= probe_answered + Duration::from_millis(500))
        .collect();
    assert!(first_wave.len() >= 6, "the clones resumed: {first_wave:?}");
    first_wave.dedup();
    assert!(
        first_wave.len() >= 4,
        "resumed on too few ticks: {first_wave:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn quota_at_zero_closes_the_gate_until_reset() {
    let limiter = limiter(RateLimitConfig::builder().reopen_jitter(Duration::ZERO));
    let admitted = limiter.acquire(1).await.unwrap();
    let signal = RateLimitSignal {
        requests: Some(Quota {
            limit: Some(100),
            remaining: Some(0),
            reset_after: Some(secs(12)),
        }),
        ..Default::default()
    };
    limiter.observe(admitted, &Class::Success, Some(&signal));
    assert_eq!(limiter.reopens_in(), Some(secs(12)));
    let start = Instant::now();
    limiter.clone().acquire(1).await.unwrap();
    assert_eq!(start.elapsed(), secs(12));
}

#[tokio::test(start_paused = true)]
async fn server_waits_are_never_shortened_and_callers_refused_at_once() {
    let limiter = limiter(RateLimitConfig::builder().max_wait(secs(30)));
    let admitted = limiter.acquire(1).await.unwrap();
    let signal = RateLimitSignal {
        retry_after: Some(secs(86_400 * 365)),
        ..Default::default()
    };
    limiter.observe(
        admitted,
        &Class::Throttled {
            retry_after: Some(secs(99_999)),
        },
        Some(&signal),
    );
    // Held for as long as the server asked, up to the one bound on a server's delay...
    assert_eq!(
        limiter.reopens_in(),
        Some(riprap::classify::headers::MAX_SERVER_DELAY)
    );
    // ...and a caller who may wait 30 s is refused at once, told when the gate reopens.
    let start = Instant::now();
    match limiter.acquire(1).await {
        Err(RateLimitError::Limited {
            by: LimitedBy::Server,
            retry_after: Some(d),
        }) => assert_eq!(d, riprap::classify::headers::MAX_SERVER_DELAY),
        other => panic!("{other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn remaining_quota_is_paced_until_reset() {
    let limiter = limiter(RateLimitConfig::builder());
    let admitted = limiter.acquire(1).await.unwrap();
    let signal = RateLimitSignal {
        requests: Some(Quota {
            limit: Some(10),
            remaining: Some(4),
            reset_after: Some(secs(10)),
        }),
        ..Default::default()
    };
    limiter.observe(admitted, &Class::Success, Some(&signal));
    let start = Instant::now();
    let mut at = Vec::new();
    for _ in 0..5 {
        limiter.acquire(1).await.unwrap();
        at.push(start.elapsed());
    }
    // Four left over ten seconds: one every 2 s, the last well before the reset; then the
    // first after the reset goes at once (as the probe for the new window).
    assert_eq!(at, [secs(2), secs(4), secs(6), secs(8), secs(10)]);
}

#[tokio::test(start_paused = true)]
async fn weighted_costs_enforce_tokens_per_minute() {
    // 6,000 tokens a minute, at most 2,000 at once; requests cost 100..=1,500 tokens.
    let limiter = limiter(
        RateLimitConfig::builder()
            .requests(1_000, secs(60))
            .cost(6_000, secs(60))
            .cost_burst(2_000)
            .max_wait(secs(600)),
    );
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..16u64)
        .map(|w| {
            let (limiter, admitted) = (limiter.clone(), Arc::clone(&admitted));
            tokio::spawn(async move {
                let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while start.elapsed() < secs(300) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let cost = 100 + (x % 1_401) as u32;
                    limiter.acquire(cost).await.unwrap();
                    admitted.lock().unwrap().push((start.elapsed(), cost));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let admitted = admitted.lock().unwrap().clone();
    // In every 60 s window: at most the burst plus a minute's worth.
    for &(from, _) in &admitted {
        let in_window: u32 = admitted
            .iter()
            .filter(|(t, _)| *t >= from && *t < from + secs(60))
            .map(|(_, c)| c)
            .sum();
        assert!(
            in_window <= 2_000 + 6_000,
            "{in_window} tokens in the minute from {from:?}"
        );
    }
    // And the quota is used, not starved: five minutes at 6,000 a minute plus the burst.
    let total: u32 = admitted
        .iter()
        .filter(|(t, _)| *t < secs(300))
        .map(|(_, c)| c)
        .sum();
    assert!(
        total >= 5 * 6_000 - 1_500,
        "only {total} tokens in five minutes"
    );
    assert!(total <= 5 * 6_000 + 2_000);
}

#[tokio::test(start_paused = true)]
async fn max_wait_gives_the_typed_error() {
    let limiter = limiter(
        RateLimitConfig::builder()
            .requests(1, secs(60))
            .max_wait(secs(5)),
    );
    limiter.acquire(1).await.unwrap();
    let start = Instant::now();
    let err = limiter.acquire(1).await.unwrap_err();
    assert_eq!(
        err,
        RateLimitError::Limited {
            by: LimitedBy::Quota,
            retry_after: Some(secs(60))
        }
    );
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "no point waiting for what cannot come in time"
    );

    limiter.close_for(secs(30));
    let err = limiter.acquire(1).await.unwrap_err();
    assert!(matches!(
        err,
        RateLimitError::Limited {
            by: LimitedBy::Server,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        "rate limited by the server (retry after 30s)"
    );

    // Within the maximum wait it waits.
    let limiter = self::limiter(
        RateLimitConfig::builder()
            .requests(1, secs(4))
            .max_wait(secs(5)),
    );
    limiter.acquire(1).await.unwrap();
    limiter.acquire(1).await.unwrap();
    assert_eq!(start.elapsed(), secs(4));
}

#[tokio::test(start_paused = true)]
async fn cost_above_the_burst_is_refused_not_waited_for() {
    let limiter = limiter(
        RateLimitConfig::builder()
            .cost(1_000, secs(60))
            .max_wait(secs(600)),
    );
    let err = limiter.acquire(1_001).await.unwrap_err();
    assert_eq!(
        err,
        RateLimitError::CostExceedsBurst {
            cost: 1_001,
            burst: 1_000
        }
    );
    assert!(riprap::classify::Classified::class(&err) == Class::Permanent);
    // Free requests (cost 0) pass the cost quota untouched.
    limiter.acquire(1_000).await.unwrap();
    limiter.try_acquire(0).unwrap();
}

#[tokio::test(start_paused = true)]
async fn reject_mode_refuses_at_once() {
    let limiter = limiter(
        RateLimitConfig::builder()
            .requests(2, SEC)
            .reject_when_limited(),
    );
    limiter.try_acquire(1).unwrap();
    limiter.acquire(1).await.unwrap();
    let err = limiter.acquire(1).await.unwrap_err();
    assert!(
        matches!(err, RateLimitError::Limited { by: LimitedBy::Quota, retry_after: Some(d) } if d == Duration::from_millis(500))
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    limiter.try_acquire(1).unwrap();
}

/// A long-lived service takes a handle of its own on its limiter after a few calls: it and
/// every clone still draw on the one quota, and a throttle seen through one still stops all.
#[tokio::test(start_paused = true)]
async fn long_lived_clones_share_one_quota_and_one_gate() {
    let limiter = limiter(
        RateLimitConfig::builder()
            .requests(40, Duration::from_secs(3600))
            .reject_when_limited(),
    );
    let ok = service_fn(|status: u16| async move { Ok::<u16, Infallible>(status) });
    let mut first = RateLimitLayer::new(limiter.clone())
        .classifier(by_status(Some(secs(30))))
        .layer(ok);
    let mut second = first.clone();
    let mut admitted = 0;
    for _ in 0..30 {
        admitted += u32::from(first.ready().await.unwrap().call(200).await.is_ok());
    }
    for _ in 0..30 {
        admitted += u32::from(second.ready().await.unwrap().call(200).await.is_ok());
    }
    assert_eq!(admitted, 40, "both clones draw on the one quota");
    tokio::time::advance(Duration::from_secs(3600)).await;
    first.ready().await.unwrap().call(429).await.unwrap();
    assert!(
        limiter.reopens_in().is_some(),
        "a throttle through one closes the gate"
    );
    assert!(second.ready().await.unwrap().call(200).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_leaves_nothing_behind() {
    let limiter = limiter(RateLimitConfig::builder().requests(1, SEC));
    limiter.acquire(1).await.unwrap();
    // Waits at the head of the line, then is cancelled.
    let head = tokio::spawn({
        let l = limiter.clone();
        async move { l.acquire(1).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    head.abort();
    assert!(head.await.unwrap_err().is_cancelled());
    // The next caller is not stuck behind it and gets the slot at 1 s.
    let start = Instant::now();
    limiter.acquire(1).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(900));
    // A future dropped while parked on the gate leaks nothing either.
    limiter.close_for(secs(5));
    let parked = limiter.acquire(1);
    drop(parked);
    tokio::time::advance(secs(5)).await;
    tokio::time::advance(SEC).await;
    limiter.try_acquire(1).unwrap();
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_order() {
    let limiter = limiter(
        RateLimitConfig::builder()
            .cost(1_000, secs(10))
            .max_wait(secs(60)),
    );
    limiter.acquire(1_000).await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    // A heavy request first, then light ones: the light ones do not starve it.
    for (i, cost) in [(0, 900), (1, 10), (2, 10)] {
        let (l, order) = (limiter.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            l.acquire(cost).await.unwrap();
            order.lock().unwrap().push(i);
        }));
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn adaptive_rate_cuts_on_throttle_and_recovers() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let limiter = RateLimiter::new(
        RateLimitConfig::builder()
            .adaptive(100.0)
            .adaptive_floor(5.0)
            .adaptive_increase(10.0)
            .default_pause(Duration::from_millis(1))
            .probe_timeout(Duration::ZERO)
            .listener(riprap::events::only(move |e: &RateLimitEvent| {
                sink.lock().unwrap().push(*e)
            }))
            .build()
            .unwrap(),
    );
    assert_eq!(limiter.current_rate(), Some(100.0));
    let throttled = Class::Throttled { retry_after: None };
    // Three responses to requests sent before the cut are one congestion: one cut.
    let early: Vec<_> = [(); 3].iter().map(|_| limiter.try_acquire(1)).collect();
    tokio::time::advance(Duration::from_millis(50)).await;
    for a in early.into_iter().flatten() {
        limiter.observe(a, &throttled, None);
    }
    assert_eq!(limiter.current_rate(), Some(50.0));
    // Pacing at 50/s: 20 ms apart.
    tokio::time::advance(Duration::from_millis(5)).await;
    let t0 = Instant::now();
    limiter.acquire(1).await.unwrap();
    let a = limiter.acquire(1).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_millis(20));
    limiter.observe(a, &throttled, None);
    assert_eq!(limiter.current_rate(), Some(25.0));
    for _ in 0..10 {
        let a = limiter.acquire(1).await.unwrap();
        limiter.observe(a, &Class::Success, None);
    }
    assert_eq!(limiter.current_rate(), Some(100.0));
    let events = events.lock().unwrap();
    assert!(events.contains(&RateLimitEvent::RateDecreased { rate: 50.0 }));
    assert!(events.contains(&RateLimitEvent::RateRecovered { rate: 100.0 }));
}

#[tokio::test(start_paused = true)]
async fn events_report_the_gate() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let limiter = RateLimiter::new(
        RateLimitConfig::builder()
            .requests(1, SEC)
            .max_wait(secs(2))
            .reopen_jitter(Duration::ZERO)
            .listener(riprap::events::only(move |e: &RateLimitEvent| {
                sink.lock().unwrap().push(*e)
            }))
            .build()
            .unwrap(),
    );
    limiter.close_for(secs(3));
    assert!(limiter.try_acquire(1).is_err());
    tokio::time::advance(secs(3)).await;
    limiter.acquire(1).await.unwrap();
    limiter.acquire(1).await.unwrap();
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            RateLimitEvent::GateClosed {
                reopens_in: secs(3)
            },
            RateLimitEvent::Rejected {
                by: Some(LimitedBy::Server)
            },
            RateLimitEvent::GateReopened,
            RateLimitEvent::Waited { waited: SEC },
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn keyed_layer_limits_each_key_apart() {
    let start = Instant::now();
    let keyed = KeyedRateLimiter::new(
        RateLimitConfig::builder()
            .requests(1, secs(10))
            .build()
            .unwrap(),
        100,
    )
    .unwrap();
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::keyed(keyed.clone(), |tenant: &&str| {
            tenant.to_string()
        }))
        .service(service_fn(|t: &'static str| async move {
            Ok::<_, Infallible>(t.len())
        }));
    svc.clone().oneshot("acme").await.unwrap();
    svc.clone().oneshot("globex").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    svc.clone().oneshot("acme").await.unwrap();
    assert_eq!(start.elapsed(), secs(10));
    assert_eq!(keyed.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn layer_errors_are_typed_and_classified() {
    let limiter = limiter(
        RateLimitConfig::builder()
            .requests(1, secs(60))
            .reject_when_limited(),
    );
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service(service_fn(|()| async { Ok::<_, std::io::Error>(()) }));
    svc.ready().await.unwrap().call(()).await.unwrap();
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(matches!(
        err.limited(),
        Some(RateLimitError::Limited {
            by: LimitedBy::Quota,
            ..
        })
    ));
    use riprap::classify::Classified;
    // The caller's own limiter refused: a local refusal, never the server's throttle.
    let refused = Class::Refused {
        retry_after: Some(secs(60)),
    };
    assert_eq!(err.class(), refused);
    // Boxed, as a tower stack above may carry it, it still classifies through the chain.
    let boxed: tower::BoxError = Box::new(err);
    assert_eq!(boxed.class(), refused);
}

/// governor's GCRA, written out: the limiter must decide exactly as this does.
#[derive(Debug, Default)]
struct Gcra {
    tat: Option<u64>,
}

impl Gcra {
    fn check(&mut self, now: u64, n: u64, t: u64, burst: u64) -> bool {
        let tat = self.tat.unwrap_or(now);
        let tau = t * (burst - 1);
        if now < (tat + t * (n - 1)).saturating_sub(tau) {
            return false;
        }
        self.tat = Some(tat.max(now) + t * n);
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn decides_like_the_reference_gcra(
        rate in 1u32..50,
        per_ms in 1u64..2_000,
        burst in 1u32..20,
        cost_rate in 1u32..500,
        cost_burst in 1u32..300,
        ops in proptest::collection::vec((0u64..400, 0u32..200), 1..80),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let per = Duration::from_millis(per_ms);
            let limiter = RateLimiter::new(
                RateLimitConfig::builder()
                    .requests(rate, per)
                    .request_burst(burst)
                    .cost(cost_rate, per)
                    .cost_burst(cost_burst)
                    .reject_when_limited()
                    .build()
                    .unwrap(),
            );
            let (t_req, t_cost) = (
                (per / rate).as_nanos() as u64,
                (per / cost_rate).as_nanos() as u64,
            );
            let (mut req, mut cost) = (Gcra::default(), Gcra::default());
            let start = Instant::now();
            for (dt, c) in ops {
                tokio::time::advance(Duration::from_millis(dt)).await;
                let now = start.elapsed().as_nanos() as u64;
                let got = limiter.try_acquire(c);
                // Request quota first, then cost (a refused cost still spent the request cell).
                let want = c <= cost_burst
                    && req.check(now, 1, t_req, u64::from(burst))
                    && (c == 0 || cost.check(now, u64::from(c), t_cost, u64::from(cost_burst)));
                prop_assert_eq!(got.is_ok(), want, "cost {} at {}ns: {:?}", c, now, got);
                if c > cost_burst {
                    prop_assert_eq!(got.unwrap_err(), RateLimitError::CostExceedsBurst { cost: c, burst: cost_burst });
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn fuzz_corpus_ratelimit_ops() {
    common::replay_corpus("ratelimit_ops", ratelimit_ops_check::run);
}

/// Each provider's way of saying "stop until the reset" closes the shared gate.
#[cfg(feature = "http")]
mod header_dialects {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use riprap::classify::HttpStatus;
    use riprap::ratelimit::{HeaderSignal, RateLimitConfig, RateLimitLayer, RateLimiter};
    use tokio::time::Instant;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    /// The first answer carries `headers` (with `status`); later ones are plain 200s. Returns
    /// when the gate said it reopens and when each of 4 clones next reached the server.
    async fn drive(status: u16, headers: Vec<(&'static str, String)>) -> (Duration, Vec<Duration>) {
        let start = Instant::now();
        let calls = Arc::new(AtomicUsize::new(0));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let (calls, arrivals) = (Arc::clone(&calls), Arc::clone(&arrivals));
            service_fn(move |()| {
                let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
                if !first {
                    arrivals.lock().unwrap().push(start.elapsed());
                }
                let mut res = http::Response::builder().status(if first { status } else { 200 });
                if first {
                    for (name, value) in &headers {
                        res = res.header(*name, value);
                    }
                }
                let res = res.body(()).unwrap();
                async move { Ok::<_, std::io::Error>(res) }
            })
        };
        let limiter = RateLimiter::new(
            RateLimitConfig::builder()
                .max_wait(Duration::from_secs(120))
                .reopen_jitter(Duration::from_millis(100))
                .seed(3)
                .build()
                .unwrap(),
        );
        let svc = ServiceBuilder::new()
            .layer(
                RateLimitLayer::new(limiter.clone())
                    .classifier(HttpStatus::new())
                    .read_signal(HeaderSignal::new()),
            )
            .service(server);
        svc.clone().oneshot(()).await.unwrap();
        let reopens = limiter.reopens_in().expect("the gate closed");
        let clones: Vec<_> = (0..4)
            .map(|_| tokio::spawn(svc.clone().oneshot(())))
            .collect();
        for c in clones {
            c.await.unwrap().unwrap();
        }
        let arrivals = arrivals.lock().unwrap().clone();
        (reopens, arrivals)
    }

    fn assert_gated(reopens: Duration, arrivals: &[Duration], lo: u64, hi: u64) {
        assert!(
            reopens >= Duration::from_secs(lo) && reopens <= Duration::from_secs(hi),
            "reopens in {reopens:?}"
        );
        assert_eq!(arrivals.len(), 4);
        assert!(
            arrivals.iter().all(|t| *t >= reopens),
            "a clone went early: {arrivals:?} < {reopens:?}"
        );
    }

    fn epoch_in(secs: u64) -> u64 {
        (SystemTime::now() + Duration::from_secs(secs))
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// `secs` from now as RFC 3339 UTC, as Anthropic sends it.
    fn rfc3339_in(secs: u64) -> String {
        let t = epoch_in(secs) as i64;
        let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
        // Days since 1970-01-01 to a civil date (proleptic Gregorian).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3_600,
            rem % 3_600 / 60,
            rem % 60
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_with_retry_after_header() {
        let (reopens, arrivals) = drive(429, vec![("retry-after", "30".into())]).await;
        assert_gated(reopens, &arrivals, 30, 30);
    }

    #[tokio::test(start_paused = true)]
    async fn openai_requests_at_zero() {
        let (reopens, arrivals) = drive(
            200,
            vec![
                ("x-ratelimit-limit-requests", "500".into()),
                ("x-ratelimit-remaining-requests", "0".into()),
                ("x-ratelimit-reset-requests", "20s".into()),
            ],
        )
        .await;
        assert_gated(reopens, &arrivals, 20, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn openai_tokens_at_zero() {
        let (reopens, arrivals) = drive(
            429,
            vec![
                ("x-ratelimit-remaining-requests", "499".into()),
                ("x-ratelimit-reset-requests", "120ms".into()),
                ("x-ratelimit-remaining-tokens", "0".into()),
                ("x-ratelimit-reset-tokens", "1m5s".into()),
            ],
        )
        .await;
        assert_gated(reopens, &arrivals, 65, 65);
    }

    #[tokio::test(start_paused = true)]
    async fn anthropic_at_zero() {
        let (reopens, arrivals) = drive(
            429,
            vec![
                ("anthropic-ratelimit-requests-limit", "50".into()),
                ("anthropic-ratelimit-requests-remaining", "0".into()),
                ("anthropic-ratelimit-requests-reset", rfc3339_in(20)),
            ],
        )
        .await;
        assert_gated(reopens, &arrivals, 18, 21);
    }

    #[tokio::test(start_paused = true)]
    async fn github_at_zero() {
        let (reopens, arrivals) = drive(
            403,
            vec![
                ("x-ratelimit-limit", "5000".into()),
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", epoch_in(20).to_string()),
            ],
        )
        .await;
        assert_gated(reopens, &arrivals, 18, 21);
    }

    #[tokio::test(start_paused = true)]
    async fn ietf_at_zero() {
        let (reopens, arrivals) = drive(
            200,
            vec![
                ("ratelimit-policy", r#""default";q=100;w=60"#.into()),
                ("ratelimit", r#""default";r=0;t=15"#.into()),
            ],
        )
        .await;
        assert_gated(reopens, &arrivals, 15, 15);
    }
}

/// 32 workers against a real HTTP server on loopback that allows `R` requests per fixed
/// window, answering OpenAI-style headers and 429s with `retry-after-ms`. Real time, a few
/// seconds; the asserts count requests, never time them.
#[cfg(feature = "reqwest")]
mod scenario {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use riprap::classify::HttpStatus;
    use riprap::ratelimit::{HeaderSignal, RateLimitConfig, RateLimitLayer, RateLimiter};
    use tokio::time::Instant;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    const R: u64 = 20;
    const WINDOW: Duration = Duration::from_millis(500);
    const WINDOWS: u32 = 6;
    const WORKERS: usize = 32;

    /// What the server saw: per request, its window, the client's send time (µs since the
    /// start) and whether it was throttled.
    #[derive(Default)]
    struct Log {
        seen: Vec<(u64, u64, bool)>,
        counts: Vec<u64>,
    }

    async fn serve(start: Instant, log: Arc<Mutex<Log>>) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let handler = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let log = Arc::clone(&log);
                        async move { Ok::<_, std::convert::Infallible>(answer(start, &log, &req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), handler)
                        .await;
                });
            }
        });
        addr
    }

    fn answer(start: Instant, log: &Mutex<Log>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let elapsed = start.elapsed();
        let window = (elapsed.as_nanos() / WINDOW.as_nanos()) as u64;
        let reset = WINDOW * (window as u32 + 1) - elapsed;
        let sent_us = req
            .headers()
            .get("x-sent-us")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let mut log = log.lock().unwrap();
        if log.counts.len() <= window as usize {
            log.counts.resize(window as usize + 1, 0);
        }
        let used = log.counts[window as usize];
        let allowed = used < R;
        if allowed {
            log.counts[window as usize] += 1;
        }
        log.seen.push((window, sent_us, !allowed));
        let reset_ms = reset.as_micros().div_ceil(1000);
        let remaining = if allowed { R - used - 1 } else { 0 };
        let builder = Response::builder()
            .header("x-ratelimit-limit-requests", R)
            .header("x-ratelimit-remaining-requests", remaining)
            .header("x-ratelimit-reset-requests", format!("{reset_ms}ms"));
        let builder = if allowed {
            builder.status(200)
        } else {
            builder
                .status(429)
                .header("retry-after-ms", reset_ms.to_string())
        };
        builder.body(Full::new(Bytes::from_static(b"{}"))).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thirty_two_workers_share_one_window_without_hammering() {
        let start = Instant::now();
        let log = Arc::new(Mutex::new(Log::default()));
        let addr = serve(start, Arc::clone(&log)).await;
        let url = format!("http://{addr}/v1/chat");

        let limiter = RateLimiter::new(
            RateLimitConfig::builder()
                .max_wait(Duration::from_secs(5))
                .reopen_jitter(Duration::from_millis(20))
                .probe_timeout(Duration::from_millis(250))
                .seed(1)
                .build()
                .unwrap(),
        );
        let client = reqwest::Client::new();
        let send = {
            let client = client.clone();
            // The send time the rate limiter let the request go at, for the server's log.
            service_fn(move |mut req: reqwest::Request| {
                let us = start.elapsed().as_micros().to_string();
                req.headers_mut().insert("x-sent-us", us.parse().unwrap());
                client.execute(req)
            })
        };
        let api = ServiceBuilder::new()
            .layer(
                RateLimitLayer::new(limiter)
                    .classifier(HttpStatus::new())
                    .read_signal(HeaderSignal::new()),
            )
            .service(send);

        let first_429 = Arc::new(AtomicU64::new(u64::MAX));
        let stop = start + WINDOW * WINDOWS;
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let (api, client, url, first_429) = (
                    api.clone(),
                    client.clone(),
                    url.clone(),
                    Arc::clone(&first_429),
                );
                tokio::spawn(async move {
                    while Instant::now() < stop {
                        let req = client.get(&url).build().unwrap();
                        match api.clone().oneshot(req).await {
                            Ok(res) if res.status() == 429 => {
                                let at = start.elapsed().as_micros() as u64;
                                first_429.fetch_min(at, Ordering::SeqCst);
                            }
                            Ok(_) => {}
                            // A wait beyond the maximum: try again.
                            Err(_) => {}
                        }
                    }
                })
            })
            .collect();
        let all = futures_util::future::join_all(workers);
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("bounded in time");

        let log = log.lock().unwrap();
        let first_429 = first_429.load(Ordering::SeqCst);
        let mut late_429s = vec![0u64; log.counts.len()];
        for &(window, sent_us, throttled) in &log.seen {
            if throttled && sent_us > first_429 {
                late_429s[window as usize] += 1;
            }
        }
        let full: Vec<u64> = log.counts[1..WINDOWS as usize - 1].to_vec();
        let served: u64 = full.iter().sum();
        let goodput = served as f64 / (R * full.len() as u64) as f64;
        let total_429 = log.seen.iter().filter(|s| s.2).count();
        println!(
            "scenario: {WORKERS} workers, {R} requests per {WINDOW:?}: served per window {:?}, \
             429s {total_429} in all, after the first 429 per window {late_429s:?}, \
             goodput {:.1} % of the limit",
            log.counts,
            goodput * 100.0
        );
        assert!(
            late_429s.iter().all(|&n| n <= 1),
            "more than one 429 in a window after the first: {late_429s:?}"
        );
        assert!(
            goodput >= 0.95,
            "goodput {goodput:.3} below 95 % ({full:?})"
        );
    }
}

/// Found by fuzzing: a long period with a large burst overflowed GCRA's nanosecond arithmetic
/// when the limiter was built. It is refused when the config is built, naming the knob.
#[test]
fn a_burst_spanning_centuries_is_refused() {
    let err = RateLimitConfig::builder()
        .requests(1, Duration::from_secs(365 * 24 * 3600))
        .request_burst(1_000)
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "ratelimit.request_burst");
    let err = RateLimitConfig::builder()
        .cost(1, Duration::from_secs(10 * 365 * 24 * 3600))
        .cost_burst(u32::MAX)
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "ratelimit.cost_burst");
    // An ordinary quota is unaffected.
    RateLimitConfig::builder()
        .requests(100, Duration::from_secs(60))
        .cost(100_000, Duration::from_secs(60))
        .build()
        .unwrap();
}
