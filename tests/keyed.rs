//! Keyed breakers and keyed rate limiters under hostile key streams: stale open breakers,
//! floods of new keys, idle expiry, removal, and the keyed map against a reference model.

use std::io;
use std::time::Duration;

use riprap::breaker::{
    BreakerState, CircuitBreaker, ConsecutiveFailures, KeyedCircuitBreakerLayer,
};
use tower::{Layer, Service, ServiceExt};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Every key whose name starts with `bad` fails; the rest succeed.
fn dependency() -> impl Service<String, Response = (), Error = io::Error, Future: Send> + Clone {
    tower::service_fn(|key: String| async move {
        if key.starts_with("bad") {
            Err(io::Error::from(io::ErrorKind::ConnectionRefused))
        } else {
            Ok(())
        }
    })
}

/// The cap is full of breakers that opened and whose keys never came back. Once their open
/// time has passed, each new healthy key gets its own verdict, and a new failing key trips
/// only its own breaker.
#[tokio::test(start_paused = true)]
async fn stale_open_breakers_do_not_capture_new_keys() {
    const CAP: usize = 100;
    let layer = KeyedCircuitBreakerLayer::new(
        CircuitBreaker::builder()
            .policy(ConsecutiveFailures::new(3).unwrap())
            .open_for(secs(10))
            .build()
            .unwrap(),
        CAP,
        |k: &String| k.clone(),
    )
    .unwrap();
    let breakers = std::sync::Arc::clone(layer.breakers());
    let mut svc = layer.layer(dependency());

    for i in 0..CAP {
        for _ in 0..3 {
            let _ = svc
                .ready()
                .await
                .unwrap()
                .call(format!("bad-old-{i}"))
                .await;
        }
        let opened = breakers.get(&format!("bad-old-{i}")).unwrap();
        assert_eq!(opened.state(), BreakerState::Open);
    }
    tokio::time::advance(secs(11)).await;

    // A new key fails three times in a row: its breaker, and only its breaker, opens.
    for _ in 0..3 {
        let err = svc
            .ready()
            .await
            .unwrap()
            .call("bad-new".to_owned())
            .await
            .unwrap_err();
        assert!(
            err.rejection().is_none(),
            "the first calls reach the dependency"
        );
    }

    let mut rejected = 0;
    let mut without_own = 0;
    let mut failing_key_rejected = false;
    for i in 0..1_000 {
        if i % 10 == 0 {
            // ... and keeps failing between the healthy ones.
            match svc.ready().await.unwrap().call("bad-new".to_owned()).await {
                Err(e) if e.rejection().is_some() => failing_key_rejected = true,
                _ => {}
            }
        }
        let key = format!("healthy-{i}");
        match svc.ready().await.unwrap().call(key.clone()).await {
            Ok(()) => {}
            Err(e) => {
                assert!(e.rejection().is_some(), "healthy keys never fail: {e:?}");
                rejected += 1;
            }
        }
        match breakers.get(&key) {
            Some(own) => assert_eq!(own.state(), BreakerState::Closed, "{key}'s own breaker"),
            None => without_own += 1,
        }
        assert!(breakers.len() <= CAP);
    }
    assert_eq!(
        (rejected, without_own),
        (0, 0),
        "no healthy key was rejected for another key's failures, and each had its own breaker"
    );
    assert!(
        failing_key_rejected,
        "the failing key tripped its own breaker"
    );
}
