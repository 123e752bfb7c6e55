//! Behaviour of `riprap::cache` on a paused clock: single-flight, freshness, stale-if-error,
//! negative caching, invalidation races, cancellation, batch refresh, bounds and events.

mod common;

#[path = "checks/cache_ops.rs"]
mod cache_ops_check;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use proptest::prelude::*;
use riprap::cache::{BatchConfig, Cache, CacheConfig, CacheError, CacheEvent};
use riprap::classify::Class;
use tokio::time::{advance, sleep};
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbError {
    Down,
    NotFound,
}

impl riprap::classify::Classified for DbError {
    fn class(&self) -> Class {
        match self {
            DbError::Down => Class::Transient,
            DbError::NotFound => Class::Permanent,
        }
    }
}

/// A fake database: a version per key, a call counter, a switch to make it fail.
#[derive(Clone, Default)]
struct Db {
    versions: Arc<Mutex<HashMap<u32, u64>>>,
    calls: Arc<AtomicUsize>,
    batch_calls: Arc<Mutex<Vec<usize>>>,
    down: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

impl Db {
    fn set(&self, key: u32, version: u64) {
        self.versions.lock().unwrap().insert(key, version);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn loader(
        self,
    ) -> impl Service<
        u32,
        Response = u64,
        Error = DbError,
        Future = impl Future<Output = Result<u64, DbError>> + Send,
    > + Clone
    + Send
    + 'static {
        let db = self;
        service_fn(move |key: u32| {
            let db = db.clone();
            async move {
                db.calls.fetch_add(1, Ordering::SeqCst);
                let found = db.versions.lock().unwrap().get(&key).copied();
                sleep(Duration::from_millis(db.delay_ms.load(Ordering::SeqCst))).await;
                if db.down.load(Ordering::SeqCst) {
                    return Err(DbError::Down);
                }
                found.ok_or(DbError::NotFound)
            }
        })
    }

    fn batch_loader(
        self,
    ) -> impl Service<
        Vec<u32>,
        Response = HashMap<u32, u64>,
        Error = DbError,
        Future = impl Future<Output = Result<HashMap<u32, u64>, DbError>> + Send,
    > + Clone
    + Send
    + 'static {
        let db = self;
        service_fn(move |keys: Vec<u32>| {
            let db = db.clone();
            async move {
                db.batch_calls.lock().unwrap().push(keys.len());
                let found: HashMap<u32, u64> = {
                    let versions = db.versions.lock().unwrap();
                    keys.iter()
                        .filter_map(|k| versions.get(k).map(|v| (*k, *v)))
                        .collect()
                };
                sleep(Duration::from_millis(db.delay_ms.load(Ordering::SeqCst))).await;
                if db.down.load(Ordering::SeqCst) {
                    return Err(DbError::Down);
                }
                Ok(found)
            }
        })
    }
}

/// Down is worth another try; not found is the database's final word.
#[derive(Clone, Copy)]
struct DbClassifier;

impl riprap::classify::Classify<u64, DbError> for DbClassifier {
    fn classify(&self, out: Result<&u64, &DbError>) -> Class {
        match out {
            Ok(_) => Class::Success,
            Err(DbError::Down) => Class::Transient,
            Err(DbError::NotFound) => Class::Permanent,
        }
    }
}

fn config() -> riprap::cache::CacheConfigBuilder {
    CacheConfig::builder()
        .capacity(1_000)
        .refresh_after(Duration::from_secs(10))
        .expire_after(Duration::from_secs(60))
}

type Svc = riprap::cache::CacheService<
    tower::util::BoxCloneService<u32, u64, DbError>,
    u32,
    u64,
    DbError,
    DbClassifier,
>;

fn service(cache: &Cache<u32, u64, DbError>, db: &Db) -> Svc {
    cache
        .layer()
        .classifier(DbClassifier)
        .layer(tower::util::BoxCloneService::new(db.clone().loader()))
}

fn get(
    svc: &Svc,
    key: u32,
) -> impl Future<Output = Result<u64, CacheError<DbError>>> + Send + 'static {
    svc.clone().oneshot(key)
}

#[tokio::test(start_paused = true)]
async fn stampede_on_a_cold_key_makes_one_load() {
    let db = Db::default();
    db.set(1, 7);
    db.delay_ms.store(50, Ordering::SeqCst);
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);

    let reads = join_all((0..1_000).map(|_| get(&svc, 1))).await;
    assert!(reads.iter().all(|r| *r == Ok(7)));
    assert_eq!(db.calls(), 1);

    // Past the hard limit every reader waits, and still only one load is made.
    advance(Duration::from_secs(61)).await;
    db.set(1, 8);
    let reads = join_all((0..1_000).map(|_| get(&svc, 1))).await;
    assert!(reads.iter().all(|r| *r == Ok(8)));
    assert_eq!(db.calls(), 2);
    assert_eq!(cache.metrics().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let db = Db::default();
    db.set(1, 1);
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);
    assert_eq!(get(&svc, 1).await, Ok(1));

    advance(Duration::from_secs(11)).await;
    db.set(1, 2);
    db.delay_ms.store(100, Ordering::SeqCst);
    // Between the soft and hard limits: the old value at once, one background refresh.
    let reads = join_all((0..100).map(|_| get(&svc, 1))).await;
    assert!(reads.iter().all(|r| *r == Ok(1)));
    tokio::task::yield_now().await;
    assert_eq!(db.calls(), 2);
    assert_eq!(cache.get(&1), Some(1));

    sleep(150 * MS).await;
    assert_eq!(get(&svc, 1).await, Ok(2));
    assert_eq!(db.calls(), 2);
    let m = cache.metrics();
    assert!(m.stale_hits >= 100, "{m:?}");
}

#[tokio::test(start_paused = true)]
async fn a_change_shows_within_refresh_after_without_invalidation() {
    let db = Db::default();
    db.set(1, 1);
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);
    assert_eq!(get(&svc, 1).await, Ok(1));
    db.set(1, 2);
    let mut seen_at = None;
    for step in 0..200 {
        sleep(100 * MS).await;
        if get(&svc, 1).await == Ok(2) {
            seen_at = Some(step);
            break;
        }
    }
    // Seen on the first read after refresh_after (10 s) plus the refresh itself.
    let seen_at = seen_at.expect("change never showed");
    assert!((100..=101).contains(&seen_at), "{seen_at}");
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_the_old_value_while_loads_fail() {
    let db = Db::default();
    db.set(1, 1);
    let cache = Cache::new(
        config()
            .stale_if_error(Duration::from_secs(30))
            .build()
            .unwrap(),
    );
    let svc = service(&cache, &db);
    assert_eq!(get(&svc, 1).await, Ok(1));

    db.down.store(true, Ordering::SeqCst);
    advance(Duration::from_secs(61)).await;
    assert_eq!(get(&svc, 1).await, Ok(1), "within stale_if_error");
    advance(Duration::from_secs(28)).await;
    assert_eq!(get(&svc, 1).await, Ok(1));
    advance(Duration::from_secs(1)).await; // expired 30 s ago: past stale_if_error
    assert!(matches!(get(&svc, 1).await, Err(CacheError::Load(e)) if *e == DbError::Down));
    assert!(cache.metrics().stale_if_error >= 2);

    // Recovery: the next load stores a fresh value.
    db.down.store(false, Ordering::SeqCst);
    assert_eq!(get(&svc, 1).await, Ok(1));
    assert_eq!(cache.get(&1), Some(1));
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_are_not_served_stale_and_can_be_remembered() {
    let db = Db::default();
    let cache = Cache::new(
        config()
            .stale_if_error(Duration::from_secs(30))
            .negative_ttl(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    let svc = service(&cache, &db);
    for _ in 0..10 {
        let err = get(&svc, 9).await.unwrap_err();
        assert!(matches!(err, CacheError::Load(e) if *e == DbError::NotFound));
    }
    assert_eq!(db.calls(), 1, "remembered for negative_ttl");
    assert_eq!(cache.metrics().negative_hits, 9);

    advance(Duration::from_secs(5)).await;
    db.set(9, 3);
    assert_eq!(get(&svc, 9).await, Ok(3));

    // A key deleted at the source is not served stale even within stale_if_error.
    db.versions.lock().unwrap().remove(&9);
    advance(Duration::from_secs(61)).await;
    assert!(get(&svc, 9).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn an_ok_response_classified_permanent_is_remembered_for_negative_ttl() {
    // A loader answering `Ok(None)` for a missing row: the classifier calls it permanent.
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let cache: Cache<u32, Option<u64>, DbError> = Cache::new(
        config()
            .negative_ttl(Duration::from_secs(5))
            .build()
            .unwrap(),
    );
    let classify = riprap::classify::classify_fn(|out: Result<&Option<u64>, &DbError>| match out {
        Ok(Some(_)) => Class::Success,
        Ok(None) => Class::Permanent,
        Err(_) => Class::Transient,
    });
    let svc = cache
        .layer()
        .classifier(classify)
        .layer(service_fn(move |_: u32| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, DbError>(None) }
        }));
    for _ in 0..10 {
        assert_eq!(svc.clone().oneshot(1).await, Ok(None));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    advance(Duration::from_secs(5)).await;
    assert_eq!(svc.clone().oneshot(1).await, Ok(None));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "asked again after negative_ttl"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_are_not_cached_by_default() {
    let db = Db::default();
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);
    assert!(get(&svc, 1).await.is_err());
    assert!(get(&svc, 1).await.is_err());
    assert_eq!(db.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn invalidate_shows_a_write_at_once() {
    let db = Db::default();
    db.set(1, 1);
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);
    assert_eq!(get(&svc, 1).await, Ok(1));
    db.set(1, 2);
    assert_eq!(get(&svc, 1).await, Ok(1), "cached until invalidated");
    cache.invalidate(&1);
    assert_eq!(get(&svc, 1).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn an_invalidation_racing_a_load_never_lets_the_older_value_win() {
    let db = Db::default();
    db.set(1, 1);
    db.delay_ms.store(100, Ordering::SeqCst);
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);

    // A load reads version 1, then the row changes and is invalidated while it is in flight.
    let early = tokio::spawn(get(&svc, 1));
    sleep(10 * MS).await;
    db.set(1, 2);
    cache.invalidate(&1);
    let late = get(&svc, 1).await;
    assert_eq!(
        late,
        Ok(2),
        "a read after the invalidation starts its own load"
    );
    assert_eq!(
        early.await.unwrap(),
        Ok(1),
        "the early reader gets its own load's answer"
    );
    sleep(200 * MS).await;
    assert_eq!(
        cache.get(&1),
        Some(2),
        "the older load did not overwrite the newer value"
    );

    // Same with insert and invalidate_all.
    db.set(1, 3);
    cache.invalidate(&1);
    let early = tokio::spawn(get(&svc, 1));
    sleep(10 * MS).await;
    cache.insert(1, 4);
    assert_eq!(early.await.unwrap(), Ok(3));
    assert_eq!(cache.get(&1), Some(4));

    cache.invalidate_all();
    db.set(1, 5);
    let early = tokio::spawn(get(&svc, 1));
    sleep(10 * MS).await;
    db.set(1, 6);
    cache.invalidate_all();
    assert_eq!(early.await.unwrap(), Ok(5));
    assert_eq!(cache.get(&1), None);
    assert_eq!(get(&svc, 1).await, Ok(6));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_leading_waiter_never_strands_the_others() {
    for seed in 0..64u64 {
        let db = Db::default();
        db.set(1, seed);
        db.delay_ms.store(20 + seed % 7, Ordering::SeqCst);
        let cache = Cache::new(config().build().unwrap());
        let svc = service(&cache, &db);

        let mut leader = Box::pin(get(&svc, 1));
        // Poll the leader a seed-chosen number of times, letting time pass in between,
        // then drop it.
        let polls = seed % 4;
        for _ in 0..polls {
            let _ = futures_util::FutureExt::now_or_never(leader.as_mut());
            sleep(Duration::from_millis(seed % 13)).await;
        }
        let followers: Vec<_> = (0..10).map(|_| tokio::spawn(get(&svc, 1))).collect();
        if seed % 2 == 0 {
            sleep(Duration::from_millis(seed % 30)).await;
        }
        drop(leader);
        for f in followers {
            assert_eq!(f.await.unwrap(), Ok(seed), "seed {seed}");
        }
        assert_eq!(db.calls(), 1, "seed {seed}");
        assert_eq!(cache.metrics().in_flight, 0, "seed {seed}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_loader_abandons_its_waiters_without_stranding_them() {
    let cache: Cache<u32, u64, DbError> = Cache::new(config().build().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let svc = cache.layer().layer(service_fn(move |key: u32| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            sleep(10 * MS).await;
            if n == 0 {
                panic!("loader bug");
            }
            Ok::<_, DbError>(u64::from(key))
        }
    }));
    let reads = join_all((0..5).map(|_| svc.clone().oneshot(3))).await;
    assert!(
        reads
            .iter()
            .all(|r| matches!(r, Err(CacheError::Abandoned)))
    );
    assert_eq!(cache.metrics().in_flight, 0);
    assert_eq!(svc.clone().oneshot(3).await, Ok(3));
}

#[tokio::test(start_paused = true)]
async fn too_many_keys_loading_is_an_error_not_a_queue() {
    let db = Db::default();
    db.set(1, 1);
    db.set(2, 2);
    db.delay_ms.store(50, Ordering::SeqCst);
    let cache = Cache::new(config().max_in_flight(1).build().unwrap());
    let svc = service(&cache, &db);
    let first = tokio::spawn(get(&svc, 1));
    sleep(MS).await;
    assert!(matches!(get(&svc, 2).await, Err(CacheError::Overloaded)));
    assert_eq!(first.await.unwrap(), Ok(1));
    assert_eq!(get(&svc, 2).await, Ok(2));
    assert_eq!(cache.metrics().overloaded, 1);
}

#[tokio::test(start_paused = true)]
async fn batch_refresh_makes_one_call_per_max_batch_due_keys() {
    for (n, max_batch) in [(1usize, 10usize), (10, 10), (11, 10), (95, 10), (250, 64)] {
        let db = Db::default();
        for k in 0..n as u32 {
            db.set(k, 1);
        }
        let cache = Cache::new(config().build().unwrap());
        let svc = service(&cache, &db);
        let batch = BatchConfig::builder()
            .max_batch(max_batch)
            .interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let refresher = cache
            .batch_refresher(db.clone().batch_loader(), batch)
            .unwrap();
        for k in 0..n as u32 {
            assert_eq!(get(&svc, k).await, Ok(1));
        }
        assert_eq!(db.calls(), n, "misses load per key");

        for k in 0..n as u32 {
            db.set(k, 2);
        }
        advance(Duration::from_secs(11)).await;
        for k in 0..n as u32 {
            assert_eq!(get(&svc, k).await, Ok(1), "stale, queued");
        }
        assert_eq!(refresher.pending(), n);
        assert_eq!(
            db.calls(),
            n,
            "stale keys are queued, not loaded one by one"
        );
        sleep(Duration::from_millis(250)).await;

        let calls = db.batch_calls.lock().unwrap().clone();
        assert_eq!(
            calls.len(),
            n.div_ceil(max_batch),
            "n={n} max_batch={max_batch}"
        );
        assert!(calls.iter().all(|&c| c <= max_batch));
        assert_eq!(calls.iter().sum::<usize>(), n);
        for k in 0..n as u32 {
            assert_eq!(cache.get(&k), Some(2));
        }
        let m = cache.metrics();
        assert_eq!(m.batch_keys, n as u64);
        assert_eq!(m.in_flight, 0);
    }
}

#[tokio::test(start_paused = true)]
async fn warm_preloads_in_batches() {
    let db = Db::default();
    for k in 0..1_000 {
        db.set(k, 5);
    }
    let cache: Cache<u32, u64, DbError> = Cache::new(config().capacity(2_000).build().unwrap());
    let batch = BatchConfig::builder().max_batch(300).build().unwrap();
    let refresher = cache
        .batch_refresher(db.clone().batch_loader(), batch)
        .unwrap();
    // Keys the database does not have are simply not stored.
    assert_eq!(refresher.warm(0..1_100).await, Ok(1_000));
    assert_eq!(*db.batch_calls.lock().unwrap(), [300, 300, 300, 200]);
    assert_eq!(cache.get(&999), Some(5));
    assert_eq!(cache.get(&1_050), None);

    db.down.store(true, Ordering::SeqCst);
    assert_eq!(refresher.warm([1, 2]).await, Err(DbError::Down));
}

#[tokio::test(start_paused = true)]
async fn keys_missing_from_a_batch_or_a_failed_batch_keep_their_value_until_expiry() {
    let db = Db::default();
    db.set(1, 1);
    db.set(2, 1);
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);
    let batch = BatchConfig::builder()
        .interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let _refresher = cache
        .batch_refresher(db.clone().batch_loader(), batch)
        .unwrap();
    assert_eq!(get(&svc, 1).await, Ok(1));
    assert_eq!(get(&svc, 2).await, Ok(1));

    db.versions.lock().unwrap().remove(&2);
    db.set(1, 2);
    advance(Duration::from_secs(11)).await;
    let _ = get(&svc, 1).await;
    let _ = get(&svc, 2).await;
    sleep(Duration::from_millis(150)).await;
    assert_eq!(cache.get(&1), Some(2));
    assert_eq!(
        cache.get(&2),
        Some(1),
        "missing from the response: left as it was"
    );

    db.down.store(true, Ordering::SeqCst);
    db.set(1, 3);
    advance(Duration::from_secs(11)).await;
    let _ = get(&svc, 1).await;
    sleep(Duration::from_millis(150)).await;
    assert_eq!(cache.get(&1), Some(2), "a failed batch leaves the value");
    assert_eq!(cache.metrics().batch_errors, 1);

    // Past the hard limit a read loads key 2 on its own, and learns it is gone.
    db.down.store(false, Ordering::SeqCst);
    advance(Duration::from_secs(60)).await;
    assert!(matches!(get(&svc, 2).await, Err(CacheError::Load(e)) if *e == DbError::NotFound));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_refresher_stops_it_and_restores_per_key_refresh() {
    let db = Db::default();
    db.set(1, 1);
    let cache = Cache::new(config().build().unwrap());
    let svc = service(&cache, &db);
    let batch = BatchConfig::builder().build().unwrap();
    let refresher = cache
        .batch_refresher(db.clone().batch_loader(), batch.clone())
        .unwrap();
    assert!(
        cache
            .batch_refresher(db.clone().batch_loader(), batch.clone())
            .is_err()
    );
    assert_eq!(get(&svc, 1).await, Ok(1));
    drop(refresher);

    db.set(1, 2);
    advance(Duration::from_secs(11)).await;
    assert_eq!(get(&svc, 1).await, Ok(1));
    sleep(10 * MS).await;
    assert!(db.batch_calls.lock().unwrap().is_empty());
    assert_eq!(db.calls(), 2, "refreshed per key");
    assert_eq!(cache.get(&1), Some(2));
    // A new refresher may be attached.
    let _again = cache
        .batch_refresher(db.clone().batch_loader(), batch)
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn early_refresh_spreads_refreshes_of_keys_loaded_together() {
    let db = Db::default();
    for k in 0..100 {
        db.set(k, 1);
    }
    db.delay_ms.store(1_000, Ordering::SeqCst);
    let stale_before_deadline = |beta: Option<f64>| {
        let db = db.clone();
        async move {
            let mut b = config().seed(7);
            if let Some(beta) = beta {
                b = b.early_refresh(beta);
            }
            let cache = Cache::new(b.build().unwrap());
            let svc = service(&cache, &db);
            join_all((0..100).map(|k| get(&svc, k))).await;
            // Loads took 1 s and started at t0; the plain refresh point is t0 + 10 s.
            advance(Duration::from_millis(8_500)).await;
            for k in 0..100 {
                cache.get(&k);
            }
            cache.metrics().stale_hits
        }
    };
    assert_eq!(stale_before_deadline(None).await, 0);
    let early = stale_before_deadline(Some(1.0)).await;
    // P(−ln u > 0.5) = e^−0.5 ≈ 61 %: some keys come due early, not all.
    assert!((30..=90).contains(&early), "{early}");
}

#[tokio::test(start_paused = true)]
async fn capacity_bounds_the_entries_and_counts_evictions() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let cache: Cache<u32, u64, DbError> = Cache::new(
        config()
            .capacity(100)
            .listener(riprap::events::only(move |e: &CacheEvent| {
                sink.lock().unwrap().push(*e)
            }))
            .build()
            .unwrap(),
    );
    for k in 0..1_000 {
        cache.insert(k, 0);
    }
    let m = cache.metrics();
    assert!(m.entries <= 100, "{m:?}");
    assert!(m.evictions >= 900, "{m:?}");
    let seen = events.lock().unwrap();
    assert_eq!(
        seen.iter().filter(|e| **e == CacheEvent::Evicted).count() as u64,
        m.evictions
    );
}

#[tokio::test(start_paused = true)]
async fn events_and_metrics_count_what_happened() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let db = Db::default();
    db.set(1, 1);
    let cache = Cache::new(
        config()
            .listener(riprap::events::only(move |e: &CacheEvent| {
                sink.lock().unwrap().push(e.as_str())
            }))
            .build()
            .unwrap(),
    );
    let svc = service(&cache, &db);
    get(&svc, 1).await.unwrap();
    get(&svc, 1).await.unwrap();
    advance(Duration::from_secs(11)).await;
    get(&svc, 1).await.unwrap();
    sleep(MS).await;
    let _ = get(&svc, 2).await;
    cache.invalidate(&1);
    assert_eq!(
        *events.lock().unwrap(),
        [
            "miss",
            "loaded",
            "hit",
            "stale_hit",
            "loaded",
            "miss",
            "load_failed",
            "invalidated"
        ]
    );
    let m = cache.metrics();
    assert_eq!(
        (
            m.hits,
            m.stale_hits,
            m.misses,
            m.loads,
            m.load_errors,
            m.invalidations
        ),
        (1, 1, 2, 2, 1, 1)
    );
}

#[test]
fn configs_are_validated_with_the_knob_named() {
    let s = Duration::from_secs;
    let cases: Vec<(riprap::cache::CacheConfigBuilder, &str)> = vec![
        (CacheConfig::builder().capacity(0), "cache.capacity"),
        (
            CacheConfig::builder().max_in_flight(0),
            "cache.max_in_flight",
        ),
        (
            CacheConfig::builder().expire_after(Duration::ZERO),
            "cache.expire_after",
        ),
        (
            CacheConfig::builder().expire_after(Duration::MAX),
            "cache.expire_after",
        ),
        (
            CacheConfig::builder()
                .refresh_after(s(60))
                .expire_after(s(60)),
            "cache.refresh_after",
        ),
        (
            CacheConfig::builder()
                .refresh_after(s(61))
                .expire_after(s(60)),
            "cache.refresh_after",
        ),
        (
            CacheConfig::builder().refresh_after(Duration::ZERO),
            "cache.refresh_after",
        ),
        (
            CacheConfig::builder().stale_if_error(Duration::from_nanos(u64::MAX)),
            "cache.stale_if_error",
        ),
        (
            CacheConfig::builder().negative_ttl(Duration::ZERO),
            "cache.negative_ttl",
        ),
        (
            CacheConfig::builder()
                .refresh_after(s(1))
                .early_refresh(f64::NAN),
            "cache.early_refresh",
        ),
        (
            CacheConfig::builder()
                .refresh_after(s(1))
                .early_refresh(0.0),
            "cache.early_refresh",
        ),
        (
            CacheConfig::builder().early_refresh(1.0),
            "cache.early_refresh",
        ),
        (
            CacheConfig::builder()
                .refresh_after(MS)
                .clock_resolution(MS),
            "cache.clock_resolution",
        ),
        (
            CacheConfig::builder().clock_resolution(Duration::from_micros(10)),
            "cache.clock_resolution",
        ),
    ];
    for (builder, knob) in cases {
        assert_eq!(builder.build().unwrap_err().knob(), knob);
    }
    assert_eq!(
        BatchConfig::builder()
            .max_batch(0)
            .build()
            .unwrap_err()
            .knob(),
        "cache.max_batch"
    );
    assert_eq!(
        BatchConfig::builder()
            .max_pending(0)
            .build()
            .unwrap_err()
            .knob(),
        "cache.max_pending"
    );
    assert_eq!(
        BatchConfig::builder()
            .interval(Duration::ZERO)
            .build()
            .unwrap_err()
            .knob(),
        "cache.interval"
    );
    assert!(
        CacheConfig::builder()
            .refresh_after(s(1))
            .expire_after(s(2))
            .clock_resolution(Duration::ZERO)
            .early_refresh(2.0)
            .build()
            .is_ok()
    );
}

#[test]
fn a_refresher_needs_a_runtime() {
    let cache: Cache<u32, u64, DbError> = Cache::new(config().build().unwrap());
    let db = Db::default();
    let err = cache
        .batch_refresher(
            db.clone().batch_loader(),
            BatchConfig::builder().build().unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.knob(), "cache.batch_refresher");
}

#[test]
fn outside_a_runtime_a_miss_is_abandoned_not_a_panic() {
    let cache: Cache<u32, u64, DbError> = Cache::new(config().build().unwrap());
    let db = Db::default();
    let mut svc = service(&cache, &db);
    let fut = svc.call(1);
    let out = futures_util::FutureExt::now_or_never(fut);
    assert!(matches!(out, Some(Err(CacheError::Abandoned))));
    cache.insert(1, 1);
    assert_eq!(
        futures_util::FutureExt::now_or_never(svc.call(1)),
        Some(Ok(1))
    );
}

#[test]
fn cache_ops_corpus() {
    common::replay_corpus("cache_ops", cache_ops_check::run);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Random interleavings of reads, writes, invalidations, failing and slow loads, batch
    /// refreshes and time steps, checked against the reference model in the fuzz check.
    #[test]
    fn staleness_matches_the_model(data in prop::collection::vec(any::<u8>(), 0..300)) {
        cache_ops_check::run(&data);
    }
}
