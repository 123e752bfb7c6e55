//! Keyed state under many keys: riprap's keyed limiter and keyed breakers against governor's
//! keyed limiter (its default DashMap store) over the same keys.
//!
//! - `keyed_churn`: 1 M distinct keys through a keyed limiter capped at 100 k keys, once,
//!   printing throughput and resident memory (VmRSS) before and after; governor's unbounded
//!   keyed limiter takes the same keys for comparison. Each runs in a fresh child process of
//!   this bench, so neither inherits the other's freed memory.
//! - `keyed_insert`: a new key into a full map at caps of 1 k, 100 k and 1 M (each new key
//!   evicts one), for the limiter and the breakers: the work per key does not grow with the
//!   cap; the time does somewhat, as a larger map misses the CPU caches more.
//! - `keyed_hit`: a request on a key already held, cycling over 1,000 keys: riprap's
//!   `get(&key).try_acquire(1)` against governor's `check_key(&key)`, on one thread and on two.
//!
//! `KEYED_BENCH_MODE=insert:<limiter|breaker>:<cap>:<new keys>` makes the binary fill a map
//! to `cap`, store that many new keys and exit, for counting instructions per new key with
//! callgrind, as the difference of two runs:
//!
//! ```sh
//! cargo bench --bench keyed --no-run
//! B=$(ls -t target/release/deps/keyed-* | grep -v '\.d$' | head -1)
//! count() { KEYED_BENCH_MODE=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null $B \
//!           2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'; }
//! echo $(( ($(count insert:limiter:1000000:20000) - $(count insert:limiter:1000000:0)) / 20000 ))
//! ```

use std::hint::black_box;
use std::num::NonZeroU32;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter as Governor};
use riprap::breaker::{CircuitBreaker, KeyLimits, KeyedCircuitBreakerLayer};
use riprap::ratelimit::{KeyedRateLimiter, RateLimitConfig};
use tower::{Layer, Service, service_fn};

const RATE: u32 = 1_000_000_000;
const HOT_KEYS: u64 = 1_000;

fn config() -> RateLimitConfig {
    RateLimitConfig::builder()
        .requests(RATE, Duration::from_secs(1))
        .build()
        .unwrap()
}

fn limiters(limits: KeyLimits<u64>) -> KeyedRateLimiter<u64> {
    KeyedRateLimiter::with_limits(config(), limits).unwrap()
}

type GovernorKeyed = Governor<
    u64,
    governor::state::keyed::DefaultKeyedStateStore<u64>,
    governor::clock::DefaultClock,
>;

fn governor() -> GovernorKeyed {
    Governor::keyed(Quota::per_second(NonZeroU32::new(RATE).unwrap()))
}

/// Resident memory of this process, in bytes (0 where `/proc` is not there).
fn resident() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

const CHURN_KEYS: u64 = 1_000_000;
const CHURN_CAP: usize = 100_000;

/// 1 M distinct keys, each used once, through a cap of 100 k (what a hostile key stream
/// does), each contender in a child process of its own.
fn churn() {
    for who in ["riprap", "governor", "riprap_breakers"] {
        let out = std::env::current_exe().and_then(|exe| {
            std::process::Command::new(exe)
                .env("KEYED_BENCH_MODE", format!("churn:{who}"))
                .output()
        });
        match out {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(e) => println!("keyed_churn/{who}: could not run: {e}"),
        }
    }
}

fn churn_riprap() {
    const KEYS: u64 = CHURN_KEYS;
    const CAP: usize = CHURN_CAP;
    let base = resident();
    let keyed = limiters(KeyLimits::new(CAP));
    let start = Instant::now();
    for k in 0..KEYS {
        black_box(keyed.get(&k).try_acquire(1).is_ok());
    }
    let took = start.elapsed();
    let held = resident();
    report(
        "riprap",
        &format!("through a cap of {CAP}"),
        KEYS,
        took,
        keyed.len(),
        (base, held),
    );
}

fn churn_breakers() {
    const KEYS: u64 = CHURN_KEYS;
    const CAP: usize = CHURN_CAP;
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let base = resident();
    let layer = KeyedCircuitBreakerLayer::new(
        CircuitBreaker::builder().build().unwrap(),
        CAP,
        |k: &u64| *k,
    )
    .unwrap();
    let breakers = std::sync::Arc::clone(layer.breakers());
    let mut svc = layer.layer(service_fn(
        |k: u64| async move { Ok::<_, std::io::Error>(k) },
    ));
    let start = Instant::now();
    for k in 0..KEYS {
        black_box(call_once(&mut svc, &mut cx, k));
    }
    let took = start.elapsed();
    let held = resident();
    report(
        "riprap_breakers",
        &format!("through a cap of {CAP}"),
        KEYS,
        took,
        breakers.len(),
        (base, held),
    );
}

fn churn_governor() {
    const KEYS: u64 = CHURN_KEYS;
    let base = resident();
    let gov = governor();
    let start = Instant::now();
    for k in 0..KEYS {
        black_box(gov.check_key(&k).is_ok());
    }
    let took = start.elapsed();
    let held = resident();
    report("governor", "(no cap)", KEYS, took, gov.len(), (base, held));
}

/// One churn run's line: time per key, keys held, and resident memory before and after.
fn report(
    who: &str,
    cap: &str,
    keys: u64,
    took: Duration,
    held_keys: usize,
    (before, after): (u64, u64),
) {
    let grown = after.saturating_sub(before);
    println!(
        "keyed_churn/{who}: {keys} distinct keys {cap} in {:.3} s ({:.2} M keys/s, \
         {:.0} ns/key); {held_keys} keys held; VmRSS {:.1} MiB before, {:.1} MiB after \
         (+{:.1} MiB, {:.0} bytes per held key)",
        took.as_secs_f64(),
        keys as f64 / took.as_secs_f64() / 1e6,
        took.as_nanos() as f64 / keys as f64,
        mib(before),
        mib(after),
        mib(grown),
        grown as f64 / held_keys.max(1) as f64,
    );
}

/// One call through a service whose inner answers at once.
fn call_once<S: Service<u64, Response = u64>>(svc: &mut S, cx: &mut Context<'_>, key: u64) -> bool {
    use std::future::Future;
    if !matches!(svc.poll_ready(cx), Poll::Ready(Ok(()))) {
        return false;
    }
    let mut fut = std::pin::pin!(svc.call(key));
    matches!(fut.as_mut().poll(cx), Poll::Ready(Ok(_)))
}

fn insert(c: &mut Criterion) {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut g = c.benchmark_group("keyed_insert");
    g.throughput(Throughput::Elements(1));
    for (name, cap) in [("1k", 1_000usize), ("100k", 100_000), ("1M", 1_000_000)] {
        let keyed = limiters(KeyLimits::new(cap));
        for k in 0..cap as u64 {
            keyed.get(&k);
        }
        let mut next = cap as u64;
        g.bench_function(format!("limiter_new_key/cap_{name}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(keyed.get(&next));
                    next += 1;
                }
                start.elapsed()
            })
        });
        drop(keyed);

        let mut breakers = KeyedCircuitBreakerLayer::new(
            CircuitBreaker::builder().build().unwrap(),
            cap,
            |k: &u64| *k,
        )
        .unwrap()
        .layer(service_fn(
            |k: u64| async move { Ok::<_, std::io::Error>(k) },
        ));
        for k in 0..cap as u64 {
            call_once(&mut breakers, &mut cx, k);
        }
        let mut next = cap as u64;
        g.bench_function(format!("breaker_new_key/cap_{name}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(call_once(&mut breakers, &mut cx, next));
                    next += 1;
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

/// Time `iters` calls of `op(i)` on each of two threads at once (per-call time on one thread).
fn two_threads(iters: u64, op: impl Fn(u64) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let op = &op;
            s.spawn(move || {
                for i in 0..iters {
                    op(i.wrapping_mul(7).wrapping_add(t) % HOT_KEYS);
                }
            });
        }
    });
    start.elapsed()
}

fn hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyed_hit");
    let gov = governor();
    let keyed = limiters(KeyLimits::new(100_000));
    let idle = limiters(KeyLimits::new(100_000).idle_timeout(Duration::from_secs(600)));
    for k in 0..HOT_KEYS {
        let _ = gov.check_key(&k);
        keyed.get(&k);
        idle.get(&k);
    }
    let mut i = 0u64;
    let mut next = move || {
        i = (i + 1) % HOT_KEYS;
        i
    };
    g.bench_function("governor_check_key/1_thread", |b| {
        b.iter(|| black_box(gov.check_key(&next()).is_ok()))
    });
    g.bench_function("riprap_get_try_acquire/1_thread", |b| {
        b.iter(|| black_box(keyed.get(&next()).try_acquire(1).is_ok()))
    });
    // The map's share: the lookup and the clone of the key's limiter, no check.
    g.bench_function("riprap_get_only/1_thread", |b| {
        b.iter(|| black_box(keyed.get(&next())))
    });
    g.bench_function("riprap_get_try_acquire_idle_timeout/1_thread", |b| {
        b.iter(|| black_box(idle.get(&next()).try_acquire(1).is_ok()))
    });
    g.bench_function("governor_check_key/2_threads", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |k| {
                black_box(gov.check_key(&k).is_ok());
            })
        })
    });
    g.bench_function("riprap_get_try_acquire/2_threads", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |k| {
                black_box(keyed.get(&k).try_acquire(1).is_ok());
            })
        })
    });

    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut breakers = KeyedCircuitBreakerLayer::new(
        CircuitBreaker::builder().build().unwrap(),
        100_000,
        |k: &u64| *k,
    )
    .unwrap()
    .layer(service_fn(
        |k: u64| async move { Ok::<_, std::io::Error>(k) },
    ));
    for k in 0..HOT_KEYS {
        call_once(&mut breakers, &mut cx, k);
    }
    g.bench_function("riprap_breaker_call/1_thread", |b| {
        b.iter(|| black_box(call_once(&mut breakers, &mut cx, next())))
    });
    g.finish();
}

/// Fill a map to `cap`, then store `new` keys more: for instruction counts.
fn insert_only(what: &str, cap: usize, new: u64) {
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let end = cap as u64 + new;
    if what == "breaker" {
        let mut breakers = KeyedCircuitBreakerLayer::new(
            CircuitBreaker::builder().build().unwrap(),
            cap,
            |k: &u64| *k,
        )
        .unwrap()
        .layer(service_fn(
            |k: u64| async move { Ok::<_, std::io::Error>(k) },
        ));
        for k in 0..end {
            black_box(call_once(&mut breakers, &mut cx, k));
        }
    } else {
        let keyed = limiters(KeyLimits::new(cap));
        for k in 0..end {
            black_box(keyed.get(&k));
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _runtime = rt.enter();
    if let Ok(mode) = std::env::var("KEYED_BENCH_MODE") {
        let parts: Vec<&str> = mode.split(':').collect();
        match parts.as_slice() {
            ["churn", "riprap"] => churn_riprap(),
            ["churn", "governor"] => churn_governor(),
            ["churn", "riprap_breakers"] => churn_breakers(),
            ["insert", what, cap, new] => {
                insert_only(what, cap.parse().unwrap(), new.parse().unwrap())
            }
            _ => panic!("unknown KEYED_BENCH_MODE {mode}"),
        }
        std::process::exit(0);
    }
    churn();
    insert(c);
    hit(c);
}

criterion_group!(benches, bench);
criterion_main!(benches);
