//! Cost of drawing the next delay: riprap's jitter kinds beside backon's exponential builder and
//! the `backoff` crate's `ExponentialBackoff`, all exponential from 10 ms, factor 2, cap 10 s,
//! unbounded in retries, so every implementation spends the run in the same steady state.

use std::hint::black_box;
use std::time::Duration;

use backon::BackoffBuilder as _;
use criterion::{Criterion, criterion_group, criterion_main};
use riprap::backoff::{Backoff, BackoffPolicy, Jitter, MakeBackoff};

const BASE: Duration = Duration::from_millis(10);
const CAP: Duration = Duration::from_secs(10);

fn next_delay(c: &mut Criterion) {
    let mut group = c.benchmark_group("backoff/next_delay");

    for (name, jitter) in [
        ("riprap/none", Jitter::None),
        ("riprap/full", Jitter::Full),
        ("riprap/equal", Jitter::Equal),
        ("riprap/decorrelated", Jitter::Decorrelated),
    ] {
        let policy = BackoffPolicy::exponential(BASE)
            .factor(2.0)
            .max_delay(CAP)
            .jitter(jitter)
            .seed(1)
            .build()
            .expect("valid config");
        let mut schedule = policy.make_backoff();
        group.bench_function(name, |b| b.iter(|| black_box(schedule.next_delay())));
    }

    let mut backon = backon::ExponentialBuilder::default()
        .with_min_delay(BASE)
        .with_max_delay(CAP)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    group.bench_function("backon/full", |b| b.iter(|| black_box(backon.next())));

    let mut old = backoff::ExponentialBackoff {
        initial_interval: BASE,
        multiplier: 2.0,
        max_interval: CAP,
        max_elapsed_time: None,
        ..Default::default()
    };
    group.bench_function("backoff-crate/randomized", |b| {
        b.iter(|| black_box(backoff::backoff::Backoff::next_backoff(&mut old)))
    });

    group.finish();
}

fn fresh_schedule(c: &mut Criterion) {
    // A retry layer draws one schedule per logical request: the cost of starting one.
    let mut group = c.benchmark_group("backoff/new_schedule_and_first_delay");
    let policy = BackoffPolicy::exponential(BASE)
        .max_delay(CAP)
        .build()
        .expect("valid config");
    group.bench_function("riprap/full", |b| {
        b.iter(|| black_box(policy.make_backoff().next_delay()))
    });
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(BASE)
        .with_max_delay(CAP)
        .with_jitter();
    group.bench_function("backon/full", |b| {
        b.iter(|| black_box(builder.build().next()))
    });
    group.finish();
}

criterion_group!(benches, next_delay, fresh_schedule);
criterion_main!(benches);
