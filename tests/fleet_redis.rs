//! The fleet layers on Redis, against a real throwaway server per test (see
//! `support/servers.rs`; skipped with one loud line without `redis-server`, failed under
//! `CI=true`). Each "process" is a `Fleet` handle of its own: its own connections, its own
//! leases, its own local gate, exactly what a second OS process would have.
//!
//! These tests run on the real clock (the server's clock is real), with every loop bounded
//! in count and time; they assert orderings and counts, never durations of the test machine.
#![cfg(feature = "redis")]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use riprap::backoff::BackoffPolicy;
use riprap::classify::Class;
use riprap::fleet::{Fleet, FleetEvent};
use riprap::ratelimit::{RateLimitConfig, RateLimiter};
use support::servers::Redis;
use tokio::time::Instant;

fn fleet(redis: &Redis) -> Fleet {
    Fleet::builder(&redis.url())
        .timeout(Duration::from_millis(200))
        .reconnect(
            BackoffPolicy::exponential(Duration::from_millis(20))
                .max_delay(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// Wait (bounded) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Four processes race for a quota of 40 with no lease slack: exactly 40 pass, because GCRA
/// runs on the server, one script at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcra_is_atomic_under_concurrency() {
    let Some(redis) = Redis::start() else { return };
    let config = RateLimitConfig::builder()
        .requests(40, Duration::from_secs(3600))
        .max_wait(Duration::from_secs(2))
        .build()
        .unwrap();
    let passed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let fleet = fleet(&redis);
        let limiter = fleet
            .limiter_builder("atomic", config.clone())
            .lease(1)
            .build()
            .unwrap();
        for _ in 0..8 {
            let (limiter, passed) = (limiter.clone(), Arc::clone(&passed));
            tasks.push(tokio::spawn(async move {
                for _ in 0..4 {
                    if limiter.acquire(1).await.is_ok() {
                        passed.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
        tasks.push(tokio::spawn(async move { drop(fleet) }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(passed.load(Relaxed), 40);
}

/// Weighted cost: a request quota and a token quota are booked together or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_cost_books_both_quotas_together() {
    let Some(redis) = Redis::start() else { return };
    let hour = Duration::from_secs(3600);
    let config = RateLimitConfig::builder()
        .requests(100, hour)
        .cost(1_000, hour)
        .reject_when_limited()
        .build()
        .unwrap();
    let fleet = fleet(&redis);
    let limiter = fleet
        .limiter_builder("tokens", config)
        .lease(1)
        .cost_lease(1)
        .build()
        .unwrap();
    let mut passed = 0;
    for _ in 0..20 {
        if limiter.acquire(300).await.is_ok() {
            passed += 1;
        }
    }
    // 1,000 tokens pay for three requests of 300; the request quota had room for 100.
    assert_eq!(passed, 3);
    assert!(matches!(
        limiter.acquire(1_001).await,
        Err(riprap::ratelimit::RateLimitError::CostExceedsBurst { .. })
    ));
}

/// Leasing: at steady state a process makes at most one round trip per ten acquires; a
/// lease of one makes one per acquire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_cut_round_trips() {
    let Some(redis) = Redis::start() else { return };
    let config = RateLimitConfig::builder()
        .requests(1_000_000, Duration::from_secs(1))
        .build()
        .unwrap();
    let acquires = 2_000u64;
    let mut trips = Vec::new();
    for lease in [20, 1] {
        let fleet = fleet(&redis);
        let limiter = fleet
            .limiter_builder(&format!("lease-{lease}"), config.clone())
            .lease(lease)
            .shared_gate(false)
            .build()
            .unwrap();
        for _ in 0..acquires {
            limiter.acquire(1).await.unwrap();
        }
        trips.push(fleet.round_trips());
    }
    let (leased, single) = (trips[0], trips[1]);
    assert!(
        leased * 10 <= acquires,
        "{leased} round trips for {acquires} acquires with a lease of 20"
    );
    assert!(
        single + 1 >= acquires,
        "{single} round trips for {acquires} acquires with a lease of 1"
    );
}

/// A 429 seen by one process pauses the other, for at least as long as the server asked;
/// a process that subscribes later still hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_propagates_between_processes() {
    let Some(redis) = Redis::start() else { return };
    let config = RateLimitConfig::builder()
        .requests(1_000, Duration::from_secs(1))
        .build()
        .unwrap();
    let (a_fleet, b_fleet) = (fleet(&redis), fleet(&redis));
    let a = a_fleet.limiter("api", config.clone()).unwrap();
    let b = b_fleet.limiter("api", config.clone()).unwrap();
    let b_gate = b_fleet.gate("api");
    eventually("both subscribed", || b_gate.is_subscribed()).await;
    let a_gate = a_fleet.gate("api");
    eventually("a subscribed", || a_gate.is_subscribed()).await;

    let admitted = a.acquire(1).await.unwrap();
    let asked = Duration::from_secs(3);
    let seen = Instant::now();
    a.observe(
        admitted,
        &Class::Throttled {
            retry_after: Some(asked),
        },
        None,
    );
    eventually("b paused", || b_gate.paused_for().is_some()).await;
    // B's limiter consults the shared gate on its next acquire.
    let refused = RateLimiter::try_acquire(&b, 1).unwrap_err();
    let now = Instant::now();
    let reopens = now + b.reopens_in().expect("b's gate is closed");
    assert!(
        reopens >= seen + asked,
        "b reopens {:?} before the server asked",
        (seen + asked) - reopens
    );
    assert!(matches!(
        refused,
        riprap::ratelimit::RateLimitError::Limited { .. }
    ));

    // A third process arriving during the pause reads it from the key.
    let c_fleet = fleet(&redis);
    let c_gate = c_fleet.gate("api");
    eventually("c hears the pause", || c_gate.paused_for().is_some()).await;
    let c_reopens = Instant::now() + c_gate.paused_for().unwrap();
    assert!(c_reopens + Duration::from_millis(1) >= seen + asked);
}

/// Redis killed mid-run: no acquire hangs or panics, throughput falls to the local share,
/// events say so, and the fleet quota is back once Redis returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_falls_back_and_recovers() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let fleet = Fleet::builder(&redis.url())
        .timeout(Duration::from_millis(100))
        .reconnect(
            BackoffPolicy::exponential(Duration::from_millis(20))
                .max_delay(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .listener(riprap::events::only(move |e: &FleetEvent| {
            sink.lock().unwrap().push(e.as_str())
        }))
        .build()
        .unwrap();
    // 2,000/s fleet-wide; this process's share while Redis is down is a tenth: 200/s.
    let config = RateLimitConfig::builder()
        .requests(2_000, Duration::from_secs(1))
        .request_burst(100)
        .max_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    let limiter = fleet
        .limiter_builder("killed", config)
        .local_share(0.1)
        .build()
        .unwrap();

    /// Acquires during `span` by 4 workers, and the slowest acquire.
    async fn run(limiter: &RateLimiter, span: Duration) -> (u64, Duration) {
        let stop = Instant::now() + span;
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let (mut n, mut slowest) = (0u64, Duration::ZERO);
                while Instant::now() < stop {
                    let t = Instant::now();
                    let ok = limiter.acquire(1).await.is_ok();
                    slowest = slowest.max(t.elapsed());
                    if ok {
                        n += 1;
                    } else {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                (n, slowest)
            }));
        }
        let mut total = (0, Duration::ZERO);
        for t in tasks {
            let (n, s) = t.await.unwrap();
            total = (total.0 + n, total.1.max(s));
        }
        total
    }

    let span = Duration::from_millis(500);
    let (up, _) = run(&limiter, span).await;
    redis.kill();
    let (down, slowest) = run(&limiter, span).await;
    assert!(!fleet.is_up());
    // The local share: 200/s for 0.5 s, its burst of 10, and what was held when Redis died.
    assert!(
        down <= 100 + 10 + 20 + 5,
        "{down} acquires while Redis was down"
    );
    assert!(down > 0, "the local share must keep the process going");
    assert!(
        up > 2 * down,
        "{up} acquires with Redis up vs {down} without"
    );
    // Nobody waited on the dead server past the timeout (plus the limiter's own wait).
    assert!(
        slowest < Duration::from_secs(2),
        "an acquire took {slowest:?}"
    );

    redis.restart();
    eventually("the fleet reconnects", || {
        let l = limiter.clone();
        let _ = l.try_acquire(1);
        fleet.is_up()
    })
    .await;
    let (again, _) = run(&limiter, span).await;
    assert!(
        again > 2 * down,
        "{again} acquires after recovery vs {down} down"
    );
    let seen = events.lock().unwrap().clone();
    assert!(seen.contains(&"degraded"), "{seen:?}");
    assert!(seen.contains(&"recovered"), "{seen:?}");
}

/// Deposits in one process pay for retries in another: the budget is the fleet's sum, and
/// the fleet together cannot withdraw more than it holds (beyond what one sync lets slip).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_budget_sums_across_processes() {
    use riprap::budget::{Budget, RatioBudget};
    let Some(redis) = Redis::start() else { return };
    let knobs = || RatioBudget::builder().ratio(0.5).min_retries_per_sec(0);
    let (a_fleet, b_fleet) = (fleet(&redis), fleet(&redis));
    let sync = Duration::from_millis(20);
    let a = a_fleet.budget_synced("api", knobs(), sync).unwrap();
    let b = b_fleet.budget_synced("api", knobs(), sync).unwrap();
    eventually("both synced", || a.is_shared() && b.is_shared()).await;
    for _ in 0..20 {
        a.deposit(); // 20 first attempts in process A: 10 retries for the fleet
    }
    eventually("B sees A's deposits", || b.balance() >= 10.0).await;
    let failure = Class::Transient;
    let mut b_retries = 0;
    while b.try_withdraw(failure).is_some() {
        b_retries += 1;
        assert!(b_retries <= 10);
    }
    assert_eq!(b_retries, 10, "B spends what A deposited");
    // A hears of B's withdrawals at its next sync, and has nothing left to spend.
    eventually("A sees B's withdrawals", || a.balance() < 1.0).await;
    assert!(a.try_withdraw(failure).is_none());
}

/// The Redis offset store: the successor resumes from the committed position; the
/// zombie's saves are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_offsets_fence_a_zombie() {
    use riprap::fleet::Fenced;
    use riprap::stream::{CheckpointError, OffsetStore};
    let Some(redis) = Redis::start() else { return };
    let fleet = fleet(&redis);
    let zombie = fleet.offsets::<u64>("logs").await.unwrap();
    assert_eq!(zombie.load().await.unwrap(), None);
    zombie.save(&41).await.unwrap();
    let successor = fleet.offsets::<u64>("logs").await.unwrap();
    assert!(successor.epoch() > zombie.epoch());
    assert_eq!(successor.load().await.unwrap(), Some(41));
    let err = zombie.save(&3).await.unwrap_err();
    assert!(matches!(&err, CheckpointError::Backend(b) if b.downcast_ref::<Fenced>().is_some()));
    successor.save(&42).await.unwrap();
    assert_eq!(zombie.load().await.unwrap(), Some(42));
}

fn cache() -> riprap::cache::Cache<String, u32, std::io::Error> {
    let config = riprap::cache::CacheConfig::builder()
        .expire_after(Duration::from_secs(3600))
        .build()
        .unwrap();
    riprap::cache::Cache::new(config)
}

/// `invalidate` on one process reaches every other process's cache; after the subscription
/// is lost and back, entries that may have missed their message are gone too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_fans_out_and_survives_a_lost_subscription() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut shared = Vec::new();
    let mut fleets = Vec::new();
    for i in 0..3 {
        let sink = Arc::clone(&events);
        let fleet = Fleet::builder(&redis.url())
            .timeout(Duration::from_millis(200))
            .reconnect(
                BackoffPolicy::exponential(Duration::from_millis(20))
                    .max_delay(Duration::from_millis(100))
                    .build()
                    .unwrap(),
            )
            .listener(riprap::events::only(move |e: &FleetEvent| {
                sink.lock().unwrap().push((i, e.as_str()))
            }))
            .build()
            .unwrap();
        let c = cache();
        c.insert("flags".into(), 1);
        c.insert("limits".into(), 2);
        shared.push(fleet.invalidation("settings", c));
        fleets.push(fleet);
    }
    eventually("all subscribed", || {
        shared.iter().all(|s| s.is_subscribed())
    })
    .await;
    assert!(shared[0].invalidate(&"flags".to_string()).await);
    eventually("every process forgot it", || {
        shared.iter().all(|s| s.cache().get("flags").is_none())
    })
    .await;
    assert!(shared.iter().all(|s| s.cache().get("limits") == Some(2)));

    // Redis goes away: the subscriptions are lost, and an event says so in every process.
    redis.kill();
    eventually("subscriptions lost", || {
        shared.iter().all(|s| !s.is_subscribed())
    })
    .await;
    let lost = |ev: &Vec<(i32, &str)>| (0..3).all(|i| ev.contains(&(i, "subscription_lost")));
    assert!(lost(&events.lock().unwrap()));
    // An invalidation sent meanwhile cannot arrive...
    shared[1].cache().insert("limits".into(), 3);
    assert!(!shared[1].invalidate(&"limits".to_string()).await);
    redis.restart();
    eventually("resubscribed", || shared.iter().all(|s| s.is_subscribed())).await;
    // ...so every cache dropped what it held when it came back.
    assert!(shared.iter().all(|s| s.cache().get("limits").is_none()));
}

/// A Redis that stops answering without closing anything (frozen with SIGSTOP): no caller
/// waits on it past the fleet's timeout, the quota falls back to the local share, and the
/// fleet is back once Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_redis_bounds_every_caller_by_the_timeout() {
    let Some(redis) = Redis::start() else { return };
    let timeout = Duration::from_millis(100);
    let fleet = Fleet::builder(&redis.url())
        .timeout(timeout)
        .reconnect(
            BackoffPolicy::exponential(Duration::from_millis(20))
                .max_delay(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let config = RateLimitConfig::builder()
        .requests(1_000, Duration::from_secs(1))
        .request_burst(20)
        .max_wait(Duration::ZERO)
        .build()
        .unwrap();
    let limiter = fleet
        .limiter_builder("slow", config)
        .lease(5)
        .local_share(0.5)
        .build()
        .unwrap();
    limiter.acquire(1).await.unwrap();
    redis.pause();
    let mut slowest = Duration::ZERO;
    let mut passed = 0;
    for _ in 0..50 {
        let t = Instant::now();
        if limiter.acquire(1).await.is_ok() {
            passed += 1;
        }
        slowest = slowest.max(t.elapsed());
    }
    assert!(!fleet.is_up(), "a frozen Redis must degrade the fleet");
    assert!(passed > 0, "the local share keeps the process going");
    // One round trip's timeout, and some room for a loaded machine: never the OS's TCP
    // timeouts (minutes).
    assert!(slowest < timeout * 10, "an acquire took {slowest:?}");
    redis.resume();
    eventually("the fleet answers again", || {
        let _ = limiter.try_acquire(1);
        fleet.is_up()
    })
    .await;
}

/// Redis gone: after three missed syncs the fleet budget spends from its local budget,
/// which every deposit kept warm; back on the fleet's sum once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_budget_falls_back_to_the_local_budget() {
    use riprap::budget::{Budget, RatioBudget};
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let fleet = fleet(&redis);
    let knobs = RatioBudget::builder().ratio(0.5).min_retries_per_sec(0);
    let budget = fleet
        .budget_synced("fallback", knobs, Duration::from_millis(20))
        .unwrap();
    eventually("synced", || budget.is_shared()).await;
    redis.kill();
    for _ in 0..4 {
        budget.deposit();
    }
    eventually("on the local budget", || !budget.is_shared()).await;
    let failure = Class::Transient;
    assert!(budget.try_withdraw(failure).is_some());
    assert!(budget.try_withdraw(failure).is_some());
    assert!(
        budget.try_withdraw(failure).is_none(),
        "4 deposits at 50 % pay for 2"
    );
    redis.restart();
    eventually("shared again", || budget.is_shared()).await;
}
