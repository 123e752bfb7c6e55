//! Retry budgets: semantics on a paused clock, validation, concurrency, and op sequences
//! against reference models.

mod common;

#[path = "../fuzz/checks/budget_ops.rs"]
mod budget_ops_check;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use riprap::budget::{
    Budget, Failure, Outcome, RatioBudget, RetryQuota, TokenThrottle, Unlimited, Withdrawal,
};
use riprap::classify::Class;

fn transient() -> Failure {
    Failure::new(Class::Transient)
}

#[test]
fn budget_ops_corpus() {
    common::replay_corpus("budget_ops", budget_ops_check::run);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every budget against its reference model, over arbitrary op sequences.
    #[test]
    fn budgets_match_their_models(data in proptest::collection::vec(any::<u8>(), 2..400)) {
        budget_ops_check::run(&data);
    }
}

#[tokio::test(start_paused = true)]
async fn ratio_budget_pays_ratio_of_deposits() {
    let b = RatioBudget::builder()
        .ratio(0.2)
        .min_retries_per_sec(0)
        .build()
        .unwrap();
    for _ in 0..50 {
        b.deposit();
    }
    let paid = (0..20)
        .filter(|_| b.try_withdraw(transient()).is_some())
        .count();
    assert_eq!(paid, 10);
}

#[tokio::test(start_paused = true)]
async fn ratio_budget_reserve_lets_a_quiet_client_retry() {
    let b = RatioBudget::builder()
        .min_retries_per_sec(2)
        .ttl(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(b.reserve(), 10.0);
    let paid = (0..20)
        .filter(|_| b.try_withdraw(transient()).is_some())
        .count();
    assert_eq!(paid, 10);
    // The withdrawals expire with the window, and the reserve is whole again.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(b.balance(), 10.0);
}

#[tokio::test(start_paused = true)]
async fn ratio_budget_deposits_expire_after_ttl() {
    let b = RatioBudget::builder()
        .ratio(1.0)
        .min_retries_per_sec(0)
        .ttl(Duration::from_secs(2))
        .build()
        .unwrap();
    for _ in 0..3 {
        b.deposit();
    }
    tokio::time::advance(Duration::from_millis(1900)).await;
    assert_eq!(b.balance(), 3.0);
    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(b.balance(), 0.0);
    assert!(b.try_withdraw(transient()).is_none());
}

#[tokio::test(start_paused = true)]
async fn ratio_budget_refund_restores_credit_and_clones_share_it() {
    let b = RatioBudget::builder()
        .ratio(1.0)
        .min_retries_per_sec(0)
        .build()
        .unwrap();
    let twin = b.clone();
    b.deposit();
    let w = twin.try_withdraw(transient()).unwrap();
    assert!(b.try_withdraw(transient()).is_none());
    b.refund(w);
    assert_eq!(twin.balance(), 1.0);
}

#[test]
fn ratio_budget_validation_names_the_knob() {
    let knob = |r: Result<RatioBudget, riprap::ConfigError>| r.unwrap_err().knob();
    assert_eq!(
        knob(RatioBudget::builder().ratio(-0.1).build()),
        "ratio_budget.ratio"
    );
    assert_eq!(
        knob(RatioBudget::builder().ratio(11.0).build()),
        "ratio_budget.ratio"
    );
    assert_eq!(
        knob(RatioBudget::builder().ratio(f64::INFINITY).build()),
        "ratio_budget.ratio"
    );
    assert_eq!(
        knob(
            RatioBudget::builder()
                .ttl(Duration::from_millis(999))
                .build()
        ),
        "ratio_budget.ttl"
    );
    assert_eq!(
        knob(RatioBudget::builder().ttl(Duration::MAX).build()),
        "ratio_budget.ttl"
    );
    assert_eq!(
        knob(
            RatioBudget::builder()
                .min_retries_per_sec(2_000_000)
                .build()
        ),
        "ratio_budget.min_retries_per_sec"
    );
    assert_eq!(
        knob(
            RatioBudget::builder()
                .ratio(0.0)
                .min_retries_per_sec(0)
                .build()
        ),
        "ratio_budget.ratio"
    );
    assert!(
        RatioBudget::builder()
            .ratio(0.0)
            .min_retries_per_sec(1)
            .build()
            .is_ok()
    );
}

#[test]
fn throttle_and_quota_validation_names_the_knob() {
    let t = |r: Result<TokenThrottle, riprap::ConfigError>| r.unwrap_err().knob();
    assert_eq!(
        t(TokenThrottle::builder().max_tokens(1001).build()),
        "token_throttle.max_tokens"
    );
    assert_eq!(
        t(TokenThrottle::builder().token_ratio(0.0).build()),
        "token_throttle.token_ratio"
    );
    assert_eq!(
        t(TokenThrottle::builder().token_ratio(f64::NAN).build()),
        "token_throttle.token_ratio"
    );
    let q = |r: Result<RetryQuota, riprap::ConfigError>| r.unwrap_err().knob();
    assert_eq!(
        q(RetryQuota::builder().capacity(0).build()),
        "retry_quota.capacity"
    );
    assert_eq!(
        q(RetryQuota::builder().retry_cost(0).build()),
        "retry_quota.retry_cost"
    );
    assert_eq!(
        q(RetryQuota::builder().timeout_cost(501).build()),
        "retry_quota.timeout_cost"
    );
    assert_eq!(
        q(RetryQuota::builder().throttle_cost(501).build()),
        "retry_quota.throttle_cost"
    );
    assert!(RetryQuota::builder().throttle_cost(0).build().is_ok());
}

#[test]
fn throttle_stops_at_half_and_recovers_with_successes() {
    let t = TokenThrottle::default();
    assert_eq!(t.tokens(), 100.0);
    for _ in 0..49 {
        t.record(Outcome::Failure(transient()));
    }
    assert!(t.try_withdraw(transient()).is_some()); // 51 > 50
    t.record(Outcome::Failure(transient()));
    assert!(t.try_withdraw(transient()).is_none()); // 50 is not above half
    // Permanent failures say nothing about the server's health.
    t.record(Outcome::Failure(Failure::new(Class::Permanent)));
    assert_eq!(t.tokens(), 50.0);
    t.record(Outcome::Success {
        spent: Withdrawal::NONE,
    });
    assert!(t.try_withdraw(transient()).is_some());
}

#[test]
fn quota_costs_by_failure_kind_and_refunds_on_success() {
    let q = RetryQuota::default();
    let throttled = Failure::new(Class::Throttled { retry_after: None });
    assert_eq!(q.try_withdraw(transient()).unwrap().units(), 5);
    assert_eq!(q.try_withdraw(Failure::timeout()).unwrap().units(), 10);
    assert_eq!(q.try_withdraw(throttled).unwrap().units(), 1);
    assert_eq!(q.available(), 484);
    q.record(Outcome::Success {
        spent: Withdrawal::new(16),
    });
    assert_eq!(q.available(), 500);
    // Capped at capacity: a success with no retries adds 1, but not past 500.
    q.record(Outcome::Success {
        spent: Withdrawal::NONE,
    });
    assert_eq!(q.available(), 500);
}

#[test]
fn quota_drains_to_refusal() {
    let q = RetryQuota::builder().capacity(12).build().unwrap();
    assert!(q.try_withdraw(transient()).is_some());
    assert!(q.try_withdraw(transient()).is_some());
    assert!(!q.can_withdraw(transient()));
    assert!(q.try_withdraw(transient()).is_none());
    assert_eq!(q.available(), 2);
}

#[test]
fn arc_and_unlimited_are_budgets() {
    let shared: Arc<dyn Budget> = Arc::new(
        RetryQuota::builder()
            .capacity(10)
            .timeout_cost(6)
            .build()
            .unwrap(),
    );
    assert!(shared.try_withdraw(Failure::timeout()).is_some()); // 6 of 10
    assert!(shared.try_withdraw(transient()).is_none()); // 5 > 4
    assert!((0..1000).all(|_| Unlimited.try_withdraw(transient()).is_some()));
}

/// Two threads depositing into one budget lose no deposit.
#[test]
fn concurrent_deposits_are_all_counted() {
    let b = RatioBudget::builder()
        .ratio(0.2)
        .min_retries_per_sec(0)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..10_000 {
                    b.deposit();
                }
            });
        }
    });
    assert_eq!(b.balance(), 4000.0);
}

/// Two threads racing for the last credits never overdraw the budget.
#[test]
fn concurrent_withdrawals_never_overdraw() {
    let b = RatioBudget::builder()
        .ratio(1.0)
        .min_retries_per_sec(0)
        .build()
        .unwrap();
    for _ in 0..100 {
        b.deposit();
    }
    let paid = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..500 {
                    if b.try_withdraw(transient()).is_some() {
                        paid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let paid = paid.into_inner();
    assert!(paid <= 100, "overdrawn: {paid}");
    assert!(paid >= 90, "too many spurious refusals: {paid}");
    assert_eq!(b.balance(), (100 - paid) as f64);
}
