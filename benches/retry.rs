//! Success-path overhead of retry layers, and the cost of budget operations.
//!
//! Every contender wraps the same inner `service_fn`, which is ready at once and answers at
//! once, so the figures are the layers' own overhead. Futures are pinned where they are made
//! and polled once with a no-op waker (they complete on the first poll), so no executor cost
//! is included.

use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use common::Fail;
use criterion::{Criterion, criterion_group, criterion_main};
use riprap::budget::{Budget, RatioBudget, RetryQuota, TokenThrottle};
use riprap::classify::Class;
use riprap::retry::RetryConfig;
use std::future::Future;
use tower::retry::budget::{Budget as TowerBudget, TpsBudget};
use tower::{Layer, Service};

/// tower's own retry with its TPS budget: deposit on success, withdraw on failure.
#[derive(Clone)]
struct TowerPolicy {
    budget: Arc<TpsBudget>,
}

impl<E> tower::retry::Policy<u64, u64, E> for TowerPolicy {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut u64, result: &mut Result<u64, E>) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.budget.deposit();
                None
            }
            Err(_) => self.budget.withdraw().then(|| std::future::ready(())),
        }
    }

    fn clone_request(&mut self, req: &u64) -> Option<u64> {
        Some(*req)
    }
}

fn tps() -> TpsBudget {
    TpsBudget::new(Duration::from_secs(10), 10, 0.2)
}

/// One call through `svc`: poll it ready, call, poll the future once where it lies, as an
/// executor would.
#[inline(always)]
fn once<S: Service<u64, Response = u64>>(svc: &mut S, cx: &mut Context<'_>, x: u64) -> u64 {
    match svc.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => unreachable!("always ready"),
    }
    let fut = std::pin::pin!(svc.call(x));
    match fut.poll(cx) {
        Poll::Ready(Ok(v)) => v,
        _ => unreachable!("answers at once"),
    }
}

fn success_path(c: &mut Criterion) {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut g = c.benchmark_group("retry_success_path");

    let mut bare = common::client();
    g.bench_function("bare_service_fn", |b| {
        b.iter(|| once(&mut bare, &mut cx, black_box(7)))
    });

    let mut riprap = RetryConfig::new().build().unwrap().layer(common::client());
    g.bench_function("riprap_retry_ratio_budget", |b| {
        b.iter(|| once(&mut riprap, &mut cx, black_box(7)))
    });

    let mut riprap_deadline = RetryConfig::new()
        .deadline(Duration::from_secs(10))
        .build()
        .unwrap()
        .layer(common::client());
    g.bench_function("riprap_retry_ratio_budget_with_deadline", |b| {
        b.iter(|| once(&mut riprap_deadline, &mut cx, black_box(7)))
    });

    let policy = TowerPolicy {
        budget: Arc::new(tps()),
    };
    let mut tower_retry = tower::retry::RetryLayer::new(policy).layer(common::client());
    g.bench_function("tower_retry_tps_budget", |b| {
        b.iter(|| once(&mut tower_retry, &mut cx, black_box(7)))
    });

    let mut resilience = tower_resilience::retry::RetryLayer::<u64, u64, Fail>::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_millis(100))
        .build()
        .layer(common::client());
    g.bench_function("tower_resilience_retry", |b| {
        b.iter(|| once(&mut resilience, &mut cx, black_box(7)))
    });
    g.finish();
}

fn budgets(c: &mut Criterion) {
    let transient = Class::Transient;
    let mut g = c.benchmark_group("budget_single_thread");

    let ratio = RatioBudget::default();
    g.bench_function("riprap_ratio_deposit", |b| b.iter(|| ratio.deposit()));
    let tower = tps();
    g.bench_function("tower_tps_deposit", |b| b.iter(|| tower.deposit()));

    // A deposit and a withdrawal per iteration, with ratio 1 so credit never runs out.
    let ratio = RatioBudget::builder().ratio(1.0).build().unwrap();
    g.bench_function("riprap_ratio_deposit_withdraw", |b| {
        b.iter(|| {
            ratio.deposit();
            black_box(ratio.try_withdraw(transient))
        })
    });
    let tower = TpsBudget::new(Duration::from_secs(10), 10, 1.0);
    g.bench_function("tower_tps_deposit_withdraw", |b| {
        b.iter(|| {
            tower.deposit();
            black_box(tower.withdraw())
        })
    });
    let quota = RetryQuota::default();
    g.bench_function("riprap_quota_withdraw_refund", |b| {
        b.iter(|| {
            if let Some(w) = quota.try_withdraw(transient) {
                quota.refund(w);
            }
        })
    });
    let throttle = TokenThrottle::default();
    g.bench_function("riprap_throttle_withdraw", |b| {
        b.iter(|| black_box(throttle.try_withdraw(transient)))
    });
    g.finish();

    let mut g = c.benchmark_group("budget_two_threads");
    let ratio = RatioBudget::default();
    g.bench_function("riprap_ratio_deposit", |b| {
        b.iter_custom(|iters| common::two_threads(iters, || ratio.deposit()))
    });
    let tower = tps();
    g.bench_function("tower_tps_deposit", |b| {
        b.iter_custom(|iters| common::two_threads(iters, || tower.deposit()))
    });
    let ratio = RatioBudget::builder().ratio(1.0).build().unwrap();
    g.bench_function("riprap_ratio_deposit_withdraw", |b| {
        b.iter_custom(|iters| {
            common::two_threads(iters, || {
                ratio.deposit();
                black_box(ratio.try_withdraw(transient));
            })
        })
    });
    let tower = TpsBudget::new(Duration::from_secs(10), 10, 1.0);
    g.bench_function("tower_tps_deposit_withdraw", |b| {
        b.iter_custom(|iters| {
            common::two_threads(iters, || {
                tower.deposit();
                black_box(tower.withdraw());
            })
        })
    });
    g.finish();
}

criterion_group!(benches, success_path, budgets);
criterion_main!(benches);
