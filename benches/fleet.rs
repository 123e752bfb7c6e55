//! A distributed acquire against a real local Redis (a throwaway server started by the test
//! harness's `support/servers.rs`; skipped loudly without `redis-server`): the fleet limiter
//! with leases (20 requests a round trip), the same with `lease(1)` (one GCRA script per
//! acquire, as redis-cell or go-redis's redis_rate would do it), and the local limiter as
//! the floor. The quota never limits: this is the price of asking.
//!
//! Besides criterion's time per acquire (one task), a fixed run of 8 concurrent tasks
//! reports throughput, p50 / p99 latency and Redis round trips per acquire for each:
//!
//! ```text
//! cargo bench --bench fleet --features redis
//! ```

#[path = "../tests/support/servers.rs"]
mod servers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use riprap::fleet::Fleet;
use riprap::ratelimit::{RateLimitConfig, RateLimiter};

fn config() -> RateLimitConfig {
    RateLimitConfig::builder()
        .requests(100_000_000, Duration::from_secs(1))
        .request_burst(1_000_000)
        .build()
        .unwrap()
}

struct Contender {
    name: &'static str,
    limiter: RateLimiter,
    fleet: Option<Fleet>,
}

fn contenders(rt: &tokio::runtime::Runtime, url: &str) -> Vec<Contender> {
    rt.block_on(async {
        let mut all = vec![Contender {
            name: "local RateLimiter",
            limiter: RateLimiter::new(config()),
            fleet: None,
        }];
        for (name, lease) in [("fleet, lease 20", 20), ("fleet, lease 1", 1)] {
            let fleet = Fleet::redis(url).unwrap();
            fleet.ping().await;
            let limiter = fleet
                .limiter_builder(name, config())
                .lease(lease)
                .shared_gate(false)
                .build()
                .unwrap();
            all.push(Contender {
                name,
                limiter,
                fleet: Some(fleet),
            });
        }
        all
    })
}

/// 8 tasks × `per_task` acquires: throughput, p50, p99, round trips per acquire.
fn report(rt: &tokio::runtime::Runtime, c: &Contender, per_task: usize) {
    let trips_before = c.fleet.as_ref().map_or(0, Fleet::round_trips);
    let (elapsed, mut latencies) = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let limiter = c.limiter.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(per_task);
                    for _ in 0..per_task {
                        let t = Instant::now();
                        limiter.acquire(1).await.unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (start.elapsed(), all)
    });
    latencies.sort();
    let n = latencies.len();
    let at = |q: f64| latencies[((n as f64 * q) as usize).min(n - 1)];
    let trips = c.fleet.as_ref().map_or(0, Fleet::round_trips) - trips_before;
    println!(
        "{:<20} {:>12.0} acquires/s   p50 {:>9.1?}   p99 {:>9.1?}   {:.3} round trips/acquire",
        c.name,
        n as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.99),
        trips as f64 / n as f64
    );
}

fn bench(c: &mut Criterion) {
    let Some(redis) = servers::Redis::start() else {
        return;
    };
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let all = contenders(&rt, &redis.url());
    println!("8 concurrent tasks, 20,000 acquires each:");
    for contender in &all {
        report(&rt, contender, 20_000);
    }
    let mut group = c.benchmark_group("fleet_acquire");
    for contender in &all {
        group.bench_function(contender.name, |b| {
            b.to_async(&*rt).iter(|| contender.limiter.acquire(1));
        });
    }
    group.finish();
    drop(all);
    drop(redis);
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
