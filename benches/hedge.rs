//! Hedging's success path: a request answered before the hedging delay, through riprap's
//! `HedgeLayer` and tower-resilience's hedge over the same inner service (and the inner
//! service alone, for the floor). One hedge allowed after 100 ms, never reached; riprap pays
//! its deposit to a budget (its default `RatioBudget`, and `Unlimited` for the cost of the
//! hedging machinery alone).

use std::convert::Infallible;
use std::time::Duration;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use futures_util::FutureExt;
use riprap::budget::Unlimited;
use riprap::hedge::HedgeLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

async fn ok(x: u64) -> Result<u64, Infallible> {
    Ok(x)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _runtime = rt.enter();
    let delay = Duration::from_millis(100);
    let mut g = c.benchmark_group("hedge");

    let mut inner = service_fn(ok);
    g.bench_function("inner_service_alone", |b| {
        b.iter(|| {
            let ready = inner.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never())
        })
    });

    // tower-resilience counts attempts in all: 2 is the original and one hedge.
    let mut resilience = tower_resilience::hedge::HedgeLayer::builder()
        .delay(delay)
        .max_hedged_attempts(2)
        .build()
        .layer(service_fn(ok));
    g.bench_function("tower_resilience_hedge", |b| {
        b.iter(|| {
            let ready = resilience.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never())
        })
    });

    let mut riprap = HedgeLayer::builder()
        .delay(delay)
        .build()
        .unwrap()
        .layer(service_fn(ok));
    g.bench_function("riprap_hedge", |b| {
        b.iter(|| {
            let ready = riprap.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never())
        })
    });

    let mut unlimited = HedgeLayer::builder()
        .delay(delay)
        .budget(Unlimited)
        .build()
        .unwrap()
        .layer(service_fn(ok));
    g.bench_function("riprap_hedge_unlimited_budget", |b| {
        b.iter(|| {
            let ready = unlimited.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never())
        })
    });

    let mut learned = HedgeLayer::builder()
        .delay_percentile(0.95, delay)
        .build()
        .unwrap()
        .layer(service_fn(ok));
    g.bench_function("riprap_hedge_percentile_delay", |b| {
        b.iter(|| {
            let ready = learned.ready().now_or_never().unwrap().unwrap();
            black_box(ready.call(1).now_or_never())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
