//! 32 workers against a mock LLM API that enforces requests per minute and tokens per minute
//! like OpenAI's, once with a naive client and once with riprap.
//!
//! The mock runs on 127.0.0.1 (an ephemeral port) with time scaled down: its "minute" is one
//! second. It answers `429` with `Retry-After`, `retry-after-ms` and OpenAI's `x-ratelimit-*`
//! headers, and now and then a `503`. The naive client retries at once; the riprap client
//! puts `reqwest` under a [`RateLimitLayer`] (local requests/min and tokens/min quotas, the
//! server's headers, the HTTP classifier) and retries a throttle at once: the limiter's gate,
//! closed by that very 429, holds the retry (and every other worker) until the server's delay.
//!
//! ```text
//! cargo run --example llm_client --features reqwest
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use riprap::classify::{Class, Classify, HttpStatus};
use riprap::ratelimit::{HeaderSignal, RateLimitConfig, RateLimitLayer, RateLimiter};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// The mock's "minute".
const MINUTE: Duration = Duration::from_secs(1);
const REQUESTS_PER_MINUTE: f64 = 100.0;
const TOKENS_PER_MINUTE: f64 = 10_000.0;
const WORKERS: usize = 32;
const RUN: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------- the mock LLM API

/// A bucket refilled continuously to `limit` over a minute, as OpenAI's limits behave.
struct Bucket {
    limit: f64,
    level: f64,
}

impl Bucket {
    fn refill(&mut self, elapsed: Duration) {
        self.level = (self.level + self.limit * elapsed.as_secs_f64() / MINUTE.as_secs_f64())
            .min(self.limit);
    }

    /// Time until `n` is available.
    fn wait_for(&self, n: f64) -> Duration {
        MINUTE.mul_f64(((n - self.level).max(0.0) / self.limit).min(1.0))
    }

    /// Time until full again: what `x-ratelimit-reset-*` reports.
    fn reset(&self) -> Duration {
        self.wait_for(self.limit)
    }
}

struct Api {
    requests: Bucket,
    tokens: Bucket,
    last: Instant,
    rng: u64,
}

impl Api {
    fn new() -> Self {
        Api {
            requests: Bucket {
                limit: REQUESTS_PER_MINUTE,
                level: REQUESTS_PER_MINUTE,
            },
            tokens: Bucket {
                limit: TOKENS_PER_MINUTE,
                level: TOKENS_PER_MINUTE,
            },
            last: Instant::now(),
            rng: 0x5EED,
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 10_000) as f64 / 10_000.0 < p
    }

    /// Status, headers and (for a success) the tokens to "generate".
    fn admit(&mut self, tokens: f64) -> (u16, Vec<(&'static str, String)>) {
        let now = Instant::now();
        self.requests.refill(now - self.last);
        self.tokens.refill(now - self.last);
        self.last = now;
        if self.chance(0.02) {
            return (503, vec![]);
        }
        let ok = self.requests.level >= 1.0 && self.tokens.level >= tokens;
        if ok {
            self.requests.level -= 1.0;
            self.tokens.level -= tokens;
        }
        let ms = |d: Duration| format!("{}ms", d.as_millis() + 1);
        let mut headers = vec![
            (
                "x-ratelimit-limit-requests",
                format!("{REQUESTS_PER_MINUTE}"),
            ),
            (
                "x-ratelimit-remaining-requests",
                format!("{}", self.requests.level.floor()),
            ),
            ("x-ratelimit-reset-requests", ms(self.requests.reset())),
            ("x-ratelimit-limit-tokens", format!("{TOKENS_PER_MINUTE}")),
            (
                "x-ratelimit-remaining-tokens",
                format!("{}", self.tokens.level.floor()),
            ),
            ("x-ratelimit-reset-tokens", ms(self.tokens.reset())),
        ];
        if ok {
            return (200, headers);
        }
        let wait = self
            .requests
            .wait_for(1.0)
            .max(self.tokens.wait_for(tokens));
        headers.push(("retry-after-ms", format!("{}", wait.as_millis() + 1)));
        headers.push(("retry-after", format!("{}", wait.as_secs() + 1)));
        (429, headers)
    }
}

async fn handle(api: Arc<Mutex<Api>>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let chat: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let prompt = chat["prompt"].as_str().unwrap_or_default();
    let max_tokens = chat["max_tokens"].as_u64().unwrap_or(0);
    let tokens = estimate(prompt.len(), max_tokens) as f64;
    let (status, headers) = api.lock().unwrap().admit(tokens);
    if status == 200 {
        // Generation takes time, roughly with the output length.
        tokio::time::sleep(Duration::from_millis(10 + max_tokens / 10)).await;
    }
    let mut res = Response::builder().status(status);
    for (name, value) in headers {
        res = res.header(name, value);
    }
    res.body(Full::new(Bytes::from_static(b"{\"choices\":[]}")))
        .unwrap()
}

async fn serve() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/chat/completions",
        listener.local_addr().unwrap()
    );
    let api = Arc::new(Mutex::new(Api::new()));
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, std::convert::Infallible>(handle(api, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (url, server)
}

// ---------------------------------------------------------------- the workload

/// A chat request: what the client knows before sending it.
#[derive(Clone)]
struct Chat {
    prompt: String,
    max_tokens: u64,
}

/// Tokens a request is charged: about four characters a token, plus the completion budget.
fn estimate(prompt_chars: usize, max_tokens: u64) -> u64 {
    (prompt_chars as u64).div_ceil(4) + max_tokens
}

impl Chat {
    fn nth(n: u64) -> Chat {
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        Chat {
            prompt: "lorem ipsum ".repeat(20 + (x % 80) as usize),
            max_tokens: 100 + (x % 200),
        }
    }

    fn tokens(&self) -> u64 {
        estimate(self.prompt.len(), self.max_tokens)
    }

    fn body(&self) -> Vec<u8> {
        serde_json::json!({ "prompt": self.prompt, "max_tokens": self.max_tokens })
            .to_string()
            .into_bytes()
    }
}

#[derive(Default)]
struct Tally {
    completed: u64,
    tokens: u64,
    throttled: u64,
    unavailable: u64,
    failed: u64,
    latencies: Vec<Duration>,
}

impl Tally {
    /// A completed request, if it completed within the run.
    fn record(&mut self, chat: &Chat, start: Instant, stop: Instant) {
        if Instant::now() <= stop {
            self.completed += 1;
            self.tokens += chat.tokens();
            self.latencies.push(start.elapsed());
        }
    }

    fn print(&self, name: &str) {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        // The most the server could have served in the run: a minute's worth per minute, plus
        // the full bucket it starts with.
        let minutes = RUN.as_secs_f64() / MINUTE.as_secs_f64();
        let token_share = self.tokens as f64 / (TOKENS_PER_MINUTE * (minutes + 1.0));
        println!(
            "{name:>7} | {:>9} | {:>5} | {:>6} | {:>6.1} % | {:>8.0?} | {:>8.0?}",
            self.completed,
            self.throttled,
            self.throttled + self.unavailable + self.failed,
            token_share * 100.0,
            pct(0.50),
            pct(0.99),
        );
    }
}

/// Immediate retries: the client that burns a quota all night.
async fn naive(url: String) -> Tally {
    let client = reqwest::Client::new();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Instant::now() + RUN;
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|w| {
            let (client, url, tally) = (client.clone(), url.clone(), Arc::clone(&tally));
            tokio::spawn(async move {
                let mut n = w;
                while Instant::now() < stop {
                    let chat = Chat::nth(n);
                    n += WORKERS as u64;
                    let start = Instant::now();
                    for _attempt in 0..50 {
                        if Instant::now() >= stop {
                            break;
                        }
                        let res = client.post(&url).body(chat.body()).send().await;
                        let mut t = tally.lock().unwrap();
                        match res.map(|r| r.status().as_u16()) {
                            Ok(200) => {
                                t.record(&chat, start, stop);
                                break;
                            }
                            Ok(429) => t.throttled += 1,
                            Ok(503) => t.unavailable += 1,
                            _ => t.failed += 1,
                        }
                    }
                }
            })
        })
        .collect();
    futures_util::future::join_all(workers).await;
    Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap()
}

/// reqwest under riprap's rate limit, with the classifier's verdict driving a small retry
/// loop (a throttle retries at once: the limiter's gate has already paused every clone).
async fn with_riprap(url: String) -> Tally {
    let limiter = RateLimiter::new(
        RateLimitConfig::builder()
            .requests(REQUESTS_PER_MINUTE as u32, MINUTE)
            .cost(TOKENS_PER_MINUTE as u32, MINUTE)
            .max_wait(Duration::from_secs(10))
            .reopen_jitter(Duration::from_millis(20))
            .probe_timeout(Duration::from_millis(500))
            .build()
            .expect("valid config"),
    );
    let client = reqwest::Client::new();
    let classifier = HttpStatus::new();
    let api = ServiceBuilder::new()
        .layer(
            RateLimitLayer::new(limiter)
                .cost(|chat: &Chat| chat.tokens() as u32)
                .classifier(classifier.clone())
                .read_signal(HeaderSignal::new()),
        )
        .service(service_fn(move |chat: Chat| {
            client.post(&url).body(chat.body()).send()
        }));

    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Instant::now() + RUN;
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|w| {
            let (api, tally, classifier) = (api.clone(), Arc::clone(&tally), classifier.clone());
            tokio::spawn(async move {
                let mut n = w;
                while Instant::now() < stop {
                    let chat = Chat::nth(n);
                    n += WORKERS as u64;
                    let start = Instant::now();
                    for attempt in 0..8u32 {
                        let Ok(res) =
                            tokio::time::timeout_at(stop, api.clone().oneshot(chat.clone())).await
                        else {
                            break;
                        };
                        let class = match &res {
                            Ok(r) => Classify::<_, reqwest::Error>::classify(&classifier, Ok(r)),
                            Err(_) => Class::Transient,
                        };
                        let wait = {
                            let mut t = tally.lock().unwrap();
                            match (&res, class) {
                                (Ok(_), Class::Success) => {
                                    t.record(&chat, start, stop);
                                    break;
                                }
                                (Ok(_), Class::Throttled { .. }) => {
                                    t.throttled += 1;
                                    // No sleep of our own: the limiter's gate, closed by this very
                                    // answer, holds the retry (and every other worker) until the reset.
                                    Duration::ZERO
                                }
                                (Ok(r), _) if r.status() == 503 => {
                                    t.unavailable += 1;
                                    Duration::from_millis(25 << attempt.min(4))
                                }
                                // Refused locally (waiting would exceed the maximum): not a call.
                                (Err(_), _) => Duration::from_millis(50),
                                _ => {
                                    t.failed += 1;
                                    break;
                                }
                            }
                        };
                        tokio::time::sleep(wait).await;
                    }
                }
            })
        })
        .collect();
    futures_util::future::join_all(workers).await;
    Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap()
}

#[tokio::main]
async fn main() {
    println!(
        "mock LLM API: {REQUESTS_PER_MINUTE} requests and {TOKENS_PER_MINUTE} tokens per \"minute\" \
         ({MINUTE:?}); {WORKERS} workers, {RUN:?} each run\n"
    );
    println!(" client | completed |  429s | wasted | goodput* |      p50 |      p99");
    let bounded = Duration::from_secs(50);
    for (name, riprap) in [("naive", false), ("riprap", true)] {
        let (url, server) = serve().await;
        let run = async {
            if riprap {
                with_riprap(url).await
            } else {
                naive(url).await
            }
        };
        match tokio::time::timeout(bounded, run).await {
            Ok(tally) => tally.print(name),
            Err(_) => println!("{name:>7} | did not finish in {bounded:?}"),
        }
        server.abort();
    }
    println!(
        "\n* goodput: tokens of completed requests as a share of what the server allows in the run"
    );
}
