//! Retry budgets: semantics on a paused clock, validation, concurrency, and op sequences
//! against reference models.

mod common;

#[path = "checks/budget_ops.rs"]
mod budget_ops_check;

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use riprap::budget::{
    Attempt, Budget, RatioBudget, RetryQuota, TokenThrottle, Unlimited, Withdrawal,
};
use riprap::classify::Class;

fn transient() -> Class {
    Class::Transient
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
    // Withdrawals count for the window and up to one slot (a tenth of it) more, so the budget
    // is never more generous than an exact window; then the reserve is whole again.
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(b.balance(), 0.0);
    tokio::time::advance(Duration::from_millis(500)).await;
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
        t.record(Attempt::Failed(transient()));
    }
    assert!(t.try_withdraw(transient()).is_some()); // 51 > 50
    t.record(Attempt::Failed(transient()));
    assert!(t.try_withdraw(transient()).is_none()); // 50 is not above half
    // Permanent failures say nothing about the server's health.
    t.record(Attempt::Failed(Class::Permanent));
    assert_eq!(t.tokens(), 50.0);
    t.record(Attempt::Succeeded {
        spent: Withdrawal::NONE,
    });
    assert!(t.try_withdraw(transient()).is_some());
}

#[test]
fn quota_costs_by_failure_kind_and_refunds_on_success() {
    let q = RetryQuota::default();
    let throttled = Class::Throttled { retry_after: None };
    assert_eq!(q.try_withdraw(transient()).unwrap().units(), 5);
    assert_eq!(q.try_withdraw(Class::TimedOut).unwrap().units(), 10);
    assert_eq!(q.try_withdraw(throttled).unwrap().units(), 1);
    assert_eq!(q.available(), 484);
    q.record(Attempt::Succeeded {
        spent: Withdrawal::new(16),
    });
    assert_eq!(q.available(), 500);
    // Capped at capacity: a success with no retries adds 1, but not past 500.
    q.record(Attempt::Succeeded {
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
    assert!(shared.try_withdraw(Class::TimedOut).is_some()); // 6 of 10
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

// ---------------------------------------------------------------------------------------------
// Defects found against the peers' specs; each test failed before its fix.

/// Builds a ratio budget with no reserve, so only deposits pay.
fn no_reserve(ratio: f64) -> RatioBudget {
    RatioBudget::builder()
        .ratio(ratio)
        .min_retries_per_sec(0)
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// At low traffic every deposit counts in its own slot: after 60 s of `per_sec` successes the
/// ten 1 s slots up to now (51 s to 60 s) hold every deposit made in them, worth 20 % of as
/// many retries (an exact 10 s window would hold one slot more). Before the fix deposits were
/// booked to the last clock reading, up to 32 deposits ago, and expired with it: 0 retries at
/// 1 and 2 req/s.
#[tokio::test(start_paused = true)]
async fn ratio_budget_keeps_deposits_at_low_traffic() {
    for per_sec in [1u32, 2, 20] {
        let b = no_reserve(0.2);
        let gap = Duration::from_secs(1) / per_sec;
        let mut live = 0;
        for k in 1..=60 * per_sec {
            tokio::time::advance(gap).await;
            b.deposit();
            if gap * k >= Duration::from_secs(51) {
                live += 1;
            }
        }
        let mut paid = 0;
        while b.try_withdraw(transient()).is_some() {
            paid += 1;
        }
        assert_eq!(paid, live / 5, "{per_sec} req/s");
        // Nine tenths of the exact window's 20 % of `per_sec × 10` at least.
        assert!(paid * 10 >= 18 * per_sec - 10, "{per_sec} req/s: {paid}");
    }
}

/// A refund cancels the withdrawal it hands back, in the slot the withdrawal was booked to:
/// withdraw the whole reserve of 10 at t = 0, refund it at 5 s, and the balance is the reserve
/// from then on (it was 20 at 10.5 s when the refund was booked to its own later slot).
#[tokio::test(start_paused = true)]
async fn ratio_budget_refund_does_not_outlive_its_withdrawal() {
    let b = RatioBudget::builder()
        .ratio(0.0)
        .min_retries_per_sec(1)
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap();
    let taken: Vec<Withdrawal> = (0..10)
        .map(|_| b.try_withdraw(transient()).unwrap())
        .collect();
    assert_eq!(b.balance(), 0.0);
    tokio::time::advance(Duration::from_secs(5)).await;
    for w in taken {
        b.refund(w);
    }
    assert_eq!(b.balance(), 10.0);
    for at_ms in [5_500u64, 1_000, 500, 4_000, 20_000] {
        tokio::time::advance(Duration::from_millis(at_ms)).await;
        assert_eq!(b.balance(), 10.0, "{at_ms} ms later");
    }
}

/// gRFC A6: token_ratio decimals past the third are ignored, so 0.3336 counts as 0.333 and
/// three successes from 0 tokens make 0.999, not above half of 2.
#[test]
fn throttle_truncates_token_ratio_to_three_decimals() {
    let t = TokenThrottle::builder()
        .max_tokens(2)
        .token_ratio(0.3336)
        .build()
        .unwrap();
    for _ in 0..2 {
        t.record(Attempt::Failed(transient()));
    }
    assert_eq!(t.tokens(), 0.0);
    for _ in 0..3 {
        t.record(Attempt::Succeeded {
            spent: Withdrawal::NONE,
        });
    }
    assert_eq!(t.tokens(), 0.999);
    assert!(t.try_withdraw(transient()).is_none());
}

/// The AWS SDKs release only the last retry's cost when a request finally succeeds:
/// 500 → 495 → 490 → success ends at 495, not 500.
#[test]
fn quota_success_releases_only_the_last_retry() {
    let q = RetryQuota::default();
    let mut spent = Withdrawal::NONE;
    spent += q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 495);
    spent += q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 490);
    q.record(Attempt::Succeeded { spent });
    assert_eq!(q.available(), 495);
    // A timeout retry then an ordinary one: only the ordinary one's 5 comes back.
    let mut spent = q.try_withdraw(Class::TimedOut).unwrap();
    spent += q.try_withdraw(transient()).unwrap();
    assert_eq!(q.available(), 480);
    q.record(Attempt::Succeeded { spent });
    assert_eq!(q.available(), 485);
}

// ---------------------------------------------------------------------------------------------
// The ratio budget's documented bound, through the retry layer, against an exact sliding window.

mod bound {
    use std::io;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use riprap::backoff::BackoffPolicy;
    use riprap::budget::{Attempt, Budget, RatioBudget, Withdrawal};
    use riprap::classify::Class;
    use riprap::retry::RetryConfig;
    use tokio::time::Instant;
    use tower::{ServiceExt, service_fn};

    /// What the budget was asked and what it answered, with the paused clock's time.
    #[derive(Clone)]
    pub struct Recorder {
        pub inner: RatioBudget,
        origin: Instant,
        pub deposits: Arc<Mutex<Vec<Duration>>>,
        pub retries: Arc<Mutex<Vec<Duration>>>,
    }

    impl Budget for Recorder {
        fn deposit(&self) {
            self.inner.deposit();
            self.deposits.lock().unwrap().push(self.origin.elapsed());
        }
        fn try_withdraw(&self, after: Class) -> Option<Withdrawal> {
            let w = self.inner.try_withdraw(after);
            if w.is_some() {
                self.retries.lock().unwrap().push(self.origin.elapsed());
            }
            w
        }
        fn refund(&self, withdrawal: Withdrawal) {
            self.inner.refund(withdrawal);
        }
        fn record(&self, attempt: Attempt) {
            self.inner.record(attempt);
        }
        fn can_withdraw(&self, after: Class) -> bool {
            self.inner.can_withdraw(after)
        }
    }

    /// Times in `times` within `from..to` (half-open), both sorted.
    fn count(times: &[Duration], from: Duration, to: Duration) -> u64 {
        let lo = times.partition_point(|t| *t < from);
        let hi = times.partition_point(|t| *t < to);
        (hi - lo) as u64
    }

    /// Times in `(from, to]`.
    fn count_closed(times: &[Duration], from: Duration, to: Duration) -> u64 {
        let lo = times.partition_point(|t| *t <= from);
        let hi = times.partition_point(|t| *t <= to);
        (hi - lo) as u64
    }

    /// Requests arrive `gap` ms apart, each failing `fails` times before it succeeds, through
    /// one retry layer with `cap` attempts. Returns (deposits, retries) with their times.
    pub async fn drive(
        budget: RatioBudget,
        cap: u32,
        backoff_ms: u64,
        plan: &[(u64, u32)],
    ) -> (Vec<Duration>, Vec<Duration>) {
        let rec = Recorder {
            inner: budget,
            origin: Instant::now(),
            deposits: Arc::default(),
            retries: Arc::default(),
        };
        let layer = RetryConfig::new()
            .max_attempts(cap)
            .backoff(
                BackoffPolicy::constant(Duration::from_millis(backoff_ms))
                    .build()
                    .unwrap(),
            )
            .budget(rec.clone())
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for &(gap, fails) in plan {
            tokio::time::sleep(Duration::from_millis(gap)).await;
            let tries = Arc::new(AtomicU32::new(0));
            let svc = service_fn(move |()| {
                let n = tries.fetch_add(1, Ordering::Relaxed);
                async move {
                    if n < fails {
                        Err(io::Error::from(io::ErrorKind::ConnectionReset))
                    } else {
                        Ok(())
                    }
                }
            });
            tasks.push(tokio::spawn(layer.layer(svc).oneshot(())));
        }
        for t in tasks {
            let _ = t.await.unwrap();
        }
        let deposits = rec.deposits.lock().unwrap().clone();
        let retries = rec.retries.lock().unwrap().clone();
        (deposits, retries)
    }

    /// The documented bounds, in thousandths of a retry (`units` per deposit, `reserve`
    /// thousandths), checked exactly:
    /// - at every retry, the retries of the `ttl` up to it are within `ratio ×` the first
    ///   attempts of that `ttl`, plus the reserve;
    /// - in every span of `ttl` (one starting at each retry), the retries are within `ratio ×`
    ///   the first attempts of that span and the `ttl` before it, plus the reserve;
    /// - over the whole run, retries are within `ratio × requests` plus the reserve rate over
    ///   the retries' span and one `ttl`.
    pub fn check(
        deposits: &[Duration],
        retries: &[Duration],
        units: u64,
        per_sec: u64,
        ttl: Duration,
    ) {
        let reserve = per_sec * ttl.as_millis() as u64; // thousandths of a retry
        for (i, t) in retries.iter().enumerate() {
            let from = t.saturating_sub(ttl);
            let (r, d) = if *t < ttl {
                (
                    i as u64 + 1,
                    count(deposits, Duration::ZERO, *t + Duration::from_nanos(1)),
                )
            } else {
                (
                    count_closed(retries, from, *t),
                    count_closed(deposits, from, *t),
                )
            };
            assert!(
                r * 1000 <= d * units + reserve,
                "at {t:?}: {r} retries in the last ttl, {d} first attempts"
            );
            let span = count(retries, *t, *t + ttl);
            let before = count(deposits, t.saturating_sub(ttl), *t + ttl);
            assert!(
                span * 1000 <= before * units + reserve,
                "from {t:?}: {span} retries in one ttl, {before} first attempts"
            );
        }
        if let (Some(first), Some(last)) = (retries.first(), retries.last()) {
            let span = *last - *first + ttl;
            let allowance =
                deposits.len() as u128 * u128::from(units) + u128::from(per_sec) * span.as_millis();
            assert!(
                retries.len() as u128 * 1000 <= allowance,
                "{} retries over {span:?} for {} requests",
                retries.len(),
                deposits.len()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Issue 14's acceptance: for any attempt cap from 1 to 100 and any arrival pattern, the
    /// retries in any window of the budget's length stay within its documented bound, checked
    /// against an exact sliding window over the recorded first attempts and retries.
    #[test]
    fn ratio_budget_bound_holds_for_any_attempt_cap(
        cap in 1u32..=100,
        ratio in prop::sample::select(vec![0.0, 0.1, 0.2, 0.5, 1.0]),
        per_sec in 0u32..4,
        ttl_secs in 1u64..4,
        backoff_ms in prop::sample::select(vec![10u64, 90, 400, 1500]),
        plan in prop::collection::vec((0u64..600, 0u32..120), 1..60),
    ) {
        prop_assume!(ratio > 0.0 || per_sec > 0);
        let ttl = Duration::from_secs(ttl_secs);
        let budget = RatioBudget::builder()
            .ratio(ratio)
            .min_retries_per_sec(per_sec)
            .ttl(ttl)
            .build()
            .unwrap();
        let (deposits, retries) = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(bound::drive(budget, cap, backoff_ms, &plan));
        bound::check(&deposits, &retries, (ratio * 1000.0) as u64, u64::from(per_sec), ttl);
    }
}
