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

use riprap::breaker::{CircuitBreaker, Outcome, TripPolicy};
use riprap::budget::{Budget, Failure, Withdrawal};
use riprap::classify::{Class, Classify};
use riprap::retry::RetryConfig;
use riprap::stack::{Failure as StackFailure, Stack};
use tower::{Layer, Service, ServiceExt, service_fn};

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
    fn record(&self, outcome: Outcome) -> bool {
        let bit = u32::from(outcome.failed);
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

    fn try_withdraw(&self, _after: Failure) -> Option<Withdrawal> {
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

    fn record(&self, outcome: riprap::budget::Outcome) {
        if let riprap::budget::Outcome::Success { spent } = outcome {
            self.refund(spent);
        }
    }
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
        let stack = Stack::builder(LlmErrors)
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
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
