//! Hot paths allocate nothing: a counting global allocator, per thread so parallel tests do not
//! disturb each other's counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use riprap::backoff::{Backoff, BackoffPolicy, Jitter, MakeBackoff};
use riprap::breaker::{BreakerEvent, BreakerState};
use riprap::cache::CacheEvent;
use riprap::classify::Class;
use riprap::events::{Event, Listener, ListenerExt, SharedListener};
use riprap::ratelimit::RateLimitEvent;
use riprap::retry::RetryEvent;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while running `f`.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

#[test]
fn drawing_a_thousand_delays_allocates_nothing() {
    for jitter in [
        Jitter::None,
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let policy = BackoffPolicy::exponential(Duration::from_millis(100))
            .jitter(jitter)
            .seed(9)
            .build()
            .unwrap();
        let (allocs, total) = allocations_during(|| {
            let mut schedule = policy.make_backoff();
            let mut total = Duration::ZERO;
            for _ in 0..1_000 {
                total += schedule.next_delay().unwrap_or_default();
            }
            schedule.reset();
            total
        });
        assert!(total > Duration::ZERO);
        assert_eq!(allocs, 0, "{jitter:?} allocated {allocs} times");
    }
}

/// One event of each layer, made before counting (a breaker event holds its name's `Arc`).
struct Sample {
    retry: RetryEvent,
    breaker: BreakerEvent,
    ratelimit: RateLimitEvent,
    cache: CacheEvent,
}

fn sample() -> Sample {
    Sample {
        retry: RetryEvent::Attempt {
            attempt: 2,
            class: Class::Transient,
            delay: Some(Duration::from_millis(200)),
        },
        breaker: BreakerEvent::Transition {
            name: Some("orders-db".into()),
            from: BreakerState::Closed,
            to: BreakerState::Open,
            open_for: Some(Duration::from_secs(5)),
            generation: 1,
        },
        ratelimit: RateLimitEvent::Waited {
            waited: Duration::from_millis(30),
        },
        cache: CacheEvent::Hit,
    }
}

/// Delivers 1,000 events of each layer through a listener shaped as the layers hold it.
fn deliver(listener: &SharedListener, s: &Sample) {
    for _ in 0..1_000 {
        listener.on_event(&Event::new(&s.retry));
        listener.on_event(&Event::new(&s.breaker));
        listener.on_event(&Event::new(&s.ratelimit));
        listener.on_event(&Event::new(&s.cache));
    }
}

#[test]
fn a_named_listener_hears_every_layers_events_without_allocating() {
    let seen = Arc::new(AtomicU64::new(0));
    let named = Arc::new(AtomicU64::new(0));
    let (count, count_named) = (Arc::clone(&seen), Arc::clone(&named));
    let listener = (move |e: &Event<'_>| {
        count.fetch_add(1, Ordering::Relaxed);
        if e.name() == Some("llm") && !e.kind().is_empty() {
            count_named.fetch_add(1, Ordering::Relaxed);
        }
    })
    .named("llm");
    let s = sample();
    // Handing the listener to the layers is paid once, here.
    let listener: SharedListener = Arc::new(listener);

    let (allocs, ()) = allocations_during(|| deliver(&listener, &s));
    assert_eq!(allocs, 0, "delivering allocated {allocs} times");
    assert_eq!(seen.load(Ordering::Relaxed), 4_000);
    assert_eq!(named.load(Ordering::Relaxed), 4_000);
}

/// A recorder whose handles add into two atomics, so what allocates is riprap's, not the
/// recorder's storage (a debugging recorder keeps every histogram sample in a growing list).
#[cfg(feature = "metrics")]
mod totals {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    #[derive(Default)]
    pub struct Totals {
        pub counted: AtomicU64,
        pub samples: AtomicU64,
    }

    impl CounterFn for Totals {
        fn increment(&self, value: u64) {
            self.counted.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, _: u64) {}
    }

    impl HistogramFn for Totals {
        fn record(&self, _: f64) {
            self.samples.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub struct Summing(pub Arc<Totals>);

    impl Recorder for Summing {
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
}

#[cfg(feature = "metrics")]
#[test]
fn metrics_listener_allocates_only_to_register_a_series() {
    use riprap::breaker::Rejected;
    use riprap::events::MetricsListener;
    use riprap::retry::GiveUp;

    let totals = Arc::new(totals::Totals::default());
    let recorder = totals::Summing(Arc::clone(&totals));
    let _guard = metrics::set_default_local_recorder(&recorder);
    let listener: SharedListener = Arc::new(MetricsListener::new("llm"));
    let s = sample();
    let gave_up = RetryEvent::GaveUp {
        attempts: 3,
        reason: GiveUp::BudgetRefused,
    };
    let rejected = BreakerEvent::Rejected {
        name: None,
        rejected: Rejected::HalfOpen,
    };
    let round = || {
        deliver(&listener, &s);
        listener.on_event(&Event::new(&gave_up));
        listener.on_event(&Event::new(&rejected));
    };

    // The first event of each series registers it (its key's labels are allocated once).
    let (first, ()) = allocations_during(round);
    assert!(first > 0);
    let (allocs, ()) = allocations_during(round);
    assert_eq!(allocs, 0, "publishing allocated {allocs} times");
    // Per round: four counters and three histograms per 1,000, then the give-up and the
    // rejection.
    assert_eq!(totals.counted.load(Ordering::Relaxed), 2 * 4_002);
    assert_eq!(totals.samples.load(Ordering::Relaxed), 2 * 3_000);
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let (allocs, v) = allocations_during(|| vec![1u8; 64]);
    assert_eq!(v.len(), 64);
    assert!(allocs >= 1);
}

/// One call through a breaker service: ready, call, poll once (the inner answers at once).
fn call_once<S: tower::Service<u32, Response = u32>>(svc: &mut S) -> u32
where
    S::Error: std::fmt::Debug,
{
    use std::future::Future;
    use std::task::{Context, Poll};
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(svc.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    let mut fut = std::pin::pin!(svc.call(7));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.expect("success"),
        Poll::Pending => panic!("the inner service answers at once"),
    }
}

/// Allocations made by 1,000 calls through `svc`, each answered at once.
fn allocations_in_1000_calls<S: tower::Service<u32, Response = u32>>(svc: &mut S) -> u64
where
    S::Error: std::fmt::Debug,
{
    allocations_during(|| {
        for _ in 0..1_000 {
            assert_eq!(call_once(svc), 7);
        }
    })
    .0
}

/// A current-thread runtime with timers, for the layers that read tokio's clock.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn breaker_clones_per_request_allocate_nothing_and_long_lived_ones_once() {
    use riprap::breaker::{CircuitBreaker, CircuitBreakerLayer};
    use tower::Layer;

    let inner = tower::service_fn(|x: u32| std::future::ready(Ok::<_, std::io::Error>(x)));
    let svc = CircuitBreakerLayer::new(CircuitBreaker::builder().build().unwrap()).layer(inner);
    // Warm up anything lazily allocated on first use.
    call_once(&mut svc.clone());

    // A retry layer clones its inner service for every request: no allocation per request.
    let (allocs, _) = allocations_during(|| {
        for _ in 0..1_000 {
            let mut per_request = svc.clone();
            assert_eq!(call_once(&mut per_request), 7);
        }
    });
    assert_eq!(allocs, 0, "per-request clones allocated {allocs} times");

    // A long-lived clone (one per worker) takes a handle of its own once, then never again.
    let mut worker = svc.clone();
    let allocs = allocations_in_1000_calls(&mut worker);
    assert_eq!(allocs, 1, "a long-lived clone allocated {allocs} times");
}

#[test]
fn keyed_hits_allocate_nothing() {
    use riprap::breaker::{CircuitBreaker, KeyLimits, KeyedCircuitBreakerLayer};
    use riprap::ratelimit::{KeyedRateLimiter, RateLimitConfig};
    use tower::Layer;

    let limits = || KeyLimits::new(1_000).idle_timeout(Duration::from_secs(60));
    let inner = tower::service_fn(|x: u32| std::future::ready(Ok::<_, std::io::Error>(x)));
    let mut breakers = KeyedCircuitBreakerLayer::with_limits(
        CircuitBreaker::builder().build().unwrap(),
        limits(),
        |k: &u32| *k,
    )
    .unwrap()
    .layer(inner);
    call_once(&mut breakers);
    let allocs = allocations_in_1000_calls(&mut breakers);
    assert_eq!(allocs, 0, "keyed breaker hits allocated {allocs} times");

    let limiters = KeyedRateLimiter::with_limits(
        RateLimitConfig::builder()
            .requests(1_000_000, Duration::from_secs(1))
            .build()
            .unwrap(),
        limits(),
    )
    .unwrap();
    limiters.get(&7).try_acquire(1).unwrap();
    let (allocs, _) = allocations_during(|| {
        for _ in 0..1_000 {
            limiters.get(&7).try_acquire(1).unwrap();
        }
    });
    assert_eq!(allocs, 0, "keyed limiter hits allocated {allocs} times");
}

/// The success path of the retry layer, the rate-limit layer and a cache hit: nothing
/// allocated per call once warm (a long-lived rate-limit service takes its own handle on the
/// limiter once, as a breaker service does).
#[test]
fn success_paths_of_retry_rate_limit_and_a_cache_hit_allocate_nothing() {
    use riprap::cache::{Cache, CacheConfig};
    use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
    use riprap::retry::RetryConfig;
    use tower::Layer;

    let rt = runtime();
    let _in_runtime = rt.enter();
    let inner = tower::service_fn(|x: u32| std::future::ready(Ok::<_, std::io::Error>(x)));

    let mut retry = RetryConfig::new().build().unwrap().layer(inner);
    call_once(&mut retry);
    let allocs = allocations_in_1000_calls(&mut retry);
    assert_eq!(allocs, 0, "the retry layer allocated {allocs} times");

    let limiter = RateLimiter::new(
        RateLimitConfig::builder()
            .requests(1_000_000_000, Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    let limited = RateLimitLayer::new(limiter).layer(inner);
    call_once(&mut limited.clone());
    let (allocs, _) = allocations_during(|| {
        for _ in 0..1_000 {
            assert_eq!(call_once(&mut limited.clone()), 7);
        }
    });
    assert_eq!(
        allocs, 0,
        "per-request rate-limit clones allocated {allocs} times"
    );
    let mut worker = limited.clone();
    let allocs = allocations_in_1000_calls(&mut worker);
    assert_eq!(
        allocs, 1,
        "a long-lived rate-limit service allocated {allocs} times"
    );

    let cache: Cache<u32, u32, std::io::Error> =
        Cache::new(CacheConfig::builder().build().unwrap());
    let mut cached = cache.layer().layer(inner);
    // The miss that loads the key (a load may hand off to the runtime).
    rt.block_on(tower::ServiceExt::oneshot(cached.clone(), 7))
        .unwrap();
    let allocs = allocations_in_1000_calls(&mut cached);
    assert_eq!(allocs, 0, "cache hits allocated {allocs} times");
}

/// The whole stack's success path (retry over breaker over rate limit, with and without
/// deadlines): nothing allocated per call once warm. A long-lived stack service takes its
/// handles once, on its first calls.
#[test]
fn the_stacks_success_path_allocates_nothing() {
    use riprap::classify::ByError;
    use riprap::ratelimit::RateLimitConfig;
    use riprap::stack::StackBuilder;

    let rt = runtime();
    let _in_runtime = rt.enter();
    let inner = tower::service_fn(|x: u32| std::future::ready(Ok::<_, std::io::Error>(x)));
    let roomy = || RateLimitConfig::builder().requests(1_000_000_000, Duration::from_secs(1));

    let mut plain = StackBuilder::new(ByError)
        .rate_limit(roomy())
        .build()
        .unwrap()
        .layer(inner);
    let mut deadlines = StackBuilder::new(ByError)
        .total_deadline(Duration::from_secs(30))
        .attempt_timeout(Duration::from_secs(10))
        .rate_limit(roomy())
        .build()
        .unwrap()
        .layer(inner);
    for stack in [&mut plain, &mut deadlines] {
        // Past the calls after which a long-lived service takes private handles.
        for _ in 0..64 {
            assert_eq!(call_once(stack), 7);
        }
    }
    let allocs = allocations_in_1000_calls(&mut plain);
    assert_eq!(allocs, 0, "the stack allocated {allocs} times");
    let allocs = allocations_in_1000_calls(&mut deadlines);
    assert_eq!(
        allocs, 0,
        "the stack with deadlines allocated {allocs} times"
    );
}
