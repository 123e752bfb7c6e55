//! Backoff schedules: envelopes, jitter bounds, stopping rules, reproducibility, validation.

mod common;

#[path = "checks/backoff_config.rs"]
mod backoff_config_check;

use std::time::Duration;

use proptest::prelude::*;
use riprap::backoff::{Backoff, BackoffPolicy, Jitter, MakeBackoff};

/// The reference envelope: `min(cap, base * factor^n)`, computed in exact-enough f64.
fn envelope(base: Duration, factor: f64, cap: Duration, n: u32) -> Duration {
    let v = base.as_nanos() as f64 * factor.powi(n as i32);
    if v >= cap.as_nanos() as f64 {
        cap
    } else {
        Duration::from_nanos(v as u64)
    }
}

fn policy(base_ms: u64, factor: f64, cap_ms: u64, jitter: Jitter, seed: u64) -> BackoffPolicy {
    BackoffPolicy::exponential(Duration::from_millis(base_ms))
        .factor(factor)
        .max_delay(Duration::from_millis(cap_ms))
        .jitter(jitter)
        .seed(seed)
        .build()
        .unwrap()
}

/// Absorb the f64 rounding of the reference envelope (at most a few nanoseconds).
const SLACK: Duration = Duration::from_nanos(4);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn full_jitter_stays_in_envelope(
        base_ms in 1u64..1_000, factor in 1.0f64..4.0, cap_mul in 1u64..100, seed: u64,
    ) {
        let cap_ms = base_ms * cap_mul;
        let p = policy(base_ms, factor, cap_ms, Jitter::Full, seed);
        let mut s = p.make_backoff();
        for n in 0..64 {
            let d = s.next_delay().unwrap();
            let env = envelope(p.base(), factor, p.max_delay(), n);
            prop_assert!(d <= env + SLACK, "attempt {n}: {d:?} > {env:?}");
        }
    }

    #[test]
    fn equal_jitter_keeps_at_least_half(
        base_ms in 1u64..1_000, factor in 1.0f64..4.0, cap_mul in 1u64..100, seed: u64,
    ) {
        let p = policy(base_ms, factor, base_ms * cap_mul, Jitter::Equal, seed);
        let mut s = p.make_backoff();
        for n in 0..64 {
            let d = s.next_delay().unwrap();
            let env = envelope(p.base(), factor, p.max_delay(), n);
            prop_assert!(d + SLACK >= env / 2, "attempt {n}: {d:?} < half of {env:?}");
            prop_assert!(d <= env + SLACK, "attempt {n}: {d:?} > {env:?}");
        }
    }

    #[test]
    fn decorrelated_grows_from_previous(
        base_ms in 1u64..1_000, cap_mul in 1u64..100, seed: u64,
    ) {
        let p = policy(base_ms, 2.0, base_ms * cap_mul, Jitter::Decorrelated, seed);
        let mut s = p.make_backoff();
        let mut prev = p.base();
        for _ in 0..64 {
            let d = s.next_delay().unwrap();
            prop_assert!(d >= p.base().min(p.max_delay()));
            prop_assert!(d <= p.max_delay().min(prev * 3), "{d:?} vs prev {prev:?}");
            prev = d;
        }
    }

    #[test]
    fn no_jitter_is_the_envelope(base_ms in 1u64..1_000, factor in 1.0f64..4.0, cap_mul in 1u64..100) {
        let p = policy(base_ms, factor, base_ms * cap_mul, Jitter::None, 0);
        let mut s = p.make_backoff();
        for n in 0..40 {
            let d = s.next_delay().unwrap();
            let env = envelope(p.base(), factor, p.max_delay(), n);
            prop_assert!(d.abs_diff(env) <= SLACK, "attempt {n}: {d:?} vs {env:?}");
        }
    }

    #[test]
    fn schedules_respect_retry_and_elapsed_bounds(
        base_ms in 1u64..500, factor in 1.0f64..3.0, cap_mul in 1u64..50,
        retries in 1u32..40, elapsed_ms in 1u64..20_000, jitter in 0u8..4, seed: u64,
    ) {
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated][jitter as usize];
        let p = BackoffPolicy::exponential(Duration::from_millis(base_ms))
            .factor(factor)
            .max_delay(Duration::from_millis(base_ms * cap_mul))
            .jitter(jitter)
            .max_retries(retries)
            .max_elapsed(Duration::from_millis(elapsed_ms))
            .seed(seed)
            .build()
            .unwrap();
        let delays: Vec<Duration> = p.make_backoff().collect();
        prop_assert!(delays.len() as u32 <= retries);
        let total: Duration = delays.iter().sum();
        prop_assert!(total <= Duration::from_millis(elapsed_ms));
        prop_assert!(total <= p.worst_case_total(retries));
    }

    #[test]
    fn same_seed_same_schedule(seed: u64, jitter in 0u8..4) {
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal, Jitter::Decorrelated][jitter as usize];
        let a: Vec<_> = policy(10, 2.0, 10_000, jitter, seed).make_backoff().take(32).collect();
        let b: Vec<_> = policy(10, 2.0, 10_000, jitter, seed).make_backoff().take(32).collect();
        prop_assert_eq!(a, b);
    }
}

#[test]
fn different_schedules_of_one_policy_differ_but_replay() {
    let p = policy(100, 2.0, 10_000, Jitter::Full, 42);
    let first: Vec<_> = p.make_backoff().take(8).collect();
    let second: Vec<_> = p.make_backoff().take(8).collect();
    assert_ne!(first, second, "each request gets its own jitter");
    // A fresh policy with the same seed hands out the same series of schedules.
    let q = policy(100, 2.0, 10_000, Jitter::Full, 42);
    assert_eq!(first, q.make_backoff().take(8).collect::<Vec<_>>());
    assert_eq!(second, q.make_backoff().take(8).collect::<Vec<_>>());
}

#[test]
fn attempt_ten_thousand_saturates_at_the_cap() {
    for jitter in [Jitter::None, Jitter::Equal] {
        let p = policy(100, 10.0, 60_000, jitter, 1);
        let mut s = p.make_backoff();
        let mut last = Duration::ZERO;
        for _ in 0..10_000 {
            last = s.next_delay().unwrap();
        }
        assert!(last <= Duration::from_secs(60));
        assert!(last >= Duration::from_secs(30));
        assert_eq!(s.retries(), 10_000);
    }
    // Linear growth saturates too.
    let p = BackoffPolicy::linear(Duration::from_secs(1), Duration::from_secs(1_000_000_000))
        .max_delay(Duration::from_secs(5))
        .build()
        .unwrap();
    let last = p.make_backoff().take(10_000).last().unwrap();
    assert_eq!(last, Duration::from_secs(5));
}

#[test]
fn constant_and_linear_schedules() {
    let c = BackoffPolicy::constant(Duration::from_millis(250))
        .max_retries(3)
        .build()
        .unwrap();
    assert_eq!(
        c.make_backoff().collect::<Vec<_>>(),
        vec![Duration::from_millis(250); 3]
    );
    let l = BackoffPolicy::linear(Duration::from_millis(100), Duration::from_millis(50))
        .max_delay(Duration::from_millis(220))
        .max_retries(5)
        .build()
        .unwrap();
    let ms: Vec<u128> = l.make_backoff().map(|d| d.as_millis()).collect();
    assert_eq!(ms, vec![100, 150, 200, 220, 220]);
}

#[test]
fn reset_starts_over() {
    let p = BackoffPolicy::exponential(Duration::from_millis(10))
        .jitter(Jitter::None)
        .max_retries(3)
        .build()
        .unwrap();
    let mut s = p.make_backoff();
    assert_eq!(s.by_ref().count(), 3);
    assert_eq!(s.next_delay(), None);
    s.reset();
    assert_eq!(s.next_delay(), Some(Duration::from_millis(10)));
    assert_eq!(s.elapsed(), Duration::from_millis(10));
}

#[test]
fn max_elapsed_stops_before_overrunning() {
    let p = BackoffPolicy::exponential(Duration::from_millis(100))
        .jitter(Jitter::None)
        .max_elapsed(Duration::from_millis(350))
        .build()
        .unwrap();
    // 100 + 200 = 300; another 400 would pass 350.
    let ms: Vec<u128> = p.make_backoff().map(|d| d.as_millis()).collect();
    assert_eq!(ms, vec![100, 200]);
}

#[test]
fn worst_case_total_bounds_every_schedule() {
    let p = BackoffPolicy::exponential(Duration::from_millis(100))
        .max_delay(Duration::from_secs(1))
        .jitter(Jitter::Decorrelated)
        .build()
        .unwrap();
    let worst = p.worst_case_total(10);
    for seed in 0..200 {
        let total: Duration = p.schedule_with_seed(seed).take(10).sum();
        assert!(total <= worst, "{total:?} > {worst:?}");
    }
    // 300 + 900 + 1000 * 8
    assert_eq!(worst, Duration::from_millis(9_200));
    // Huge retry counts finish arithmetically.
    assert_eq!(
        p.worst_case_total(u32::MAX).as_secs(),
        4_294_967_295 - 2 + 1
    );
}

#[test]
fn bad_configs_name_the_knob() {
    let ms = Duration::from_millis;
    let cases = [
        (BackoffPolicy::exponential(Duration::ZERO), "backoff.base"),
        (
            BackoffPolicy::exponential(ms(10)).factor(0.0),
            "backoff.factor",
        ),
        (
            BackoffPolicy::exponential(ms(10)).factor(0.5),
            "backoff.factor",
        ),
        (
            BackoffPolicy::exponential(ms(10)).factor(f64::NAN),
            "backoff.factor",
        ),
        (
            BackoffPolicy::exponential(ms(10)).factor(f64::INFINITY),
            "backoff.factor",
        ),
        (
            BackoffPolicy::exponential(ms(10)).max_delay(ms(5)),
            "backoff.max_delay",
        ),
        (
            BackoffPolicy::exponential(ms(10)).max_retries(0),
            "backoff.max_retries",
        ),
        (
            BackoffPolicy::exponential(ms(10)).max_elapsed(Duration::ZERO),
            "backoff.max_elapsed",
        ),
        (BackoffPolicy::exponential(Duration::MAX), "backoff.base"),
        (
            BackoffPolicy::exponential(ms(1)).max_delay(Duration::MAX),
            "backoff.max_delay",
        ),
        (BackoffPolicy::linear(ms(1), Duration::MAX), "backoff.step"),
        (BackoffPolicy::constant(Duration::ZERO), "backoff.base"),
    ];
    for (builder, knob) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.knob(), knob, "{err}");
        assert!(err.to_string().contains(knob));
    }
}

#[test]
fn default_cap_applies() {
    let p = BackoffPolicy::exponential(Duration::from_millis(100))
        .jitter(Jitter::None)
        .build()
        .unwrap();
    assert_eq!(p.max_delay(), riprap::backoff::DEFAULT_MAX_DELAY);
    assert_eq!(p.make_backoff().nth(20), Some(Duration::from_secs(30)));
    // A base larger than the default cap raises the cap to the base.
    let big = BackoffPolicy::constant(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(big.make_backoff().next(), Some(Duration::from_secs(60)));
}

#[cfg(feature = "backoff-compat")]
#[test]
fn backoff_crate_policies_plug_in() {
    use riprap::backoff::BackoffCrate;
    let old = backoff::ExponentialBackoff {
        initial_interval: Duration::from_millis(10),
        randomization_factor: 0.0,
        multiplier: 2.0,
        max_interval: Duration::from_millis(40),
        max_elapsed_time: None,
        ..Default::default()
    };
    let policy = BackoffCrate(old);
    let mut s = policy.make_backoff();
    let ms: Vec<u128> = (0..4)
        .map(|_| s.next_delay().unwrap().as_millis())
        .collect();
    assert_eq!(ms, vec![10, 20, 40, 40]);
    s.reset();
    assert_eq!(s.next_delay(), Some(Duration::from_millis(10)));
}

#[test]
fn fuzz_corpus_backoff_config() {
    common::replay_corpus("backoff_config", backoff_config_check::run);
}

/// Two configs the fuzzer found where the worst case fell a few nanoseconds short of a real
/// schedule: a cap of centuries (f64 rounding) and a factor a hair above 1 (stalled growth).
#[test]
fn worst_case_is_an_upper_bound_at_the_extremes() {
    let cases = [
        (256_000_000, 2.027_343_75, 18_023_194_602_504_258, None),
        (
            135_217_728,
            1.000_000_000_014_495,
            u64::MAX,
            Some(70_622_422_545_465_344),
        ),
    ];
    for (base, factor, cap, max_elapsed) in cases {
        let mut b = BackoffPolicy::exponential(Duration::from_nanos(base))
            .factor(factor)
            .max_delay(Duration::from_nanos(cap))
            .jitter(Jitter::None);
        if let Some(e) = max_elapsed {
            b = b.max_elapsed(Duration::from_nanos(e));
        }
        let p = b.build().unwrap();
        for n in [1usize, 2, 40, 4096] {
            let total: Duration = p.schedule_with_seed(0).take(n).sum();
            assert!(total <= p.worst_case_total(n as u32), "n={n}");
        }
    }
}
