//! Instructions per call on the success path of each layer, the stack, and their peers, for
//! `valgrind --tool=callgrind` (see the performance notes in the README). Each run builds one
//! contender over the benches' always-ready client and drives `poll_ready`, `call` and one
//! poll of the future, polled in place as a task would, N times; the difference between runs
//! of N and 0 calls, over N, is the cost of one call. `composed` is retry over breaker over
//! rate limit layered by hand; `stack` is the same three from `StackBuilder`, whose unset
//! deadlines and bulkhead stay in its type as pass-through layers (a config file may set them).
//!
//! ```sh
//! icount=$(cargo bench -p riprap-benches --bench icount --no-run 2>&1 \
//!          | sed -n 's/.*Executable.*(\(.*\))$/\1/p')
//! count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 \
//!           | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
//! for w in retry breaker ratelimit governor_check composed stack resilience_stack \
//!          tower_limit bulkhead resilience_bulkhead hedge resilience_hedge; do
//!   z=$(count "$icount" $w 0)
//!   t=$(count "$icount" $w 20000)
//!   echo "$w $(( (t - z) / 20000 ))"
//! done
//! ```

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use riprap::breaker::{CircuitBreaker, CircuitBreakerLayer};
use riprap::bulkhead::{Bulkhead, BulkheadLayer};
use riprap::classify::ByError;
use riprap::hedge::HedgeLayer;
use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
use riprap::retry::RetryConfig;
use riprap::stack::StackBuilder;
use tower::{Layer, Service, ServiceBuilder};

/// A quota so large it never binds: the limiter's bookkeeping is measured, not waiting.
const ROOMY: u32 = 1_000_000_000;

fn drive<S: Service<u64>>(mut svc: S, n: u64) {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for i in 0..n {
        if !matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))) {
            panic!("the inner service is always ready");
        }
        let fut = pin!(svc.call(black_box(i)));
        match fut.poll(&mut cx) {
            Poll::Ready(r) => {
                black_box(r.is_ok());
            }
            Poll::Pending => panic!("the inner service answers at once"),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` adds `--bench`; the contender and the count are the other two.
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let which = args.next().unwrap_or_default();
    let n: u64 = args.next().unwrap_or_default().parse().unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let _runtime = rt.enter();
    let client = common::client;
    let roomy = || {
        RateLimitConfig::builder()
            .requests(ROOMY, Duration::from_secs(1))
            .build()
    };
    let delay = Duration::from_millis(100);
    match which.as_str() {
        "inner" => drive(client(), n),
        "retry" => drive(RetryConfig::new().build()?.layer(client()), n),
        "breaker" => drive(
            CircuitBreakerLayer::new(CircuitBreaker::builder().build()?).layer(client()),
            n,
        ),
        "ratelimit" => drive(
            RateLimitLayer::new(RateLimiter::new(roomy()?)).layer(client()),
            n,
        ),
        "governor_check" => {
            let quota = governor::Quota::per_second(NonZeroU32::MIN.saturating_add(ROOMY - 1));
            let limiter = governor::RateLimiter::direct(quota);
            for _ in 0..n {
                black_box(limiter.check().is_ok());
            }
        }
        "stack" => drive(
            StackBuilder::new(ByError)
                .rate_limit(RateLimitConfig::builder().requests(ROOMY, Duration::from_secs(1)))
                .build()?
                .layer(client()),
            n,
        ),
        "composed" => drive(
            RetryConfig::new().build()?.layer(
                CircuitBreakerLayer::new(CircuitBreaker::builder().build()?)
                    .layer(RateLimitLayer::new(RateLimiter::new(roomy()?)).layer(client())),
            ),
            n,
        ),
        "stack_deadlines" => drive(
            StackBuilder::new(ByError)
                .total_deadline(Duration::from_secs(30))
                .attempt_timeout(Duration::from_secs(10))
                .rate_limit(RateLimitConfig::builder().requests(ROOMY, Duration::from_secs(1)))
                .build()?
                .layer(client()),
            n,
        ),
        "resilience_stack" => {
            let limiter = tower_resilience::ratelimiter::RateLimiterLayer::builder()
                .limit_for_period(ROOMY as usize)
                .refresh_period(Duration::from_secs(1))
                .timeout_duration(Duration::from_secs(1))
                .build()?;
            let breaker =
                tower_resilience::circuitbreaker::CircuitBreakerLayer::builder().build()?;
            let retry = tower_resilience::retry::RetryLayer::<u64, u64, _>::builder()
                .max_attempts(3)
                .exponential_backoff(Duration::from_millis(100))
                .build();
            let guarded = breaker.layer(limiter.layer(client()));
            drive(ServiceBuilder::new().layer(retry).service(guarded), n)
        }
        "tower_limit" => drive(
            tower::limit::ConcurrencyLimitLayer::new(1024).layer(client()),
            n,
        ),
        "bulkhead" => drive(
            BulkheadLayer::new(
                Bulkhead::builder()
                    .max_concurrent(1024)
                    .max_queue(100)
                    .build()?,
            )
            .layer(client()),
            n,
        ),
        "resilience_bulkhead" => drive(
            tower_resilience::bulkhead::BulkheadLayer::builder()
                .max_concurrent_calls(1024)
                .reject_when_full()
                .build()?
                .layer(client()),
            n,
        ),
        "hedge" => drive(
            HedgeLayer::builder().delay(delay).build()?.layer(client()),
            n,
        ),
        "resilience_hedge" => drive(
            tower_resilience::hedge::HedgeLayer::builder()
                .delay(delay)
                .max_hedged_attempts(2)
                .build()
                .layer(client()),
            n,
        ),
        other => return Err(format!("unknown contender {other:?}").into()),
    }
    Ok(())
}
