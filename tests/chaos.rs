//! Fault injection: deterministic per seed, rates honoured, outages scripted on the paused clock.

use std::time::Duration;

use futures_util::StreamExt;
use riprap::chaos::{ChaosError, ChaosLayer, Fault, Latency, disconnects};
use riprap::classify::{Class, Classified};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

type Outcome = Result<u32, ChaosError>;

async fn run(layer: ChaosLayer, calls: u32) -> Vec<Outcome> {
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|x: u32| async move { Ok::<_, ChaosError>(x) });
    let mut out = Vec::new();
    for i in 0..calls {
        out.push(svc.ready().await.unwrap().call(i).await);
    }
    out
}

fn layer(seed: u64) -> ChaosLayer {
    ChaosLayer::builder()
        .seed(seed)
        .error_rate(0.2)
        .throttle_rate(0.1, Duration::from_secs(20))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_faults() {
    let a = run(layer(11), 500).await;
    let b = run(layer(11), 500).await;
    assert_eq!(a, b);
    let c = run(layer(12), 500).await;
    assert_ne!(a, c);
}

#[tokio::test(start_paused = true)]
async fn rates_are_honoured() {
    let out = run(layer(5), 10_000).await;
    let errors = out
        .iter()
        .filter(|o| matches!(o, Err(e) if e.fault() == Fault::Error))
        .count();
    let throttles = out
        .iter()
        .filter(|o| matches!(o, Err(e) if matches!(e.fault(), Fault::Throttle { .. })))
        .count();
    // 2,000 and 1,000 expected; a binomial's spread at n = 10,000 is about ±40 and ±30.
    assert!((1_850..=2_150).contains(&errors), "{errors}");
    assert!((880..=1_120).contains(&throttles), "{throttles}");
    // Successful calls reach the inner service and return its answer.
    assert!(
        out.iter()
            .enumerate()
            .all(|(i, o)| o.as_ref().map_or(true, |v| *v == i as u32))
    );
}

#[tokio::test(start_paused = true)]
async fn injected_errors_classify_like_the_real_thing() {
    let throttle = ChaosError::from(Fault::Throttle {
        retry_after: Duration::from_secs(20),
    });
    assert_eq!(
        throttle.class(),
        Class::Throttled {
            retry_after: Some(Duration::from_secs(20))
        }
    );
    assert_eq!(ChaosError::from(Fault::Error).class(), Class::Transient);
    assert_eq!(ChaosError::from(Fault::Outage).class(), Class::Transient);
}

#[tokio::test(start_paused = true)]
async fn outage_window_is_scripted_from_the_first_call() {
    let layer = ChaosLayer::builder()
        .outage(Duration::from_secs(10), Duration::from_secs(20))
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|x: u32| async move { Ok::<_, ChaosError>(x) });
    let mut timeline = Vec::new();
    for second in 0..30 {
        let r = svc.ready().await.unwrap().call(second).await;
        timeline.push(r.is_ok());
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let down: Vec<usize> = timeline
        .iter()
        .enumerate()
        .filter(|(_, ok)| !**ok)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(down, (10..20).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn latency_is_injected_on_the_paused_clock() {
    let layer = ChaosLayer::builder()
        .latency(1.0, Latency::Fixed(Duration::from_millis(250)))
        .build()
        .unwrap();
    let start = Instant::now();
    let out = run(layer, 4).await;
    assert!(out.iter().all(Result::is_ok));
    assert_eq!(start.elapsed(), Duration::from_millis(1_000));

    let layer = ChaosLayer::builder()
        .seed(3)
        .latency(
            1.0,
            Latency::Uniform(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|x: u32| async move { Ok::<_, ChaosError>(x) });
    for i in 0..50 {
        let t = Instant::now();
        svc.ready().await.unwrap().call(i).await.unwrap();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(10) && took <= Duration::from_millis(20),
            "{took:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn faults_can_become_responses() {
    let layer = ChaosLayer::builder()
        .seed(1)
        .throttle_rate(1.0, Duration::from_secs(2))
        .inject_with(|fault: Fault| -> Result<u16, std::io::Error> {
            match fault {
                Fault::Throttle { .. } => Ok(429),
                _ => Ok(503),
            }
        })
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: ()| async { Ok::<u16, std::io::Error>(200) });
    assert_eq!(svc.ready().await.unwrap().call(()).await.unwrap(), 429);
}

#[tokio::test]
async fn stream_disconnects_are_seeded() {
    let cut_at = |seed| async move {
        let s = futures_util::stream::iter((0..1_000u32).map(Ok::<_, ChaosError>));
        let items: Vec<_> = disconnects(s, 0.01, seed).collect().await;
        (items.len(), items.last().map(|r| r.is_err()))
    };
    assert_eq!(cut_at(4).await, cut_at(4).await);
    let (len, last_is_err) = cut_at(4).await;
    assert!(len < 1_000 && last_is_err == Some(true));
    // Rate zero never disconnects.
    let s = futures_util::stream::iter((0..100u32).map(Ok::<_, ChaosError>));
    assert_eq!(disconnects(s, 0.0, 1).count().await, 100);
}

#[test]
fn bad_configs_name_the_knob() {
    let b = ChaosLayer::builder;
    let cases = [
        (b().error_rate(1.5).build().map(|_| ()), "chaos.error_rate"),
        (
            b().error_rate(f64::NAN).build().map(|_| ()),
            "chaos.error_rate",
        ),
        (
            b().throttle_rate(-0.1, Duration::from_secs(1))
                .build()
                .map(|_| ()),
            "chaos.throttle_rate",
        ),
        (
            b().error_rate(0.7)
                .throttle_rate(0.7, Duration::from_secs(1))
                .build()
                .map(|_| ()),
            "chaos.throttle_rate",
        ),
        (
            b().latency(
                0.5,
                Latency::Uniform(Duration::from_secs(2), Duration::from_secs(1)),
            )
            .build()
            .map(|_| ()),
            "chaos.latency",
        ),
        (
            b().outage(Duration::from_secs(5), Duration::from_secs(5))
                .build()
                .map(|_| ()),
            "chaos.outage",
        ),
    ];
    for (result, knob) in cases {
        assert_eq!(result.unwrap_err().knob(), knob);
    }
}
