//! Conformance of the retry budgets with the peers whose semantics they claim, scenario by
//! scenario, with the peers' expected values:
//!
//! - `RatioBudget` against Finagle's `RetryBudgetTest` and util's `TokenBucketTest`;
//! - `TokenThrottle` against gRFC A6 and grpc-go's `TestRetryThrottling`;
//! - `RetryQuota` against smithy-rs's standard retry strategy tests.
//!
//! A test whose name ends in `_differs` asserts riprap's behaviour where it departs from the
//! peer on purpose; `docs/design-review.md` ("Differences from the peers") gives each reason.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use riprap::backoff::BackoffPolicy;
use riprap::budget::{
    Attempt, Budget, RatioBudget, RetryQuota, TokenThrottle, Unlimited, Withdrawal,
};
use riprap::classify::Class;
use riprap::retry::RetryConfig;
use tower::{ServiceExt, service_fn};

fn transient() -> Class {
    Class::Transient
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ratio_budget(ttl: Duration, per_sec: u32, ratio: f64) -> RatioBudget {
    RatioBudget::builder()
        .ttl(ttl)
        .min_retries_per_sec(per_sec)
        .ratio(ratio)
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Finagle RetryBudgetTest

/// Finagle's `testBudget`: time frozen, 10,000 requests each deposit then try one retry; the
/// retries made are `requests × percent + reserve`, within one.
fn finagle_test_budget(ttl: Duration, per_sec: u32, percent: f64) {
    let b = ratio_budget(ttl, per_sec, percent);
    let reserve = u64::from(per_sec) * ttl.as_secs();
    assert_eq!(b.balance(), reserve as f64);
    if reserve == 0 {
        assert!(b.try_withdraw(transient()).is_none());
    }
    let requests = 10_000u64;
    let mut retried = 0u64;
    for _ in 0..requests {
        b.deposit();
        if b.try_withdraw(transient()).is_some() {
            retried += 1;
        } else {
            // Finagle's balance is whole retries and reads 0 here; riprap's keeps the fraction
            // of a retry the deposits have built up so far.
            assert!(b.balance() < 1.0, "percent {percent}");
        }
    }
    let expected = (requests as f64 * percent) as u64 + reserve;
    assert!(
        retried.abs_diff(expected) <= 1,
        "percent {percent}: {retried} retries, expected {expected} ± 1"
    );
}

#[tokio::test(start_paused = true)]
async fn finagle_apply_min_retries_per_sec_zero() {
    for percent in [0.1, 0.5, 0.25, 0.75, 0.99, 0.999, 0.9999, 0.01, 0.001] {
        finagle_test_budget(secs(60), 0, percent);
    }
}

/// Finagle accepts 0.0001 (one retry per 10,000 requests); riprap resolves ratios to a tenth
/// of a percent, so 0.0001 is 0, and with no reserve that budget refuses every retry, which
/// riprap's builder rejects rather than build.
#[test]
fn finagle_apply_percent_below_resolution_differs() {
    let err = RatioBudget::builder()
        .ttl(secs(60))
        .min_retries_per_sec(0)
        .ratio(0.0001)
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "ratio_budget.ratio");
}

#[tokio::test(start_paused = true)]
async fn finagle_apply_percent_above_one() {
    let b = ratio_budget(secs(60), 0, 2.0);
    assert_eq!(b.balance(), 0.0);
    assert!(b.try_withdraw(transient()).is_none());
    for _ in 0..10_000 {
        b.deposit();
    }
    assert_eq!(b.balance(), 20_000.0);
}

#[tokio::test(start_paused = true)]
async fn finagle_apply_with_min_retries_and_no_percent() {
    finagle_test_budget(secs(1), 10, 0.0);
    finagle_test_budget(secs(2), 5, 0.0);
}

#[tokio::test(start_paused = true)]
async fn finagle_apply_with_min_retries_and_percent() {
    finagle_test_budget(secs(1), 10, 0.1);
    finagle_test_budget(secs(2), 5, 0.5);
}

#[test]
fn finagle_apply_bounds_check() {
    // ttl of zero: rejected by both.
    let err = RatioBudget::builder()
        .ttl(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "ratio_budget.ttl");
    // A negative percent: rejected by both.
    let err = RatioBudget::builder().ratio(-1.0).build().unwrap_err();
    assert_eq!(err.knob(), "ratio_budget.ratio");
}

/// Finagle caps `ttl` at 60 s; riprap allows up to an hour (and requires at least 1 s, where
/// Finagle takes any positive duration).
#[test]
fn finagle_ttl_range_differs() {
    assert!(RatioBudget::builder().ttl(secs(61)).build().is_ok());
    assert!(RatioBudget::builder().ttl(secs(3600)).build().is_ok());
    let err = RatioBudget::builder().ttl(ms(500)).build().unwrap_err();
    assert_eq!(err.knob(), "ratio_budget.ttl");
}

/// Finagle's `RetryBudget.Empty` refuses everything; riprap has no empty budget: the builder
/// rejects ratio 0 with no reserve and points at `max_attempts(1)`.
#[test]
fn finagle_empty_differs() {
    let err = RatioBudget::builder()
        .ratio(0.0)
        .min_retries_per_sec(0)
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "ratio_budget.ratio");
}

/// Finagle's `RetryBudget.Infinite` always pays (and reports a balance of 100); riprap's
/// `Unlimited` always pays and has no balance to report.
#[test]
fn finagle_infinite() {
    assert!(Unlimited.try_withdraw(transient()).is_some());
    Unlimited.deposit();
    assert!(Unlimited.try_withdraw(transient()).is_some());
}

// ---------------------------------------------------------------------------------------------
// util TokenBucketTest (the leaky bucket under Finagle's budget). riprap's budget withdraws
// one retry at a time, so `tryGet(n)` becomes n withdrawals.

#[tokio::test(start_paused = true)]
async fn util_a_leaky_bucket_is_leaky() {
    let b = ratio_budget(secs(3), 0, 1.0);
    for _ in 0..100 {
        b.deposit();
    }
    assert!(b.try_withdraw(transient()).is_some());
    tokio::time::advance(secs(3)).await;
    assert!(b.try_withdraw(transient()).is_none());
}

#[tokio::test(start_paused = true)]
async fn util_try_get_fails_when_empty() {
    let b = ratio_budget(secs(3), 0, 1.0);
    for _ in 0..100 {
        b.deposit();
    }
    for _ in 0..100 {
        assert!(b.try_withdraw(transient()).is_some());
    }
    assert!(b.try_withdraw(transient()).is_none());
    b.deposit();
    assert!(b.try_withdraw(transient()).is_some());
    assert!(b.try_withdraw(transient()).is_none());
}

/// util's "provisions reserves" with a reserve of 100 (riprap: 50/s over a 2 s ttl). The
/// reserve is spent at once, a deposit pays one more, and nothing is left until the
/// withdrawals expire. util forgets a withdrawal exactly one ttl later; riprap keeps it up to
/// one slot (a tenth of the ttl) longer, so it is never more generous than an exact window.
#[tokio::test(start_paused = true)]
async fn util_provisions_reserves_differs() {
    let b = ratio_budget(secs(2), 50, 1.0);
    let take = |n: u32| {
        (0..n)
            .filter(|_| b.try_withdraw(transient()).is_some())
            .count()
    };
    assert_eq!(take(100), 100);
    assert!(b.try_withdraw(transient()).is_none());
    b.deposit();
    assert_eq!(take(1), 1);
    for _ in 0..2 {
        tokio::time::advance(secs(1)).await;
        assert!(b.try_withdraw(transient()).is_none(), "still spent");
    }
    // util: the withdrawals of t = 0 expired at 2 s. riprap: at 2 s they still count.
    assert_eq!(b.balance(), 0.0);
    tokio::time::advance(ms(200)).await;
    assert_eq!(b.balance(), 100.0);
    assert_eq!(take(50), 50);
    tokio::time::advance(secs(2)).await;
    assert_eq!(b.balance(), 50.0, "the 50 count a slot past the ttl");
    tokio::time::advance(ms(200)).await;
    assert_eq!(take(100), 100);
    assert!(b.try_withdraw(transient()).is_none());
}

// ---------------------------------------------------------------------------------------------
// gRFC A6 and grpc-go TestRetryThrottling

/// grpc-go's `TestRetryThrottling` through riprap's retry layer: max_tokens 10, token_ratio
/// 0.5, 4 attempts, a server that succeeds on the listed calls and is unavailable otherwise.
/// After each request: whether it succeeded, the calls made so far, and the token count
/// (A6's arithmetic; two of grpc-go's comments are off by a success, its assertions are not).
#[tokio::test(start_paused = true)]
async fn grpc_go_retry_throttling() {
    let throttle = TokenThrottle::builder()
        .max_tokens(10)
        .token_ratio(0.5)
        .build()
        .unwrap();
    let layer = RetryConfig::new()
        .max_attempts(4)
        .backoff(BackoffPolicy::constant(ms(10)).build().unwrap())
        .budget(throttle.clone())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |()| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            match i {
                0 | 3 | 6 | 10 | 11 | 12 | 13 | 14 | 16 | 18 => Ok(()),
                _ => Err(io::Error::from(io::ErrorKind::ConnectionReset)),
            }
        }
    });
    let expected: [(bool, u32, f64); 12] = [
        (true, 1, 10.0),
        (true, 4, 8.5),
        (true, 7, 7.0),
        (false, 9, 5.0), // the first failure is retried, the second is throttled
        (false, 10, 4.0),
        (true, 11, 4.5),
        (true, 12, 5.0),
        (true, 13, 5.5),
        (true, 14, 6.0),
        (true, 15, 6.5),
        (true, 17, 6.0),
        (false, 18, 5.0),
    ];
    for (n, (ok, made, tokens)) in expected.into_iter().enumerate() {
        let got = layer.layer(svc.clone()).oneshot(()).await;
        assert_eq!(got.is_ok(), ok, "request {n}");
        assert_eq!(calls.load(Ordering::SeqCst), made, "request {n}");
        assert_eq!(throttle.tokens(), tokens, "request {n}");
    }
}

/// A6: retries stop when the token count is at or below half of max_tokens.
#[test]
fn a6_threshold_is_half_inclusive() {
    let t = TokenThrottle::builder()
        .max_tokens(10)
        .token_ratio(0.5)
        .build()
        .unwrap();
    for _ in 0..5 {
        t.record(Attempt::Failed(transient()));
    }
    assert_eq!(t.tokens(), 5.0);
    assert!(t.try_withdraw(transient()).is_none());
    t.record(Attempt::Succeeded {
        spent: Withdrawal::NONE,
    });
    assert_eq!(t.tokens(), 5.5);
    assert!(t.try_withdraw(transient()).is_some());
}

/// A6: token_ratio decimals past the third are ignored: 0.5466 counts as 0.546.
#[test]
fn a6_token_ratio_truncates_to_three_decimals() {
    let t = TokenThrottle::builder()
        .max_tokens(10)
        .token_ratio(0.5466)
        .build()
        .unwrap();
    t.record(Attempt::Failed(transient()));
    t.record(Attempt::Succeeded {
        spent: Withdrawal::NONE,
    });
    assert_eq!(t.tokens(), 9.546);
}

/// A6: the count stays within 0 and max_tokens.
#[test]
fn a6_tokens_stay_within_bounds() {
    let t = TokenThrottle::builder()
        .max_tokens(3)
        .token_ratio(1.0)
        .build()
        .unwrap();
    for _ in 0..10 {
        t.record(Attempt::Failed(transient()));
    }
    assert_eq!(t.tokens(), 0.0);
    for _ in 0..10 {
        t.record(Attempt::Succeeded {
            spent: Withdrawal::NONE,
        });
    }
    assert_eq!(t.tokens(), 3.0);
}

/// grpc-go counts a failure only when its status is retryable; riprap likewise ignores
/// permanent failures.
#[test]
fn a6_only_retryable_failures_take_a_token() {
    let t = TokenThrottle::builder()
        .max_tokens(10)
        .token_ratio(0.1)
        .build()
        .unwrap();
    t.record(Attempt::Failed(Class::Permanent));
    assert_eq!(t.tokens(), 10.0);
}

/// A6 bounds: max_tokens in (0, 1000] and token_ratio above 0, as riprap; riprap also caps
/// token_ratio at 1 (a success worth more than a failure would hide any failure rate).
#[test]
fn a6_bounds_differs() {
    let knob = |b: riprap::budget::TokenThrottleBuilder| b.build().unwrap_err().knob();
    assert_eq!(
        knob(TokenThrottle::builder().max_tokens(0)),
        "token_throttle.max_tokens"
    );
    assert_eq!(
        knob(TokenThrottle::builder().max_tokens(1001)),
        "token_throttle.max_tokens"
    );
    assert!(TokenThrottle::builder().max_tokens(1000).build().is_ok());
    assert_eq!(
        knob(TokenThrottle::builder().token_ratio(0.0)),
        "token_throttle.token_ratio"
    );
    assert_eq!(
        knob(TokenThrottle::builder().token_ratio(1.5)),
        "token_throttle.token_ratio"
    );
}

// ---------------------------------------------------------------------------------------------
// smithy-rs standard retry strategy tests. smithy-rs's "server error" costs 5 (riprap: an
// ordinary transient failure), its "transient error" (timeouts, dropped connections) costs
// 10 (riprap: a failure that timed out).

#[test]
fn smithy_eventual_success() {
    let q = RetryQuota::default();
    let mut spent = q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 495);
    spent += q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 490);
    q.record(Attempt::Succeeded { spent });
    assert_eq!(q.available(), 495);
}

#[test]
fn smithy_no_more_attempts() {
    let q = RetryQuota::default();
    q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 495);
    q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 490);
    // Out of attempts: the request gives up and nothing comes back.
    q.record(Attempt::Failed(transient()));
    assert_eq!(q.available(), 490);
}

/// riprap validates every cost against the capacity, so a bucket of 5 also needs a timeout
/// cost of at most 5 (smithy-rs's bucket of 5 would simply never pay a timeout retry).
#[test]
fn smithy_no_quota() {
    let q = RetryQuota::builder()
        .capacity(5)
        .timeout_cost(5)
        .build()
        .unwrap();
    q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 0);
    assert!(q.try_withdraw(transient()).is_none());
    assert_eq!(q.available(), 0);
}

#[test]
fn smithy_quota_replenishes_on_success() {
    let q = RetryQuota::builder().capacity(100).build().unwrap();
    let mut spent = q.try_withdraw(Class::TimedOut).unwrap();
    assert_eq!(q.available(), 90);
    spent += q.try_withdraw(Class::TimedOut).unwrap();
    assert_eq!(q.available(), 80);
    q.record(Attempt::Succeeded { spent });
    assert_eq!(q.available(), 90);
}

#[test]
fn smithy_quota_replenishes_on_first_try_success() {
    let q = RetryQuota::builder().capacity(20).build().unwrap();
    let mut drained = 0;
    while q.available() > 0 {
        assert!(q.try_withdraw(Class::TimedOut).is_some());
        drained += 1;
    }
    assert_eq!(drained, 2);
    // The permits are forgotten; only successes on the first try refill, one unit each.
    let mut successes = 0;
    while q.available() < 20 {
        q.record(Attempt::Succeeded {
            spent: Withdrawal::NONE,
        });
        successes += 1;
    }
    assert_eq!(successes, 20);
    q.record(Attempt::Succeeded {
        spent: Withdrawal::NONE,
    });
    assert_eq!(q.available(), 20, "never past capacity");
}

/// The whole flow through riprap's retry layer: two failures, then a success, costs 5.
#[tokio::test(start_paused = true)]
async fn smithy_eventual_success_through_the_retry_layer() {
    let q = RetryQuota::default();
    let layer = RetryConfig::new()
        .max_attempts(5)
        .backoff(BackoffPolicy::constant(ms(10)).build().unwrap())
        .budget(q.clone())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let svc = service_fn(move |()| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if i < 2 {
                Err(io::Error::from(io::ErrorKind::ConnectionReset))
            } else {
                Ok(())
            }
        }
    });
    assert!(layer.layer(svc).oneshot(()).await.is_ok());
    assert_eq!(q.available(), 495);
}

/// smithy-rs charges a throttling error the ordinary 5 (its bucket of 10 pays 2 retries);
/// riprap charges 1, because a retry after a throttle already waits for the server's
/// `Retry-After`.
#[test]
fn smithy_throttling_cost_differs() {
    let q = RetryQuota::builder().capacity(10).build().unwrap();
    let throttled = Class::Throttled { retry_after: None };
    let paid = (0..100)
        .take_while(|_| q.try_withdraw(throttled).is_some())
        .count();
    assert_eq!(paid, 10);
    let q = RetryQuota::builder().capacity(10).build().unwrap();
    let paid = (0..100)
        .take_while(|_| q.try_withdraw(transient()).is_some())
        .count();
    assert_eq!(paid, 2, "ordinary failures pay 5, as in smithy-rs");
}
