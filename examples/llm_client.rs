//! 24 workers send chat completions through a `reqwest::Client` under
//! `StackBuilder::llm_api`, against a mock LLM API that enforces requests and tokens per
//! "minute" like OpenAI's, fails now and then, and refuses invalid requests.
//!
//! The mock runs on 127.0.0.1 (an ephemeral port) with time scaled down: its "minute" is one
//! second. It counts requests and tokens in fixed windows and answers
//!
//! - `400` to a request with an out-of-range `temperature` (2 % of requests: a caller's
//!   bug), before it counts any quota;
//! - `503` to 5 % of arrivals, load shed before the quota is counted;
//! - `429` with `retry-after-ms`, `retry-after` and the `x-ratelimit-*` headers when the
//!   window's requests or tokens are spent;
//! - `200` otherwise, charging the request's tokens (its prompt, by the mock's own
//!   tokenizer, plus the whole `max_tokens`) after a short "generation".
//!
//! Every answer carries OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
//! Every draw is a function of the seed and the request id (and, for a `503`, of how many
//! times that id arrived), so a run is reproducible up to timing. The mock counts how often
//! each request id arrives: that is how the run shows a `400` is never sent twice.
//!
//! The client is `reqwest::Client` as it is. The stack copies its requests with `try_clone`,
//! prices each against a local tokens-per-minute quota by its own estimate (four characters
//! a token, about 10 % below what the mock counts, as estimates are), paces to the quota the
//! headers report left, retries a `503` or a `429`, and hands back a request it gave up on
//! as a `StackError` holding the response. The run prints the mock's count per window and
//! exits non-zero unless no `400` was retried, no window after the first `429` saw more than
//! one more, and goodput reached 90 % of the quota that binds.
//!
//! ```text
//! cargo run --release --example llm_client --features reqwest
//! ```

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use riprap::backoff::BackoffPolicy;
use riprap::classify::HttpStatus;
use riprap::ratelimit::{HeaderSignal, RateLimitConfig};
use riprap::retry::{RetryConfig, TryClone};
use riprap::stack::{Failure, StackBuilder, StackError};
use tokio::time::Instant;
use tower::ServiceExt;

/// The mock's "minute": its quotas count in fixed windows this long.
const MINUTE: Duration = Duration::from_secs(1);
const REQUESTS_PER_MINUTE: u32 = 60;
const TOKENS_PER_MINUTE: u32 = 40_000;
const WORKERS: u64 = 24;
/// Workers start requests for this many windows, then finish the ones they hold.
const WINDOWS: usize = 8;
const SEED: u64 = 13;
/// Arrivals answered `503`, per 10,000.
const UNAVAILABLE: u64 = 500;
/// Requests with an invalid `temperature`, per 10,000.
const INVALID: u64 = 200;

/// A seeded draw for request `id`: splitmix64's finalizer over the seed, the id and `salt`.
fn draw(id: u64, salt: u64) -> u64 {
    let mut z =
        SEED ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Characters in a chat request's messages, and its `max_tokens`.
fn size(chat: &serde_json::Value) -> (u64, u64) {
    let chars: usize = chat["messages"].as_array().map_or(0, |messages| {
        messages
            .iter()
            .map(|m| m["content"].as_str().map_or(0, str::len))
            .sum()
    });
    (chars as u64, chat["max_tokens"].as_u64().unwrap_or(0))
}

/// The client's token estimate for a chat request: its messages at four characters a token,
/// plus the whole `max_tokens` (a provider reserves the completion before it runs).
fn estimate(chat: &serde_json::Value) -> u32 {
    let (chars, max_tokens) = size(chat);
    u32::try_from(chars.div_ceil(4) + max_tokens).unwrap_or(u32::MAX)
}

/// What the mock charges: its tokenizer finds a token every 3.5 characters, so the client's
/// estimate runs about 10 % low.
fn charged(chat: &serde_json::Value) -> u64 {
    let (chars, max_tokens) = size(chat);
    (chars * 2).div_ceil(7) + max_tokens
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------- the mock LLM API

/// One fixed window, as the mock counted it.
#[derive(Default, Clone, Copy)]
struct Window {
    calls: u64,
    ok: u64,
    throttled: u64,
    unavailable: u64,
    invalid: u64,
    tokens: u64,
}

struct Api {
    start: Instant,
    windows: BTreeMap<usize, Window>,
    /// Per request id, the window and status of every arrival, in order.
    seen: HashMap<u64, Vec<(usize, u16)>>,
}

/// What the mock answers, and how long "generation" takes.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    generate: Duration,
}

impl Api {
    fn answer(&mut self, id: u64, chat: &serde_json::Value) -> Answer {
        let elapsed = self.start.elapsed();
        let index = (elapsed.as_nanos() / MINUTE.as_nanos()) as usize;
        let end = u32::try_from(index + 1).map_or(Duration::MAX, |n| MINUTE.saturating_mul(n));
        let reset = end.saturating_sub(elapsed);
        let w = self.windows.entry(index).or_default();
        let arrivals = self.seen.entry(id).or_default();
        let tokens = charged(chat);
        w.calls += 1;

        let (status, body) = if chat["temperature"].as_f64().unwrap_or(1.0) > 2.0 {
            w.invalid += 1;
            let message = "temperature: 3.5 is greater than the maximum of 2";
            (400, error(message, "invalid_request_error"))
        } else if draw(id, arrivals.len() as u64 + 1) % 10_000 < UNAVAILABLE {
            w.unavailable += 1;
            (503, error("The server is overloaded.", "server_error"))
        } else if w.ok >= u64::from(REQUESTS_PER_MINUTE)
            || w.tokens + tokens > u64::from(TOKENS_PER_MINUTE)
        {
            w.throttled += 1;
            let message = format!(
                "Rate limit reached: {} of {REQUESTS_PER_MINUTE} requests and {} of \
                 {TOKENS_PER_MINUTE} tokens used, {tokens} requested.",
                w.ok, w.tokens
            );
            (429, error(&message, "rate_limit_exceeded"))
        } else {
            w.ok += 1;
            w.tokens += tokens;
            (200, format!(r#"{{"id":"chatcmpl-{id}","choices":[]}}"#))
        };
        arrivals.push((index, status));

        let reset_ms = reset.as_micros().div_ceil(1000);
        let left = |quota: u32, used: u64| u64::from(quota).saturating_sub(used).to_string();
        let mut headers = vec![
            (
                "x-ratelimit-limit-requests",
                REQUESTS_PER_MINUTE.to_string(),
            ),
            ("x-ratelimit-limit-tokens", TOKENS_PER_MINUTE.to_string()),
            (
                "x-ratelimit-remaining-requests",
                left(REQUESTS_PER_MINUTE, w.ok),
            ),
            (
                "x-ratelimit-remaining-tokens",
                left(TOKENS_PER_MINUTE, w.tokens),
            ),
            ("x-ratelimit-reset-requests", format!("{reset_ms}ms")),
            ("x-ratelimit-reset-tokens", format!("{reset_ms}ms")),
        ];
        if status == 429 {
            headers.push(("retry-after-ms", reset_ms.to_string()));
            headers.push(("retry-after", (reset.as_secs() + 1).to_string()));
        }
        let (_, max_tokens) = size(chat);
        Answer {
            status,
            headers,
            body,
            generate: match status {
                200 => Duration::from_millis(10 + max_tokens / 50),
                _ => Duration::ZERO,
            },
        }
    }
}

fn error(message: &str, kind: &str) -> String {
    serde_json::json!({ "error": { "message": message, "type": kind } }).to_string()
}

async fn handle(api: &Mutex<Api>, req: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(u64::MAX);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let chat: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = lock(api).answer(id, &chat);
    tokio::time::sleep(answer.generate).await;
    let mut res = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *res.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap_or_default();
    for (name, value) in answer.headers {
        if let Ok(value) = value.parse() {
            res.headers_mut().insert(name, value);
        }
    }
    res
}

async fn serve(api: Arc<Mutex<Api>>) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/chat/completions", listener.local_addr()?);
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = Arc::clone(&api);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, Infallible>(handle(&api, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((url, server))
}

// ---------------------------------------------------------------- the workload

/// Chat request `id`: a prompt of 100 to 1,500 tokens (by the client's estimate), 100 to 600
/// `max_tokens`, and now and then an invalid `temperature`.
fn chat(id: u64) -> serde_json::Value {
    let x = draw(id, 0);
    let prompt_tokens = 100 + (x % 1_400) as usize;
    let max_tokens = 100 + (x >> 16) % 500;
    let temperature = if (x >> 32) % 10_000 < INVALID {
        3.5
    } else {
        0.7
    };
    serde_json::json!({
        "model": "mock-1",
        "messages": [{ "role": "user", "content": "word".repeat(prompt_tokens) }],
        "max_tokens": max_tokens,
        "temperature": temperature,
    })
}

/// What the callers saw.
#[derive(Default)]
struct Tally {
    served: u64,
    /// Requests the stack gave up on, by status (0: no response) and class.
    gave_up: BTreeMap<(u16, &'static str), u64>,
    /// The first `StackError` of each status, as a caller would log it.
    seen: BTreeMap<u16, String>,
}

impl Tally {
    /// What a caller learns from a `StackError`: the verdict, the attempts, why the stack
    /// stopped, and the response itself, body unread.
    async fn gave_up(tally: &Mutex<Tally>, err: StackError<reqwest::Error, reqwest::Response>) {
        let (class, attempts) = (err.class(), err.attempts().unwrap_or(0));
        let why = err.gave_up().map_or_else(String::new, |g| format!(": {g}"));
        let head = format!("class {class}, {attempts} attempt(s), gave up{why}");
        let (status, line) = match err.into_failure() {
            Failure::Response(res) => {
                let status = res.status().as_u16();
                let body = res.text().await.unwrap_or_default();
                (status, format!("status {status}, {head}; body {body}"))
            }
            other => (0, format!("{other:?}, {head}")),
        };
        let mut t = lock(tally);
        *t.gave_up.entry((status, class.as_str())).or_default() += 1;
        t.seen.entry(status).or_insert(line);
    }
}

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let api = Arc::new(Mutex::new(Api {
        start: Instant::now(),
        windows: BTreeMap::new(),
        seen: HashMap::new(),
    }));
    let (url, server) = serve(Arc::clone(&api)).await?;

    // The client, as an application sets it up. Three knobs only scale the LLM preset's
    // times down to the mock's one-second minute: the retry backoff (0.5-8 s in the preset),
    // the probe timeout and the reopening jitter.
    let stack = StackBuilder::llm_api(HttpStatus::new())
        .retry(
            RetryConfig::llm_api()
                .backoff(
                    BackoffPolicy::exponential(Duration::from_millis(10))
                        .max_delay(Duration::from_millis(150))
                        .build()?,
                )
                .seed(SEED),
        )
        .clone_requests(TryClone) // reqwest::Request is copied with try_clone
        .rate_limit(
            RateLimitConfig::builder()
                .requests(REQUESTS_PER_MINUTE, MINUTE) // the tier's requests per minute
                .cost(TOKENS_PER_MINUTE, MINUTE) // and tokens per minute
                .probe_timeout(Duration::from_millis(20))
                .reopen_jitter(Duration::from_millis(5))
                .seed(SEED),
        )
        .cost(|req: &reqwest::Request| {
            // A request's price: its token estimate, read from its JSON body.
            let body = req.body().and_then(|b| b.as_bytes()).unwrap_or_default();
            serde_json::from_slice(body).map_or(1, |chat| estimate(&chat))
        })
        .read_signal(HeaderSignal::new()) // obey x-ratelimit-* and retry-after(-ms)
        .responses_as_errors() // a 400, or a 503 on the last attempt, comes back as Err
        .build()?;
    let client = reqwest::Client::new();
    let llm = stack.layer(client.clone());

    println!(
        "mock LLM API: {REQUESTS_PER_MINUTE} requests and {TOKENS_PER_MINUTE} tokens per \
         \"minute\" ({MINUTE:?} fixed windows), 5 % 503s, 2 % invalid requests; {WORKERS} \
         workers for {WINDOWS} windows, seed {SEED}\n"
    );
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = lock(&api).start + MINUTE * WINDOWS as u32;
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (llm, client, url, tally) =
                (llm.clone(), client.clone(), url.clone(), Arc::clone(&tally));
            tokio::spawn(async move {
                let mut id = worker;
                while Instant::now() < stop {
                    let request = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .header("x-request-id", id)
                        .body(chat(id).to_string())
                        .build()?;
                    id += WORKERS;
                    match llm.clone().oneshot(request).await {
                        Ok(response) => {
                            response.bytes().await?;
                            lock(&tally).served += 1;
                        }
                        Err(err) => Tally::gave_up(&tally, err).await,
                    }
                }
                Ok::<_, reqwest::Error>(())
            })
        })
        .collect();
    for worker in futures_util::future::join_all(workers).await {
        worker??;
    }
    server.abort();

    let broken = report(&lock(&api), &lock(&tally));
    if broken.is_empty() {
        println!("all checks pass");
        Ok(ExitCode::SUCCESS)
    } else {
        for b in &broken {
            println!("FAILED: {b}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// Per window, the arrivals answered 429 or 503 that were sent again, and those whose
/// request was served in the end.
#[derive(Default, Clone, Copy)]
struct Retried {
    again: u64,
    served: u64,
}

/// Print the mock's count and the callers' view; return the checks that failed.
fn report(api: &Api, tally: &Tally) -> Vec<String> {
    let windows = api.windows.keys().last().map_or(0, |&i| i + 1);
    let mut retried = vec![Retried::default(); windows];
    let mut retried_400s = 0;
    for arrivals in api.seen.values() {
        let served = arrivals.last().is_some_and(|&(_, s)| s == 200);
        for (i, &(window, status)) in arrivals.iter().enumerate() {
            let again = arrivals.len() > i + 1;
            match (status, retried.get_mut(window)) {
                (400, _) if again => retried_400s += 1,
                (429 | 503, Some(r)) if again => {
                    r.again += 1;
                    r.served += u64::from(served);
                }
                _ => {}
            }
        }
    }

    println!(
        "window | calls | 429 | 503 | 429/503 sent again, served | 400 | served | tokens of {TOKENS_PER_MINUTE}"
    );
    let (mut first_429, mut late_429s) = (false, 0);
    let mut all = Window::default();
    for (i, r) in retried.iter().enumerate() {
        let w = api.windows.get(&i).copied().unwrap_or_default();
        // The first 429 of the run is how the client learns the window is spent; after it,
        // a window may cost one more (a probe that finds it not reset yet), no more.
        let mut late = w.throttled;
        if !first_429 && late > 0 {
            first_429 = true;
            late -= 1;
        }
        late_429s = late_429s.max(late);
        let after = if i < WINDOWS {
            all.calls += w.calls;
            all.throttled += w.throttled;
            all.unavailable += w.unavailable;
            all.invalid += w.invalid;
            all.ok += w.ok;
            all.tokens += w.tokens;
            ""
        } else {
            "  (finishing)"
        };
        println!(
            "{i:>6} | {:>5} | {:>3} | {:>3} | {:>14} {:>11} | {:>3} | {:>6} | {:>6} {:>5.1} %{after}",
            w.calls,
            w.throttled,
            w.unavailable,
            r.again,
            r.served,
            w.invalid,
            w.ok,
            w.tokens,
            100.0 * w.tokens as f64 / f64::from(TOKENS_PER_MINUTE),
        );
    }
    let sum = retried.iter().fold(Retried::default(), |a, r| Retried {
        again: a.again + r.again,
        served: a.served + r.served,
    });

    // Goodput over the run's full windows: what was served, as a share of each quota; the
    // quota nearer to spent is the one that binds.
    let n = WINDOWS as f64;
    let by_requests = all.ok as f64 / (f64::from(REQUESTS_PER_MINUTE) * n);
    let by_tokens = all.tokens as f64 / (f64::from(TOKENS_PER_MINUTE) * n);
    let (binding, goodput) = if by_tokens >= by_requests {
        ("tokens/min", by_tokens)
    } else {
        ("requests/min", by_requests)
    };
    println!(
        "\nwindows 0-{}: {} calls, {} served: {:.1} % of the requests quota, {:.1} % of the \
         tokens quota ({binding} binds)",
        WINDOWS - 1,
        all.calls,
        all.ok,
        by_requests * 100.0,
        by_tokens * 100.0,
    );
    let throttled: u64 = api.windows.values().map(|w| w.throttled).sum();
    let unavailable: u64 = api.windows.values().map(|w| w.unavailable).sum();
    let invalid: u64 = api.windows.values().map(|w| w.invalid).sum();
    println!(
        "whole run: {throttled} 429s and {unavailable} 503s, {} sent again, {} of those \
         requests served; {invalid} 400s, {retried_400s} sent again",
        sum.again, sum.served
    );
    print!("callers: {} served", tally.served);
    for ((status, class), n) in &tally.gave_up {
        print!(", {n} gave up on status {status} ({class})");
    }
    println!("\nwhat a caller sees, the first StackError of each status:");
    for line in tally.seen.values() {
        println!("  {line}");
    }

    println!(
        "\nchecks: 400s sent again {retried_400s} (want 0); most 429s in a window after the \
         first {late_429s} (want <= 1); goodput {:.1} % of {binding} (want >= 90 %)",
        goodput * 100.0
    );
    let mut broken = Vec::new();
    if retried_400s > 0 {
        broken.push(format!("{retried_400s} 400s were sent again"));
    }
    if late_429s > 1 {
        broken.push(format!("{late_429s} 429s in one window after the first"));
    }
    if goodput < 0.90 {
        broken.push(format!(
            "goodput {:.1} % of the {binding} quota",
            goodput * 100.0
        ));
    }
    broken
}
