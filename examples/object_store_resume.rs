//! Download a large object by ranged reads while the connection keeps dropping, crash halfway,
//! and finish from the checkpoint, then prove the bytes are exactly the original's.
//!
//! `cargo run --example object_store_resume --features object_store`
//!
//! The object lives in `object_store`'s in-memory backend; a wrapper around the source cuts
//! the body mid-transfer after a (seeded) random number of chunks and refuses some
//! connections, the way a flaky network or a store under maintenance would.

use std::error::Error;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_util::{FutureExt, StreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use riprap::backoff::BackoffPolicy;
use riprap::stream::codec::crc32;
use riprap::stream::{
    CommitConfig, MemoryStore, ObjectChunks, ObjectPosition, ObjectReadError, ObjectSource, OnEnd,
    Resumable, ResumeConfig, StreamEvent,
};
use tower::Service;

const SIZE: usize = 6 << 20;
const CHUNK: u64 = 128 << 10;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let path = Path::from("exports/2024-06-01/events.ndjson");
    let original = pseudo_random_bytes(SIZE, 0x000B_1EC7);
    store.put(&path, PutPayload::from(original.clone())).await?;
    println!(
        "object: {} bytes, crc32 {:08x}",
        original.len(),
        crc32(&original)
    );

    let source = Flaky::new(ObjectSource::new(store, path).chunk_size(CHUNK), 42);
    let backoff = BackoffPolicy::exponential(Duration::from_millis(1))
        .max_delay(Duration::from_millis(20))
        .seed(7)
        .build()?;
    let config = ResumeConfig::builder()
        .on_end(OnEnd::Finish)
        .max_reconnects(8)
        .build()?;
    let commits = CommitConfig::builder().every(4).build()?;
    let checkpoint = MemoryStore::<ObjectPosition>::new();
    let reconnects = Arc::new(AtomicU64::new(0));
    let listener = {
        let reconnects = Arc::clone(&reconnects);
        move |e: &StreamEvent<ObjectPosition>| {
            if let StreamEvent::Reconnecting {
                after,
                attempt,
                delay,
                ..
            } = e
            {
                reconnects.fetch_add(1, Ordering::Relaxed);
                let at = after.as_ref().map_or(0, |p| p.position().0);
                println!("  reconnect #{attempt} from byte {at} after {delay:?}");
            }
        }
    };
    let listener: Arc<dyn riprap::events::Listener<StreamEvent<ObjectPosition>>> =
        Arc::new(listener);

    // Run 1: download until 40% is on disk, then the process dies (no flush).
    let mut body: Vec<u8> = Vec::with_capacity(SIZE);
    {
        println!("run 1:");
        let mut download = Resumable::new(source.clone(), backoff.clone())
            .config(config.clone())
            .listener(Arc::clone(&listener))
            .checkpointed(checkpoint.clone(), commits.clone());
        let acker = download.acker();
        while let Some(delivery) = download.next().await {
            let (bytes, ack) = delivery?.into_parts();
            body.extend_from_slice(&bytes); // "write to the partial file"
            acker.ack(ack)?;
            if body.len() >= SIZE * 2 / 5 {
                break;
            }
        }
        println!("  crashed with {} bytes written", body.len());
    }

    // The checkpoint says how much of the partial file is known good: keep that, drop the rest.
    let resume_at = checkpoint.position().map_or(0, |p| p.position().0);
    body.truncate(usize::try_from(resume_at)?);
    println!("run 2: checkpoint at byte {resume_at}, resuming");
    let mut download = Resumable::new(source.clone(), backoff)
        .config(config)
        .listener(listener)
        .checkpointed(checkpoint.clone(), commits);
    let acker = download.acker();
    while let Some(delivery) = download.next().await {
        let (bytes, ack) = delivery?.into_parts();
        body.extend_from_slice(&bytes);
        acker.ack(ack)?;
    }
    download.flush().await?;

    let ok = body == original;
    println!(
        "done: {} bytes, crc32 {:08x} ({}), {} reconnects, {} faults injected, committed {:?}, {:?}",
        body.len(),
        crc32(&body),
        if ok { "matches" } else { "MISMATCH" },
        reconnects.load(Ordering::Relaxed),
        source.faults(),
        checkpoint.position().map(|p| p.position().0),
        started.elapsed(),
    );
    if !ok {
        return Err("reassembled object differs from the original".into());
    }
    Ok(())
}

/// Wraps a source: one connection in four is refused, and every response body is cut after
/// 1..=10 chunks (the chunk in flight is lost).
#[derive(Clone)]
struct Flaky {
    inner: ObjectSource,
    rng: Arc<Mutex<u64>>,
    faults: Arc<AtomicU64>,
}

impl Flaky {
    fn new(inner: ObjectSource, seed: u64) -> Self {
        Flaky {
            inner,
            rng: Arc::new(Mutex::new(seed.max(1))),
            faults: Arc::default(),
        }
    }

    fn roll(&self) -> u64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }
}

fn fault(what: &str) -> ObjectReadError {
    ObjectReadError::Store(object_store::Error::Generic {
        store: "flaky",
        source: what.to_string().into(),
    })
}

impl Service<Option<ObjectPosition>> for Flaky {
    type Response = ObjectChunks;
    type Error = ObjectReadError;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<ObjectChunks, ObjectReadError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, after: Option<ObjectPosition>) -> Self::Future {
        if self.roll() % 4 == 0 {
            self.faults.fetch_add(1, Ordering::Relaxed);
            return std::future::ready(Err(fault("connection refused"))).boxed();
        }
        let cut_after = 1 + self.roll() % 10;
        let faults = Arc::clone(&self.faults);
        self.inner
            .call(after)
            .map(move |opened| {
                opened.map(|inner| {
                    Box::pin(CutAfter {
                        inner,
                        left: cut_after,
                        faults,
                        done: false,
                    }) as ObjectChunks
                })
            })
            .boxed()
    }
}

/// Passes `left` chunks through, then loses the next one and fails like a reset connection.
struct CutAfter {
    inner: ObjectChunks,
    left: u64,
    faults: Arc<AtomicU64>,
    done: bool,
}

impl Stream for CutAfter {
    type Item = <ObjectChunks as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = std::task::ready!(self.inner.as_mut().poll_next(cx));
        if self.left > 0 || next.is_none() {
            self.left = self.left.saturating_sub(1);
            return Poll::Ready(next);
        }
        self.done = true;
        self.faults.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Some(Err(fault("connection reset mid-body"))))
    }
}

fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.max(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}
