//! Per-item overhead of `Resumable` (and `Checkpointed` with an ack per item) over the bare
//! stream it wraps, and checkpoint commits per second.
//!
//! `cargo bench --all-features --bench stream -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::io;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{StreamExt, stream};
use riprap::backoff::BackoffPolicy;
use riprap::stream::{
    CommitConfig, FileStore, MemoryStore, OffsetStore, OnEnd, Resumable, ResumeConfig,
};

const ITEMS: u64 = 1_000_000;

fn log(after: Option<u64>) -> impl futures_core::Stream<Item = io::Result<(u64, u64)>> + Unpin {
    stream::iter((after.map_or(0, |a| a + 1)..ITEMS).map(|n| Ok((n, n))))
}

fn source() -> impl tower::Service<
    Option<u64>,
    Response = impl futures_core::Stream<Item = io::Result<(u64, u64)>> + Unpin,
    Error = io::Error,
    Future = impl Send,
> {
    tower::service_fn(|after: Option<u64>| std::future::ready(Ok::<_, io::Error>(log(after))))
}

/// The same log behind `Resumable`, finishing when it ends.
macro_rules! resumable {
    () => {{
        let backoff = BackoffPolicy::constant(Duration::from_millis(10))
            .build()
            .unwrap();
        let config = ResumeConfig::builder()
            .on_end(OnEnd::Finish)
            .build()
            .unwrap();
        Resumable::new(source(), backoff).config(config)
    }};
}

fn per_item(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("stream_1m_items");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ITEMS));

    group.bench_function("bare futures::stream::iter", |b| {
        b.to_async(&rt).iter(|| async {
            let mut s = log(None);
            while let Some(item) = s.next().await {
                black_box(item.unwrap());
            }
        })
    });

    group.bench_function("riprap Resumable", |b| {
        b.to_async(&rt).iter(|| async {
            let mut s = resumable!();
            while let Some(item) = s.next().await {
                black_box(item.unwrap());
            }
        })
    });

    group.bench_function("riprap Checkpointed, deliver only (no acks)", |b| {
        b.to_async(&rt).iter(|| async {
            let commit = CommitConfig::builder()
                .every(1_000)
                .max_unacked(2_000_000)
                .build()
                .unwrap();
            let mut s = resumable!().checkpointed(MemoryStore::new(), commit);
            while let Some(d) = s.next().await {
                let (item, ack) = d.unwrap().into_parts();
                black_box(item);
                let _ = black_box(ack);
            }
        })
    });

    group.bench_function("riprap Checkpointed + ack each item", |b| {
        b.to_async(&rt).iter(|| async {
            let commit = CommitConfig::builder().every(1_000).build().unwrap();
            let mut s = resumable!().checkpointed(MemoryStore::new(), commit);
            let acker = s.acker();
            while let Some(d) = s.next().await {
                let (item, ack) = d.unwrap().into_parts();
                black_box(item);
                acker.ack(ack).unwrap();
            }
            s.flush().await.unwrap();
        })
    });
    group.bench_function("riprap Checkpointed + ack_many per 64 items", |b| {
        b.to_async(&rt).iter(|| async {
            let commit = CommitConfig::builder().every(1_000).build().unwrap();
            let mut s = resumable!().checkpointed(MemoryStore::new(), commit);
            let acker = s.acker();
            let mut batch = Vec::with_capacity(64);
            while let Some(d) = s.next().await {
                let (item, ack) = d.unwrap().into_parts();
                black_box(item);
                batch.push(ack);
                if batch.len() == 64 {
                    acker.ack_many(batch.drain(..)).unwrap();
                }
            }
            acker.ack_many(batch.drain(..)).unwrap();
            s.flush().await.unwrap();
        })
    });
    group.finish();
}

fn commits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("riprap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = FileStore::<u64>::new(dir.join("ckpt"));
    let memory = MemoryStore::<u64>::new();

    let mut group = c.benchmark_group("checkpoint_commit");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function(
        BenchmarkId::new("FileStore save (fsync + rename + dir fsync)", "u64"),
        |b| {
            b.to_async(&rt).iter(|| {
                n += 1;
                let file = file.clone();
                async move { file.save(&n).await.unwrap() }
            })
        },
    );
    group.bench_function(BenchmarkId::new("MemoryStore save", "u64"), |b| {
        b.to_async(&rt).iter(|| {
            n += 1;
            let memory = memory.clone();
            async move { memory.save(&n).await.unwrap() }
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, per_item, commits);
criterion_main!(benches);
