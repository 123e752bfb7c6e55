//! Rate limiter behaviour on a paused clock: local quotas, the server's gate and pacing,
//! adaptive rate, keyed limits, cancellation, and the layer in a tower stack.

mod common;
#[path = "../fuzz/checks/ratelimit_ops.rs"]
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
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

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
        .layer(RateLimitLayer::new(limiter.clone()).classify(by_status(Some(secs(30)))))
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
async fn server_waits_are_capped_by_the_ceiling() {
    let limiter = limiter(RateLimitConfig::builder().ceiling(secs(60)));
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
    assert_eq!(limiter.reopens_in(), Some(secs(60)));
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
    // Four left over ten seconds: one every 2.5 s, then free again after the reset.
    let ms = |m| Duration::from_millis(m);
    assert_eq!(at, [ms(0), ms(2500), ms(5000), ms(7500), ms(10_000)]);
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
    let limiter = RateLimiter::with_listener(
        RateLimitConfig::builder()
            .adaptive(100.0)
            .adaptive_floor(5.0)
            .adaptive_increase(10.0)
            .default_pause(Duration::from_millis(1))
            .probe_timeout(Duration::ZERO)
            .build()
            .unwrap(),
        Arc::new(move |e: &RateLimitEvent| sink.lock().unwrap().push(*e)),
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
    let limiter = RateLimiter::with_listener(
        RateLimitConfig::builder()
            .requests(1, SEC)
            .max_wait(secs(2))
            .reopen_jitter(Duration::ZERO)
            .build()
            .unwrap(),
        Arc::new(move |e: &RateLimitEvent| sink.lock().unwrap().push(*e)),
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
async fn layer_errors_are_boxed_rate_limit_errors() {
    let limiter = limiter(
        RateLimitConfig::builder()
            .requests(1, secs(60))
            .reject_when_limited(),
    );
    let mut svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter))
        .service(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    svc.ready().await.unwrap().call(()).await.unwrap();
    let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
    assert!(matches!(
        err.downcast_ref::<RateLimitError>(),
        Some(RateLimitError::Limited {
            by: LimitedBy::Quota,
            ..
        })
    ));
    // Met inside a boxed chain, it classifies as a throttle with its delay.
    use riprap::classify::Classified;
    assert_eq!(
        err.class(),
        Class::Throttled {
            retry_after: Some(secs(60))
        }
    );
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
