//! Keyed breakers and keyed rate limiters under hostile key streams: stale open breakers,
//! floods of new keys, idle expiry, removal, and the keyed map against a reference model.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use proptest::prelude::*;
use riprap::breaker::{
    BreakerState, CircuitBreaker, ConsecutiveFailures, KeyLimits, KeyedCircuitBreakerLayer,
};
use riprap::ratelimit::{KeyedRateLimiter, RateLimitConfig};
use tokio::time::Instant;
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
    let breakers = Arc::clone(layer.breakers());
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

fn one_per_hour() -> RateLimitConfig {
    RateLimitConfig::builder()
        .requests(1, secs(3600))
        .reject_when_limited()
        .build()
        .unwrap()
}

/// A breaker that opens on the first failure, for `open` seconds, one probe at a time.
fn trip_on_first(open: u64) -> CircuitBreaker {
    CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(1).unwrap())
        .open_for(secs(open))
        .half_open_probes(1)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_forgotten_on_the_paused_clock() {
    let layer = KeyedCircuitBreakerLayer::with_limits(
        trip_on_first(10),
        KeyLimits::new(100).idle_timeout(secs(60)),
        |k: &String| k.clone(),
    )
    .unwrap();
    let breakers = Arc::clone(layer.breakers());
    let mut svc = layer.layer(dependency());
    let _ = svc.ready().await.unwrap().call("bad".to_owned()).await;
    assert_eq!(
        breakers.get(&"bad".into()).unwrap().state(),
        BreakerState::Open
    );

    // Used within the timeout: kept.
    tokio::time::advance(secs(59)).await;
    assert!(breakers.get(&"bad".into()).is_some());
    // A rejected call is a use too.
    let err = svc
        .ready()
        .await
        .unwrap()
        .call("bad".into())
        .await
        .unwrap_err();
    assert!(
        err.rejection().is_none(),
        "open time passed: the call probes"
    );
    tokio::time::advance(secs(59)).await;
    assert!(breakers.get(&"bad".into()).is_some(), "last used 59 s ago");

    // Idle past the timeout (and its 1/32 slack): forgotten, and swept on demand.
    tokio::time::advance(secs(3)).await;
    assert!(breakers.get(&"bad".into()).is_none());
    assert!(breakers.snapshot().is_empty());
    assert_eq!(breakers.len(), 1, "not swept yet");
    breakers.evict_idle();
    assert_eq!(breakers.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn idle_keys_are_swept_as_new_keys_arrive() {
    // Up to 62 keys the map is one shard: nothing is evicted before the cap.
    let limiters =
        KeyedRateLimiter::with_limits(one_per_hour(), KeyLimits::new(40).idle_timeout(secs(1)))
            .unwrap();
    for k in 0..20u32 {
        limiters.get(&k);
    }
    tokio::time::advance(secs(2)).await;
    for k in 100..119u32 {
        limiters.get(&k);
    }
    assert_eq!(
        limiters.len(),
        39,
        "idle keys are not served, but not swept yet"
    );
    assert!((0..20).all(|k| !limiters.contains_key(&k)));
    // The 40th new key sweeps everything idle.
    limiters.get(&119);
    assert_eq!(limiters.len(), 20);
}

#[tokio::test(start_paused = true)]
async fn remove_and_retain() {
    let limiters = KeyedRateLimiter::new(one_per_hour(), 100).unwrap();
    for k in 0..10u32 {
        limiters.get(&k).try_acquire(1).unwrap();
    }
    let removed = limiters.remove(&3).expect("3 had a limiter");
    assert!(
        removed.try_acquire(1).is_err(),
        "the removed limiter keeps its state"
    );
    assert!(limiters.remove(&3).is_none());
    limiters.get(&3).try_acquire(1).expect("3 starts afresh");

    limiters.retain(|k, _| k % 2 == 0);
    assert_eq!(limiters.len(), 5);
    for k in 0..10u32 {
        assert_eq!(limiters.contains_key(&k), k % 2 == 0);
        if k % 2 == 0 {
            assert!(
                limiters.get(&k).try_acquire(1).is_err(),
                "{k} kept its state"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_breaker_under_an_operators_command_is_never_evicted_or_expired() {
    let layer = KeyedCircuitBreakerLayer::with_limits(
        CircuitBreaker::builder().build().unwrap(),
        KeyLimits::new(4).idle_timeout(secs(60)),
        |k: &u32| *k,
    )
    .unwrap();
    let breakers = Arc::clone(layer.breakers());
    let mut svc = layer.layer(tower::service_fn(|_: u32| async { Ok::<_, io::Error>(()) }));
    svc.ready().await.unwrap().call(0).await.unwrap();
    breakers.get(&0).unwrap().force_open();

    for k in 1..1_000 {
        svc.ready().await.unwrap().call(k).await.unwrap();
    }
    tokio::time::advance(secs(3600)).await;
    breakers.evict_idle();
    let isolated = breakers.get(&0).expect("an isolated key is pinned");
    assert_eq!(isolated.state(), BreakerState::Isolated);
    let err = svc.ready().await.unwrap().call(0).await.unwrap_err();
    assert!(err.rejection().is_some());
    assert!(breakers.len() <= 4);

    // Reset, it is an ordinary key again: idle, it goes.
    isolated.reset();
    tokio::time::advance(secs(3600)).await;
    breakers.evict_idle();
    assert!(breakers.get(&0).is_none());
}

#[tokio::test(start_paused = true)]
async fn dropped_probes_leak_no_permit_even_when_their_key_is_forgotten() {
    let down = Arc::new(AtomicBool::new(true));
    let d = Arc::clone(&down);
    let inner = tower::service_fn(move |_: u32| {
        let down = d.load(Ordering::SeqCst);
        async move {
            if down {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            }
            // A probe that never answers in time.
            tokio::time::sleep(secs(3600)).await;
            Ok(())
        }
    });
    let layer = KeyedCircuitBreakerLayer::new(trip_on_first(10), 100, |k: &u32| *k).unwrap();
    let breakers = Arc::clone(layer.breakers());
    let mut svc = layer.layer(inner);
    for k in [1, 2] {
        let _ = svc.ready().await.unwrap().call(k).await;
    }
    down.store(false, Ordering::SeqCst);
    tokio::time::advance(secs(11)).await;

    // Key 1: the probe's future is dropped while pending; its permit comes back.
    let mut probe = Box::pin(svc.ready().await.unwrap().call(1));
    assert!(probe.as_mut().now_or_never().is_none());
    let one = breakers.get(&1).unwrap();
    assert_eq!(one.metrics().probes_in_flight, 1);
    drop(probe);
    assert_eq!(one.metrics().probes_in_flight, 0);
    let mut again = Box::pin(svc.ready().await.unwrap().call(1));
    assert!(
        again.as_mut().now_or_never().is_none(),
        "the next caller probes"
    );
    drop(again);

    // Key 2: forgotten while its probe is in flight, then the probe is dropped.
    let mut probe = Box::pin(svc.ready().await.unwrap().call(2));
    assert!(probe.as_mut().now_or_never().is_none());
    let old = breakers.remove(&2).expect("2 had a breaker");
    assert_eq!(old.metrics().probes_in_flight, 1);
    drop(probe);
    assert_eq!(
        old.metrics().probes_in_flight,
        0,
        "the permit went back to its breaker"
    );
    let mut fresh = Box::pin(svc.ready().await.unwrap().call(2));
    assert!(
        fresh.as_mut().now_or_never().is_none(),
        "a fresh, closed breaker admits"
    );
    assert_eq!(breakers.get(&2).unwrap().state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn names_are_cut_and_key_bytes_are_budgeted() {
    let layer = KeyedCircuitBreakerLayer::with_limits(
        CircuitBreaker::builder().build().unwrap(),
        KeyLimits::new(100).max_key_bytes(100_000, |k: &String| k.len()),
        |k: &String| k.clone(),
    )
    .unwrap();
    let breakers = Arc::clone(layer.breakers());
    let mut svc = layer.layer(dependency());

    // 1 KiB keys: the byte budget, not the cap on keys, bounds them.
    for i in 0..200 {
        let key = format!("{i:04}{}", "k".repeat(1020));
        svc.ready().await.unwrap().call(key).await.unwrap();
        assert!(breakers.len() <= 100_000 / 1024, "{} keys", breakers.len());
    }
    let (key, breaker) = breakers.snapshot().pop().unwrap();
    let name = breaker.name().unwrap();
    assert!(name.len() <= 64 + '…'.len_utf8(), "{} bytes", name.len());
    assert!(name.ends_with('…'));
    assert!(name.starts_with(&format!("{:?}", &key[..10])[..10]));

    // A key heavier than half a shard's share is not kept, and still has a breaker of its
    // own on every call: it fails and fails, and never rejects anyone else.
    let heavy = format!("bad{}", "x".repeat(60_000));
    for _ in 0..20 {
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(heavy.clone())
            .await
            .unwrap_err();
        assert!(err.rejection().is_none());
    }
    assert!(breakers.get(&heavy).is_none());
    svc.ready().await.unwrap().call("ok".into()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn keys_too_heavy_to_keep_share_one_limiter() {
    let limiters = KeyedRateLimiter::with_limits(
        one_per_hour(),
        KeyLimits::new(100).max_key_bytes(100_000, |k: &String| k.len()),
    )
    .unwrap();
    let a = "a".repeat(60_000);
    let b = "b".repeat(60_000);
    limiters.get(&a).try_acquire(1).unwrap();
    assert!(
        limiters.get(&b).try_acquire(1).is_err(),
        "limited together, never unlimited"
    );
    assert!(!limiters.contains_key(&a));
    limiters.get(&"small".to_owned()).try_acquire(1).unwrap();
}

#[test]
fn limits_are_validated() {
    let knob = |r: Result<KeyedRateLimiter<u32>, riprap::ConfigError>| r.unwrap_err().knob();
    let config = one_per_hour;
    assert_eq!(
        knob(KeyedRateLimiter::new(config(), 0)),
        "ratelimit.max_keys"
    );
    assert_eq!(
        knob(KeyedRateLimiter::with_limits(
            config(),
            KeyLimits::new(9).idle_timeout(Duration::ZERO)
        )),
        "ratelimit.idle_timeout"
    );
    assert_eq!(
        knob(KeyedRateLimiter::with_limits(
            config(),
            KeyLimits::new(9).max_key_bytes(0, |_| 1)
        )),
        "ratelimit.max_key_bytes"
    );
    assert_eq!(
        knob(KeyedRateLimiter::with_limits(
            config(),
            KeyLimits::new(1).max_key_bytes(9, |_| 1)
        )),
        "ratelimit.max_keys"
    );
    let breaker = KeyedCircuitBreakerLayer::with_limits(
        CircuitBreaker::builder().build().unwrap(),
        KeyLimits::<u32>::new(9).idle_timeout(Duration::ZERO),
        |k: &u32| *k,
    );
    assert_eq!(breaker.unwrap_err().knob(), "breaker.idle_timeout");
}

/// Threads racing on a new key share one state: a quota of one admits one of them.
#[test]
fn racing_first_uses_of_a_key_share_one_state() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let limiters = KeyedRateLimiter::new(one_per_hour(), 1_000).unwrap();
        for key in 0..200u32 {
            let barrier = Arc::new(tokio::sync::Barrier::new(4));
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let (limiters, barrier) = (limiters.clone(), Arc::clone(&barrier));
                    tokio::spawn(async move {
                        barrier.wait().await;
                        limiters.get(&key).try_acquire(1).is_ok()
                    })
                })
                .collect();
            let mut admitted = 0;
            for t in tasks {
                admitted += usize::from(t.await.unwrap());
            }
            assert_eq!(admitted, 1, "key {key}");
        }
    });
}

// ---- The keyed map against a reference model ----

const CAP_MAX: usize = 8;
const KEYS: u32 = 12;
const IDLE_MS: u64 = 1_000;
/// The slack of recorded last uses: `idle_timeout / 32`.
const SLACK_MS: u64 = IDLE_MS / 32 + 1;

#[derive(Debug, Clone)]
enum Op {
    Use(u32),
    Advance(u64),
    Remove(u32),
    RetainBelow(u32),
    EvictIdle,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS).prop_map(Op::Use),
        2 => (0..1_400u64).prop_map(Op::Advance),
        1 => (0..KEYS).prop_map(Op::Remove),
        1 => (0..KEYS).prop_map(Op::RetainBelow),
        1 => Just(Op::EvictIdle),
    ]
}

/// The model: the keys that hold state, each with the time of its last use (in ms on the
/// paused clock). Every key held has spent its quota of one, so a use of a held key is
/// refused and a use of a new key is admitted: that tells whether the state was kept.
struct Model {
    held: BTreeMap<u32, u64>,
}

impl Model {
    /// Keys that must be held (used less than the idle timeout ago) and keys that may be
    /// (within the slack of it).
    fn must(&self, now: u64, k: u32) -> Option<bool> {
        let last = *self.held.get(&k)?;
        let idle = now - last;
        if idle < IDLE_MS {
            Some(true)
        } else if idle < IDLE_MS + SLACK_MS {
            Some(false)
        } else {
            None
        }
    }
}

fn run_model(cap: usize, ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Instant::now();
        let now = || start.elapsed().as_millis() as u64;
        let keyed = KeyedRateLimiter::with_limits(
            one_per_hour(),
            KeyLimits::new(cap).idle_timeout(Duration::from_millis(IDLE_MS)),
        )
        .unwrap();
        let mut model = Model {
            held: BTreeMap::new(),
        };
        let visible = |keyed: &KeyedRateLimiter<u32>| -> Vec<bool> {
            (0..KEYS).map(|k| keyed.contains_key(&k)).collect()
        };
        for op in ops {
            let before = visible(&keyed);
            let len_before = keyed.len();
            let mut new_key = None;
            match op {
                Op::Use(k) => {
                    let admitted = keyed.get(&k).try_acquire(1).is_ok();
                    assert_eq!(admitted, !before[k as usize], "{op:?}: state kept iff held");
                    if admitted {
                        new_key = Some(k);
                    }
                    model.held.insert(k, now());
                }
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
                Op::Remove(k) => {
                    assert_eq!(keyed.remove(&k).is_some(), before[k as usize], "{op:?}");
                    model.held.remove(&k);
                }
                Op::RetainBelow(t) => {
                    keyed.retain(|k, _| *k < t);
                    model.held.retain(|k, _| *k < t);
                }
                Op::EvictIdle => {
                    keyed.evict_idle();
                    assert_eq!(keyed.len(), visible(&keyed).iter().filter(|v| **v).count());
                }
            }
            let after = visible(&keyed);
            let t = now();
            // Evictions: only for a new key stored in a full map, never the new key.
            let mut evicted = 0;
            for k in 0..KEYS {
                let (was, is) = (before[k as usize], after[k as usize]);
                match model.must(t, k) {
                    Some(true) if !is => {
                        evicted += 1;
                        assert!(was || new_key == Some(k), "{op:?}: {k} vanished unseen");
                        model.held.remove(&k);
                    }
                    Some(true) => {}
                    Some(false) if !is => {
                        model.held.remove(&k);
                    }
                    Some(false) => {}
                    None => {
                        assert!(!is, "{op:?}: {k} idle past the timeout is still served");
                        model.held.remove(&k);
                    }
                }
                if is {
                    assert!(
                        model.held.contains_key(&k),
                        "{op:?}: {k} appeared from nowhere"
                    );
                }
            }
            if evicted > 0 {
                // One, or two when a key evicted lately returns among the frequently used
                // and pushes out one of them as well as making room.
                assert!(evicted <= 2, "{op:?}: {evicted} evictions for one new key");
                assert!(new_key.is_some(), "{op:?}: only a new key evicts");
                assert_eq!(len_before, cap, "{op:?}: nothing is evicted below the cap");
            }
            assert!(keyed.len() <= cap, "{op:?}: {} keys held", keyed.len());
            if let Some(k) = new_key {
                assert!(after[k as usize], "{op:?}: the new key is held");
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random uses, clock advances, removals, retains and sweeps: the keyed map holds at
    /// most its cap, evicts only for a new key in a full map (at most two keys, never the
    /// new one), forgets idle keys on time and keeps every other key's state.
    #[test]
    fn keyed_map_agrees_with_model(
        cap in 1..=CAP_MAX,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        run_model(cap, ops);
    }
}

#[test]
fn keyed_state_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<riprap::breaker::KeyedBreakers<String>>();
    send_sync::<KeyLimits<String>>();
    send_sync::<KeyedRateLimiter<String>>();
}
