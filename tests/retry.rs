//! The retry layer on a paused clock: every rule, the storm scenario, amplification against a
//! model of the budget, and cancellation at random points.

#[path = "checks/budget_ops.rs"]
mod budget_ops_check;

use std::error::Error as StdError;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use budget_ops_check::RatioModel;
use proptest::prelude::*;
use riprap::backoff::BackoffPolicy;
use riprap::budget::{Attempt, Budget, RatioBudget, RetryQuota, Unlimited, Withdrawal};
use riprap::classify::{ByError, Class, Classify, classify_fn};
use riprap::retry::{GiveUp, RetryConfig, RetryError, RetryEvent};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

type BoxError = Box<dyn StdError + Send + Sync>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn constant(d: Duration) -> BackoffPolicy {
    BackoffPolicy::constant(d).build().unwrap()
}

/// A service whose `n`-th call (from 1) returns `script(n)`, counting calls.
fn scripted<T: Send + 'static, E: Send + 'static>(
    script: impl Fn(u32) -> Result<T, E> + Clone + Send + 'static,
) -> (
    impl Service<u32, Response = T, Error = E, Future = impl Send> + Clone + Send,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |_req: u32| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let out = script(n);
        async move { out }
    });
    (svc, calls)
}

fn reset() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

/// Status codes as responses: 429 carries the `Retry-After` given, 5xx are transient.
fn statuses(retry_after: Option<Duration>) -> impl Classify<u16, io::Error> + Clone {
    classify_fn(move |out: Result<&u16, &io::Error>| match out {
        Ok(429) => Class::Throttled { retry_after },
        Ok(s) if *s >= 500 => Class::Transient,
        Ok(s) if *s >= 400 => Class::Permanent,
        Ok(_) => Class::Success,
        Err(_) => Class::Transient,
    })
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_never_retried() {
    let (svc, calls) = scripted(|_| Err::<(), _>(io::Error::from(io::ErrorKind::InvalidInput)));
    let mut svc = RetryConfig::new().build().unwrap().layer(svc);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.reason(), GiveUp::Permanent);
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.into_inner().kind(), io::ErrorKind::InvalidInput);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn transient_errors_retry_until_attempts_are_exhausted() {
    let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
    let mut svc = RetryConfig::new()
        .max_attempts(3)
        .backoff(constant(ms(100)))
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.reason(), GiveUp::AttemptsExhausted);
    assert_eq!(err.attempts(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_succeeds_returns_the_response() {
    let (svc, calls) = scripted(|n| if n < 3 { Err(reset()) } else { Ok(n) });
    let mut svc = RetryConfig::new()
        .backoff(constant(ms(10)))
        .build()
        .unwrap()
        .layer(svc);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_of_20s_waits_20s_not_the_backoff() {
    let (svc, calls) = scripted(|n| Ok::<u16, io::Error>(if n == 1 { 429 } else { 200 }));
    let mut svc = RetryConfig::new()
        .classifier(statuses(Some(Duration::from_secs(20))))
        .backoff(constant(Duration::from_secs(1)))
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 200);
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Never earlier than the server asked: a `Retry-After` beyond what the caller allows is not
/// cut short (the next attempt would buy another 429); the layer gives up at once and says when
/// the server will take calls again.
#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_maximum_gives_up_at_once_and_says_when() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |_: u32| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err::<u16, _>(io::Error::other("429 Too Many Requests")) }
    });
    let classifier = classify_fn(|_: Result<&u16, &io::Error>| Class::Throttled {
        retry_after: Some(Duration::from_secs(120)),
    });
    let mut svc = RetryConfig::new()
        .classifier(classifier)
        .max_retry_after(Duration::from_secs(60))
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO, "no wait, no early attempt");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.reason(), GiveUp::WaitTooLong);
    assert_eq!(err.retry_at(), Some(start + Duration::from_secs(120)));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));

    // A failing response (not an error) is handed back at once as well.
    let (svc, calls) = scripted(|_| Ok::<u16, io::Error>(429));
    let mut svc = RetryConfig::new()
        .classifier(statuses(Some(Duration::from_secs(86_400 * 365))))
        .build()
        .unwrap()
        .layer(svc);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 429);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// The same rule against the deadline: a delay the server asked for that ends past the
/// deadline gives up at once, as too long to wait, rather than as a deadline the backoff hit.
#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_gives_up_at_once() {
    let (svc, calls) = scripted(|_| Err::<u16, _>(io::Error::other("503")));
    let classifier = classify_fn(|_: Result<&u16, &io::Error>| Class::Throttled {
        retry_after: Some(Duration::from_secs(30)),
    });
    let mut svc = RetryConfig::new()
        .classifier(classifier)
        .deadline(Duration::from_secs(10))
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(err.reason(), GiveUp::WaitTooLong);
    assert_eq!(err.retry_at(), Some(start + Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn a_throttle_without_retry_after_waits_the_backoff() {
    let (svc, _) = scripted(|n| Ok::<u16, io::Error>(if n == 1 { 429 } else { 200 }));
    let mut svc = RetryConfig::new()
        .classifier(statuses(None))
        .backoff(constant(ms(700)))
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 200);
    assert_eq!(start.elapsed(), ms(700));
}

/// Attempts at 0, 300, 600 and 900 ms; the next would start at 1200 ms, past the 1 s deadline,
/// so the layer stops at 900 ms rather than sleeping into it.
#[tokio::test(start_paused = true)]
async fn the_deadline_is_honoured_to_the_millisecond() {
    for (deadline, attempts, stopped_at) in [(1000, 4, 900), (900, 3, 600), (901, 4, 900)] {
        let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
        let mut svc = RetryConfig::new()
            .max_attempts(10)
            .deadline(ms(deadline))
            .backoff(constant(ms(300)))
            .budget(Unlimited)
            .build()
            .unwrap()
            .layer(svc);
        let start = Instant::now();
        let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
        assert_eq!(err.reason(), GiveUp::Deadline, "deadline {deadline}");
        assert_eq!(err.attempts(), attempts, "deadline {deadline}");
        assert_eq!(calls.load(Ordering::SeqCst), attempts);
        assert_eq!(start.elapsed(), ms(stopped_at), "deadline {deadline}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_time_spent_in_calls() {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |_: u32| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(ms(100)).await;
            Err::<(), _>(reset())
        }
    });
    let mut svc = RetryConfig::new()
        .max_attempts(10)
        .deadline(ms(1000))
        .backoff(constant(ms(300)))
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    // Calls at 0, 400 and 800 ms end at 900 ms; a fourth would start at 1200 ms.
    assert_eq!((err.reason(), err.attempts()), (GiveUp::Deadline, 3));
    assert_eq!(start.elapsed(), ms(900));
}

#[tokio::test(start_paused = true)]
async fn budget_refusal_stops_retrying_without_a_useless_sleep() {
    let quota = RetryQuota::builder().capacity(10).build().unwrap();
    let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
    let mut svc = RetryConfig::new()
        .max_attempts(5)
        .backoff(constant(ms(100)))
        .budget(quota.clone())
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(err.reason(), GiveUp::BudgetRefused);
    assert_eq!(err.attempts(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(quota.available(), 0);
    assert_eq!(start.elapsed(), ms(200));
}

/// Two requests both see one retry's worth of budget before they sleep; only the first to
/// wake is paid, because payment happens when the retry is sent.
#[tokio::test(start_paused = true)]
async fn the_budget_is_paid_when_the_retry_is_sent() {
    let quota = RetryQuota::builder()
        .capacity(10)
        .retry_cost(10)
        .build()
        .unwrap();
    let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
    let layer = RetryConfig::new()
        .max_attempts(2)
        .backoff(constant(ms(100)))
        .budget(quota.clone())
        .build()
        .unwrap();
    let a = layer.layer(svc.clone()).oneshot(1);
    let b = layer.layer(svc).oneshot(2);
    let (a, b) = tokio::join!(a, b);
    let mut reasons = [a.unwrap_err(), b.unwrap_err()].map(|e| (e.reason(), e.attempts()));
    reasons.sort_by_key(|r| r.1);
    assert_eq!(
        reasons,
        [(GiveUp::BudgetRefused, 1), (GiveUp::AttemptsExhausted, 2)]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failing_response_is_returned_as_ok_when_retries_end() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let (svc, calls) = scripted(|_| Ok::<u16, io::Error>(503));
    let mut svc = RetryConfig::new()
        .classifier(statuses(None))
        .backoff(constant(ms(10)))
        .listener(riprap::events::only(move |e: &RetryEvent| {
            sink.lock().unwrap().push(*e)
        }))
        .build()
        .unwrap()
        .layer(svc);
    assert_eq!(svc.ready().await.unwrap().call(1).await.unwrap(), 503);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        events.lock().unwrap().last(),
        Some(&RetryEvent::GaveUp {
            attempts: 3,
            reason: GiveUp::AttemptsExhausted
        })
    );
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_backoff_stops_retrying() {
    let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
    let backoff = BackoffPolicy::constant(ms(10))
        .max_retries(1)
        .build()
        .unwrap();
    let mut svc = RetryConfig::new()
        .max_attempts(5)
        .backoff(backoff)
        .build()
        .unwrap()
        .layer(svc);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!(
        (err.reason(), err.attempts()),
        (GiveUp::BackoffExhausted, 2)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_cannot_be_copied_is_sent_once() {
    let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
    let mut svc = RetryConfig::new()
        .clone_requests(|_: &u32| None::<u32>)
        .build()
        .unwrap()
        .layer(svc);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!((err.reason(), err.attempts()), (GiveUp::NotRetryable, 1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[cfg(feature = "http")]
#[tokio::test(start_paused = true)]
async fn non_idempotent_http_requests_need_a_key_or_an_opt_in() {
    use riprap::retry::{AssumeIdempotent, IdempotentOnly};

    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |_: http::Request<String>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Err::<(), _>(reset()) }
    });
    let layer = RetryConfig::new()
        .clone_requests(IdempotentOnly::new())
        .backoff(constant(ms(10)))
        .budget(Unlimited)
        .build()
        .unwrap();
    let post = || http::Request::post("/charge");
    let mut marked = post().body(String::new()).unwrap();
    marked.extensions_mut().insert(AssumeIdempotent);
    let cases = [
        (post().body(String::new()).unwrap(), GiveUp::NotRetryable, 1),
        (
            post()
                .header("Idempotency-Key", "k1")
                .body(String::new())
                .unwrap(),
            GiveUp::AttemptsExhausted,
            3,
        ),
        (
            http::Request::put("/doc").body(String::new()).unwrap(),
            GiveUp::AttemptsExhausted,
            3,
        ),
        (marked, GiveUp::AttemptsExhausted, 3),
    ];
    for (req, reason, attempts) in cases {
        calls.store(0, Ordering::SeqCst);
        let method = req.method().clone();
        let err = layer.layer(svc.clone()).oneshot(req).await.unwrap_err();
        assert_eq!(
            (err.reason(), err.attempts()),
            (reason, attempts),
            "{method}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), attempts);
    }
}

#[tokio::test(start_paused = true)]
async fn every_attempt_is_reported_with_its_class_and_delay() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let (svc, _) = scripted(|n| if n < 3 { Err(reset()) } else { Ok(()) });
    let mut svc = RetryConfig::new()
        .backoff(constant(ms(50)))
        .listener(riprap::events::only(move |e: &RetryEvent| {
            sink.lock().unwrap().push(*e)
        }))
        .build()
        .unwrap()
        .layer(svc);
    svc.ready().await.unwrap().call(1).await.unwrap();
    let attempt = |attempt, class, delay| RetryEvent::Attempt {
        attempt,
        class,
        delay,
    };
    assert_eq!(
        *events.lock().unwrap(),
        [
            attempt(1, Class::Transient, Some(ms(50))),
            attempt(2, Class::Transient, Some(ms(50))),
            attempt(3, Class::Success, None),
        ]
    );
}

/// A retry after a timeout costs the quota 10 units rather than 5.
#[tokio::test(start_paused = true)]
async fn timeouts_are_told_to_the_budget() {
    let quota = RetryQuota::default();
    let (svc, _) = scripted(|n| {
        Err::<(), BoxError>(if n == 1 {
            Box::new(tower::timeout::error::Elapsed::new())
        } else {
            Box::new(io::Error::from(io::ErrorKind::InvalidInput))
        })
    });
    let mut svc = RetryConfig::new()
        .backoff(constant(ms(10)))
        .budget(quota.clone())
        .build()
        .unwrap()
        .layer(svc);
    let err = svc.ready().await.unwrap().call(1).await.unwrap_err();
    assert_eq!((err.reason(), err.attempts()), (GiveUp::Permanent, 2));
    assert_eq!(quota.available(), 490);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_request_mid_backoff_spends_nothing() {
    let quota = RetryQuota::default();
    let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
    let svc = RetryConfig::new()
        .backoff(constant(ms(100)))
        .budget(quota.clone())
        .build()
        .unwrap()
        .layer(svc);
    let dropped = tokio::time::timeout(ms(50), svc.oneshot(1)).await;
    assert!(dropped.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(quota.available(), 500);
}

#[test]
fn retry_errors_are_permanent_to_the_layers_above() {
    let err: RetryError<BoxError> = {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let (svc, _) = scripted(|_| Err::<(), BoxError>(Box::new(reset())));
            let svc = RetryConfig::new()
                .budget(Unlimited)
                .build()
                .unwrap()
                .layer(svc);
            svc.oneshot(1).await.unwrap_err()
        })
    };
    assert_eq!(
        err.to_string(),
        "gave up after 3 attempts: attempts exhausted"
    );
    assert_eq!(ByError.classify(Err::<&(), _>(&err)), Class::Permanent);
    let boxed = err.into_box_error();
    assert_eq!(ByError.classify(Err::<&(), _>(&boxed)), Class::Permanent);
    assert!(boxed.source().unwrap().to_string().contains("reset"));
}

#[test]
fn presets_build_and_bad_knobs_are_named() {
    for preset in [
        RetryConfig::llm_api(),
        RetryConfig::object_store(),
        RetryConfig::database(),
    ] {
        preset.build().unwrap();
    }
    let knob = |c: RetryConfig| c.build().unwrap_err().knob();
    assert_eq!(
        knob(RetryConfig::new().max_attempts(0)),
        "retry.max_attempts"
    );
    assert_eq!(
        knob(RetryConfig::new().max_attempts(101)),
        "retry.max_attempts"
    );
    assert_eq!(
        knob(RetryConfig::new().deadline(Duration::ZERO)),
        "retry.deadline"
    );
    assert_eq!(
        knob(RetryConfig::new().deadline(Duration::MAX)),
        "retry.deadline"
    );
    assert_eq!(
        knob(RetryConfig::new().max_retry_after(Duration::MAX)),
        "retry.max_retry_after"
    );
}

#[tokio::test(start_paused = true)]
async fn presets_wait_as_documented() {
    // llm_api: 3 attempts, full jitter under 0.5 s then 1 s envelopes.
    let (svc, calls) = scripted(|_| Err::<(), _>(reset()));
    let svc = RetryConfig::llm_api()
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(svc);
    let start = Instant::now();
    let err = svc.oneshot(1).await.unwrap_err();
    assert_eq!(err.attempts(), 3);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(start.elapsed() <= ms(1500));
}

/// A service where every call fails, counting calls.
fn dead_dependency() -> (
    impl Service<(), Response = (), Error = io::Error, Future = impl Send> + Clone + Send,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |()| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move { Err::<(), _>(reset()) }
    });
    (svc, calls)
}

/// 100 requests/s for 60 s; returns the calls the dependency saw.
async fn storm<B: Budget + Clone + 'static>(budget: B) -> u32 {
    let (svc, calls) = dead_dependency();
    let layer = RetryConfig::new()
        .max_attempts(4)
        .budget(budget)
        .build()
        .unwrap();
    let mut tasks = Vec::with_capacity(6000);
    for _ in 0..6000 {
        tasks.push(tokio::spawn(layer.layer(svc.clone()).oneshot(())));
        tokio::time::sleep(ms(10)).await;
    }
    for t in tasks {
        assert!(t.await.unwrap().is_err());
    }
    calls.load(Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn storm_a_budget_caps_the_load_on_a_dead_dependency() {
    let requests = 6000.0;
    let naive = f64::from(storm(Unlimited).await);
    let budget = RatioBudget::default();
    let riprap = f64::from(storm(budget).await);
    // 20 % of requests, plus the reserve (10 retries/s), which renews every 10 s window:
    // 10/s × (60 s + 10 s).
    let reserve = 10.0 * (60.0 + 10.0);
    println!(
        "storm, 100 req/s x 60 s, always failing, 4 attempts: naive (no budget) {naive} calls = {:.2}x; \
         riprap default budget {riprap} calls = {:.3}x (bound 1.2x + reserve {reserve} = {} calls = {:.3}x)",
        naive / requests,
        riprap / requests,
        1.2 * requests + reserve,
        (1.2 * requests + reserve) / requests,
    );
    assert_eq!(naive, 4.0 * requests);
    assert!(riprap <= 1.2 * requests + reserve, "{riprap}");
    assert!(
        riprap >= 1.2 * requests,
        "the budget should allow its 20 %: {riprap}"
    );
}

/// Records every budget call with its time, for replay into a model.
#[derive(Clone)]
struct Recorder<B> {
    inner: B,
    origin: Instant,
    log: Arc<Mutex<Vec<(Duration, Rec)>>>,
}

#[derive(Debug, Clone, Copy)]
enum Rec {
    Deposit,
    Withdraw(bool),
    CanWithdraw(bool),
    Refund(u64),
}

impl<B> Recorder<B> {
    fn new(inner: B) -> Self {
        Recorder {
            inner,
            origin: Instant::now(),
            log: Arc::default(),
        }
    }
    fn push(&self, rec: Rec) {
        let at = self.origin.elapsed();
        self.log.lock().unwrap().push((at, rec));
    }
    fn withdrawals(&self) -> u32 {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(_, r)| matches!(r, Rec::Withdraw(true)))
            .count() as u32
    }
    fn refunds(&self) -> u32 {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|(_, r)| matches!(r, Rec::Refund(_)))
            .count() as u32
    }
}

impl<B: Budget> Budget for Recorder<B> {
    fn deposit(&self) {
        self.inner.deposit();
        self.push(Rec::Deposit);
    }
    fn try_withdraw(&self, after: Class) -> Option<Withdrawal> {
        let w = self.inner.try_withdraw(after);
        self.push(Rec::Withdraw(w.is_some()));
        w
    }
    fn refund(&self, withdrawal: Withdrawal) {
        self.inner.refund(withdrawal);
        self.push(Rec::Refund(withdrawal.units()));
    }
    fn record(&self, attempt: Attempt) {
        self.inner.record(attempt);
    }
    fn can_withdraw(&self, after: Class) -> bool {
        let ok = self.inner.can_withdraw(after);
        self.push(Rec::CanWithdraw(ok));
        ok
    }
}

/// Replay the recorded calls into the model: every decision must match.
fn replay(log: &[(Duration, Rec)], model: &mut RatioModel) {
    for (at, rec) in log {
        model.now_nanos = at.as_nanos() as u64;
        match *rec {
            Rec::Deposit => model.deposit(),
            Rec::Withdraw(ok) => assert_eq!(model.try_withdraw(), ok, "withdraw at {at:?}"),
            Rec::CanWithdraw(ok) => assert_eq!(model.can_withdraw(), ok, "check at {at:?}"),
            Rec::Refund(units) => model.refund(units),
        }
    }
}

/// Requests arrive `gap` ms apart and fail `fails` times before succeeding, all through one
/// layer with up to 6 attempts: total calls never exceed requests plus the budget's allowance,
/// and every budget decision matches the model's.
async fn amplification(ratio: f64, per_sec: u32, ttl_secs: u64, plan: Vec<(u64, u32)>) {
    let ttl = Duration::from_secs(ttl_secs);
    let budget = Recorder::new(
        RatioBudget::builder()
            .ratio(ratio)
            .min_retries_per_sec(per_sec)
            .ttl(ttl)
            .build()
            .unwrap(),
    );
    let layer = RetryConfig::new()
        .max_attempts(6)
        .backoff(constant(ms(50)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (gap, fails) in &plan {
        tokio::time::sleep(ms(*gap)).await;
        let fails = *fails;
        let counter = Arc::clone(&calls);
        let tries = Arc::new(AtomicU32::new(0));
        let svc = service_fn(move |()| {
            counter.fetch_add(1, Ordering::Relaxed);
            let n = tries.fetch_add(1, Ordering::Relaxed);
            async move { if n < fails { Err(reset()) } else { Ok(()) } }
        });
        tasks.push(tokio::spawn(layer.layer(svc).oneshot(())));
    }
    for t in tasks {
        let _ = t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let requests = plan.len() as f64;
    let attempts = f64::from(calls.load(Ordering::Relaxed));
    let windows = (elapsed.as_secs_f64() / ttl.as_secs_f64()).ceil() + 1.0;
    let allowance = ratio * requests + f64::from(per_sec) * ttl.as_secs_f64() * windows;
    assert!(
        attempts <= requests + allowance,
        "{attempts} attempts for {requests} requests, allowance {allowance}"
    );
    assert_eq!(attempts, requests + f64::from(budget.withdrawals()));
    let mut model = RatioModel::new(ratio, per_sec, ttl, false);
    replay(&budget.log.lock().unwrap(), &mut model);
    model.now_nanos = budget.origin.elapsed().as_nanos() as u64;
    assert_eq!(budget.inner.balance(), model.balance());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn amplification_is_bounded_by_the_budget(
        ratio in prop::sample::select(vec![0.0, 0.1, 0.2, 0.5]),
        per_sec in 0u32..4,
        ttl_secs in 1u64..4,
        plan in prop::collection::vec((0u64..400, 0u32..8), 1..120),
    ) {
        prop_assume!(ratio > 0.0 || per_sec > 0);
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(amplification(ratio, per_sec, ttl_secs, plan));
    }
}

/// Requests dropped at random points (mid-call, mid-backoff, waiting) leave the budget exactly
/// as the model says, and every withdrawal paid for a call that was really sent.
#[tokio::test(start_paused = true)]
async fn cancellation_at_random_points_loses_no_token() {
    let mut rng = 0x5eed_u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let budget = Recorder::new(
        RatioBudget::builder()
            .ratio(0.3)
            .min_retries_per_sec(2)
            .ttl(Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    let layer = RetryConfig::new()
        .max_attempts(5)
        .backoff(BackoffPolicy::exponential(ms(40)).seed(3).build().unwrap())
        .budget(budget.clone())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    let requests = 400;
    let mut dropped = 0;
    for _ in 0..requests {
        tokio::time::sleep(ms(next(30))).await;
        let counter = Arc::clone(&calls);
        let (latency, fail_pct) = (next(120), next(100));
        let seed = next(u64::MAX);
        let svc = service_fn(move |()| {
            counter.fetch_add(1, Ordering::Relaxed);
            let fails = (seed ^ u64::from(counter.load(Ordering::Relaxed))) % 100 < fail_pct;
            async move {
                tokio::time::sleep(ms(latency)).await;
                if fails { Err(reset()) } else { Ok(()) }
            }
        });
        let patience = ms(next(600));
        tasks.push(tokio::spawn(tokio::time::timeout(
            patience,
            layer.layer(svc).oneshot(()),
        )));
    }
    for t in tasks {
        if t.await.unwrap().is_err() {
            dropped += 1;
        }
    }
    assert!(
        dropped > 50,
        "the test should drop many requests: {dropped}"
    );
    let calls = calls.load(Ordering::Relaxed);
    assert!(
        budget.refunds() > 0,
        "requests dropped mid-backoff hand their withdrawal back"
    );
    assert_eq!(
        calls,
        requests + budget.withdrawals() - budget.refunds(),
        "every withdrawal not handed back sent a call"
    );
    let mut model = RatioModel::new(0.3, 2, Duration::from_secs(2), false);
    replay(&budget.log.lock().unwrap(), &mut model);
    model.now_nanos = budget.origin.elapsed().as_nanos() as u64;
    assert_eq!(budget.inner.balance(), model.balance());
}

#[derive(Debug)]
struct AnyError;

impl std::fmt::Display for AnyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a client error riprap has never heard of")
    }
}

impl StdError for AnyError {}

/// A give-up is final to anything above it, whatever the inner error type: boxed (as a
/// `Buffer` between two retry layers boxes it), it classifies as permanent, so a retry layer
/// above does not retry what this one gave up on. Only `io::Error` and `Boxed` inner errors
/// used to be recognised; any other boxed give-up classified as transient.
#[tokio::test(start_paused = true)]
async fn a_boxed_give_up_is_final_for_any_inner_error_type() {
    let (svc, calls) = scripted(|_| Err::<(), _>(AnyError));
    let classifier = classify_fn(|_: Result<&(), &AnyError>| Class::Transient);
    let inner = RetryConfig::new()
        .classifier(classifier)
        .max_attempts(2)
        .backoff(constant(ms(10)))
        .budget(Unlimited)
        .build()
        .unwrap();
    let err = inner.layer(svc.clone()).oneshot(1).await.unwrap_err();
    assert_eq!(err.reason(), GiveUp::AttemptsExhausted);
    let boxed: BoxError = Box::new(err);
    assert_eq!(ByError.classify(Err::<&(), _>(&boxed)), Class::Permanent);

    // End to end: a retry layer over a buffered retry layer makes no second round.
    calls.store(0, Ordering::SeqCst);
    let buffered = tower::ServiceBuilder::new()
        .buffer(4)
        .layer(inner)
        .service(svc);
    let outer = RetryConfig::new()
        .max_attempts(3)
        .backoff(constant(ms(10)))
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(buffered);
    let err = outer.oneshot(1).await.unwrap_err();
    assert_eq!(err.reason(), GiveUp::Permanent);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the inner layer's two attempts, once"
    );
}

/// A retry after the caller's own open breaker refused is priced as an ordinary retry: a
/// budget that is lenient with retries after a server throttle is not lenient with retries
/// against the caller's own breaker (the refusal used to classify as a throttle, and a retry
/// quota charged it 1 instead of 5).
#[tokio::test(start_paused = true)]
async fn a_retry_after_the_own_breaker_refused_is_not_priced_as_a_throttle() {
    use riprap::breaker::{CircuitBreaker, CircuitBreakerLayer};
    let quota = RetryQuota::builder().capacity(100).build().unwrap();
    let breaker = CircuitBreaker::builder()
        .open_for(Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..5 {
        breaker.try_acquire().unwrap().record(Class::Transient);
    }
    let (svc, calls) = scripted(|_| Ok::<(), io::Error>(()));
    let guarded = CircuitBreakerLayer::new(breaker.clone()).layer(svc);
    let retry = RetryConfig::new()
        .classifier(riprap::classify::Through(ByError))
        .max_attempts(2)
        .budget(quota.clone())
        .build()
        .unwrap();
    let mut svc = retry.layer(guarded);
    let start = Instant::now();
    let mut fut = std::pin::pin!(svc.ready().await.unwrap().call(1));
    // Refused by the open breaker; the retry waits for its next probe.
    assert!(futures_util::FutureExt::now_or_never(&mut fut).is_none());
    assert_eq!(
        quota.available(),
        95,
        "charged as a retry (5), not as a throttle (1)"
    );
    fut.await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Runs can be pinned: two runs of the default config with the same seed make the same calls
/// at the same instants; another seed draws other delays.
#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_calls() {
    async fn run(seed: u64) -> Vec<(u64, Duration)> {
        let start = Instant::now();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let svc = service_fn(move |req: u64| {
            sink.lock().unwrap().push((req, start.elapsed()));
            // Every request fails twice, then succeeds.
            let n = sink
                .lock()
                .unwrap()
                .iter()
                .filter(|(r, _)| *r == req)
                .count();
            async move { if n < 3 { Err(reset()) } else { Ok(req) } }
        });
        let layer = RetryConfig::new().seed(seed).build().unwrap();
        let mut tasks = Vec::new();
        for req in 0..20 {
            tokio::time::sleep(ms(7)).await;
            tasks.push(tokio::spawn(layer.layer(svc.clone()).oneshot(req)));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        log.lock().unwrap().clone()
    }
    let (a, b, other) = (run(42).await, run(42).await, run(43).await);
    assert_eq!(a.len(), 60);
    assert_eq!(a, b, "same seed, same calls at the same instants");
    assert_ne!(a, other, "another seed draws other delays");
}
