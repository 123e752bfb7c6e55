//! What a listener costs on the request path: one retry event delivered to a listener the way
//! a layer holds it (`Arc<dyn Listener>`): a closure over every event, one narrowed to retry
//! events with `events::only`, a named one, and a `MetricsListener` over a recorder whose
//! counters are plain atomics; then a retry layer's success path with each.

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use riprap::classify::Class;
use riprap::events::{self, Event, ListenerExt, MetricsListener, SharedListener};
use riprap::retry::{RetryConfig, RetryEvent};
use tower::{Service, service_fn};

#[derive(Default)]
struct Atomics(AtomicU64);

impl CounterFn for Atomics {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, _: u64) {}
}

impl HistogramFn for Atomics {
    fn record(&self, _: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct AtomicRecorder(Arc<Atomics>);

impl Recorder for AtomicRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::clone(&self.0))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::clone(&self.0))
    }
}

fn listeners() -> Vec<(&'static str, Option<SharedListener>)> {
    let direct = Arc::new(AtomicU64::new(0));
    let only = Arc::new(AtomicU64::new(0));
    let named = Arc::new(AtomicU64::new(0));
    vec![
        ("none", None),
        (
            "closure",
            Some(Arc::new(move |_: &Event<'_>| {
                direct.fetch_add(1, Ordering::Relaxed);
            })),
        ),
        (
            "only_retry",
            Some(Arc::new(events::only(move |_: &RetryEvent| {
                only.fetch_add(1, Ordering::Relaxed);
            }))),
        ),
        (
            "named",
            Some(Arc::new(
                (move |_: &Event<'_>| {
                    named.fetch_add(1, Ordering::Relaxed);
                })
                .named("llm"),
            )),
        ),
        ("metrics", Some(Arc::new(MetricsListener::new("llm")))),
    ]
}

fn deliver(c: &mut Criterion) {
    let recorder = AtomicRecorder(Arc::new(Atomics::default()));
    metrics::with_local_recorder(&recorder, || {
        let event = RetryEvent::Attempt {
            attempt: 2,
            class: Class::Transient,
            delay: Some(Duration::from_millis(200)),
        };
        let mut group = c.benchmark_group("events/deliver");
        for (name, listener) in listeners() {
            let Some(listener) = listener else { continue };
            listener.on_event(&Event::new(&event)); // registers the metrics series
            group.bench_function(name, |b| {
                b.iter(|| listener.on_event(&Event::new(black_box(&event))))
            });
        }
        group.finish();
    });
}

/// A retry layer's success path, which reports one `Attempt` event per request when a
/// listener is set; `none` is the layer without one.
fn retry_success_path(c: &mut Criterion) {
    let recorder = AtomicRecorder(Arc::new(Atomics::default()));
    metrics::with_local_recorder(&recorder, || {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let count = Arc::new(AtomicU64::new(0));
        let named = {
            let n = Arc::clone(&count);
            (move |_: &Event<'_>| {
                n.fetch_add(1, Ordering::Relaxed);
            })
            .named("llm")
        };
        let closure = {
            let n = Arc::clone(&count);
            events::only(move |_: &RetryEvent| {
                n.fetch_add(1, Ordering::Relaxed);
            })
        };
        let configs = [
            ("none", RetryConfig::new()),
            ("only_retry", RetryConfig::new().listener(closure)),
            ("named", RetryConfig::new().listener(named)),
            (
                "metrics",
                RetryConfig::new().listener(MetricsListener::new("llm")),
            ),
        ];
        let mut group = c.benchmark_group("events/retry_success");
        for (name, config) in configs {
            let mut svc = config
                .build()
                .unwrap()
                .layer(service_fn(
                    |x: u64| async move { Ok::<u64, std::io::Error>(x) },
                ));
            group.bench_function(name, |b| {
                b.iter(|| {
                    match svc.poll_ready(&mut cx) {
                        Poll::Ready(Ok(())) => {}
                        _ => unreachable!("always ready"),
                    }
                    let fut = std::pin::pin!(svc.call(black_box(1)));
                    match fut.poll(&mut cx) {
                        Poll::Ready(Ok(v)) => v,
                        _ => unreachable!("answers at once"),
                    }
                })
            });
        }
        group.finish();
    });
}

criterion_group!(benches, deliver, retry_success_path);
criterion_main!(benches);
