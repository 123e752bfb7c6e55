//! Circuit breaker overhead: riprap against failsafe and tower-resilience, same inner service.
//!
//! Every contender wraps the same ready `tower::Service` and is driven the same way (poll
//! ready, call, poll the future once with a no-op waker), so the difference is the breaker.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::Barrier;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use futures_util::FutureExt;
use futures_util::task::noop_waker_ref;
use riprap::breaker::{CircuitBreaker, CircuitBreakerLayer, ConsecutiveFailures, CountWindow};
use tower::{Layer, Service};

/// The shared inner service: always ready, answers at once.
#[derive(Clone, Copy)]
struct Echo;

impl Service<u64> for Echo {
    type Response = u64;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<u64, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, x: u64) -> Self::Future {
        std::future::ready(Ok(x))
    }
}

/// One request through a tower service: poll ready, call, poll the future once.
#[inline(always)]
fn drive<S: Service<u64>>(svc: &mut S, x: u64) -> Option<Result<S::Response, S::Error>> {
    let mut cx = Context::from_waker(noop_waker_ref());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => return Some(Err(e)),
        Poll::Pending => return None,
    }
    svc.call(x).now_or_never()
}

/// Time per call per thread with `threads` threads each driving their own clone.
fn hammer<S>(svc: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<u64> + Clone + Send + 'static,
    S::Response: Send,
    S::Error: Send,
{
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let mut svc = svc.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                for i in 0..iters {
                    black_box(drive(&mut svc, black_box(i)));
                }
                start.elapsed()
            })
        })
        .collect();
    let total: Duration = handles.into_iter().map(|h| h.join().unwrap()).sum();
    total / threads as u32
}

fn breaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");

    // --- closed state, success path ------------------------------------------------------
    g.bench_function("inner service alone", |b| {
        let mut svc = Echo;
        b.iter(|| black_box(drive(&mut svc, black_box(1))));
    });

    let riprap_default = CircuitBreaker::builder().build().unwrap();
    g.bench_function("riprap closed (5 consecutive failures)", |b| {
        let mut svc = CircuitBreakerLayer::new(riprap_default.clone()).layer(Echo);
        b.iter(|| black_box(drive(&mut svc, black_box(1))));
    });

    let riprap_window = CircuitBreaker::builder()
        .policy(CountWindow::last(100).min_calls(20).build().unwrap())
        .build()
        .unwrap();
    g.bench_function("riprap closed (count window 100)", |b| {
        let mut svc = CircuitBreakerLayer::new(riprap_window.clone()).layer(Echo);
        b.iter(|| black_box(drive(&mut svc, black_box(1))));
    });

    let failsafe = failsafe::Config::new().build();
    g.bench_function("failsafe closed", |b| {
        let mut inner = Echo;
        b.iter(|| black_box(failsafe.call(|| drive(&mut inner, black_box(1)).unwrap())));
    });

    let tr_layer = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .unwrap();
    g.bench_function("tower-resilience closed", |b| {
        let mut svc = tr_layer.layer(Echo);
        b.iter(|| black_box(drive(&mut svc, black_box(1))));
    });

    // --- open state, rejection -------------------------------------------------------------
    let riprap_open = CircuitBreaker::builder()
        .policy(ConsecutiveFailures::new(1).unwrap())
        .open_for(Duration::from_secs(3600))
        .build()
        .unwrap();
    riprap_open
        .try_acquire()
        .unwrap()
        .record(riprap::classify::Class::Transient);
    g.bench_function("riprap open rejection", |b| {
        let mut svc = CircuitBreakerLayer::new(riprap_open.clone()).layer(Echo);
        b.iter(|| black_box(drive(&mut svc, black_box(1))));
    });

    let failsafe_open = failsafe::Config::new().build();
    for _ in 0..10 {
        let _ = failsafe_open.call(|| Err::<(), ()>(()));
    }
    g.bench_function("failsafe open rejection", |b| {
        let mut inner = Echo;
        b.iter(|| black_box(failsafe_open.call(|| drive(&mut inner, black_box(1)).unwrap())));
    });

    // --- two threads hammering one shared breaker -----------------------------------------
    let shared = CircuitBreakerLayer::new(riprap_default.clone()).layer(Echo);
    g.bench_function("riprap closed, 1 thread (per-call, thread harness)", |b| {
        b.iter_custom(|iters| hammer(&shared, 1, iters));
    });
    g.bench_function(
        "riprap closed, 2 threads sharing one breaker (per call per thread)",
        |b| {
            b.iter_custom(|iters| hammer(&shared, 2, iters));
        },
    );

    g.finish();
}

criterion_group!(benches, breaker);
criterion_main!(benches);
