//! The retry storm, reproduced and prevented.
//!
//! A mock LLM API allows 50 calls per second and answers the rest with `429 Retry-After: 1`.
//! Steady traffic of 60 requests per second arrives from many workers, so it is rate-limited
//! from the start; at minute 2 the API goes down for three minutes (503s), then recovers.
//! The same traffic runs twice, on a simulated clock (seven minutes in a few seconds):
//!
//! - **naive**: retries at once, 4 attempts in all, whatever the failure;
//! - **riprap**: `StackBuilder::llm_api` — retry budget, backoff that honours `Retry-After`, a
//!   circuit breaker, and a rate limiter that keeps to the known quota and pauses every worker
//!   when the server says so.
//!
//! It prints both side by side and writes `storm.svg`: upstream calls per second over time.
//!
//! ```sh
//! cargo run --release --example storm            # writes ./storm.svg
//! cargo run --release --example storm -- out.svg # or where you say
//! ```

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::backoff::BackoffPolicy;
use riprap::breaker::{CircuitBreaker, ConsecutiveFailures};
use riprap::classify::{Class, classify_fn};
use riprap::ratelimit::RateLimitConfig;
use riprap::retry::RetryConfig;
use riprap::stack::StackBuilder;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// What the scenario looks like.
const SERVER_LIMIT_PER_SEC: u32 = 50;
const OFFERED_PER_SEC: u32 = 60;
const RUN: Duration = Duration::from_secs(420);
const OUTAGE_FROM: Duration = Duration::from_secs(120);
const OUTAGE_UNTIL: Duration = Duration::from_secs(300);
const LATENCY: Duration = Duration::from_millis(300);
/// A stated price per upstream call, for the cost line.
const PRICE_PER_CALL: f64 = 0.002;

#[derive(Debug, Clone, Copy)]
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
}

#[derive(Debug)]
struct ApiError;

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection failed")
    }
}

impl std::error::Error for ApiError {}

/// The upstream's books: calls per second, and what it answered.
#[derive(Debug, Default)]
struct Ledger {
    calls_per_sec: Vec<u32>,
    served_in_window: (u64, u32),
    calls: u64,
    throttled: u64,
    failed: u64,
}

/// A mock LLM API: a fixed one-second window of 50 calls, an outage, 300 ms per call.
#[derive(Clone)]
struct MockApi {
    start: Instant,
    ledger: Arc<Mutex<Ledger>>,
}

impl Service<u64> for MockApi {
    type Response = Reply;
    type Error = ApiError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, ApiError>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), ApiError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u64) -> Self::Future {
        let now = Instant::now().duration_since(self.start);
        let second = now.as_secs();
        let reply = {
            let mut l = self.ledger.lock().expect("ledger");
            l.calls += 1;
            let idx = second as usize;
            if l.calls_per_sec.len() <= idx {
                l.calls_per_sec.resize(idx + 1, 0);
            }
            l.calls_per_sec[idx] += 1;
            if now >= OUTAGE_FROM && now < OUTAGE_UNTIL {
                l.failed += 1;
                Reply {
                    status: 503,
                    retry_after: None,
                }
            } else {
                if l.served_in_window.0 != second {
                    l.served_in_window = (second, 0);
                }
                if l.served_in_window.1 >= SERVER_LIMIT_PER_SEC {
                    l.throttled += 1;
                    let until_next = Duration::from_secs(second + 1) - now;
                    Reply {
                        status: 429,
                        retry_after: Some(until_next.max(Duration::from_secs(1))),
                    }
                } else {
                    l.served_in_window.1 += 1;
                    Reply {
                        status: 200,
                        retry_after: None,
                    }
                }
            }
        };
        Box::pin(async move {
            tokio::time::sleep(LATENCY).await;
            Ok(reply)
        })
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct Report {
    requests: u64,
    succeeded: u64,
    latencies_ms: Vec<u64>,
    ok_per_sec: Vec<u32>,
}

fn classify(out: Result<&Reply, &ApiError>) -> Class {
    match out {
        Ok(r) if r.status == 200 => Class::Success,
        Ok(r) if r.status == 429 => Class::Throttled {
            retry_after: r.retry_after,
        },
        Ok(r) if r.status >= 500 => Class::Transient,
        Ok(_) => Class::Permanent,
        Err(_) => Class::Transient,
    }
}

/// Open-loop traffic: `OFFERED_PER_SEC` arrivals a second whatever happens to earlier ones,
/// each handled by `handle` in its own task.
async fn drive<F, Fut>(start: Instant, handle: F) -> Report
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let report = Arc::new(Mutex::new(Report::default()));
    let gap = Duration::from_secs(1) / OFFERED_PER_SEC;
    let total = RUN.as_secs() * u64::from(OFFERED_PER_SEC);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + gap * i as u32).await;
        let fut = handle(i);
        let report = Arc::clone(&report);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let ok = fut.await;
            let done = Instant::now();
            let mut r = report.lock().expect("report");
            r.requests += 1;
            r.latencies_ms
                .push(done.duration_since(t0).as_millis() as u64);
            if ok {
                r.succeeded += 1;
                let s = done.duration_since(start).as_secs() as usize;
                if r.ok_per_sec.len() <= s {
                    r.ok_per_sec.resize(s + 1, 0);
                }
                r.ok_per_sec[s] += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(report).map_or_else(
        |_| Report::default(),
        |m| m.into_inner().unwrap_or_default(),
    )
}

async fn naive(api: MockApi) -> Report {
    drive(api.start, move |i| {
        let mut api = api.clone();
        async move {
            for _ in 0..4 {
                if let Ok(r) = api.call(i).await {
                    if r.status == 200 {
                        return true;
                    }
                }
            }
            false
        }
    })
    .await
}

async fn with_riprap(api: MockApi) -> Result<Report, riprap::ConfigError> {
    let stack = StackBuilder::llm_api(classify_fn(classify))
        .total_deadline(Duration::from_secs(30))
        .attempt_timeout(Duration::from_secs(10))
        .retry(
            RetryConfig::llm_api().backoff(
                BackoffPolicy::exponential(Duration::from_millis(500))
                    .max_delay(Duration::from_secs(8))
                    .seed(7)
                    .build()?,
            ),
        )
        .breaker(
            CircuitBreaker::builder()
                .policy(ConsecutiveFailures::new(20)?)
                .open_growing(Duration::from_secs(5), Duration::from_secs(30))
                .half_open_probes(2)
                .close_after(2)
                .seed(3),
        )
        .rate_limit(
            RateLimitConfig::builder()
                .requests(SERVER_LIMIT_PER_SEC, Duration::from_secs(1))
                .request_burst(1)
                .max_wait(Duration::from_secs(2))
                .seed(11),
        )
        .build()?;
    let svc = stack.layer(api.clone());
    Ok(drive(api.start, move |i| {
        let svc = svc.clone();
        async move { svc.oneshot(i).await.is_ok() }
    })
    .await)
}

struct Outcome {
    report: Report,
    ledger: Ledger,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Seconds after the outage ends until the client has served at least 90 % of what the
/// server can serve (or what it is offered) for five seconds in a row.
fn recovery_secs(ok_per_sec: &[u32]) -> Option<u64> {
    let need = (SERVER_LIMIT_PER_SEC.min(OFFERED_PER_SEC) as f64 * 0.9) as u32;
    let from = OUTAGE_UNTIL.as_secs() as usize;
    (from..ok_per_sec.len().saturating_sub(5))
        .find(|&s| ok_per_sec[s..s + 5].iter().all(|&n| n >= need))
        .map(|s| (s - from) as u64)
}

fn outage_amplification(o: &Outcome) -> f64 {
    let (a, b) = (
        OUTAGE_FROM.as_secs() as usize,
        OUTAGE_UNTIL.as_secs() as usize,
    );
    let calls: u32 = o.ledger.calls_per_sec.iter().skip(a).take(b - a).sum();
    calls as f64 / ((b - a) as f64 * f64::from(OFFERED_PER_SEC))
}

async fn run(riprap: bool) -> Result<Outcome, riprap::ConfigError> {
    let api = MockApi {
        start: Instant::now(),
        ledger: Arc::new(Mutex::new(Ledger::default())),
    };
    let ledger = Arc::clone(&api.ledger);
    let mut report = if riprap {
        with_riprap(api).await?
    } else {
        naive(api).await
    };
    report.latencies_ms.sort_unstable();
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger"));
    Ok(Outcome { report, ledger })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let wall = std::time::Instant::now();
    let naive = runtime.block_on(run(false))?;
    let riprap = runtime.block_on(run(true))?;

    println!(
        "The retry storm: {OFFERED_PER_SEC} requests/s against an LLM API allowing {SERVER_LIMIT_PER_SEC}/s \
         (429 + Retry-After beyond),\ndown from minute {} to minute {}, {} simulated minutes.\n",
        OUTAGE_FROM.as_secs() / 60,
        OUTAGE_UNTIL.as_secs() / 60,
        RUN.as_secs() / 60
    );
    println!("{:<34} {:>14} {:>14}", "", "naive", "riprap");
    for ((name, a), (_, b)) in table(&naive).into_iter().zip(table(&riprap)) {
        println!("{name:<34} {a:>14} {b:>14}");
    }

    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "storm.svg".to_string());
    std::fs::write(
        &path,
        chart(&naive.ledger.calls_per_sec, &riprap.ledger.calls_per_sec),
    )?;
    println!("\nChart of upstream calls per second: {path}");
    println!(
        "(simulated in {:.1} s of real time)",
        wall.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One column of the side-by-side table.
fn table(o: &Outcome) -> Vec<(&'static str, String)> {
    let (r, l) = (&o.report, &o.ledger);
    vec![
        ("requests", r.requests.to_string()),
        ("upstream calls", l.calls.to_string()),
        (
            "amplification (calls / request)",
            format!("{:.2}x", l.calls as f64 / r.requests.max(1) as f64),
        ),
        (
            "amplification during the outage",
            format!("{:.2}x", outage_amplification(o)),
        ),
        ("429s received", l.throttled.to_string()),
        ("requests that succeeded", r.succeeded.to_string()),
        (
            "calls wasted (not a 200)",
            (l.throttled + l.failed).to_string(),
        ),
        (
            "cost at $0.002 per call",
            format!("${:.2}", l.calls as f64 * PRICE_PER_CALL),
        ),
        (
            "latency p50 (all requests)",
            format!("{} ms", percentile(&r.latencies_ms, 0.5)),
        ),
        (
            "latency p99 (all requests)",
            format!("{} ms", percentile(&r.latencies_ms, 0.99)),
        ),
        (
            "time to recover after the outage",
            match recovery_secs(&r.ok_per_sec) {
                Some(s) => format!("{s} s"),
                None => "not within the run".to_string(),
            },
        ),
    ]
}

/// A dependency-free SVG line chart of calls per second for both clients.
fn chart(naive: &[u32], riprap: &[u32]) -> String {
    let (w, h, pad) = (900.0_f64, 360.0_f64, 48.0_f64);
    let secs = RUN.as_secs() as f64;
    let max = naive
        .iter()
        .chain(riprap)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |s: f64| pad + s / secs * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v / max * (h - 2.0 * pad);
    let line = |data: &[u32]| {
        data.iter()
            .enumerate()
            .map(|(s, v)| format!("{:.1},{:.1}", x(s as f64), y(f64::from(*v))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<rect x="{ox:.1}" y="{pad}" width="{ow:.1}" height="{ih:.1}" fill="#fde2e2"/>
<text x="{tx:.1}" y="{ty:.1}" fill="#a33">API down</text>
<line x1="{pad}" y1="{base:.1}" x2="{xr:.1}" y2="{base:.1}" stroke="black"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{base:.1}" stroke="black"/>
<line x1="{pad}" y1="{ly:.1}" x2="{xr:.1}" y2="{ly:.1}" stroke="#888" stroke-dasharray="4 4"/>
<text x="{lx:.1}" y="{lty:.1}" fill="#555">server limit {SERVER_LIMIT_PER_SEC}/s</text>
<polyline fill="none" stroke="#d62728" stroke-width="1.2" points="{n}"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.6" points="{r}"/>
<text x="{pad}" y="20" font-size="14">Upstream calls per second (max {max})</text>
<text x="{lgx:.1}" y="20" fill="#d62728">naive: immediate retries, 4 attempts</text>
<text x="{lgx:.1}" y="36" fill="#1f77b4">riprap: StackBuilder::llm_api</text>
"##,
        ox = x(OUTAGE_FROM.as_secs_f64()),
        ow = x(OUTAGE_UNTIL.as_secs_f64()) - x(OUTAGE_FROM.as_secs_f64()),
        ih = h - 2.0 * pad,
        tx = x(OUTAGE_FROM.as_secs_f64()) + 6.0,
        ty = pad + 16.0,
        base = h - pad,
        xr = w - pad,
        ly = y(f64::from(SERVER_LIMIT_PER_SEC)),
        lx = w - pad - 120.0,
        lty = y(f64::from(SERVER_LIMIT_PER_SEC)) - 4.0,
        n = line(naive),
        r = line(riprap),
        lgx = w - pad - 250.0,
        max = max as u32,
    );
    for m in 0..=(RUN.as_secs() / 60) {
        let xm = x((m * 60) as f64);
        svg.push_str(&format!(
            "<text x=\"{xm:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{m} min</text>\n",
            h - pad + 16.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
