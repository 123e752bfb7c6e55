//! Download an object by ranged reads from a store that keeps failing, crash half-way, and
//! restart from the checkpoint: the same object finishes byte for byte; an object replaced
//! while the process was down is refused with a typed error, or started over when asked, and
//! never spliced.
//!
//! `cargo run --example object_store_resume --features object_store`
//!
//! The object lives in `object_store`'s in-memory backend behind `riprap::chaos::ChaosStore`,
//! which injects seeded errors, latency, truncated bodies and disconnects mid-body. Each "run"
//! is what one process would do; a crash drops it without a flush. (The test suite does the
//! same with real processes killed by SIGKILL: `tests/object_store.rs`.)

use std::error::Error;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use riprap::backoff::BackoffPolicy;
use riprap::chaos::{ChaosLayer, ChaosStore, Latency};
use riprap::stream::codec::crc32;
use riprap::stream::{
    CommitConfig, FileSink, FileStore, ObjectPosition, ObjectSource, OffsetStore, OnChange, OnEnd,
    Resumable, ResumeConfig, StreamEvent,
};

const SIZE: usize = 6 << 20;
const CHUNK: u64 = 128 << 10;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let backing: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = Arc::new(
        ChaosStore::builder(Arc::clone(&backing))
            .faults(
                ChaosLayer::builder()
                    .seed(42)
                    .error_rate(0.05)
                    .latency(0.3, Latency::Uniform(ms(1), ms(5))),
            )
            .truncate_rate(0.05)
            .disconnect_rate(0.1)
            .build()?,
    );
    let path = Path::from("exports/2024-06-01/events.ndjson");
    let dir = std::env::temp_dir().join(format!("riprap-object-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    println!("1. restart, same object");
    let a = pseudo_random_bytes(SIZE, 0x000A);
    backing.put(&path, PutPayload::from(a.clone())).await?;
    println!("   object A: {} bytes, crc32 {:08x}", a.len(), crc32(&a));
    let job = dir.join("first");
    let run = |stop| download(&store, &path, &job, OnChange::Fail, stop);
    report("run 1", run(Some(SIZE * 2 / 5)).await);
    report("run 2", run(None).await);
    check(&job, &a, "A")?;

    println!("2. restart, object replaced while the process was down");
    let job = dir.join("second");
    report(
        "run 1",
        download(&store, &path, &job, OnChange::Fail, Some(SIZE * 2 / 5)).await,
    );
    let b = pseudo_random_bytes(SIZE, 0x000B);
    backing.put(&path, PutPayload::from(b.clone())).await?;
    println!("   object replaced by B: crc32 {:08x}", crc32(&b));
    let refused = download(&store, &path, &job, OnChange::Fail, None).await;
    report("run 2, OnChange::Fail", refused);
    let kept = std::fs::read(job.join("out.bin"))?;
    println!(
        "   output untouched: {} bytes, all of them A's: {}",
        kept.len(),
        a.starts_with(&kept)
    );
    report(
        "run 3, OnChange::Restart",
        download(&store, &path, &job, OnChange::Restart, None).await,
    );
    check(&job, &b, "B")?;

    let faults = store.injected();
    println!(
        "faults injected: {} errors, {} truncated bodies, {} disconnects mid-body, in {} calls; {:?}",
        faults.errors,
        faults.truncated,
        faults.disconnects,
        store.calls(),
        started.elapsed(),
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// What one run of the program did.
struct Run {
    checkpoint: u64,
    first_read: Option<u64>,
    written: u64,
    reconnects: u64,
    committed: Option<u64>,
    crashed: bool,
}

/// One run of the downloading program: resume from `job`'s checkpoint, write into its output,
/// and crash once `stop_at` bytes are written (if given).
async fn download(
    store: &Arc<ChaosStore<Arc<dyn ObjectStore>>>,
    path: &Path,
    job: &FsPath,
    on_change: OnChange,
    stop_at: Option<usize>,
) -> Result<Run, Box<dyn Error>> {
    std::fs::create_dir_all(job)?;
    let output = FileSink::open(job.join("out.bin")).await?;
    // The output is flushed before each commit, so the checkpoint never runs ahead of it.
    let checkpoint = FileStore::<ObjectPosition>::new(job.join("ckpt")).flush_first(output.clone());
    let store: Arc<dyn ObjectStore> = Arc::clone(store) as Arc<dyn ObjectStore>;
    let source = ObjectSource::new(store, path.clone())
        .chunk_size(CHUNK)
        .on_change(on_change);
    let backoff = BackoffPolicy::exponential(ms(1))
        .max_delay(ms(20))
        .seed(7)
        .build()?;
    let resumed_at = Arc::new(AtomicU64::new(0));
    let listener = {
        let resumed_at = Arc::clone(&resumed_at);
        move |e: &StreamEvent<ObjectPosition>| {
            if let StreamEvent::Loaded {
                position: Some(at), ..
            } = e
            {
                resumed_at.store(at.position().0, Ordering::Relaxed);
            }
        }
    };
    let mut download = Resumable::new(source, backoff)
        .config(
            ResumeConfig::builder()
                .on_end(OnEnd::Finish)
                .max_reconnects(8)
                .build()?,
        )
        .listener(riprap::events::only(listener))
        .checkpointed(checkpoint, CommitConfig::builder().every(4).build()?);
    let acker = download.acker();
    let stats = download.stats();
    let mut crashed = false;
    let mut first_read = None;
    while let Some(delivery) = download.next().await {
        let delivery = delivery?;
        let end = delivery.offset().position().0;
        let start = end - delivery.item().len() as u64;
        first_read.get_or_insert(start);
        let (bytes, ack) = delivery.into_parts();
        // Written at its start: what a crash left past the checkpoint, or a replaced
        // object's old bytes, are cut away first.
        output.append_at(start, bytes).await?;
        acker.ack(ack)?;
        if stop_at.is_some_and(|stop| output.len() >= stop as u64) {
            crashed = true; // the process dies here: no flush
            break;
        }
    }
    if !crashed {
        download.flush().await?;
    }
    let committed = FileStore::<ObjectPosition>::new(job.join("ckpt"))
        .load()
        .await?
        .map(|p| p.position().0);
    Ok(Run {
        checkpoint: resumed_at.load(Ordering::Relaxed),
        first_read,
        written: output.len(),
        reconnects: stats.snapshot().reconnects,
        committed,
        crashed,
    })
}

fn report(label: &str, run: Result<Run, Box<dyn Error>>) {
    match run {
        Ok(r) => println!(
            "   {label}: checkpoint at byte {}, first read at byte {:?}, {} reconnects, output {} bytes, committed {:?}{}",
            r.checkpoint,
            r.first_read,
            r.reconnects,
            r.written,
            r.committed,
            if r.crashed {
                ", then crashed"
            } else {
                ", done"
            },
        ),
        Err(e) => println!("   {label}: refused: {e}"),
    }
}

fn check(job: &FsPath, expected: &[u8], name: &str) -> Result<(), Box<dyn Error>> {
    let out = std::fs::read(PathBuf::from(job).join("out.bin"))?;
    let ok = out == expected;
    println!(
        "   output: {} bytes, crc32 {:08x}: {}",
        out.len(),
        crc32(&out),
        if ok {
            format!("matches {name}")
        } else {
            "MISMATCH".into()
        }
    );
    if !ok {
        return Err(format!("the output differs from {name}").into());
    }
    Ok(())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
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
