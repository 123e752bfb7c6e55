//! LLM failover across two providers, each behind its own breaker and rate limiter.
//!
//! Two in-process mock LLM APIs on a simulated clock (two minutes in well under a second):
//!
//! - **provider A** (the primary): 400 ms per completion, a quota of 8 requests a second
//!   (a 429 with `Retry-After` until the next second beyond it), and an outage from 0:30 to
//!   1:15 (503s);
//! - **provider B** (the fallback): 700 ms per completion, healthy.
//!
//! Ten prompts a second arrive. Each provider has its own stack: a circuit breaker (5
//! failures in a row open it for 5 s), a rate limiter that obeys the provider's 429s
//! (refusing at once while the provider's gate is closed), and a 5 s attempt timeout. A
//! [`FallbackLayer`] sends a prompt to B whenever A fails with a failure another try may fix:
//! a 503, a timeout, a 429, or a refusal by A's own breaker or limiter.
//!
//! It prints, per 15 s, who answered and how many calls reached provider A: during the
//! outage A's breaker keeps A's calls to a few probes while B answers everything, and
//! before and after it B absorbs only what is over A's quota.
//!
//! ```sh
//! cargo run --example llm_failover
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use riprap::breaker::{BreakerEvent, CircuitBreaker, CircuitBreakerLayer, ConsecutiveFailures};
use riprap::classify::{Class, Through, classify_fn};
use riprap::events;
use riprap::fallback::{FallbackEvent, FallbackLayer, FallbackOn};
use riprap::ratelimit::{RateLimitConfig, RateLimitLayer, RateLimiter};
use riprap::timeout::TimeoutLayer;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

const RUN: Duration = Duration::from_secs(120);
const PER_SEC: u32 = 10;
const WINDOW: u64 = 15;

/// A prompt (its number will do); both providers take the same one.
type Prompt = u64;

/// What a provider answers: a completion, or an HTTP status with an optional `Retry-After`.
#[derive(Debug, Clone)]
struct Reply {
    provider: &'static str,
    status: u16,
    retry_after: Option<Duration>,
}

#[derive(Debug)]
struct ConnectionError;

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection failed")
    }
}

impl std::error::Error for ConnectionError {}

impl riprap::classify::Classified for ConnectionError {
    fn class(&self) -> Class {
        Class::Transient
    }
}

/// The one classifier for both providers' replies.
fn classify(out: Result<&Reply, &ConnectionError>) -> Class {
    match out {
        Ok(r) if r.status == 200 => Class::Success,
        Ok(r) if r.status == 429 => Class::Throttled {
            retry_after: r.retry_after,
        },
        Ok(r) if r.status >= 500 => Class::Transient,
        Ok(_) => Class::Permanent,
        Err(e) => riprap::classify::Classified::class(e),
    }
}

/// A mock LLM API: a latency, a per-second quota, an outage window; it counts what reaches it.
#[derive(Clone)]
struct Provider {
    name: &'static str,
    latency: Duration,
    quota: Option<u32>,
    outage: Option<(Duration, Duration)>,
    start: Instant,
    book: Arc<Mutex<Book>>,
}

#[derive(Default)]
struct Book {
    second: u64,
    served_this_second: u32,
    calls_per_window: Vec<u32>,
}

impl Service<Prompt> for Provider {
    type Response = Reply;
    type Error = ConnectionError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, ConnectionError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectionError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Prompt) -> Self::Future {
        let now = self.start.elapsed();
        let reply = |status, retry_after| Reply {
            provider: self.name,
            status,
            retry_after,
        };
        let (reply, latency) = {
            let Ok(mut b) = self.book.lock() else {
                return Box::pin(async { Err(ConnectionError) });
            };
            let w = (now.as_secs() / WINDOW) as usize;
            if b.calls_per_window.len() <= w {
                b.calls_per_window.resize(w + 1, 0);
            }
            if let Some(n) = b.calls_per_window.get_mut(w) {
                *n += 1;
            }
            if b.second != now.as_secs() {
                b.second = now.as_secs();
                b.served_this_second = 0;
            }
            if self
                .outage
                .is_some_and(|(from, to)| now >= from && now < to)
            {
                (reply(503, None), Duration::from_millis(100))
            } else if self.quota.is_some_and(|q| b.served_this_second >= q) {
                // A fixed one-second window: come back when it resets.
                let reset = Duration::from_secs(now.as_secs() + 1) - now;
                (reply(429, Some(reset)), Duration::from_millis(20))
            } else {
                b.served_this_second += 1;
                (reply(200, None), self.latency)
            }
        };
        Box::pin(async move {
            tokio::time::sleep(latency).await;
            Ok(reply)
        })
    }
}

/// Per 15 s: answered by A, by B, failed, and latencies.
#[derive(Default, Clone)]
struct Window {
    by_a: u32,
    by_b: u32,
    failed: u32,
    latencies: Vec<Duration>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let a = Provider {
        name: "A",
        latency: Duration::from_millis(400),
        quota: Some(8),
        outage: Some((Duration::from_secs(30), Duration::from_secs(75))),
        start,
        book: Arc::default(),
    };
    let b = Provider {
        name: "B",
        latency: Duration::from_millis(700),
        quota: None,
        outage: None,
        start,
        book: Arc::default(),
    };
    let (a_book, b_book) = (Arc::clone(&a.book), Arc::clone(&b.book));

    // What A's breaker did, with when.
    let transitions = Arc::new(Mutex::new(VecDeque::new()));
    let log = Arc::clone(&transitions);
    let breaker_a = CircuitBreaker::builder()
        .name("A")
        .policy(ConsecutiveFailures::new(5)?)
        .open_for(Duration::from_secs(5))
        .listener(events::only(move |e: &BreakerEvent| {
            if let BreakerEvent::Transition { to, .. } = e {
                if let Ok(mut l) = log.lock() {
                    l.push_back(format!(
                        "{:>5.1} s  A's breaker {to}",
                        start.elapsed().as_secs_f64()
                    ));
                }
            }
        }))
        .build()?;
    let breaker_b = CircuitBreaker::builder()
        .name("B")
        .policy(ConsecutiveFailures::new(5)?)
        .build()?;

    // Each provider's own stack: breaker, then a limiter that obeys its 429s, then a timeout.
    let stack = |provider: Provider, breaker: CircuitBreaker| {
        let limiter = RateLimiter::new(
            RateLimitConfig::builder()
                .reject_when_limited()
                .build()
                .expect("a valid rate limit"),
        );
        ServiceBuilder::new()
            .layer(
                CircuitBreakerLayer::new(breaker)
                    .classifier(Through(Through(classify_fn(classify)))),
            )
            .layer(RateLimitLayer::new(limiter).classifier(Through(classify_fn(classify))))
            .layer(TimeoutLayer::new(Duration::from_secs(5)))
            .service(provider)
    };
    let fell_back = Arc::new(Mutex::new(
        std::collections::BTreeMap::<&'static str, u32>::new(),
    ));
    let count = Arc::clone(&fell_back);
    let svc = FallbackLayer::new(stack(b, breaker_b))
        .classifier(Through(Through(Through(classify_fn(classify)))))
        .on(FallbackOn::failures())
        .name("B")
        .listener(events::only(move |e: &FallbackEvent| {
            if let FallbackEvent::FellBack { class, .. } = e {
                if let Ok(mut c) = count.lock() {
                    *c.entry(class.as_str()).or_default() += 1;
                }
            }
        }))
        .layer(stack(a, breaker_a.clone()));

    let windows = Arc::new(Mutex::new(vec![
        Window::default();
        (RUN.as_secs() / WINDOW) as usize + 1
    ]));
    let gap = Duration::from_secs(1) / PER_SEC;
    let mut tasks = Vec::new();
    for i in 0..RUN.as_secs() * u64::from(PER_SEC) {
        tokio::time::sleep_until(start + gap * i as u32).await;
        let call = svc.clone().oneshot(i);
        let windows = Arc::clone(&windows);
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let w = (t0.duration_since(start).as_secs() / WINDOW) as usize;
            let out = call.await;
            let Ok(mut ws) = windows.lock() else { return };
            let Some(win) = ws.get_mut(w) else { return };
            match out {
                Ok(r) if r.status == 200 && r.provider == "A" => win.by_a += 1,
                Ok(r) if r.status == 200 => win.by_b += 1,
                _ => win.failed += 1,
            }
            win.latencies.push(t0.elapsed());
        }));
    }
    for t in tasks {
        let _ = t.await;
    }

    println!(
        "LLM failover: {PER_SEC} prompts/s for {} s. Provider A (primary): 400 ms, 8 req/s quota,\n\
         down from 0:30 to 1:15. Provider B (fallback): 700 ms, healthy.\n",
        RUN.as_secs()
    );
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12} {:>8}",
        "window", "prompts", "by A", "by B", "failed", "calls to A", "calls to B", "p50 ms"
    );
    let ws = windows.lock().map(|w| w.clone()).unwrap_or_default();
    let a_calls = a_book
        .lock()
        .map(|b| b.calls_per_window.clone())
        .unwrap_or_default();
    let b_calls = b_book
        .lock()
        .map(|b| b.calls_per_window.clone())
        .unwrap_or_default();
    let mut totals = (0, 0, 0);
    for (i, w) in ws
        .iter()
        .enumerate()
        .take((RUN.as_secs() / WINDOW) as usize)
    {
        let mut l = w.latencies.clone();
        l.sort_unstable();
        let p50 = l.get(l.len() / 2).copied().unwrap_or_default();
        let from = i as u64 * WINDOW;
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>12} {:>12} {:>8}",
            format!(
                "{}:{:02}-{}:{:02}",
                from / 60,
                from % 60,
                (from + WINDOW) / 60,
                (from + WINDOW) % 60
            ),
            w.by_a + w.by_b + w.failed,
            w.by_a,
            w.by_b,
            w.failed,
            a_calls.get(i).copied().unwrap_or(0),
            b_calls.get(i).copied().unwrap_or(0),
            p50.as_millis()
        );
        totals = (totals.0 + w.by_a, totals.1 + w.by_b, totals.2 + w.failed);
    }
    println!(
        "\nanswered by A: {}, by B: {}, failed: {}",
        totals.0, totals.1, totals.2
    );
    if let Ok(c) = fell_back.lock() {
        println!("fell back to B, by A's failure: {c:?}");
    }
    println!("\nA's breaker:");
    if let Ok(t) = transitions.lock() {
        for line in t.iter() {
            println!("  {line}");
        }
    }
    Ok(())
}
