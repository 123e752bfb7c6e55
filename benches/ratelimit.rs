//! The acquire path's overhead: riprap's limiter (governor on tokio's clock, plus the server
//! gate check) against governor's own `check` on its default clock, and riprap's layer against
//! `tower::limit::RateLimit` over the same inner service. Quotas are large enough never to
//! limit, so this is the price every request pays; one thread and two threads.

#[path = "common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::{Duration, Instant};

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use futures_util::FutureExt;
use governor::{Quota, RateLimiter as Governor};
use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
use tower::{Layer, Service, ServiceExt, service_fn};

const RATE: u32 = 1_000_000_000;

fn riprap_limiter() -> RateLimiter {
    RateLimiter::new(
        RateLimitConfig::builder()
            .requests(RATE, Duration::from_secs(1))
            .build()
            .unwrap(),
    )
}

fn governor() -> Governor<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    governor::clock::DefaultClock,
> {
    Governor::direct(Quota::per_second(NonZeroU32::new(RATE).unwrap()))
}

async fn ok(x: u64) -> Result<u64, Infallible> {
    Ok(x)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _runtime = rt.enter();
    let mut g = c.benchmark_group("ratelimit");

    let gov = Arc::new(governor());
    g.bench_function("governor_check/1_thread", |b| {
        b.iter(|| black_box(gov.check()).is_ok())
    });
    g.bench_function("governor_check/2_threads", |b| {
        b.iter_custom(|iters| {
            common::two_threads(iters, || {
                black_box(gov.check().is_ok());
            })
        })
    });

    let limiter = riprap_limiter();
    g.bench_function("riprap_try_acquire/1_thread", |b| {
        b.iter(|| black_box(limiter.try_acquire(1)).is_ok())
    });
    // Polled in place with a waker that outlives it, as a task polls what it `.await`s.
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    g.bench_function("riprap_acquire/1_thread", |b| {
        b.iter(|| {
            let mut acquire = limiter.acquire(1);
            black_box(Pin::new(&mut acquire).poll(&mut cx)).is_ready()
        })
    });
    // The same future handed to `now_or_never`, which moves it and makes and drops a waker
    // for every call.
    g.bench_function("riprap_acquire_now_or_never/1_thread", |b| {
        b.iter(|| black_box(limiter.acquire(1).now_or_never()).is_some())
    });
    g.bench_function("riprap_try_acquire/2_threads", |b| {
        b.iter_custom(|iters| {
            common::two_threads(iters, || {
                black_box(limiter.try_acquire(1).is_ok());
            })
        })
    });

    // The layers, over the same inner service: ready + call + poll to completion.
    let mut tower_svc = tower::limit::RateLimitLayer::new(u64::from(RATE), Duration::from_secs(1))
        .layer(service_fn(ok));
    g.bench_function("tower_ratelimit_service/1_thread", |b| {
        b.iter(|| {
            let svc = tower_svc.ready().now_or_never().unwrap().unwrap();
            black_box(svc.call(1).now_or_never())
        })
    });
    let mut riprap_svc = RateLimitLayer::new(riprap_limiter()).layer(service_fn(ok));
    g.bench_function("riprap_layer_service/1_thread", |b| {
        b.iter(|| {
            let svc = riprap_svc.ready().now_or_never().unwrap().unwrap();
            black_box(svc.call(1).now_or_never())
        })
    });
    // tower's RateLimit cannot be shared between threads (its state is per instance and it
    // is not Clone), so each thread gets its own; riprap's clones share one limiter.
    let handle = rt.handle().clone();
    g.bench_function("tower_ratelimit_service/2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let handle = handle.clone();
                    s.spawn(move || {
                        let _rt = handle.enter();
                        let mut svc = tower::limit::RateLimitLayer::new(
                            u64::from(RATE),
                            Duration::from_secs(1),
                        )
                        .layer(service_fn(ok));
                        for _ in 0..iters {
                            let svc = svc.ready().now_or_never().unwrap().unwrap();
                            black_box(svc.call(1).now_or_never());
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    let shared = riprap_limiter();
    g.bench_function("riprap_layer_service/2_threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    let mut svc = RateLimitLayer::new(shared.clone()).layer(service_fn(ok));
                    s.spawn(move || {
                        for _ in 0..iters {
                            let svc = svc.ready().now_or_never().unwrap().unwrap();
                            black_box(svc.call(1).now_or_never());
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
