//! Conformance of the circuit breaker and its windows with the peers whose semantics they
//! claim, scenario by scenario, with the peers' expected values:
//!
//! - resilience4j's `CircuitBreakerStateMachineTest` (failure rate 50 %, slow calls over 4 s at
//!   50 %, a window of 5 calls, 4 calls in half-open, 5 s in open) and
//!   `SlidingTimeWindowMetricsTest` (a 5 s window in 1 s buckets);
//! - Polly's `CircuitStateControllerTests` and `RollingHealthMetricsTests` (a 10 s window in
//!   10 buckets).
//!
//! A test whose name ends in `_differs` asserts riprap's behaviour where it departs from the
//! peer on purpose; `docs/design-review.md` ("Differences from the peers") gives each reason.

use std::time::Duration;

use riprap::breaker::{
    BreakerState, Call, CircuitBreaker, CountWindow, Rejected, TimeWindow, TripPolicy,
};
use riprap::classify::Class;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// resilience4j's test breaker over a count window of 5 calls.
fn r4j() -> CircuitBreaker<CountWindow> {
    let window = CountWindow::last(5)
        .failure_rate(0.5)
        .slow_calls(secs(4), 0.5)
        .build()
        .unwrap();
    CircuitBreaker::builder()
        .policy(window)
        .open_for(secs(5))
        .half_open_probes(4)
        .close_after(4)
        .build()
        .unwrap()
}

/// Trip `breaker` with failures, leaving it open.
fn trip<P: TripPolicy>(breaker: &CircuitBreaker<P>, failures: usize) {
    for _ in 0..failures {
        breaker.try_acquire().unwrap().record(Class::Transient);
    }
    assert_eq!(breaker.state(), BreakerState::Open);
}

// ---------------------------------------------------------------------------------------------
// resilience4j CircuitBreakerStateMachineTest

#[tokio::test(start_paused = true)]
async fn r4j_should_open_after_failure_rate_threshold_exceeded() {
    let b = r4j();
    for (n, class) in [
        Class::Transient,
        Class::Transient,
        Class::Transient,
        Class::Success,
    ]
    .into_iter()
    .enumerate()
    {
        b.try_acquire().unwrap().record(class);
        assert_eq!(b.state(), BreakerState::Closed, "call {n}");
        assert_eq!(b.metrics().calls_in_window, Some(n as u64 + 1));
    }
    b.try_acquire().unwrap().record(Class::Success);
    assert_eq!(b.state(), BreakerState::Open);
    assert!(matches!(b.try_acquire(), Err(Rejected::Open { .. })));
    assert_eq!(b.metrics().rejected, 1);
}

/// Three of five calls slower than 4 s (one of them failed, two fast calls too): the slow-call
/// rate of 60 % opens the breaker though the failure rate is 40 %.
#[tokio::test(start_paused = true)]
async fn r4j_should_open_after_slow_call_rate_threshold_exceeded() {
    let b = r4j();
    let permits: Vec<_> = (0..5).map(|_| b.try_acquire().unwrap()).collect();
    let mut permits = permits.into_iter();
    tokio::time::advance(ms(100)).await;
    permits.next().unwrap().record(Class::Transient); // fast failure
    permits.next().unwrap().record(Class::Success); // fast success
    tokio::time::advance(secs(5)).await;
    permits.next().unwrap().record(Class::Transient); // slow failure
    permits.next().unwrap().record(Class::Success); // slow success
    assert_eq!(b.state(), BreakerState::Closed);
    permits.next().unwrap().record(Class::Success); // slow success
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn r4j_should_transition_to_half_open_after_wait_duration() {
    let b = r4j();
    trip(&b, 5);
    assert!(b.try_acquire().is_err());
    tokio::time::advance(secs(3)).await;
    assert_eq!(b.state(), BreakerState::Open);
    assert!(b.try_acquire().is_err());
    assert_eq!(b.metrics().rejected, 2);
    tokio::time::advance(secs(3)).await;
    let probe = b.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn r4j_should_only_permit_four_calls_in_half_open_state() {
    let b = r4j();
    trip(&b, 5);
    tokio::time::advance(secs(5)).await;
    let probes: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::HalfOpen);
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::HalfOpen);
    // resilience4j's releasePermission: a probe handed back frees its slot.
    drop(probes);
    assert!(b.try_acquire().is_ok());
}

/// resilience4j judges half-open over its 4 permitted calls (F, F, S, F: 75 % opens it).
/// riprap reopens on the first failed probe, so the breaker is open after the first call.
#[tokio::test(start_paused = true)]
async fn r4j_back_to_open_when_failure_rate_above_threshold_differs() {
    let b = r4j();
    trip(&b, 5);
    tokio::time::advance(secs(5)).await;
    let probes: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
    let mut probes = probes.into_iter();
    probes.next().unwrap().record(Class::Transient);
    assert_eq!(
        b.state(),
        BreakerState::Open,
        "riprap: the first failed probe"
    );
    for p in probes {
        p.record(Class::Success); // stale: their phase has ended
    }
    assert_eq!(b.state(), BreakerState::Open);
}

/// resilience4j: three slow successful probes and a fast one reopen the breaker (slow-call
/// rate 75 %). riprap reopens on the first slow probe: a slow success is a failed probe.
#[tokio::test(start_paused = true)]
async fn r4j_back_to_open_when_slow_call_rate_above_threshold() {
    let b = r4j();
    trip(&b, 5);
    tokio::time::advance(secs(5)).await;
    let probes: Vec<_> = (0..4).map(|_| b.try_acquire().unwrap()).collect();
    tokio::time::advance(secs(5)).await;
    let mut probes = probes.into_iter();
    probes.next().unwrap().record(Class::Success);
    assert_eq!(b.state(), BreakerState::Open);
}

/// resilience4j closes after F, S, S, S in half-open (25 % is under its 50 %). riprap needs
/// `close_after` successes with no failure between: the failure reopens it, and four
/// successful probes of the next phase close it.
#[tokio::test(start_paused = true)]
async fn r4j_back_to_closed_when_failure_below_threshold_differs() {
    let b = r4j();
    trip(&b, 5);
    tokio::time::advance(secs(5)).await;
    b.try_acquire().unwrap().record(Class::Transient);
    assert_eq!(b.state(), BreakerState::Open);
    tokio::time::advance(secs(60)).await;
    for n in 0..4 {
        assert_eq!(
            b.state(),
            if n == 0 {
                BreakerState::Open
            } else {
                BreakerState::HalfOpen
            }
        );
        b.try_acquire().unwrap().record(Class::Success);
    }
    assert_eq!(b.state(), BreakerState::Closed);
    // Metrics start over in closed.
    assert_eq!(b.metrics().calls_in_window, Some(0));
    b.try_acquire().unwrap().record(Class::Success);
    assert_eq!(b.metrics().calls_in_window, Some(1));
}

/// Ignored outcomes (resilience4j's ignoreExceptions; riprap's permanent errors by default)
/// hand the probe's permit back without a verdict; four successes then close the breaker.
#[tokio::test(start_paused = true)]
async fn r4j_should_ignore_exceptions_and_then_transition_to_closed() {
    let b = r4j();
    trip(&b, 5);
    tokio::time::advance(secs(5)).await;
    for _ in 0..4 {
        b.try_acquire().unwrap().record(Class::Permanent);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }
    for _ in 0..3 {
        b.try_acquire().unwrap().record(Class::Success);
        assert_eq!(b.state(), BreakerState::HalfOpen);
    }
    b.try_acquire().unwrap().record(Class::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

/// resilience4j's forced-open state is riprap's isolation: no probe however long it waits.
#[tokio::test(start_paused = true)]
async fn r4j_should_force_open_circuit_breaker() {
    let b = r4j();
    b.force_open();
    assert_eq!(b.state(), BreakerState::Isolated);
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::Isolated);
    tokio::time::advance(secs(6)).await;
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::Isolated);
    assert_eq!(b.metrics().rejected, 2);
}

#[tokio::test(start_paused = true)]
async fn r4j_should_disable_circuit_breaker() {
    let b = r4j();
    b.disable();
    assert_eq!(b.state(), BreakerState::Disabled);
    for _ in 0..10 {
        b.try_acquire().unwrap().record(Class::Transient);
    }
    assert_eq!(b.state(), BreakerState::Disabled);
}

#[tokio::test(start_paused = true)]
async fn r4j_should_force_close_circuit_breaker() {
    let b = r4j();
    b.force_closed();
    for _ in 0..10 {
        b.try_acquire().unwrap().record(Class::Transient);
    }
    assert_eq!(b.state(), BreakerState::ForcedClosed);
}

#[tokio::test(start_paused = true)]
async fn r4j_should_reset_to_closed_state() {
    let b = r4j();
    trip(&b, 5);
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    b.try_acquire().unwrap().record(Class::Success);
    b.try_acquire().unwrap().record(Class::Success);
    assert_eq!(b.metrics().calls_in_window, Some(2));
    b.reset();
    assert_eq!(b.metrics().calls_in_window, Some(0));
}

// ---------------------------------------------------------------------------------------------
// resilience4j SlidingTimeWindowMetricsTest: a 5 s window in 1 s buckets.

fn r4j_time_window() -> TimeWindow {
    TimeWindow::last(secs(5))
        .buckets(5)
        .failure_rate(0.5)
        .slow_calls(secs(5), 0.5)
        .min_throughput(1000)
        .build()
        .unwrap()
}

fn call(failed: bool, at: Duration) -> Call {
    Call::new(
        if failed {
            Class::Transient
        } else {
            Class::Success
        },
        ms(100),
        at,
    )
}

#[test]
fn r4j_sliding_time_window_metrics() {
    let w = r4j_time_window();
    // (time, failed, calls in the window after it, failures in the window after it)
    let steps: [(u64, bool, u64, u64); 10] = [
        (0, true, 1, 1),
        (100, false, 2, 1),
        (200, false, 3, 1),
        (1_200, false, 4, 1),
        (2_200, false, 5, 1),
        (3_200, true, 6, 2),
        (4_200, false, 7, 2),
        (5_200, false, 5, 1),
        (6_200, false, 5, 1),
        (11_200, false, 1, 0),
    ];
    for (at, failed, calls, failures) in steps {
        w.record(call(failed, ms(at)));
        let stats = w.stats(ms(at));
        assert_eq!(stats.calls, Some(calls), "at {at} ms");
        let rate = stats.failure_rate.unwrap();
        assert_eq!((rate * calls as f64).round() as u64, failures, "at {at} ms");
    }
}

#[test]
fn r4j_should_clear_sliding_time_window_metrics() {
    let w = r4j_time_window();
    w.record(call(true, ms(0)));
    assert_eq!(w.stats(ms(0)).failure_rate, Some(1.0));
    w.record(call(false, ms(100)));
    assert_eq!(w.stats(ms(100)).failure_rate, Some(0.5));
    w.record(call(false, ms(800)));
    assert_eq!(w.stats(ms(800)).calls, Some(3));
    assert_eq!(w.stats(ms(4_800)).calls, Some(3));
    let stats = w.stats(ms(5_800));
    assert_eq!(stats.calls, Some(0));
    assert_eq!(stats.failure_rate, Some(0.0));
    w.record(call(false, ms(5_900)));
    let stats = w.stats(ms(5_900));
    assert_eq!((stats.calls, stats.failure_rate), (Some(1), Some(0.0)));
}

#[test]
fn r4j_slow_calls_percentage() {
    let w = r4j_time_window();
    w.record(Call::new(Class::Success, secs(10), Duration::ZERO));
    w.record(Call::new(Class::Transient, secs(10), Duration::ZERO));
    for _ in 0..3 {
        w.record(Call::new(Class::Success, ms(100), Duration::ZERO));
    }
    let stats = w.stats(Duration::ZERO);
    assert_eq!(stats.calls, Some(5));
    assert_eq!(stats.slow_rate, Some(0.4));
    assert_eq!(stats.failure_rate, Some(0.2));
}

#[test]
fn r4j_record_success_and_error() {
    let w = r4j_time_window();
    w.record(call(false, Duration::ZERO));
    assert_eq!(w.stats(Duration::ZERO).failure_rate, Some(0.0));
    let w = r4j_time_window();
    w.record(call(true, Duration::ZERO));
    assert_eq!(w.stats(Duration::ZERO).failure_rate, Some(1.0));
}

/// resilience4j forgets calls older than the window after any gap; so does riprap's window,
/// including gaps of exactly lcm(buckets, 65,536) bucket lengths and of years.
#[test]
fn r4j_forgets_calls_after_any_gap() {
    let lcm = 5 * 65_536u64;
    for gap in [
        5,
        65_536,
        lcm - 1,
        lcm,
        lcm + 1,
        3 * lcm,
        1 << 32,
        10 * 365 * 86_400,
    ] {
        let w = r4j_time_window();
        for _ in 0..7 {
            w.record(call(true, ms(300)));
        }
        assert_eq!(w.stats(secs(gap)).calls, Some(0), "gap {gap} s");
        w.record(call(false, secs(gap)));
        assert_eq!(w.stats(secs(gap)).calls, Some(1), "gap {gap} s");
    }
}

// ---------------------------------------------------------------------------------------------
// Polly RollingHealthMetricsTests: a 10 s sampling duration in 10 windows.

fn polly_window() -> TimeWindow {
    TimeWindow::last(secs(10))
        .buckets(10)
        .failure_rate(0.5)
        .min_throughput(1000)
        .build()
        .unwrap()
}

/// (throughput, failure rate, failures) as Polly's `HealthInfo` reports them.
fn health(w: &TimeWindow, now: Duration) -> (u64, f64, u64) {
    let s = w.stats(now);
    let calls = s.calls.unwrap();
    let rate = s.failure_rate.unwrap();
    (calls, rate, (rate * calls as f64).round() as u64)
}

#[test]
fn polly_ctor_ensure_defaults() {
    assert_eq!(health(&polly_window(), Duration::ZERO), (0, 0.0, 0));
}

#[test]
fn polly_increment_ok() {
    let w = polly_window();
    w.record(call(true, Duration::ZERO));
    for _ in 0..4 {
        w.record(call(false, Duration::ZERO));
    }
    assert_eq!(health(&w, Duration::ZERO), (5, 0.2, 1));
}

#[test]
fn polly_get_health_info_ensure_window_respected() {
    let w = polly_window();
    let mut now = Duration::ZERO;
    let mut seen = Vec::new();
    for i in 0..5 {
        w.record(call(i < 2, now));
        w.record(call(false, now));
        now += secs(2);
        seen.push(health(&w, now));
    }
    now += secs(2);
    seen.push(health(&w, now));
    assert_eq!(seen[0], (2, 0.5, 1));
    assert_eq!(seen[1], (4, 0.5, 2));
    assert_eq!(seen[3], (8, 0.25, 2));
    assert_eq!(seen[4], (8, 0.125, 1));
    assert_eq!(seen[5], (6, 0.0, 0));
}

#[test]
fn polly_get_health_info_ensure_window_capacity_respected() {
    let w = polly_window();
    let mut now = Duration::ZERO;
    for _ in 0..10 {
        w.record(call(false, now));
        now += secs(1);
    }
    assert_eq!(health(&w, now).0, 9);
    now += secs(1);
    assert_eq!(health(&w, now).0, 8);
}

#[test]
fn polly_reset_ok() {
    let w = polly_window();
    w.record(call(false, Duration::ZERO));
    w.reset();
    assert_eq!(health(&w, Duration::ZERO).0, 0);
    // The window keeps counting after a reset.
    w.record(call(false, Duration::ZERO));
    assert_eq!(health(&w, Duration::ZERO).0, 1);
}

#[test]
fn polly_get_health_info_sampling_duration_respected() {
    for variance in [Duration::ZERO, ms(1)] {
        let w = polly_window();
        w.record(call(false, Duration::ZERO));
        w.record(call(false, Duration::ZERO));
        assert_eq!(health(&w, secs(10) + variance), (0, 0.0, 0));
    }
}

// ---------------------------------------------------------------------------------------------
// Polly CircuitStateControllerTests (Polly's defaults: one probe, closed by one success).

fn polly() -> CircuitBreaker<TimeWindow> {
    let window = TimeWindow::last(secs(30))
        .buckets(10)
        .failure_rate(0.1)
        .min_throughput(2)
        .build()
        .unwrap();
    CircuitBreaker::builder()
        .policy(window)
        .open_for(secs(5))
        .half_open_probes(1)
        .close_after(1)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn polly_isolate_and_close() {
    let b = polly();
    b.force_open();
    assert_eq!(b.state(), BreakerState::Isolated);
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::Isolated);
    b.reset();
    assert_eq!(b.state(), BreakerState::Closed);
    assert!(b.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn polly_on_action_pre_execute_circuit_opened() {
    let b = polly();
    trip(&b, 2);
    match b.try_acquire() {
        Err(Rejected::Open { retry_in }) => assert_eq!(retry_in, secs(5)),
        other => panic!("{other:?}"),
    }
}

/// Polly: the first call after the break is let through, the second is rejected while it runs.
#[tokio::test(start_paused = true)]
async fn polly_on_action_pre_execute_half_open() {
    let b = polly();
    trip(&b, 2);
    tokio::time::advance(secs(5)).await;
    let _probe = b.try_acquire().unwrap();
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::HalfOpen);
    assert_eq!(b.state(), BreakerState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn polly_half_open_ensure_correct_state_transition_after_execution() {
    for success in [true, false] {
        let b = polly();
        trip(&b, 2);
        tokio::time::advance(secs(5)).await;
        let probe = b.try_acquire().unwrap();
        probe.record(if success {
            Class::Success
        } else {
            Class::Transient
        });
        let want = if success {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(b.state(), want);
    }
}

/// Polly's flow: closed, half-open, open again, half-open, closed.
#[tokio::test(start_paused = true)]
async fn polly_flow_closed_half_open_open_half_open_closed() {
    let b = polly();
    trip(&b, 2);
    tokio::time::advance(secs(5)).await;
    b.try_acquire().unwrap().record(Class::Transient);
    assert_eq!(b.state(), BreakerState::Open);
    tokio::time::advance(secs(60)).await;
    b.try_acquire().unwrap().record(Class::Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

/// Polly blocks the half-open circuit for another break duration when it lets a probe
/// through, and lets the next probe through after it even if the first never returned.
/// riprap holds the probe's slot until the probe finishes or its future is dropped (a timeout
/// below the breaker bounds that), so a hung probe never lets a second one in.
#[tokio::test(start_paused = true)]
async fn polly_half_open_ensure_break_duration_differs() {
    let b = polly();
    trip(&b, 2);
    tokio::time::advance(secs(5)).await;
    let probe = b.try_acquire().unwrap();
    tokio::time::advance(secs(60)).await;
    assert_eq!(b.try_acquire().unwrap_err(), Rejected::HalfOpen);
    drop(probe);
    assert!(b.try_acquire().is_ok());
}
