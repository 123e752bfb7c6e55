//! Taking and giving back a bulkhead permit: riprap's lock-free counter against tokio's
//! semaphore (what `tower::limit::ConcurrencyLimit` is built on), and the layers over the same
//! inner service: riprap's `BulkheadLayer`, tower's `ConcurrencyLimit` and tower-resilience's
//! bulkhead (fail-fast, like riprap's default). The limit is never reached, so this is the
//! price every call pays; one thread and two threads sharing one limit.

#[path = "common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use futures_util::FutureExt;
use riprap::bulkhead::{Bulkhead, BulkheadLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

const LIMIT: u32 = 1_024;

fn bulkhead() -> Bulkhead {
    Bulkhead::builder()
        .max_concurrent(LIMIT)
        .max_queue(100)
        .build()
        .unwrap()
}

async fn ok(x: u64) -> Result<u64, Infallible> {
    Ok(x)
}

/// Ready, call and poll to completion, `iters` times on each of two threads, each thread with
/// its own clone of `svc` (clones share the limit).
fn service_two_threads<S>(iters: u64, svc: &S, rt: &tokio::runtime::Handle) -> Duration
where
    S: Service<u64> + Clone + Send,
    S::Future: Send,
{
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let mut svc = svc.clone();
            let rt = rt.clone();
            s.spawn(move || {
                let _runtime = rt.enter();
                for _ in 0..iters {
                    let Some(Ok(ready)) = svc.ready().now_or_never() else {
                        panic!("always ready")
                    };
                    black_box(ready.call(1).now_or_never().map(|r| r.is_ok()));
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _runtime = rt.enter();
    let mut g = c.benchmark_group("bulkhead");

    // The permit alone.
    let semaphore = Arc::new(tokio::sync::Semaphore::new(LIMIT as usize));
    g.bench_function("tokio_semaphore_try_acquire/1_thread", |b| {
        b.iter(|| black_box(Arc::clone(&semaphore).try_acquire_owned().is_ok()))
    });
    let riprap = bulkhead();
    g.bench_function("riprap_try_acquire/1_thread", |b| {
        b.iter(|| black_box(riprap.try_acquire().is_ok()))
    });
    g.bench_function("tokio_semaphore_try_acquire/2_threads", |b| {
        b.iter_custom(|iters| {
            common::two_threads(iters, || {
                black_box(Arc::clone(&semaphore).try_acquire_owned().is_ok());
            })
        })
    });
    g.bench_function("riprap_try_acquire/2_threads", |b| {
        b.iter_custom(|iters| {
            common::two_threads(iters, || {
                black_box(riprap.try_acquire().is_ok());
            })
        })
    });

    // The layers over the same inner service: ready + call + poll to completion.
    let tower_svc = tower::limit::ConcurrencyLimitLayer::new(LIMIT as usize).layer(service_fn(ok));
    let resilience_svc = tower_resilience::bulkhead::BulkheadLayer::builder()
        .max_concurrent_calls(LIMIT as usize)
        .reject_when_full()
        .build()
        .unwrap()
        .layer(service_fn(ok));
    let riprap_svc = BulkheadLayer::new(bulkhead()).layer(service_fn(ok));

    let mut svc = tower_svc.clone();
    g.bench_function("tower_concurrency_limit/1_thread", |b| {
        b.iter(|| {
            let ready = svc.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never())
        })
    });
    let mut svc = resilience_svc.clone();
    g.bench_function("tower_resilience_bulkhead/1_thread", |b| {
        b.iter(|| {
            let ready = svc.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never().map(|r| r.is_ok()))
        })
    });
    let mut svc = riprap_svc.clone();
    g.bench_function("riprap_bulkhead/1_thread", |b| {
        b.iter(|| {
            let ready = svc.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never().map(|r| r.is_ok()))
        })
    });

    let handle = rt.handle().clone();
    g.bench_function("tower_concurrency_limit/2_threads", |b| {
        b.iter_custom(|iters| service_two_threads(iters, &tower_svc, &handle))
    });
    g.bench_function("tower_resilience_bulkhead/2_threads", |b| {
        b.iter_custom(|iters| service_two_threads(iters, &resilience_svc, &handle))
    });
    g.bench_function("riprap_bulkhead/2_threads", |b| {
        b.iter_custom(|iters| service_two_threads(iters, &riprap_svc, &handle))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
