//! Eight OS processes × eight workers share one API quota of R requests per window, against
//! a mock LLM API on loopback that counts in fixed windows and answers `429` with
//! `retry-after-ms` past R. Four runs, the same fleet each time:
//!
//! - **naive**: no limiter; a 429 is retried after 20 ms.
//! - **per-process R**: each process has a local limiter of the whole quota (each thinks the
//!   tier is its own) and its own gate.
//! - **per-process R/8**: the quota split evenly. Safe, but the demand is not even: four
//!   processes are busy, four are light pollers, and the pollers' unused share is lost.
//! - **fleet**: `Fleet::limiter`, the two-line change: GCRA on Redis with leases, and the
//!   shared server gate.
//!
//! The example re-executes itself with `child ...` for each process, starts its own
//! throwaway Redis (the test harness's `support/servers.rs`; without `redis-server` it says
//! what to install and exits, and under `CI=true` it fails), and exits non-zero if the fleet
//! run breaks its promises: calls per window within the documented bound, at most one 429
//! per window fleet-wide, goodput at least 90 % of R.
//!
//! ```text
//! cargo run --release --example fleet --features redis
//! ```

#[path = "../tests/support/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use riprap::backoff::BackoffPolicy;
use riprap::classify::{Class, classify_fn};
use riprap::fleet::Fleet;
use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The server's quota: R requests per fixed window.
const R: u32 = 200;
const WINDOW: Duration = Duration::from_secs(1);
const PROCESSES: usize = 8;
const WORKERS: usize = 8;
/// Processes 0..BUSY send as fast as they may; the others are pollers.
const BUSY: usize = 4;
/// A poller worker's pause between calls.
const POLL_EVERY: Duration = Duration::from_secs(1);
const RUN: Duration = Duration::from_secs(5);
/// The fleet quota: GCRA lets `rate × window + burst` through in any window, so the rate is
/// a little under R and the burst small; the lease may be larger than the burst, since a
/// block's units are released as they conform.
const FLEET_RATE: u32 = 190;
const FLEET_BURST: u32 = 4;
const LEASE: u32 = 20;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------- the mock LLM API

#[derive(Default)]
struct Window {
    calls: u64,
    ok: u64,
    throttled: u64,
}

struct Api {
    start_ms: u64,
    windows: BTreeMap<u64, Window>,
}

impl Api {
    /// Count the call in its fixed window; past R, a 429 saying when the window resets.
    fn admit(&mut self) -> Option<u64> {
        let now = unix_ms();
        let since = now.saturating_sub(self.start_ms);
        let index = since / WINDOW.as_millis() as u64;
        let w = self.windows.entry(index).or_default();
        w.calls += 1;
        if w.ok < u64::from(R) {
            w.ok += 1;
            None
        } else {
            w.throttled += 1;
            Some((index + 1) * WINDOW.as_millis() as u64 - since)
        }
    }
}

async fn serve(api: Arc<Mutex<Api>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let api = Arc::clone(&api);
                    async move {
                        let verdict = api.lock().unwrap().admit();
                        let res = match verdict {
                            None => {
                                // Generation takes a little while.
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                Response::builder().status(200)
                            }
                            Some(ms) => Response::builder()
                                .status(429)
                                .header("retry-after-ms", ms.to_string()),
                        };
                        Ok::<_, std::convert::Infallible>(
                            res.body(Full::new(Bytes::from_static(b"{}"))).unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}

// ---------------------------------------------------------------- one process of the fleet

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Naive,
    PerProcessWhole,
    PerProcessSplit,
    Fleet,
}

impl Mode {
    fn all() -> [Mode; 4] {
        [
            Mode::Naive,
            Mode::PerProcessWhole,
            Mode::PerProcessSplit,
            Mode::Fleet,
        ]
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Naive => "naive",
            Mode::PerProcessWhole => "per-process R",
            Mode::PerProcessSplit => "per-process R/8",
            Mode::Fleet => "fleet R (Redis)",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Mode::Naive => "naive",
            Mode::PerProcessWhole => "whole",
            Mode::PerProcessSplit => "split",
            Mode::Fleet => "fleet",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Mode::all().into_iter().find(|m| m.arg() == s)
    }
}

fn retry_after(res: &reqwest::Response) -> Option<Duration> {
    let ms = res.headers().get("retry-after-ms")?.to_str().ok()?;
    ms.parse::<u64>().ok().map(Duration::from_millis)
}

/// A child: run this process's workers from `start_ms` for `RUN`, then print its counts.
async fn child(mode: Mode, index: usize, redis_url: String, url: String, start_ms: u64) {
    let config = |rate: u32, burst: u32| {
        RateLimitConfig::builder()
            .requests(rate, WINDOW)
            .request_burst(burst)
            .max_wait(Duration::from_secs(2))
            .reopen_jitter(Duration::from_millis(10))
            .probe_timeout(Duration::from_millis(200))
            .build()
            .unwrap()
    };
    let mut fleet = None;
    let limiter: Option<RateLimiter> = match mode {
        Mode::Naive => None,
        Mode::PerProcessWhole => Some(RateLimiter::new(config(R, R))),
        Mode::PerProcessSplit => {
            let share = R / PROCESSES as u32;
            Some(RateLimiter::new(config(share, share)))
        }
        Mode::Fleet => {
            let f = Fleet::builder(&redis_url)
                .timeout(Duration::from_millis(200))
                .reconnect(
                    BackoffPolicy::exponential(Duration::from_millis(20))
                        .max_delay(Duration::from_millis(500))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap();
            // The two lines: a fleet handle, and the limiter from it.
            let l = f
                .limiter_builder("llm", config(FLEET_RATE, FLEET_BURST))
                .lease(LEASE)
                .local_share(1.0 / PROCESSES as f64)
                .build()
                .unwrap();
            // Connected before the start, as a long-running service would be.
            f.ping().await;
            fleet = Some(f);
            Some(l)
        }
    };
    let client = reqwest::Client::new();
    let send = service_fn(move |()| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(url).body("{}").send().await }
    });
    let classifier = classify_fn(
        |out: Result<&reqwest::Response, &reqwest::Error>| match out {
            Ok(r) if r.status() == 429 => Class::Throttled {
                retry_after: retry_after(r),
            },
            Ok(_) => Class::Success,
            Err(_) => Class::Transient,
        },
    );
    // Wait for the common start, so every process's first call lands in window 0.
    let wait = Duration::from_millis(start_ms.saturating_sub(unix_ms()));
    tokio::time::sleep(wait).await;
    let stop = tokio::time::Instant::now() + RUN;
    let acquires = Arc::new(AtomicU64::new(0));
    let busy = index < BUSY;
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let limited = limiter.clone().map(|l| {
            ServiceBuilder::new()
                .layer(RateLimitLayer::new(l).classifier(classifier))
                .service(send.clone())
        });
        let (send, acquires) = (send.clone(), Arc::clone(&acquires));
        tasks.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < stop {
                let throttled = match &limited {
                    Some(svc) => {
                        acquires.fetch_add(1, Relaxed);
                        match svc.clone().oneshot(()).await {
                            Ok(r) => r.status() == 429,
                            // Refused by the limiter (a wait past 2 s): go again.
                            Err(_) => false,
                        }
                    }
                    None => match send.clone().oneshot(()).await {
                        Ok(r) => r.status() == 429,
                        Err(_) => false,
                    },
                };
                if throttled && limited.is_none() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if !busy {
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let trips = fleet.as_ref().map_or(0, Fleet::round_trips);
    println!(
        "done busy={busy} acquires={} trips={trips}",
        acquires.load(Relaxed)
    );
}

// ---------------------------------------------------------------- the parent

struct Row {
    mode: Mode,
    max_calls: u64,
    throttled: u64,
    max_throttled: u64,
    goodput: f64,
    /// Busy processes, pollers.
    trips_per_acquire: Option<(f64, f64)>,
}

async fn run(mode: Mode, redis_url: &str) -> Row {
    let start_ms = unix_ms() + 1_500;
    let api = Arc::new(Mutex::new(Api {
        start_ms,
        windows: BTreeMap::new(),
    }));
    let url = serve(Arc::clone(&api)).await;
    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for i in 0..PROCESSES {
        let child = Command::new(&exe)
            .args(["child", mode.arg(), &i.to_string(), redis_url, &url])
            .arg(start_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("re-execute the example");
        children.push(child);
    }
    // (acquires, round trips) of the busy processes, then of the pollers.
    let mut counts = [(0u64, 0u64); 2];
    for mut c in children {
        let out = c.stdout.take().unwrap();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .map(str::to_owned)
            };
            let slot = usize::from(field("busy=").as_deref() != Some("true"));
            if let (Some(a), Some(t)) = (field("acquires="), field("trips=")) {
                counts[slot].0 += a.parse::<u64>().unwrap_or(0);
                counts[slot].1 += t.parse::<u64>().unwrap_or(0);
            }
        }
        let status = c.wait().unwrap();
        assert!(
            status.success(),
            "a {} process failed: {status}",
            mode.name()
        );
    }
    let api = api.lock().unwrap();
    let full = RUN.as_millis() as u64 / WINDOW.as_millis() as u64;
    let windows: Vec<&Window> = (0..full).filter_map(|i| api.windows.get(&i)).collect();
    // The first window is the warm-up (processes starting, leases growing to their size):
    // goodput is measured after it; calls and 429s in every window.
    let ok: u64 = windows.iter().skip(1).map(|w| w.ok).sum();
    if std::env::var_os("FLEET_DEBUG").is_some() {
        let per: Vec<(u64, u64)> = windows.iter().map(|w| (w.calls, w.ok)).collect();
        eprintln!("{}: {per:?}", mode.name());
    }
    Row {
        mode,
        max_calls: windows.iter().map(|w| w.calls).max().unwrap_or(0),
        throttled: api.windows.values().map(|w| w.throttled).sum(),
        max_throttled: windows.iter().map(|w| w.throttled).max().unwrap_or(0),
        goodput: ok as f64 / ((full - 1) as f64 * f64::from(R)),
        trips_per_acquire: (mode == Mode::Fleet).then(|| {
            let per = |(a, t): (u64, u64)| t as f64 / a.max(1) as f64;
            (per(counts[0]), per(counts[1]))
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.get(1).map(String::as_str) == Some("child") {
        let (Some(mode), Some(index), Some(redis), Some(url), Some(start)) = (
            args.get(2).and_then(|m| Mode::parse(m)),
            args.get(3).and_then(|i| i.parse().ok()),
            args.get(4).cloned(),
            args.get(5).cloned(),
            args.get(6).and_then(|s| s.parse().ok()),
        ) else {
            eprintln!("usage: fleet child MODE INDEX REDIS_URL API_URL START_MS");
            std::process::exit(2);
        };
        rt.block_on(child(mode, index, redis, url, start));
        return;
    }
    let Some(redis) = servers::Redis::start() else {
        return; // skipped, loudly, by the harness
    };
    println!(
        "{PROCESSES} processes x {WORKERS} workers ({BUSY} busy, {} polling every {POLL_EVERY:?}), \
         a quota of R = {R} per {WINDOW:?} window, {RUN:?} per run\n",
        PROCESSES - BUSY
    );
    let rows: Vec<Row> = Mode::all()
        .into_iter()
        .map(|m| rt.block_on(run(m, &redis.url())))
        .collect();
    // The documented bound: burst + rate × window + processes × lease.
    let bound = FLEET_BURST + FLEET_RATE + PROCESSES as u32 * LEASE;
    let slack = f64::from(bound) / f64::from(R) - 1.0;
    println!(
        "{:<18} {:>16} {:>10} {:>17} {:>13} {:>22}",
        "", "calls/window max", "429s", "429s/window max", "goodput (%R)", "Redis trips / acquire"
    );
    println!(
        "{:<18} {:>16} {:>10} {:>17} {:>13} {:>22}",
        "", "", "", "", "after window 0", ""
    );
    for r in &rows {
        println!(
            "{:<18} {:>16} {:>10} {:>17} {:>12.1}% {:>22}",
            r.mode.name(),
            r.max_calls,
            r.throttled,
            r.max_throttled,
            r.goodput * 100.0,
            r.trips_per_acquire.map_or_else(
                || "-".to_string(),
                |(b, p)| format!("{b:.3} busy, {p:.2} poll")
            ),
        );
    }
    println!(
        "\nfleet bound per window: burst {FLEET_BURST} + rate {FLEET_RATE} + {PROCESSES} x lease {LEASE} \
         = {bound} calls, R x (1 + {:.0}% lease slack)",
        slack * 100.0
    );
    let Some(fleet) = rows.iter().find(|r| r.mode == Mode::Fleet) else {
        return;
    };
    let mut broken = Vec::new();
    if fleet.max_calls > u64::from(bound) {
        broken.push(format!(
            "{} calls in a window, above the bound {bound}",
            fleet.max_calls
        ));
    }
    if fleet.max_throttled > 1 {
        broken.push(format!("{} 429s in one window", fleet.max_throttled));
    }
    if fleet.goodput < 0.9 {
        broken.push(format!("goodput {:.1}% of R", fleet.goodput * 100.0));
    }
    if broken.is_empty() {
        println!("fleet: every promise kept");
    } else {
        eprintln!("fleet: {}", broken.join("; "));
        std::process::exit(1);
    }
}
