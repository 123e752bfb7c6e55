//! Hit and miss paths of `riprap::cache` against moka's `future::Cache` and a bare
//! quick_cache, in one group, on two threads reading at once.
//!
//! Each measurement runs `iters` operations in each of two tasks on a two-worker runtime,
//! started together, and reports the wall time divided by `iters`: the cost of one operation
//! while another thread does the same. Hits cycle through 10,000 cached keys (the threads half a cycle apart);
//! misses use a fresh key every time on a cache of 10,000 entries.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use riprap::cache::{Cache, CacheConfig};
use tower::{Layer, Service, service_fn};

const KEYS: u64 = 10_000;
const THREADS: u64 = 2;
/// Room for every key: quick_cache's capacity is split across shards and moka admits by
/// frequency, so at exactly 10,000 some hits would turn into misses.
const CAPACITY: u64 = 2 * KEYS;

/// Run `run(offset, iters)` as two tasks on the two-worker runtime, started together, the
/// offsets half a key cycle apart; the elapsed time of the slower task. Tasks, not outside
/// threads, because that is where a tower service is called from.
fn on_two_tasks<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, run: F) -> Duration
where
    F: Fn(u64, u64) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let start = Arc::new(tokio::sync::Barrier::new(THREADS as usize));
        let tasks: Vec<_> = (0..THREADS)
            .map(|t| {
                let work = run(t * KEYS / THREADS, iters);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    let t0 = Instant::now();
                    work.await;
                    t0.elapsed()
                })
            })
            .collect();
        let mut slowest = Duration::ZERO;
        for task in tasks {
            slowest = slowest.max(task.await.unwrap());
        }
        slowest
    })
}

fn riprap_cache(resolution: Duration) -> Cache<u64, u64, Infallible> {
    let config = CacheConfig::builder()
        .capacity(CAPACITY as usize)
        .refresh_after(Duration::from_secs(3_000))
        .expire_after(Duration::from_secs(3_600))
        .clock_resolution(resolution)
        .build()
        .unwrap();
    Cache::new(config)
}

fn loader() -> impl Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = impl Future<Output = Result<u64, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(|k: u64| async move { Ok::<_, Infallible>(k.wrapping_mul(3)) })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("cache");

    // --- hit path: 10k cached keys, cycling ---
    let qc = Arc::new(quick_cache::sync::Cache::<u64, u64>::new(CAPACITY as usize));
    let riprap = riprap_cache(Duration::from_millis(1));
    let riprap_exact = riprap_cache(Duration::ZERO);
    let moka = moka::future::Cache::<u64, u64>::builder()
        .max_capacity(CAPACITY)
        .time_to_live(Duration::from_secs(3_600))
        .build();
    for k in 0..KEYS {
        qc.insert(k, k);
        riprap.insert(k, k);
        riprap_exact.insert(k, k);
        rt.block_on(moka.insert(k, k));
    }
    rt.block_on(moka.run_pending_tasks());
    for k in 0..KEYS {
        assert!(qc.get(&k).is_some() && riprap.get(&k).is_some() && riprap_exact.get(&k).is_some());
        assert!(rt.block_on(moka.get(&k)).is_some());
    }

    g.bench_function("hit/quick_cache_get", |b| {
        b.iter_custom(|iters| {
            on_two_tasks(&rt, iters, |offset, n| {
                let c = qc.clone();
                async move {
                    for i in offset..offset + n {
                        black_box(c.get(&(i % KEYS)));
                    }
                }
            })
        })
    });
    g.bench_function("hit/riprap_get", |b| {
        b.iter_custom(|iters| {
            on_two_tasks(&rt, iters, |offset, n| {
                let c = riprap.clone();
                async move {
                    for i in offset..offset + n {
                        black_box(c.get(&(i % KEYS)));
                    }
                }
            })
        })
    });
    g.bench_function("hit/riprap_get_exact_clock", |b| {
        b.iter_custom(|iters| {
            on_two_tasks(&rt, iters, |offset, n| {
                let c = riprap_exact.clone();
                async move {
                    for i in offset..offset + n {
                        black_box(c.get(&(i % KEYS)));
                    }
                }
            })
        })
    });
    let svc = riprap.layer().layer(loader());
    g.bench_function("hit/riprap_service_call", |b| {
        b.iter_custom(|iters| {
            on_two_tasks(&rt, iters, |offset, n| {
                let mut svc = svc.clone();
                async move {
                    for i in offset..offset + n {
                        black_box(svc.call(i % KEYS).await.unwrap());
                    }
                }
            })
        })
    });
    g.bench_function("hit/moka_get", |b| {
        b.iter_custom(|iters| {
            on_two_tasks(&rt, iters, |offset, n| {
                let moka = moka.clone();
                async move {
                    for i in offset..offset + n {
                        black_box(moka.get(&(i % KEYS)).await);
                    }
                }
            })
        })
    });
    g.bench_function("hit/moka_get_with", |b| {
        b.iter_custom(|iters| {
            on_two_tasks(&rt, iters, |offset, n| {
                let moka = moka.clone();
                async move {
                    for i in offset..offset + n {
                        let k = i % KEYS;
                        black_box(moka.get_with(k, async move { k.wrapping_mul(3) }).await);
                    }
                }
            })
        })
    });

    // --- miss path: a fresh key every time, one load each (single-flight bookkeeping) ---
    let next = AtomicU64::new(KEYS);
    let miss_cache = riprap_cache(Duration::from_millis(1));
    let miss_svc = miss_cache.layer().layer(loader());
    g.bench_function("miss/riprap_service_call", |b| {
        b.iter_custom(|iters| {
            // Each thread takes a block of fresh keys.
            let first = next.fetch_add(THREADS * iters, Ordering::Relaxed);
            on_two_tasks(&rt, iters, |offset, n| {
                let mut svc = miss_svc.clone();
                let base = first + offset / (KEYS / THREADS) * iters;
                async move {
                    for k in base..base + n {
                        black_box(svc.call(k).await.unwrap());
                    }
                }
            })
        })
    });
    let miss_moka = moka::future::Cache::<u64, u64>::builder()
        .max_capacity(KEYS)
        .build();
    g.bench_function("miss/moka_get_with", |b| {
        b.iter_custom(|iters| {
            let first = next.fetch_add(THREADS * iters, Ordering::Relaxed);
            on_two_tasks(&rt, iters, |offset, n| {
                let moka = miss_moka.clone();
                let base = first + offset / (KEYS / THREADS) * iters;
                async move {
                    for k in base..base + n {
                        black_box(moka.get_with(k, async move { k.wrapping_mul(3) }).await);
                    }
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
