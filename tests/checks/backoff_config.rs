//! Arbitrary backoff configs: building never panics, and every schedule a valid config makes
//! respects its envelope, its retry bound and its elapsed bound.

use std::time::Duration;

use riprap::backoff::{Backoff, BackoffPolicy, Jitter};

fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(data.len());
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

pub fn run(mut data: &[u8]) {
    let d = &mut data;
    let [kind, jitter] = take::<2>(d);
    let base = Duration::from_nanos(u64::from_le_bytes(take::<8>(d)));
    let step = Duration::from_nanos(u64::from_le_bytes(take::<8>(d)));
    let factor = f64::from_le_bytes(take::<8>(d));
    let max_delay = Duration::from_nanos(u64::from_le_bytes(take::<8>(d)));
    let [has_retries, has_elapsed] = take::<2>(d);
    let retries = u32::from_le_bytes(take::<4>(d)) % 2048;
    let elapsed = Duration::from_nanos(u64::from_le_bytes(take::<8>(d)));
    let seed = u64::from_le_bytes(take::<8>(d));

    let mut b = match kind % 3 {
        0 => BackoffPolicy::exponential(base).factor(factor),
        1 => BackoffPolicy::linear(base, step),
        _ => BackoffPolicy::constant(base),
    };
    b = b.max_delay(max_delay).seed(seed).jitter(match jitter % 4 {
        0 => Jitter::None,
        1 => Jitter::Full,
        2 => Jitter::Equal,
        _ => Jitter::Decorrelated,
    });
    if has_retries & 1 == 1 {
        b = b.max_retries(retries);
    }
    if has_elapsed & 1 == 1 {
        b = b.max_elapsed(elapsed);
    }
    let Ok(policy) = b.build() else { return };

    let cap = policy.max_delay();
    let mut schedule = policy.schedule_with_seed(seed);
    let mut total = Duration::ZERO;
    let mut n: u32 = 0;
    while let Some(delay) = schedule.next_delay() {
        assert!(delay <= cap, "delay {delay:?} over cap {cap:?}");
        total += delay;
        n += 1;
        if let Some(max) = policy.max_retries() {
            assert!(n <= max, "{n} retries, max {max}");
        }
        if let Some(max) = policy.max_elapsed() {
            assert!(total <= max, "elapsed {total:?} over {max:?}");
        }
        if n >= 4096 {
            break;
        }
    }
    // The worst case is an upper bound on any schedule the policy makes.
    assert!(
        total <= policy.worst_case_total(n),
        "{total:?} > worst case"
    );
    schedule.reset();
    assert_eq!(schedule.retries(), 0);
}
