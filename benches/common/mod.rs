//! What several benches share: an error that classifies as transient, an always-ready
//! client answering at once (so every contender wraps the same inner service), and the timing
//! of an operation run on two threads at once.

// Each bench includes this module and uses the part it needs.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use riprap::classify::{Class, Classified};
use tower::{Service, service_fn};

/// The inner service's error: transient, so retry layers would retry it.
#[derive(Debug, Clone)]
pub struct Fail;

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fail")
    }
}

impl std::error::Error for Fail {}

impl Classified for Fail {
    fn class(&self) -> Class {
        Class::Transient
    }
}

/// An always-ready client that answers with its request at once.
pub fn client() -> impl Service<u64, Response = u64, Error = Fail, Future = impl Send> + Clone + Send
{
    service_fn(|x: u64| async move { Ok::<u64, Fail>(x) })
}

/// Wall time for two threads to each run `op` `iters` times at once: the time per call as
/// each thread sees it under contention (criterion's `iter_custom` divides by `iters`).
pub fn two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..iters {
                    op();
                }
            });
        }
    });
    start.elapsed()
}
