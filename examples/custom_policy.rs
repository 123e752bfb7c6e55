//! Extending riprap without forking it: every policy is a trait.
//!
//! This example plugs four of your own policies into the stack:
//!
//! 1. a **classifier** that knows an LLM API's error bodies (an overloaded model is worth
//!    retrying, an over-long prompt never is);
//! 2. a **trip policy** for the circuit breaker: more than half of the last ten calls failed,
//!    kept in a ten-bit shift register, lock-free;
//! 3. a **retry budget**: a fixed allowance of retries per process, paid back on success;
//! 4. an **offset store** for resumable streams (see `stream_store` below), here a map
//!    standing in for your own key-value store.
//!
//! ```sh
//! cargo run --example custom_policy
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::breaker::{Call, CircuitBreaker, TripPolicy};
use riprap::budget::{Budget, Withdrawal};
use riprap::classify::{Class, Classify};
use riprap::retry::RetryConfig;
use riprap::stack::{Failure as StackFailure, StackBuilder};
use riprap::stream::{
    CheckpointError, CommitConfig, Offset, OffsetStore, OnEnd, Resumable, ResumeConfig,
};
use tower::{Service, ServiceExt, service_fn};

// 1. A classifier -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    body: &'static str,
}

#[derive(Debug)]
struct Disconnected;

impl std::fmt::Display for Disconnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset")
    }
}

impl std::error::Error for Disconnected {}

/// Reads the API's error bodies, not just its status codes.
#[derive(Debug, Clone, Copy)]
struct LlmErrors;

impl Classify<Reply, Disconnected> for LlmErrors {
    fn classify(&self, outcome: Result<&Reply, &Disconnected>) -> Class {
        match outcome {
            Err(Disconnected) => Class::Transient,
            Ok(r) if r.status == 200 => Class::Success,
            Ok(r) if r.body.contains("overloaded") => Class::Transient,
            Ok(r) if r.body.contains("context_length_exceeded") => Class::Permanent,
            Ok(r) if r.status == 429 => Class::Throttled {
                retry_after: Some(Duration::from_secs(1)),
            },
            Ok(r) if r.status >= 500 => Class::Transient,
            Ok(_) => Class::Permanent,
        }
    }
}

// 2. A trip policy ----------------------------------------------------------------------------

/// Trips when more than half of the last ten calls failed. The history is ten bits in one
/// atomic word (bit set = failure) plus a call count, so recording takes no lock.
#[derive(Debug, Default)]
struct HalfOfLastTen {
    history: AtomicU32,
    seen: AtomicU32,
}

impl TripPolicy for HalfOfLastTen {
    fn record(&self, call: Call) -> bool {
        if call.ignored() {
            return false;
        }
        let bit = u32::from(call.failed());
        let prev = self
            .history
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                Some(((h << 1) | bit) & 0x3FF)
            })
            .unwrap_or_default();
        let history = ((prev << 1) | bit) & 0x3FF;
        let seen = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        seen >= 10 && history.count_ones() > 5
    }

    fn reset(&self) {
        self.history.store(0, Ordering::Release);
        self.seen.store(0, Ordering::Release);
    }

    fn fresh(&self) -> Self {
        HalfOfLastTen::default()
    }
}

// 3. A retry budget ---------------------------------------------------------------------------

/// A fixed allowance of retries for the whole process, paid back when a retried request
/// finally succeeds: a cheap "never more than N retries in flight of failure" guard.
#[derive(Debug, Clone)]
struct Allowance {
    left: Arc<AtomicI64>,
}

impl Budget for Allowance {
    fn deposit(&self) {}

    fn try_withdraw(&self, _after: Class) -> Option<Withdrawal> {
        let before = self.left.fetch_sub(1, Ordering::AcqRel);
        if before > 0 {
            Some(Withdrawal::new(1))
        } else {
            self.left.fetch_add(1, Ordering::AcqRel);
            None
        }
    }

    fn refund(&self, withdrawal: Withdrawal) {
        self.left
            .fetch_add(withdrawal.units() as i64, Ordering::AcqRel);
    }

    fn record(&self, outcome: riprap::budget::Attempt) {
        if let riprap::budget::Attempt::Succeeded { spent } = outcome {
            self.refund(spent);
        }
    }
}

// 4. An offset store -------------------------------------------------------------------------

/// One stream's committed position in a key-value store (here a map behind a mutex), under
/// the stream's name. Positions are stored as the bytes `Offset::encode` writes, so any
/// offset type fits.
#[derive(Debug, Clone)]
struct KvStore {
    kv: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    stream: String,
}

impl<O: Offset> OffsetStore<O> for KvStore {
    async fn load(&self) -> Result<Option<O>, CheckpointError> {
        let kv = self.kv.lock().unwrap_or_else(|e| e.into_inner());
        match kv.get(&self.stream) {
            None => Ok(None),
            // A damaged record must stop the stream, not restart it from the beginning.
            Some(bytes) => O::decode(bytes)
                .map(Some)
                .ok_or_else(|| CheckpointError::backend("stored position does not decode")),
        }
    }

    async fn save(&self, position: &O) -> Result<(), CheckpointError> {
        let mut bytes = Vec::new();
        position.encode(&mut bytes);
        let mut kv = self.kv.lock().unwrap_or_else(|e| e.into_inner());
        kv.insert(self.stream.clone(), bytes);
        Ok(())
    }
}

/// A log of entries 0..10 that answers `after` with the entries after it; a first
/// connection that starts before entry 4 drops after entry 3.
fn log_source() -> impl Service<
    Option<u64>,
    Response = impl futures_core::Stream<Item = std::io::Result<(u64, String)>>,
    Error = std::io::Error,
    Future = impl Send,
> {
    let connections = Arc::new(AtomicU32::new(0));
    service_fn(move |after: Option<u64>| {
        let first = connections.fetch_add(1, Ordering::Relaxed) == 0;
        async move {
            let from = after.map_or(0, |a| a + 1);
            let drops = first && from < 4;
            let to = if drops { 4 } else { 10 };
            let mut entries: Vec<std::io::Result<(u64, String)>> =
                (from..to).map(|n| Ok((n, format!("entry {n}")))).collect();
            if drops {
                entries.push(Err(std::io::ErrorKind::ConnectionReset.into()));
            }
            Ok(futures_util::stream::iter(entries))
        }
    })
}

/// Reads the log through a `Resumable` checkpointed to `KvStore`, stopping after `stop_at`;
/// returns the offsets delivered and the number of reconnects.
async fn read_log(
    store: KvStore,
    stop_at: u64,
) -> Result<(Vec<u64>, u64), Box<dyn std::error::Error>> {
    let backoff = riprap::backoff::BackoffPolicy::constant(Duration::from_millis(200)).build()?;
    let mut log = Resumable::new(log_source(), backoff)
        .config(ResumeConfig::builder().on_end(OnEnd::Finish).build()?)
        .checkpointed(store, CommitConfig::builder().every(2).build()?);
    let acker = log.acker();
    let mut delivered = Vec::new();
    while let Some(delivery) = futures_util::StreamExt::next(&mut log).await {
        let (_entry, ack) = delivery?.into_parts();
        let offset = *ack.offset();
        delivered.push(offset);
        acker.ack(ack)?; // once the entry is safely processed
        if offset == stop_at {
            break;
        }
    }
    log.flush().await?; // a clean shutdown commits the last acks
    Ok((delivered, log.stats().snapshot().reconnects))
}

async fn stream_store() -> Result<(), Box<dyn std::error::Error>> {
    let kv = Arc::new(Mutex::new(HashMap::new()));
    let store = || KvStore {
        kv: Arc::clone(&kv),
        stream: "access-logs".into(),
    };
    let (first, reconnects) = read_log(store(), 5).await?;
    println!("resumable stream over a key-value offset store:");
    println!("  first run delivered {first:?} ({reconnects} reconnect), then stopped");
    let resume_from: Option<u64> = store().load().await?;
    let (second, _) = read_log(store(), u64::MAX).await?;
    println!("  restart resumed after {resume_from:?}: delivered {second:?}");
    Ok(())
}

// The stack -----------------------------------------------------------------------------------

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        let allowance = Allowance {
            left: Arc::new(AtomicI64::new(20)),
        };
        let stack = StackBuilder::new(LlmErrors)
            .total_deadline(Duration::from_secs(30))
            .retry(RetryConfig::new().max_attempts(3).budget(allowance.clone()))
            .breaker(
                CircuitBreaker::builder()
                    .policy(HalfOfLastTen::default())
                    .open_for(Duration::from_secs(10)),
            )
            .build()?;

        // A dependency that is overloaded for its first 40 calls, rejects over-long prompts,
        // and is healthy after that.
        let calls = Arc::new(Mutex::new(0u32));
        let c = Arc::clone(&calls);
        let api = service_fn(move |prompt: &'static str| {
            let n = {
                let mut g = c.lock().unwrap_or_else(|e| e.into_inner());
                *g += 1;
                *g
            };
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, Disconnected>(match (n, prompt) {
                    (_, "a very long prompt") => Reply {
                        status: 400,
                        body: "context_length_exceeded",
                    },
                    (n, _) if n <= 40 => Reply {
                        status: 503,
                        body: "model overloaded",
                    },
                    _ => Reply {
                        status: 200,
                        body: "ok",
                    },
                })
            }
        });
        let mut svc = stack.layer(api);

        let mut tally: HashMap<&'static str, u32> = HashMap::new();
        for i in 0..120 {
            let prompt = if i % 15 == 7 {
                "a very long prompt"
            } else {
                "hello"
            };
            let what = match svc.ready().await?.call(prompt).await {
                Ok(r) if r.status == 200 => "succeeded",
                Ok(r) if r.status == 400 => "prompt too long, not retried",
                Ok(_) => "still failing after retries",
                Err(e) => match e.failure() {
                    StackFailure::Rejected(_) => "rejected by the breaker",
                    StackFailure::Inner(_) => "client error",
                    _ => "other error",
                },
            };
            *tally.entry(what).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut rows: Vec<_> = tally.into_iter().collect();
        rows.sort();
        println!("120 requests through a stack of custom policies:");
        for (what, n) in rows {
            println!("  {what:<30} {n}");
        }
        println!(
            "  upstream calls                 {}",
            calls.lock().unwrap_or_else(|e| e.into_inner())
        );
        println!(
            "  retry allowance left           {}",
            allowance.left.load(Ordering::Acquire)
        );
        println!(
            "  breaker                        {:?}",
            stack.breaker().state()
        );
        stream_store().await
    })
}
