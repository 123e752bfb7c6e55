//! A simulated dependency whose latency grows with concurrency and whose capacity halves
//! mid-run, driven by open-loop traffic through a bulkhead, on tokio's paused clock.
//!
//! Shared by `examples/adaptive_concurrency.rs` (table and chart) and `tests/bulkhead.rs`
//! (the same table, asserted).
//!
//! The server has `slots` workers (40, then 20 from half-way). A call arriving when `n`
//! calls are in service takes `BASE × f(n / slots) × jitter`, where `f(x) = 1` up to
//! capacity and `x × (1 + 0.25 (x − 1))` beyond it: queueing, plus the contention an
//! overloaded server wastes work on. A call the client abandons (its 250 ms attempt timeout)
//! keeps the server busy until it would have finished, as real servers do. Traffic arrives at
//! 500 calls per second (1.25× the first capacity, 2.5× the second), Poisson, seeded.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use riprap::bulkhead::{
    Aimd, Bulkhead, BulkheadBuilder, BulkheadError, BulkheadLayer, Gradient, Vegas,
};
use riprap::classify::{ByError, Through};
use riprap::timeout::{TimeoutError, TimeoutLayer};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// Unloaded latency (±10 % jitter).
pub const BASE: Duration = Duration::from_millis(100);
pub const JITTER: f64 = 0.10;
/// Workers before and after the capacity halves.
pub const SLOTS: (u32, u32) = (40, 20);
pub const HALVES_AT: Duration = Duration::from_secs(30);
pub const RUN: Duration = Duration::from_secs(60);
pub const OFFERED_PER_SEC: f64 = 500.0;
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);
/// How much work an overloaded server wastes per call beyond capacity.
pub const CONTENTION: f64 = 0.25;
/// How often the limit is sampled for the chart.
pub const TICK: Duration = Duration::from_millis(100);

/// Capacity in calls per second at `at` into the run.
pub fn capacity_at(at: Duration) -> f64 {
    let slots = if at < HALVES_AT { SLOTS.0 } else { SLOTS.1 };
    f64::from(slots) / BASE.as_secs_f64()
}

/// SplitMix64, so the run is the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct ServerState {
    start: Instant,
    finishing: BinaryHeap<Reverse<Instant>>,
    rng: Rng,
    peak: usize,
}

/// The simulated dependency.
#[derive(Clone)]
pub struct Server {
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    pub fn new(start: Instant, seed: u64) -> Self {
        Server {
            state: Arc::new(Mutex::new(ServerState {
                start,
                finishing: BinaryHeap::new(),
                rng: Rng::new(seed),
                peak: 0,
            })),
        }
    }

    /// The most calls it ever had in service at once.
    pub fn peak(&self) -> usize {
        self.state.lock().map(|s| s.peak).unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unreachable")
    }
}

impl std::error::Error for Unreachable {}

impl riprap::classify::Classified for Unreachable {
    fn class(&self) -> riprap::classify::Class {
        riprap::classify::Class::Transient
    }
}

impl Service<u64> for Server {
    type Response = ();
    type Error = Unreachable;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Unreachable>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Unreachable>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        let now = Instant::now();
        let latency = {
            let Ok(mut s) = self.state.lock() else {
                return Box::pin(async { Err(Unreachable) });
            };
            while s.finishing.peek().is_some_and(|Reverse(at)| *at <= now) {
                s.finishing.pop();
            }
            let n = s.finishing.len() + 1;
            s.peak = s.peak.max(n);
            let slots = if now.duration_since(s.start) < HALVES_AT {
                SLOTS.0
            } else {
                SLOTS.1
            };
            let x = n as f64 / f64::from(slots);
            let load = if x <= 1.0 {
                1.0
            } else {
                x * (1.0 + CONTENTION * (x - 1.0))
            };
            let jitter = 1.0 + JITTER * (2.0 * s.rng.unit() - 1.0);
            let latency = BASE.mul_f64(load * jitter);
            s.finishing.push(Reverse(now + latency));
            latency
        };
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            Ok(())
        })
    }
}

/// What one run saw.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub name: String,
    pub requests: u64,
    pub succeeded: u64,
    pub timed_out: u64,
    pub rejected: u64,
    /// Latencies of the calls admitted (a call that timed out counts its wait), sorted.
    pub latencies: Vec<Duration>,
    /// Successes finishing in each second.
    pub ok_per_sec: Vec<u32>,
    /// The bulkhead's limit every `TICK`.
    pub limits: Vec<u32>,
    pub server_peak: usize,
}

impl Report {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[idx.min(self.latencies.len() - 1)]
    }

    /// Successes over what the server could serve, between `from` and `to`.
    pub fn throughput(&self, from: Duration, to: Duration) -> f64 {
        let (a, b) = (from.as_secs() as usize, to.as_secs() as usize);
        let ok: u32 = self.ok_per_sec.iter().skip(a).take(b - a).sum();
        let capacity: f64 = (a..b)
            .map(|s| capacity_at(Duration::from_secs(s as u64)))
            .sum();
        f64::from(ok) / capacity
    }
}

/// Run the scenario through a bulkhead built from `builder`, at `offered` calls per second.
pub async fn run(name: &str, builder: BulkheadBuilder, offered: f64, seed: u64) -> Report {
    let start = Instant::now();
    let server = Server::new(start, seed);
    let bulkhead = builder.build().expect("a valid bulkhead");
    let svc = BulkheadLayer::new(bulkhead.clone())
        .classifier(Through(ByError))
        .layer(TimeoutLayer::new(ATTEMPT_TIMEOUT).layer(server.clone()));
    let report = Arc::new(Mutex::new(Report {
        name: name.to_string(),
        ok_per_sec: vec![0; RUN.as_secs() as usize + 2],
        ..Report::default()
    }));

    // The limit, sampled for the chart.
    let sampler = {
        let (bulkhead, report) = (bulkhead.clone(), Arc::clone(&report));
        tokio::spawn(async move {
            let mut at = start;
            while at.duration_since(start) < RUN {
                if let Ok(mut r) = report.lock() {
                    r.limits.push(bulkhead.limit());
                }
                at += TICK;
                tokio::time::sleep_until(at).await;
            }
        })
    };

    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut at = start;
    let mut tasks = Vec::new();
    let mut i = 0u64;
    loop {
        // Poisson arrivals: exponential gaps.
        let gap = -(1.0 - rng.unit()).ln() / offered;
        at += Duration::from_secs_f64(gap);
        if at.duration_since(start) >= RUN {
            break;
        }
        tokio::time::sleep_until(at).await;
        let call = svc.clone().oneshot(i);
        i += 1;
        let report = Arc::clone(&report);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let out = call.await;
            let done = Instant::now();
            let Ok(mut r) = report.lock() else { return };
            r.requests += 1;
            match out {
                Ok(()) => {
                    r.succeeded += 1;
                    r.latencies.push(done.duration_since(t0));
                    let s = done.duration_since(start).as_secs() as usize;
                    if let Some(n) = r.ok_per_sec.get_mut(s) {
                        *n += 1;
                    }
                }
                Err(BulkheadError::Rejected(_)) => r.rejected += 1,
                Err(BulkheadError::Inner(TimeoutError::Elapsed(_))) => {
                    // The caller waited this long for nothing: it counts in the latency.
                    r.timed_out += 1;
                    r.latencies.push(done.duration_since(t0));
                }
                Err(BulkheadError::Inner(_)) => {}
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = sampler.await;
    let mut report = Arc::try_unwrap(report)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default();
    report.latencies.sort_unstable();
    report.server_peak = server.peak();
    report
}

/// The limits compared, in the order they are printed and drawn.
pub fn contenders() -> Result<Vec<(&'static str, BulkheadBuilder)>, riprap::ConfigError> {
    Ok(vec![
        ("fixed 40", Bulkhead::builder().max_concurrent(40)),
        (
            "gradient",
            Bulkhead::builder().adaptive(Gradient::builder().initial(20).max(200).build()?),
        ),
        (
            "vegas",
            Bulkhead::builder().adaptive(Vegas::builder().initial(20).max(200).build()?),
        ),
        (
            "aimd (slow 150ms)",
            Bulkhead::builder().adaptive(
                Aimd::builder()
                    .initial(20)
                    .max(200)
                    .slow(Duration::from_millis(150))
                    .build()?,
            ),
        ),
    ])
}

/// The table the example prints and the test asserts on.
pub fn table(reports: &[Report], unloaded_p99: Duration) -> String {
    let mut out = format!(
        "{:<18} {:>8} {:>8} {:>10} {:>11} {:>11} {:>9} {:>9} {:>9}\n",
        "limit",
        "p50 ms",
        "p99 ms",
        "p99/idle",
        "thru 0-30s",
        "thru 30-60s",
        "thru all",
        "timeouts",
        "refused"
    );
    for r in reports {
        let p99 = r.percentile(0.99);
        out.push_str(&format!(
            "{:<18} {:>8} {:>8} {:>9.2}x {:>10.0}% {:>10.0}% {:>8.0}% {:>9} {:>9}\n",
            r.name,
            r.percentile(0.5).as_millis(),
            p99.as_millis(),
            p99.as_secs_f64() / unloaded_p99.as_secs_f64(),
            100.0 * r.throughput(Duration::ZERO, HALVES_AT),
            100.0 * r.throughput(HALVES_AT, RUN),
            100.0 * r.throughput(Duration::ZERO, RUN),
            r.timed_out,
            r.rejected,
        ));
    }
    out
}
