//! The full stack's success-path overhead: against the bare client, against the sum of its
//! layers measured alone, and against the same stack built from tower-resilience's layers.
//! Every contender wraps the same always-ready client and is driven the same way.

use std::future::Future;
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use riprap::breaker::CircuitBreaker;
use riprap::classify::ByError;
use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
use riprap::retry::RetryConfig;
use riprap::stack::StackBuilder;
use riprap::timeout::TimeoutLayer;
use tower::{Layer, Service, ServiceBuilder};

/// A quota so large it never binds: the limiter's bookkeeping is measured, not waiting.
fn roomy() -> RateLimitConfig {
    RateLimitConfig::builder()
        .requests(1_000_000_000, Duration::from_secs(1))
        .build()
        .expect("valid config")
}

/// One call: ready, call, poll. Falls back to the runtime if a future is not ready at once.
#[inline(always)]
fn once<S>(rt: &tokio::runtime::Runtime, svc: &mut S, cx: &mut Context<'_>, x: u64) -> u64
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("not ready: {:?}", other.map(|r| r.is_ok())),
    }
    let mut fut = std::pin::pin!(svc.call(x));
    match fut.as_mut().poll(cx) {
        Poll::Ready(r) => r.expect("success path"),
        Poll::Pending => rt.block_on(fut).expect("success path"),
    }
}

fn success_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut g = c.benchmark_group("stack_success_path");

    let mut bare = common::client();
    g.bench_function("bare_client", |b| {
        b.iter(|| once(&rt, &mut bare, &mut cx, black_box(7)))
    });

    // The layers alone, each over the same client.
    let mut retry = RetryConfig::new()
        .build()
        .expect("valid")
        .layer(common::client());
    g.bench_function("alone/retry", |b| {
        b.iter(|| once(&rt, &mut retry, &mut cx, black_box(7)))
    });
    let mut breaker = riprap::breaker::CircuitBreakerLayer::new(
        CircuitBreaker::builder().build().expect("valid"),
    )
    .layer(common::client());
    g.bench_function("alone/breaker", |b| {
        b.iter(|| once(&rt, &mut breaker, &mut cx, black_box(7)))
    });
    let mut limit = RateLimitLayer::new(RateLimiter::new(roomy())).layer(common::client());
    g.bench_function("alone/ratelimit", |b| {
        b.iter(|| once(&rt, &mut limit, &mut cx, black_box(7)))
    });
    let mut timeout = TimeoutLayer::new(Duration::from_secs(30)).layer(common::client());
    g.bench_function("alone/timeout", |b| {
        b.iter(|| once(&rt, &mut timeout, &mut cx, black_box(7)))
    });

    // The composed stack: without deadlines (retry, breaker, rate limit), then with both.
    let mut stack = StackBuilder::new(ByError)
        .rate_limit(RateLimitConfig::builder().requests(1_000_000_000, Duration::from_secs(1)))
        .build()
        .expect("valid")
        .layer(common::client());
    g.bench_function("riprap_stack/no_deadlines", |b| {
        b.iter(|| once(&rt, &mut stack, &mut cx, black_box(7)))
    });
    let mut deadlines = StackBuilder::new(ByError)
        .total_deadline(Duration::from_secs(30))
        .attempt_timeout(Duration::from_secs(10))
        .rate_limit(RateLimitConfig::builder().requests(1_000_000_000, Duration::from_secs(1)))
        .build()
        .expect("valid")
        .layer(common::client());
    g.bench_function("riprap_stack/with_deadlines", |b| {
        b.iter(|| once(&rt, &mut deadlines, &mut cx, black_box(7)))
    });

    // tower-resilience: retry over circuit breaker over rate limiter.
    let tr_limiter = tower_resilience::ratelimiter::RateLimiterLayer::builder()
        .limit_for_period(1_000_000_000)
        .refresh_period(Duration::from_secs(1))
        .timeout_duration(Duration::from_secs(1))
        .build()
        .expect("valid");
    let tr_breaker = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .build()
        .expect("valid");
    let limited = tr_limiter.layer(common::client());
    let guarded = tr_breaker.layer(limited);
    let tr_retry = tower_resilience::retry::RetryLayer::<u64, u64, _>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(100))
        .build();
    let mut tr_stack = ServiceBuilder::new().layer(tr_retry).service(guarded);
    g.bench_function("tower_resilience_stack", |b| {
        b.iter(|| once(&rt, &mut tr_stack, &mut cx, black_box(7)))
    });
    g.finish();
}

criterion_group!(benches, success_path);
criterion_main!(benches);
