//! Fallback on a paused clock: which classes fall back, what is returned, requests that
//! cannot be copied, a breaker per provider, chains of providers, and a chaos outage.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::breaker::{BreakerState, CircuitBreaker, CircuitBreakerLayer, ConsecutiveFailures};
use riprap::chaos::{ChaosError, ChaosLayer};
use riprap::classify::{ByError, Class, Through, classify_fn};
use riprap::fallback::{FallbackError, FallbackEvent, FallbackLayer, FallbackOn};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, PartialEq)]
struct Reply(&'static str);

#[derive(Debug, Clone, Copy, PartialEq)]
enum ApiError {
    Down,
    SlowDown,
    BadRequest,
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
            ApiError::Down => Class::Transient,
            ApiError::SlowDown => Class::Throttled {
                retry_after: Some(Duration::from_secs(20)),
            },
            ApiError::BadRequest => Class::Permanent,
        }
    }
}

/// A provider that answers `out` and counts its calls.
fn provider(
    name: &'static str,
    out: Result<(), ApiError>,
    calls: Arc<AtomicU32>,
) -> tower::util::BoxCloneService<String, Reply, ApiError> {
    tower::util::BoxCloneService::new(service_fn(move |_: String| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move { out.map(|()| Reply(name)) }
    }))
}

fn events() -> (
    Arc<Mutex<Vec<FallbackEvent>>>,
    impl riprap::events::Listener,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    (
        seen,
        riprap::events::only(move |e: &FallbackEvent| sink.lock().unwrap().push(e.clone())),
    )
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_answers_is_the_answer() {
    let b_calls = Arc::new(AtomicU32::new(0));
    let svc = FallbackLayer::new(provider("b", Ok(()), b_calls.clone())).layer(provider(
        "a",
        Ok(()),
        Arc::default(),
    ));
    assert_eq!(svc.oneshot("q".into()).await.unwrap(), Reply("a"));
    assert_eq!(b_calls.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn failures_another_try_may_fix_fall_back_and_permanent_ones_do_not() {
    for (err, falls_back) in [
        (ApiError::Down, true),
        (ApiError::SlowDown, true),
        (ApiError::BadRequest, false),
    ] {
        let (seen, listener) = events();
        let svc = FallbackLayer::new(provider("b", Ok(()), Arc::default()))
            .name("b")
            .listener(listener)
            .layer(provider("a", Err(err), Arc::default()));
        let out = svc.oneshot("q".into()).await;
        if falls_back {
            assert_eq!(out.unwrap(), Reply("b"), "{err:?}");
            let class = riprap::classify::Classified::class(&err);
            assert_eq!(
                *seen.lock().unwrap(),
                [FallbackEvent::FellBack {
                    name: Some("b".into()),
                    class
                }]
            );
        } else {
            assert_eq!(out.unwrap_err(), FallbackError::Primary(err));
            assert!(seen.lock().unwrap().is_empty());
        }
    }
    // Chosen classes: permanent errors too, throttles not.
    let svc = FallbackLayer::new(provider("b", Ok(()), Arc::default()))
        .on(FallbackOn::none().transient().permanent())
        .layer(provider("a", Err(ApiError::BadRequest), Arc::default()));
    assert_eq!(svc.oneshot("q".into()).await.unwrap(), Reply("b"));
    let svc = FallbackLayer::new(provider("b", Ok(()), Arc::default()))
        .on(|c: &Class| c.is_failure())
        .layer(provider("a", Err(ApiError::SlowDown), Arc::default()));
    assert_eq!(
        svc.oneshot("q".into()).await.unwrap_err(),
        FallbackError::Primary(ApiError::SlowDown)
    );
}

#[tokio::test(start_paused = true)]
async fn an_ok_response_the_classifier_calls_a_failure_falls_back() {
    let primary = service_fn(|_: String| async { Ok::<u16, ApiError>(503) });
    let secondary = service_fn(|_: String| async { Ok::<u16, ApiError>(200) });
    let svc = FallbackLayer::new(secondary)
        .classifier(classify_fn(|out: Result<&u16, &ApiError>| match out {
            Ok(200) => Class::Success,
            _ => Class::Transient,
        }))
        .layer(primary);
    assert_eq!(svc.oneshot("q".into()).await.unwrap(), 200);
}

#[tokio::test(start_paused = true)]
async fn when_both_fail_the_fallbacks_error_is_returned_and_reported() {
    let (seen, listener) = events();
    let svc = FallbackLayer::new(provider("b", Err(ApiError::SlowDown), Arc::default()))
        .listener(listener)
        .layer(provider("a", Err(ApiError::Down), Arc::default()));
    let err = svc.oneshot("q".into()).await.unwrap_err();
    assert_eq!(err, FallbackError::Fallback(ApiError::SlowDown));
    assert!(err.fell_back());
    // It classifies as what the fallback said, so a retry above waits for its 20 s.
    assert_eq!(
        riprap::classify::Classified::class(&err),
        Class::Throttled {
            retry_after: Some(Duration::from_secs(20))
        }
    );
    let kinds: Vec<_> = seen.lock().unwrap().iter().map(|e| e.as_str()).collect();
    assert_eq!(kinds, ["fell_back", "fallback_failed"]);
}

#[tokio::test(start_paused = true)]
async fn a_request_the_copy_policy_declines_is_not_sent_to_the_fallback() {
    let (seen, listener) = events();
    let b_calls = Arc::new(AtomicU32::new(0));
    let svc = FallbackLayer::new(provider("b", Ok(()), b_calls.clone()))
        .clone_requests(|_: &String| None)
        .listener(listener)
        .layer(provider("a", Err(ApiError::Down), Arc::default()));
    assert_eq!(
        svc.oneshot("q".into()).await.unwrap_err(),
        FallbackError::Primary(ApiError::Down)
    );
    assert_eq!(b_calls.load(Ordering::Relaxed), 0);
    assert_eq!(seen.lock().unwrap()[0].as_str(), "not_replayable");
}

#[tokio::test(start_paused = true)]
async fn three_providers_chain_by_nesting() {
    let (a, b, c) = (Arc::default(), Arc::default(), Arc::default());
    let svc = FallbackLayer::new(provider("c", Ok(()), Arc::clone(&c))).layer(
        FallbackLayer::new(provider("b", Err(ApiError::Down), Arc::clone(&b))).layer(provider(
            "a",
            Err(ApiError::Down),
            Arc::clone(&a),
        )),
    );
    assert_eq!(svc.oneshot("q".into()).await.unwrap(), Reply("c"));
    for n in [&a, &b, &c] {
        assert_eq!(n.load(Ordering::Relaxed), 1);
    }
}

/// A breaker per provider: once the primary's breaker opens, requests go to the fallback
/// without reaching the primary, until the breaker probes and finds it back.
#[tokio::test(start_paused = true)]
async fn a_breaker_per_provider_keeps_requests_off_a_dead_primary() {
    let a_calls = Arc::new(AtomicU32::new(0));
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(3).unwrap())
        .open_for(Duration::from_secs(10))
        .build()
        .unwrap();
    let primary = {
        let (calls, healthy) = (Arc::clone(&a_calls), Arc::clone(&healthy));
        ServiceBuilder::new()
            .layer(CircuitBreakerLayer::new(breaker.clone()))
            .service_fn(move |_: String| {
                calls.fetch_add(1, Ordering::Relaxed);
                let up = healthy.load(Ordering::Relaxed);
                async move {
                    if up {
                        Ok(Reply("a"))
                    } else {
                        Err(ApiError::Down)
                    }
                }
            })
    };
    let svc = FallbackLayer::new(provider("b", Ok(()), Arc::default()))
        .classifier(Through(ByError))
        .layer(primary);
    for _ in 0..20 {
        assert_eq!(svc.clone().oneshot("q".into()).await.unwrap(), Reply("b"));
        tokio::time::advance(ms(100)).await;
    }
    assert_eq!(
        a_calls.load(Ordering::Relaxed),
        3,
        "the breaker opened after 3"
    );
    assert_eq!(breaker.state(), BreakerState::Open);
    healthy.store(true, Ordering::Relaxed);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(svc.clone().oneshot("q".into()).await.unwrap(), Reply("a"));
}

/// Chaos: the primary is down for a scripted minute; the fallback serves through it, the
/// primary's breaker keeps its calls to a few probes, and the primary serves again after.
#[tokio::test(start_paused = true)]
async fn a_chaos_outage_of_the_primary_is_served_by_the_fallback() {
    let breaker = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(5).unwrap())
        .open_for(Duration::from_secs(5))
        .build()
        .unwrap();
    let reached = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&reached);
    let primary = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .map_request(move |r: u32| {
            // Calls that got past the breaker, to the provider.
            counted.fetch_add(1, Ordering::Relaxed);
            r
        })
        .layer(
            ChaosLayer::builder()
                .seed(3)
                .outage(Duration::from_secs(10), Duration::from_secs(70))
                .build()
                .unwrap(),
        )
        .service_fn(|_: u32| async { Ok::<_, ChaosError>("a") });
    let secondary = service_fn(|_: u32| async { Ok::<_, ChaosError>("b") });
    let svc = FallbackLayer::new(secondary)
        .classifier(Through(ByError))
        .layer(primary);
    let mut served = std::collections::BTreeMap::new();
    for second in 0..90u32 {
        for i in 0..10 {
            let who = svc.clone().oneshot(second * 10 + i).await.unwrap();
            *served.entry((second / 30, who)).or_insert(0) += 1;
            tokio::time::advance(ms(100)).await;
        }
    }
    // Before, during and after the outage (10 s to 70 s): every request answered.
    assert_eq!(served.values().sum::<u32>(), 900);
    assert_eq!(
        served.get(&(1, "a")),
        None,
        "nothing from the primary mid-outage"
    );
    assert!(
        served.get(&(2, "a")).copied().unwrap_or(0) >= 150,
        "{served:?}"
    );
    // The provider saw the 5 failures that tripped its breaker and then about one probe per
    // 5 s of the outage, not the outage's 600 requests: 100 before, ~20 during, 200 after.
    let reached = reached.load(Ordering::Relaxed);
    assert!(reached < 100 + 40 + 200, "{reached}");
}

#[test]
fn a_fallback_spec_round_trips() {
    use riprap::fallback::FallbackSpec;
    let spec: FallbackSpec = toml::from_str(r#"on = ["transient", "refused"]"#).unwrap();
    let back: FallbackSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    assert_eq!(spec.on().unwrap(), FallbackOn::none().transient().refused());
    assert_eq!(
        FallbackSpec::default().on().unwrap(),
        FallbackOn::failures()
    );
}
