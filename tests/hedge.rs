//! Hedging on a paused clock: a hedge after the delay or a failure, the first answer wins
//! and the rest are cancelled, throttles stop hedging, hedges are paid for from the retry
//! budget and refunded when never sent, only copyable requests are hedged; Polly's modes;
//! the percentile delay; random cancellation; the slow-tail acceptance table; chaos.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::noop_waker_ref;
use proptest::prelude::*;
use riprap::budget::{Budget, RatioBudget, Unlimited, Withdrawal};
use riprap::chaos::{ChaosError, ChaosLayer, Latency};
use riprap::classify::{Class, classify_fn};
use riprap::hedge::{HedgeCause, HedgeEvent, HedgeLayer};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Every withdrawal and refund, and every attempt the budget heard about.
#[derive(Clone, Default)]
struct Ledger {
    withdrawn: Arc<AtomicU64>,
    refunded: Arc<AtomicU64>,
    deposits: Arc<AtomicU64>,
    refuse: Arc<std::sync::atomic::AtomicBool>,
}

impl Budget for Ledger {
    fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::Relaxed);
    }
    fn try_withdraw(&self, _: riprap::classify::Class) -> Option<Withdrawal> {
        if self.refuse.load(Ordering::Relaxed) {
            return None;
        }
        self.withdrawn.fetch_add(1, Ordering::Relaxed);
        Some(Withdrawal::new(1))
    }
    fn refund(&self, w: Withdrawal) {
        self.refunded.fetch_add(w.units(), Ordering::Relaxed);
    }
}

impl Ledger {
    fn net(&self) -> u64 {
        self.withdrawn.load(Ordering::Relaxed) - self.refunded.load(Ordering::Relaxed)
    }
}

/// What each attempt does, in order of the calls it receives.
#[derive(Debug, Clone, Copy)]
enum Script {
    Ok(u64),
    Fail(u64),
    Throttle(u64),
}

#[derive(Debug, Clone, PartialEq)]
struct Reply {
    attempt: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    Down(u32),
    SlowDown(u32),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ApiError {}

impl riprap::classify::Classified for ApiError {
    fn class(&self) -> Class {
        match self {
            ApiError::Down(_) => Class::Transient,
            ApiError::SlowDown(_) => Class::Throttled {
                retry_after: Some(ms(500)),
            },
        }
    }
}

/// A scripted service that counts calls, calls in flight and calls cancelled.
#[derive(Clone)]
struct Scripted {
    script: Arc<Vec<Script>>,
    calls: Arc<AtomicU32>,
    in_flight: Arc<AtomicU32>,
    peak: Arc<AtomicU32>,
    cancelled: Arc<AtomicU32>,
}

impl Scripted {
    fn new(script: &[Script]) -> Self {
        Scripted {
            script: Arc::new(script.to_vec()),
            calls: Arc::default(),
            in_flight: Arc::default(),
            peak: Arc::default(),
            cancelled: Arc::default(),
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }
}

struct Flight {
    in_flight: Arc<AtomicU32>,
    cancelled: Arc<AtomicU32>,
    done: bool,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.done {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Service<&'static str> for Scripted {
    type Response = Reply;
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: &'static str) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let step = self
            .script
            .get(n as usize)
            .copied()
            .unwrap_or(Script::Ok(10));
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        let flight = Flight {
            in_flight: Arc::clone(&self.in_flight),
            cancelled: Arc::clone(&self.cancelled),
            done: false,
        };
        Box::pin(async move {
            // Moved in whole, so it lives (and is dropped) with the call.
            let mut flight = flight;
            let (wait, out) = match step {
                Script::Ok(t) => (t, Ok(Reply { attempt: n })),
                Script::Fail(t) => (t, Err(ApiError::Down(n))),
                Script::Throttle(t) => (t, Err(ApiError::SlowDown(n))),
            };
            tokio::time::sleep(ms(wait)).await;
            flight.done = true;
            out
        })
    }
}

fn events() -> (Arc<Mutex<Vec<HedgeEvent>>>, impl riprap::events::Listener) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (
        seen,
        riprap::events::only(move |e: &HedgeEvent| sink.lock().unwrap().push(*e)),
    )
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_sends_no_hedge() {
    let api = Scripted::new(&[Script::Ok(50)]);
    let ledger = Ledger::default();
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .budget(ledger.clone())
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 0 });
    assert_eq!(api.calls(), 1);
    assert_eq!(ledger.deposits.load(Ordering::Relaxed), 1);
    assert_eq!(ledger.net(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_is_hedged_the_first_answer_wins_and_the_other_is_cancelled() {
    let api = Scripted::new(&[Script::Ok(1_000), Script::Ok(20)]);
    let (seen, listener) = events();
    let ledger = Ledger::default();
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .budget(ledger.clone())
        .listener(listener)
        .build()
        .unwrap()
        .layer(api.clone());
    let start = Instant::now();
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 1 });
    assert_eq!(start.elapsed(), ms(120));
    assert_eq!(
        api.cancelled.load(Ordering::Relaxed),
        1,
        "the slow original was dropped"
    );
    assert_eq!(api.in_flight.load(Ordering::Relaxed), 0);
    assert_eq!(ledger.net(), 1, "the hedge was paid for");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            HedgeEvent::Hedged {
                attempt: 1,
                cause: HedgeCause::Slow { after: ms(100) }
            },
            HedgeEvent::HedgeWon { attempt: 1 }
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_transient_failure_sends_the_next_hedge_at_once() {
    let api = Scripted::new(&[Script::Fail(10), Script::Ok(20)]);
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    let start = Instant::now();
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 1 });
    assert_eq!(
        start.elapsed(),
        ms(30),
        "no wait for the delay after a failure"
    );
}

#[tokio::test(start_paused = true)]
async fn a_throttle_stops_hedging_and_is_the_failure_returned() {
    // The original is throttled at once; nothing more is sent, not even after the delay.
    let api = Scripted::new(&[Script::Throttle(5), Script::Ok(5)]);
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .max_hedged_attempts(3)
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(svc.oneshot("q").await.unwrap_err(), ApiError::SlowDown(0));
    assert_eq!(api.calls(), 1);

    // A hedge in flight when another attempt is throttled still may answer, and if it
    // fails the throttle (with the server's delay) is what the caller sees.
    let api = Scripted::new(&[Script::Fail(300), Script::Throttle(10), Script::Ok(1)]);
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .max_hedged_attempts(3)
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(svc.oneshot("q").await.unwrap_err(), ApiError::SlowDown(1));
    assert_eq!(api.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_fails_the_original_failure_is_returned() {
    let api = Scripted::new(&[Script::Fail(300), Script::Fail(10), Script::Fail(10)]);
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .max_hedged_attempts(2)
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(svc.oneshot("q").await.unwrap_err(), ApiError::Down(0));
    assert_eq!(api.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_the_answer() {
    let api = Scripted::new(&[Script::Ok(1_000), Script::Fail(10)]);
    let permanent = classify_fn(|out: Result<&Reply, &ApiError>| match out {
        Ok(_) => Class::Success,
        Err(_) => Class::Permanent,
    });
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .classifier(permanent)
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(svc.oneshot("q").await.unwrap_err(), ApiError::Down(1));
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_sends_no_hedge() {
    let api = Scripted::new(&[Script::Ok(1_000)]);
    let (seen, listener) = events();
    let empty = Ledger::default();
    empty.refuse.store(true, Ordering::Relaxed);
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .budget(empty)
        .listener(listener)
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 0 });
    assert_eq!(api.calls(), 1);
    assert_eq!(
        *seen.lock().unwrap(),
        [HedgeEvent::BudgetRefused { attempt: 1 }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_hedge_still_waiting_for_its_service_is_refunded_when_the_answer_arrives() {
    // One connection: the hedge waits for it, and the original answers first.
    let api = Scripted::new(&[Script::Ok(150), Script::Ok(10)]);
    let ledger = Ledger::default();
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .budget(ledger.clone())
        .build()
        .unwrap()
        .layer(tower::limit::ConcurrencyLimitLayer::new(1).layer(api.clone()));
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 0 });
    assert_eq!(api.calls(), 1, "the hedge never got the connection");
    assert_eq!(ledger.withdrawn.load(Ordering::Relaxed), 1);
    assert_eq!(ledger.net(), 0, "and its withdrawal went back");
}

#[tokio::test(start_paused = true)]
async fn a_request_the_copy_policy_declines_is_sent_once() {
    let api = Scripted::new(&[Script::Ok(1_000)]);
    let ledger = Ledger::default();
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .budget(ledger.clone())
        .clone_requests(|q: &&'static str| (!q.starts_with("POST")).then_some(*q))
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(
        svc.oneshot("POST /charges").await.unwrap(),
        Reply { attempt: 0 }
    );
    assert_eq!(api.calls(), 1);
    assert_eq!(ledger.withdrawn.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn parallel_mode_sends_every_hedge_at_once_and_fallback_mode_one_at_a_time() {
    let api = Scripted::new(&[Script::Ok(50), Script::Ok(30), Script::Ok(40)]);
    let svc = HedgeLayer::builder()
        .delay(Duration::ZERO)
        .max_hedged_attempts(2)
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    let start = Instant::now();
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 1 });
    assert_eq!(start.elapsed(), ms(30));
    assert_eq!(api.peak.load(Ordering::Relaxed), 3);
    assert_eq!(api.cancelled.load(Ordering::Relaxed), 2);

    let api = Scripted::new(&[Script::Fail(500), Script::Fail(500), Script::Ok(500)]);
    let svc = HedgeLayer::builder()
        .on_failure_only()
        .max_hedged_attempts(2)
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 2 });
    assert_eq!(api.peak.load(Ordering::Relaxed), 1, "never two in flight");
}

#[tokio::test(start_paused = true)]
async fn the_percentile_delay_learns_the_latency_it_hedges_past() {
    // 90 answers at 10 ms and 10 at 40 ms: the 95th percentile is 40 ms.
    let mut script: Vec<Script> = (0..100)
        .map(|i| Script::Ok(if i % 10 == 9 { 40 } else { 10 }))
        .collect();
    // Then a slow one, hedged at the learned 40 ms, and its hedge.
    script.push(Script::Ok(1_000));
    script.push(Script::Ok(5));
    let api = Scripted::new(&script);
    let svc = HedgeLayer::builder()
        .delay_percentile(0.95, ms(500))
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(api.clone());
    for _ in 0..100 {
        svc.clone().oneshot("q").await.unwrap();
    }
    assert_eq!(
        api.calls(),
        100,
        "no hedge while answers come within the initial 500 ms"
    );
    let start = Instant::now();
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 101 });
    assert_eq!(start.elapsed(), ms(45));
}

#[test]
fn config_errors_name_the_knob() {
    let err = HedgeLayer::builder()
        .delay_percentile(1.5, ms(10))
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "hedge.percentile");
    let err = HedgeLayer::builder()
        .max_hedged_attempts(0)
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "hedge.max_hedged_attempts");
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(noop_waker_ref()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Attempts of random latencies and outcomes, the request dropped at a random instant
    /// (or not at all): every withdrawal is either refunded or paid for a hedge that was sent,
    /// and nothing is left in flight.
    #[test]
    fn hedges_are_paid_for_exactly_and_nothing_outlives_the_request(
        attempts in proptest::collection::vec((0u64..300, 0u8..3), 1..6),
        hedges in 1u32..4,
        delay in 0u64..120,
        drop_at in proptest::option::of(0u64..400),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let script: Vec<Script> = attempts
                .iter()
                .map(|(t, k)| match k {
                    0 => Script::Ok(*t),
                    1 => Script::Fail(*t),
                    _ => Script::Throttle(*t),
                })
                .collect();
            let api = Scripted::new(&script);
            let ledger = Ledger::default();
            let mut svc = HedgeLayer::builder()
                .delay(ms(delay))
                .max_hedged_attempts(hedges)
                .budget(ledger.clone())
                .build()
                .unwrap()
                .layer(api.clone());
            let mut call = Box::pin(svc.ready().await.unwrap().call("q"));
            let mut elapsed = 0;
            loop {
                if poll_once(&mut call).is_ready() {
                    break;
                }
                if drop_at.is_some_and(|d| elapsed >= d) {
                    break;
                }
                tokio::time::advance(ms(1)).await;
                elapsed += 1;
            }
            drop(call);
            prop_assert_eq!(api.in_flight.load(Ordering::Relaxed), 0);
            prop_assert_eq!(ledger.net(), u64::from(api.calls() - 1), "one paid withdrawal per hedge sent");
            prop_assert!(api.calls() <= hedges + 1);
            Ok(())
        })?;
    }
}

// --- Acceptance: a 5 % slow tail --------------------------------------------------------

/// A dependency answering in `base` (± `jitter`), except 5 % of calls (seeded) that take
/// 10× as long.
#[derive(Clone)]
struct Tail {
    base: Duration,
    jitter: f64,
    calls: Arc<AtomicU64>,
}

fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Service<u64> for Tail {
    type Response = ();
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<(), std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let r = mix(n);
        let slow = r % 100 < 5;
        let unit = ((r >> 8) % 10_000) as f64 / 10_000.0;
        let mut latency = self.base.mul_f64(1.0 + self.jitter * (2.0 * unit - 1.0));
        if slow {
            latency *= 10;
        }
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            Ok(())
        })
    }
}

struct TailRun {
    p50: Duration,
    p99: Duration,
    extra: f64,
}

/// 10,000 requests, 200 a second, through `hedge` (or none).
async fn tail_run(jitter: f64, hedge: Option<HedgeLayer>) -> TailRun {
    let api = Tail {
        base: ms(20),
        jitter,
        calls: Arc::default(),
    };
    let svc = tower::util::BoxCloneService::new(match hedge {
        Some(h) => tower::util::BoxCloneService::new(h.layer(api.clone())),
        None => tower::util::BoxCloneService::new(api.clone()),
    });
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..10_000u64 {
        tokio::time::sleep_until(start + ms(5) * i as u32).await;
        let call = svc.clone().oneshot(i);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            call.await.unwrap();
            t0.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    TailRun {
        p50: at(0.5),
        p99: at(0.99),
        extra: api.calls.load(Ordering::Relaxed) as f64 / 10_000.0 - 1.0,
    }
}

/// A 5 % slow tail at 10× the normal latency: hedging after the normal latency (a fixed
/// delay, or the 90th percentile learned online) cuts p99 5× for 5 % extra calls. A hedge
/// cannot answer before its delay plus one normal latency, so with a 10× tail 5× is the most
/// any delay at or above the normal latency can give; with jitter the delay must sit above
/// the jitter too, which the second table shows.
#[tokio::test(start_paused = true)]
async fn hedging_a_five_percent_slow_tail_cuts_p99_five_fold_for_five_percent_more_calls() {
    let budget = || RatioBudget::builder().ratio(0.1).build().unwrap();
    let fixed = || {
        HedgeLayer::builder()
            .delay(ms(20))
            .budget(budget())
            .build()
            .unwrap()
    };
    let learned = |p: f64| {
        HedgeLayer::builder()
            .delay_percentile(p, ms(100))
            .budget(budget())
            .build()
            .unwrap()
    };
    println!(
        "{:<36} {:>7} {:>7} {:>9} {:>12}",
        "20 ms calls, 5 % at 200 ms", "p50 ms", "p99 ms", "p99 cut", "extra calls"
    );
    for jitter in [0.0, 0.1] {
        let none = tail_run(jitter, None).await;
        let rows = [
            ("no hedging", none),
            ("hedge after 20 ms", tail_run(jitter, Some(fixed())).await),
            (
                "hedge after p90 (learned)",
                tail_run(jitter, Some(learned(0.9))).await,
            ),
            (
                "hedge after p95 (learned)",
                tail_run(jitter, Some(learned(0.95))).await,
            ),
        ];
        println!("latency jitter ±{:.0} %", jitter * 100.0);
        let base_p99 = rows[0].1.p99;
        for (name, r) in &rows {
            println!(
                "  {name:<34} {:>7} {:>7} {:>8.2}x {:>11.1}%",
                r.p50.as_millis(),
                r.p99.as_millis(),
                base_p99.as_secs_f64() / r.p99.as_secs_f64(),
                r.extra * 100.0
            );
        }
        if jitter == 0.0 {
            for (name, r) in &rows[1..3] {
                assert!(
                    base_p99.as_secs_f64() / r.p99.as_secs_f64() >= 5.0,
                    "{name}: p99 {:?} against {base_p99:?}",
                    r.p99
                );
                assert!(r.extra <= 0.10, "{name}: {:.3} extra calls", r.extra);
            }
        }
    }
}

/// Chaos: 5 % of calls delayed by 300 ms by the chaos layer; hedging after 50 ms keeps every
/// request under 100 ms, for about 5 % extra calls.
#[tokio::test(start_paused = true)]
async fn chaos_latency_on_five_percent_of_calls_is_hedged_away() {
    let chaos = ChaosLayer::builder()
        .seed(11)
        .latency(0.05, Latency::Fixed(ms(300)))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let svc = ServiceBuilder::new()
        .layer(
            HedgeLayer::builder()
                .delay(ms(50))
                .budget(Unlimited)
                .build()
                .unwrap(),
        )
        .layer(chaos)
        .service_fn(move |_: u32| {
            counted.fetch_add(1, Ordering::Relaxed);
            async {
                tokio::time::sleep(ms(10)).await;
                Ok::<_, ChaosError>(())
            }
        });
    let mut worst = Duration::ZERO;
    for i in 0..400 {
        let start = Instant::now();
        svc.clone().oneshot(i).await.unwrap();
        worst = worst.max(start.elapsed());
    }
    let extra = f64::from(calls.load(Ordering::Relaxed)) / 400.0 - 1.0;
    assert!(worst <= ms(100), "worst {worst:?}");
    assert!(extra > 0.0 && extra < 0.10, "extra {extra}");
}

#[test]
fn a_hedge_spec_round_trips_and_builds() {
    use riprap::hedge::HedgeSpec;
    let spec: HedgeSpec = toml::from_str(
        r#"
        max_hedged_attempts = 2
        delay = "150ms"
        budget = { ratio_budget = { ratio = 0.05 } }
    "#,
    )
    .unwrap();
    let back: HedgeSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    spec.build().unwrap();
    let bad: HedgeSpec = toml::from_str("max_hedged_attempts = 0").unwrap();
    assert_eq!(bad.build().unwrap_err().knob(), "hedge.max_hedged_attempts");
    let bad: HedgeSpec =
        toml::from_str("percentile = { quantile = 2.0, until_known = \"1s\" }").unwrap();
    assert_eq!(bad.build().unwrap_err().knob(), "hedge.percentile");
}

#[tokio::test(start_paused = true)]
async fn under_a_retry_layer_that_deposits_the_hedge_layer_need_not() {
    let ledger = Ledger::default();
    let svc = HedgeLayer::builder()
        .delay(ms(100))
        .deposits(false)
        .budget(ledger.clone())
        .build()
        .unwrap()
        .layer(Scripted::new(&[Script::Ok(1_000), Script::Ok(10)]));
    assert_eq!(svc.oneshot("q").await.unwrap(), Reply { attempt: 1 });
    assert_eq!(ledger.deposits.load(Ordering::Relaxed), 0);
    assert_eq!(ledger.net(), 1, "the hedge still withdraws");
}
