//! Object-store downloads: bound to the object's version across real process kills and
//! within a run, and the chaos object store.
#![cfg(feature = "object_store")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use riprap::backoff::BackoffPolicy;
use riprap::chaos::{ChaosError, ChaosLayer, ChaosStore, ChaosStoreBuilder, Fault, Latency};
use riprap::classify::{Class, Classified};
use riprap::stream::codec::{self, crc32};
use riprap::stream::{
    BytePosition, CommitConfig, FileSink, FileStore, ObjectPosition, ObjectReadError, ObjectSource,
    ObjectVersion, OffsetStore, OnChange, OnEnd, Resumable, ResumeConfig, ResumeError,
    SourceVersion, StreamEvent,
};

const CHILD_ENV: &str = "RIPRAP_OBJECT_CHILD";
const MODE_ENV: &str = "RIPRAP_OBJECT_CHILD_ON_CHANGE";
const SIZE: usize = 256 << 10;
const CHUNK: u64 = 2 << 10;
const OBJECT: &str = "exports/day.bin";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("riprap-object-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("store")).unwrap();
    dir
}

fn bytes(seed: u64) -> Vec<u8> {
    let mut s = seed;
    (0..SIZE)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

fn put(dir: &Path, body: Vec<u8>) {
    let store = LocalFileSystem::new_with_prefix(dir.join("store")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.put(&ObjectPath::from(OBJECT), PutPayload::from(body)))
        .unwrap();
}

/// The downloading process: resumes from its checkpoint, writes each chunk into `out.bin`
/// and reports what it does on stdout. Does nothing in a normal test run.
#[test]
fn download_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let on_change = match std::env::var(MODE_ENV).as_deref() {
        Ok("restart") => OnChange::Restart,
        _ => OnChange::Fail,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result: Result<(), Box<dyn std::error::Error>> = rt.block_on(async {
        let store: Arc<dyn ObjectStore> =
            Arc::new(LocalFileSystem::new_with_prefix(dir.join("store"))?);
        let output = FileSink::open(dir.join("out.bin")).await?;
        // The output is flushed before every commit: the checkpoint never runs ahead of it.
        let checkpoint =
            FileStore::<ObjectPosition>::new(dir.join("ckpt")).flush_first(output.clone());
        let source = ObjectSource::new(store, ObjectPath::from(OBJECT))
            .chunk_size(CHUNK)
            .on_change(on_change);
        let listener = |e: &StreamEvent<ObjectPosition>| match e {
            StreamEvent::Loaded { position } => {
                println!("START {}", position.as_ref().map_or(0, |p| p.position().0));
            }
            StreamEvent::Committed { position } => println!("DURABLE {}", position.position().0),
            _ => {}
        };
        let mut download = Resumable::new(
            source,
            BackoffPolicy::constant(Duration::from_millis(1)).build()?,
        )
        .config(ResumeConfig::builder().on_end(OnEnd::Finish).build()?)
        .listener(riprap::events::only(listener))
        .checkpointed(checkpoint, CommitConfig::builder().every(8).build()?);
        let acker = download.acker();
        while let Some(delivery) = download.next().await {
            let delivery = delivery?;
            let end = delivery.offset().position().0;
            let start = end - delivery.item().len() as u64;
            let (bytes, ack) = delivery.into_parts();
            // Cuts back whatever a kill left after the checkpoint, or the old version.
            output.append_at(start, bytes).await?;
            println!("CHUNK {end}");
            acker.ack(ack)?;
            // Pace the download so that a kill lands mid-way.
            std::thread::sleep(Duration::from_micros(300));
        }
        download.flush().await?;
        Ok(())
    });
    match result {
        Ok(()) => println!("DONE"),
        Err(e) => {
            println!("ERROR {e}");
            std::process::exit(3);
        }
    }
}

struct Run {
    lines: Vec<String>,
    killed: bool,
    status: ExitStatus,
}

/// Run the child until it ends, or SIGKILL it once it has reported `kill_after` chunks and a
/// commit (so that the next run has a checkpoint to resume from, however slow the machine).
fn run_child(dir: &Path, kill_after: Option<usize>, on_change: &str) -> Run {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "download_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_ENV, dir)
        .env(MODE_ENV, on_change)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut chunks = 0;
    let mut committed = false;
    let mut killed = false;
    for line in out.lines() {
        let Ok(line) = line else { break };
        if line.starts_with("CHUNK ") {
            chunks += 1;
        }
        committed |= line.starts_with("DURABLE ");
        lines.push(line);
        if !killed && committed && kill_after.is_some_and(|k| chunks >= k) {
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    Run {
        lines,
        killed,
        status,
    }
}

fn summary(label: &str, run: &Run) {
    let start = run.lines.iter().find(|l| l.starts_with("START "));
    let chunks = run.lines.iter().filter(|l| l.starts_with("CHUNK ")).count();
    let durable = run.lines.iter().rfind(|l| l.starts_with("DURABLE "));
    let end = if run.killed {
        "SIGKILL".to_string()
    } else {
        let last = run
            .lines
            .iter()
            .find(|l| *l == "DONE" || l.starts_with("ERROR "))
            .map_or("", String::as_str);
        format!("{last} ({})", run.status)
    };
    eprintln!(
        "{label}: {}, {chunks} chunks written, last commit {}, then {end}",
        start.map_or("no start", String::as_str),
        durable.map_or("none", String::as_str),
    );
}

fn describe(label: &str, out: &[u8], versions: &[(&str, &[u8])]) {
    let matches: Vec<_> = versions
        .iter()
        .filter(|(_, v)| *v == out)
        .map(|(name, _)| *name)
        .collect();
    let prefix_of: Vec<_> = versions
        .iter()
        .filter(|(_, v)| v.starts_with(out))
        .map(|(name, _)| *name)
        .collect();
    eprintln!(
        "{label}: {} bytes, crc32 {:08x}; equals {matches:?}, a prefix of {prefix_of:?}",
        out.len(),
        crc32(out),
    );
}

/// After a kill: a checkpoint in the object's current version is never ahead of the output,
/// and the output up to it is `object`'s. (A checkpoint in an older version only ever makes
/// the next run start over.) Returns the committed position.
fn check_after_kill(dir: &Path, object: &[u8]) -> u64 {
    let out = std::fs::read(dir.join("out.bin")).unwrap_or_default();
    let Ok(bytes) = std::fs::read(dir.join("ckpt")) else {
        return 0;
    };
    let position = codec::decode::<ObjectPosition>(&bytes).unwrap();
    let store = LocalFileSystem::new_with_prefix(dir.join("store")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let meta = rt.block_on(store.head(&ObjectPath::from(OBJECT))).unwrap();
    let committed = position.position().0;
    if !position.is_in(ObjectVersion::of(&meta).source_version()) {
        return committed;
    }
    let committed_len = usize::try_from(committed).unwrap();
    assert!(
        out.len() >= committed_len,
        "checkpoint at {committed} is ahead of the output's {} bytes",
        out.len()
    );
    assert_eq!(&out[..committed_len], &object[..committed_len]);
    committed
}

#[test]
fn the_same_object_survives_sigkills_byte_for_byte() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = temp_dir("same");
    let object = bytes(0x0A);
    put(&dir, object.clone());
    eprintln!(
        "object: {SIZE} bytes in chunks of {CHUNK}, crc32 {:08x}",
        crc32(&object)
    );
    for (i, kill_after) in [17, 40, 3, 29].into_iter().enumerate() {
        let run = run_child(&dir, Some(kill_after), "fail");
        summary(&format!("run {}", i + 1), &run);
        assert!(run.killed, "killed mid-download");
        let committed = check_after_kill(&dir, &object);
        assert!(committed < SIZE as u64, "killed before the end");
    }
    let last = run_child(&dir, None, "fail");
    summary("run 5", &last);
    assert!(last.status.success(), "the last run finishes");
    assert!(last.lines.iter().any(|l| l == "DONE"));
    let out = std::fs::read(dir.join("out.bin")).unwrap();
    describe("output", &out, &[("object", &object)]);
    assert_eq!(crc32(&out), crc32(&object), "same checksum as the original");
    assert_eq!(out, object);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_object_replaced_while_the_process_was_down_is_never_spliced() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = temp_dir("replaced");
    let old = bytes(0x0A);
    let new = bytes(0x0B);
    put(&dir, old.clone());
    let versions: [(&str, &[u8]); 2] = [("A", &old), ("B", &new)];
    eprintln!(
        "version A: crc32 {:08x}; version B (same size): crc32 {:08x}",
        crc32(&old),
        crc32(&new)
    );

    let first = run_child(&dir, Some(40), "fail");
    summary("run 1 (store has A)", &first);
    assert!(first.killed, "the child was killed mid-download");
    check_after_kill(&dir, &old);

    put(&dir, new.clone()); // replaced while no process is running
    let second = run_child(&dir, None, "fail");
    summary("run 2 (store has B, OnChange::Fail)", &second);
    let out = std::fs::read(dir.join("out.bin")).unwrap();
    describe("output after run 2", &out, &versions);
    assert_eq!(
        second.status.code(),
        Some(3),
        "resuming against a replaced object must fail"
    );
    let error = second.lines.iter().find(|l| l.starts_with("ERROR "));
    assert!(
        error.is_some_and(|e| e.contains("the object changed")),
        "with the typed error: {error:?}"
    );
    assert!(!second.lines.iter().any(|l| l.starts_with("CHUNK ")));
    assert!(
        old.starts_with(&out),
        "the output holds only bytes of version A: nothing of B was spliced on"
    );

    // Asked to, the download starts B over instead.
    let third = run_child(&dir, Some(25), "restart");
    summary("run 3 (OnChange::Restart)", &third);
    assert!(third.killed);
    check_after_kill(&dir, &new);
    let out = std::fs::read(dir.join("out.bin")).unwrap();
    describe("output after run 3", &out, &versions);
    assert!(
        new.starts_with(&out),
        "the restart dropped A's bytes before writing B's"
    );
    let fourth = run_child(&dir, None, "restart");
    summary("run 4 (OnChange::Restart)", &fourth);
    assert!(fourth.status.success());
    let out = std::fs::read(dir.join("out.bin")).unwrap();
    describe("output after run 4", &out, &versions);
    assert_eq!(out, new, "B, whole, with nothing of A");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Version-bound resume within one process

fn in_memory(body: &[u8]) -> (Arc<InMemory>, ObjectPath) {
    let store = Arc::new(InMemory::new());
    let path = ObjectPath::from(OBJECT);
    let put = store.put(&path, PutPayload::from(body.to_vec()));
    futures_util::FutureExt::now_or_never(put).unwrap().unwrap();
    (store, path)
}

fn finish() -> ResumeConfig {
    ResumeConfig::builder()
        .on_end(OnEnd::Finish)
        .max_reconnects(20)
        .build()
        .unwrap()
}

fn backoff() -> BackoffPolicy {
    BackoffPolicy::constant(Duration::from_millis(10))
        .build()
        .unwrap()
}

/// Writes each chunk at its start, as `FileSink::append_at` does, into memory.
fn write_at(out: &mut Vec<u8>, end: &ObjectPosition, bytes: &[u8]) {
    let start = usize::try_from(end.position().0).unwrap() - bytes.len();
    assert!(start <= out.len(), "a gap before byte {start}");
    out.truncate(start);
    out.extend_from_slice(bytes);
}

#[tokio::test(start_paused = true)]
async fn a_checkpoint_from_before_versions_is_never_trusted() {
    let object = bytes(0x0C);
    let (store, path) = in_memory(&object);
    // What the previous build's `FileStore<BytePosition>` left: byte 12,345, no version.
    let legacy =
        codec::decode::<ObjectPosition>(&codec::encode(&BytePosition(12_345)).unwrap()).unwrap();
    assert_eq!(legacy.version(), None);

    let source = ObjectSource::new(store.clone(), path.clone()).chunk_size(CHUNK);
    let mut s = Resumable::new(source, backoff())
        .config(finish())
        .start_after(Some(legacy.clone()));
    let first = s.next().await.unwrap();
    let Err(ResumeError::Permanent(
        e @ ObjectReadError::Changed {
            expected: None,
            found: Some(_),
        },
    )) = first
    else {
        panic!("expected a refusal, got {first:?}");
    };
    assert_eq!(e.class(), Class::Permanent);
    assert!(e.to_string().contains("records no version"), "{e}");

    // Told to, it reads the object from the start instead.
    let source = ObjectSource::new(store, path)
        .chunk_size(CHUNK)
        .on_change(OnChange::Restart);
    let mut s = Resumable::new(source, backoff())
        .config(finish())
        .start_after(Some(legacy));
    let mut out = vec![0xEE; 12_345]; // what the previous run had written
    while let Some(chunk) = s.next().await {
        let (end, bytes) = chunk.unwrap();
        write_at(&mut out, &end, &bytes);
    }
    assert_eq!(out, object);
}

/// Replaces the object after the first `after` reads reach the store.
#[derive(Debug)]
struct ReplaceAfter {
    inner: Arc<InMemory>,
    reads: std::sync::atomic::AtomicU64,
    after: u64,
    replacement: Vec<u8>,
}

impl std::fmt::Display for ReplaceAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplaceAfter")
    }
}

#[async_trait::async_trait]
impl ObjectStore for ReplaceAfter {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        if !options.head
            && self
                .reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                == self.after
        {
            let body = PutPayload::from(self.replacement.clone());
            self.inner.put(location, body).await?;
        }
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &ObjectPath) -> object_store::Result<()> {
        self.inner.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
    {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
    ) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[tokio::test(start_paused = true)]
async fn an_object_replaced_mid_transfer_fails_or_starts_over_never_splices() {
    let (old, new) = (bytes(0x0A), bytes(0x0B));
    for on_change in [OnChange::Fail, OnChange::Restart] {
        let (inner, path) = in_memory(&old);
        let store = Arc::new(ReplaceAfter {
            inner,
            reads: Default::default(),
            after: 10,
            replacement: new.clone(),
        });
        let source = ObjectSource::new(store, path)
            .chunk_size(CHUNK)
            .on_change(on_change);
        let mut s = Resumable::new(source, backoff()).config(finish());
        let mut out = Vec::new();
        let mut error = None;
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok((end, bytes)) => write_at(&mut out, &end, &bytes),
                Err(e) => error = Some(e),
            }
        }
        match on_change {
            OnChange::Fail => {
                let Some(ResumeError::Permanent(ObjectReadError::Changed { expected, .. })) = error
                else {
                    panic!("expected Changed, got {error:?}");
                };
                assert_eq!(expected.map(|v| v.size()), Some(SIZE as u64));
                assert_eq!(
                    out.len(),
                    10 * CHUNK as usize,
                    "ten chunks of the old version"
                );
                assert!(old.starts_with(&out));
            }
            _ => {
                assert!(error.is_none(), "{error:?}");
                assert_eq!(s.stats().snapshot().reconnects, 1);
                assert_eq!(out, new, "the new version, whole, with nothing of the old");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection from inside the store

fn chaos(seed: u64) -> ChaosStoreBuilder<InMemory> {
    let inner = InMemory::new();
    let path = ObjectPath::from(OBJECT);
    let put = inner.put(&path, PutPayload::from(bytes(0x0D)));
    futures_util::FutureExt::now_or_never(put).unwrap().unwrap();
    ChaosStore::builder(inner).faults(
        ChaosLayer::builder()
            .seed(seed)
            .error_rate(0.1)
            .throttle_rate(0.05, Duration::from_secs(2)),
    )
}

#[derive(Debug, PartialEq)]
enum Read {
    Whole,
    Short(usize),
    Failed(Option<Fault>),
}

/// Read 40 KB ranges of the object `n` times through `store`, and say how each read ended.
async fn reads(store: &dyn ObjectStore, n: usize) -> Vec<Read> {
    let object = bytes(0x0D);
    let mut out = Vec::new();
    for i in 0..n {
        let from = (i as u64 * 1_000) % (SIZE as u64 - 40_000);
        let range = from..from + 40_000;
        let expected = &object[range.start as usize..range.end as usize];
        match store.get_range(&ObjectPath::from(OBJECT), range).await {
            Ok(got) => {
                assert!(
                    expected.starts_with(&got),
                    "only ever a prefix of the range"
                );
                out.push(if got.len() == expected.len() {
                    Read::Whole
                } else {
                    Read::Short(got.len())
                });
            }
            Err(e) => {
                let fault = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<ChaosError>())
                    .map(ChaosError::fault);
                out.push(Read::Failed(fault));
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn chaos_store_same_seed_same_faults() {
    let build = |seed| {
        chaos(seed)
            .truncate_rate(0.1)
            .disconnect_rate(0.1)
            .build()
            .unwrap()
    };
    let a = reads(&build(3), 300).await;
    assert_eq!(a, reads(&build(3), 300).await);
    assert_ne!(a, reads(&build(4), 300).await);
}

#[tokio::test(start_paused = true)]
async fn chaos_store_injects_at_the_configured_rates() {
    let store = chaos(9)
        .truncate_rate(0.1)
        .disconnect_rate(0.15)
        .build()
        .unwrap();
    let n = 4_000;
    let out = reads(&store, n).await;
    let count = |want: Read| out.iter().filter(|r| **r == want).count() as u64;
    let injected = store.injected();
    eprintln!("{n} reads: {injected:?}");
    // Every failure and every short body the reader saw was injected, and counted.
    assert_eq!(
        count(Read::Failed(Some(Fault::Error))),
        injected.errors + injected.disconnects
    );
    assert_eq!(
        count(Read::Failed(Some(Fault::Throttle {
            retry_after: Duration::from_secs(2)
        }))),
        injected.throttles
    );
    let short = out.iter().filter(|r| matches!(r, Read::Short(_))).count() as u64;
    assert_eq!(short, injected.truncated);
    assert_eq!(count(Read::Whole), n as u64 - injected.total());
    // Each within three standard deviations of its rate: operation faults of all reads, body
    // faults of the reads that reached the store.
    let near = |got: u64, of: u64, rate: f64| {
        let mean = of as f64 * rate;
        (got as f64 - mean).abs() < 3.0 * (mean * (1.0 - rate)).sqrt()
    };
    let reached = n as u64 - injected.errors - injected.throttles;
    assert!(near(injected.errors, n as u64, 0.10), "{injected:?}");
    assert!(near(injected.throttles, n as u64, 0.05), "{injected:?}");
    assert!(near(injected.truncated, reached, 0.10), "{injected:?}");
    assert!(near(injected.disconnects, reached, 0.15), "{injected:?}");
    assert_eq!(store.calls(), n as u64);
}

#[tokio::test(start_paused = true)]
async fn a_cut_body_delivers_a_prefix_then_ends_or_fails() {
    let object = bytes(0x0D);
    let path = ObjectPath::from(OBJECT);
    for (truncate, disconnect) in [(1.0, 0.0), (0.0, 1.0)] {
        let store = chaos(1)
            .faults(ChaosLayer::builder().seed(1))
            .truncate_rate(truncate)
            .disconnect_rate(disconnect)
            .build()
            .unwrap();
        for _ in 0..50 {
            let body = store.get(&path).await.unwrap().into_stream();
            let parts: Vec<_> = body.collect().await;
            let mut got = Vec::new();
            let mut failed = false;
            for part in parts {
                match part {
                    Ok(b) => {
                        assert!(!failed, "nothing after the failure");
                        got.extend_from_slice(&b);
                    }
                    Err(e) => {
                        let source = std::error::Error::source(&e).unwrap();
                        assert_eq!(
                            source.downcast_ref::<ChaosError>().map(ChaosError::fault),
                            Some(Fault::Error)
                        );
                        failed = true;
                    }
                }
            }
            assert!(got.len() < object.len(), "always short");
            assert!(object.starts_with(&got), "a prefix of the object");
            assert_eq!(failed, disconnect == 1.0);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn chaos_store_latency_and_outages_run_on_the_paused_clock() {
    let store = chaos(2)
        .faults(
            ChaosLayer::builder()
                .seed(2)
                .latency(1.0, Latency::Fixed(Duration::from_millis(250)))
                .outage(Duration::from_secs(1), Duration::from_secs(2)),
        )
        .build()
        .unwrap();
    let path = ObjectPath::from(OBJECT);
    let start = tokio::time::Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..12 {
        let failed = store.head(&path).await.is_err();
        outcomes.push((start.elapsed().as_millis(), failed));
    }
    // Each call waits 250 ms; the ones that start inside [1 s, 2 s) of the first are down.
    let expected: Vec<_> = (1..=12)
        .map(|i| {
            let began = (i - 1) * 250;
            (i * 250, (1_000..2_000).contains(&began))
        })
        .collect();
    assert_eq!(outcomes, expected);
    assert_eq!(store.injected().outages, 4);
    // A listing fails as a whole, before its first entry.
    let store = chaos(5)
        .faults(ChaosLayer::builder().error_rate(1.0))
        .build()
        .unwrap();
    let listed: Vec<_> = store.list(None).collect().await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].is_err());
}

#[test]
fn chaos_store_knobs_are_checked() {
    let err = chaos(0)
        .truncate_rate(0.7)
        .disconnect_rate(0.5)
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "chaos.disconnect_rate");
    let err = chaos(0).truncate_rate(f64::NAN).build().unwrap_err();
    assert_eq!(err.knob(), "chaos.truncate_rate");
    let err = chaos(0)
        .faults(ChaosLayer::builder().error_rate(1.5))
        .build()
        .unwrap_err();
    assert_eq!(err.knob(), "chaos.error_rate");
}

#[tokio::test(start_paused = true)]
async fn a_resumable_download_through_the_chaos_store_is_exact() {
    let object = bytes(0x0D);
    let store = chaos(11)
        .faults(ChaosLayer::builder().seed(11).error_rate(0.1).latency(
            0.5,
            Latency::Uniform(Duration::from_millis(1), Duration::from_millis(40)),
        ))
        .truncate_rate(0.05)
        .disconnect_rate(0.1)
        .build()
        .unwrap();
    let store = Arc::new(store);
    let source = ObjectSource::new(store.clone(), ObjectPath::from(OBJECT)).chunk_size(CHUNK * 4);
    let mut s = Resumable::new(source, backoff()).config(finish());
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        let (end, bytes) = chunk.unwrap();
        write_at(&mut out, &end, &bytes);
    }
    assert_eq!(out, object);
    let injected = store.injected();
    assert!(injected.truncated > 0 && injected.disconnects > 0 && injected.errors > 0);
    assert_eq!(
        s.stats().snapshot().reconnects,
        injected.total(),
        "every fault cost one reconnect"
    );
}

proptest::proptest! {
    /// The object-version decoder, over any committed bytes: a version or `None`, never a
    /// panic; and what decodes is exactly what was committed.
    #[test]
    fn object_versions_decode_any_bytes_without_panicking(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
        kind in 0u8..5,
    ) {
        let mut bytes = bytes;
        bytes[0] = kind;
        let version = SourceVersion::new(&bytes).unwrap();
        if let Some(v) = ObjectVersion::from_source_version(&version) {
            proptest::prop_assert_eq!(v.source_version(), &version);
            proptest::prop_assert_eq!(
                ObjectVersion::from_source_version(v.source_version()),
                Some(v.clone())
            );
            let _ = v.to_string();
        }
    }
}

#[tokio::test]
async fn object_versions_from_real_stores_round_trip() {
    let dir = temp_dir("versions");
    let local = LocalFileSystem::new_with_prefix(dir.join("store")).unwrap();
    let memory = InMemory::new();
    let path = ObjectPath::from(OBJECT);
    for store in [&local as &dyn ObjectStore, &memory] {
        store
            .put(&path, PutPayload::from_static(b"abc"))
            .await
            .unwrap();
        let v = ObjectVersion::of(&store.head(&path).await.unwrap());
        assert_eq!(v.size(), 3);
        assert!(v.e_tag().is_some(), "both stores give entity tags");
        assert_eq!(
            ObjectVersion::from_source_version(v.source_version()),
            Some(v)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
