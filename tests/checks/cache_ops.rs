//! Invariants of `riprap::cache` under arbitrary interleavings of reads, writes,
//! invalidations, failing and slow loads, batch refreshes and time steps, on a paused clock,
//! checked against a reference model of the source of truth:
//!
//! - no read returns a version older than the latest write that was followed by an
//!   invalidation (or an `insert`) before the read started;
//! - no read returns a value read from the source `expire_after` or more ago, or
//!   `expire_after + stale_if_error` or more ago once loads have failed;
//! - errors only while the source fails or has deleted keys;
//! - every read finishes, and no load slot or queued key leaks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::cache::{BatchConfig, Cache, CacheConfig, CacheError};
use riprap::classify::{Class, classify_fn};
use tokio::time::Instant;
use tower::{Layer, Service, service_fn};

const KEYS: u8 = 6;
const REFRESH: Duration = Duration::from_millis(100);
const EXPIRE: Duration = Duration::from_millis(300);
const STALE_IF_ERROR: Duration = Duration::from_millis(200);
const NEGATIVE_TTL: Duration = Duration::from_millis(50);

/// What the loader returns: which key, which version, and when the source was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub key: u8,
    pub version: u64,
    pub read_at: Instant,
}

#[derive(Debug)]
pub enum LoadError {
    Down,
    NotFound,
}

impl riprap::classify::Classified for LoadError {
    fn class(&self) -> riprap::classify::Class {
        match self {
            LoadError::Down => riprap::classify::Class::Transient,
            LoadError::NotFound => riprap::classify::Class::Permanent,
        }
    }
}

/// The source of truth the loaders read.
#[derive(Default)]
struct Source {
    versions: [u64; KEYS as usize],
    deleted: [bool; KEYS as usize],
    failing: bool,
    delay_ms: u64,
    calls: u64,
}

/// One step of a scenario.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Read through the service (the load, if any, runs in the background).
    Read(u8),
    /// Read with `Cache::get` (no load).
    Peek(u8),
    /// Change the source and invalidate the key.
    Write(u8),
    /// Change the source only; the change shows by refresh or expiry.
    SilentWrite(u8),
    /// Change the source and insert the new value into the cache.
    Insert(u8),
    /// Delete the key from the source and invalidate it.
    Delete(u8),
    InvalidateAll,
    /// Let this many milliseconds pass.
    Sleep(u8),
    /// Make loads fail (transiently) or succeed.
    Failing(bool),
    /// How long loads take.
    Delay(u8),
}

/// Decode bytes into a scenario: the first byte picks per-key or batch refresh, then each op
/// is a tag byte and an argument byte.
pub fn decode(data: &[u8]) -> (bool, Vec<Op>) {
    let batch = data.first().is_some_and(|b| b & 1 == 1);
    let mut ops = Vec::new();
    let mut it = data.iter().skip(1);
    while let (Some(&tag), Some(&arg)) = (it.next(), it.next()) {
        let key = arg % KEYS;
        ops.push(match tag % 10 {
            0 => Op::Read(key),
            1 => Op::Peek(key),
            2 => Op::Write(key),
            3 => Op::SilentWrite(key),
            4 => Op::Insert(key),
            5 => Op::Delete(key),
            6 => Op::InvalidateAll,
            7 => Op::Sleep(arg),
            8 => Op::Failing(arg & 1 == 1),
            _ => Op::Delay(arg % 61),
        });
        if ops.len() >= 400 {
            break;
        }
    }
    (batch, ops)
}

pub fn run(data: &[u8]) {
    let (batch, ops) = decode(data);
    run_ops(batch, &ops);
}

pub fn run_ops(batch: bool, ops: &[Op]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(scenario(batch, ops));
}

/// Every read's verdict, checked when it completes.
struct Checker {
    failed_ever: bool,
    errors_allowed: bool,
}

impl Checker {
    fn check(&self, key: u8, min_version: u64, out: &Result<Value, String>) {
        match out {
            Ok(v) => {
                assert_eq!(v.key, key, "value of another key");
                assert!(
                    v.version >= min_version,
                    "key {key}: version {} from before the latest invalidation (>= {min_version})",
                    v.version
                );
                let age = v.read_at.elapsed();
                let limit = if self.failed_ever {
                    EXPIRE + STALE_IF_ERROR
                } else {
                    EXPIRE
                };
                assert!(age < limit, "key {key}: served a value {age:?} old");
            }
            Err(e) => assert!(self.errors_allowed, "key {key}: unexpected error {e}"),
        }
    }
}

async fn scenario(batch: bool, ops: &[Op]) {
    let source = Arc::new(Mutex::new(Source::default()));
    let config = CacheConfig::builder()
        .capacity(KEYS as usize + 2)
        .refresh_after(REFRESH)
        .expire_after(EXPIRE)
        .stale_if_error(STALE_IF_ERROR)
        .negative_ttl(NEGATIVE_TTL)
        .max_in_flight(64)
        .build()
        .unwrap();
    let cache: Cache<u8, Value, LoadError> = Cache::new(config);

    let src = Arc::clone(&source);
    let loader = service_fn(move |key: u8| {
        let src = Arc::clone(&src);
        async move {
            let (value, fail, deleted, delay) = {
                let mut s = src.lock().unwrap();
                s.calls += 1;
                let value = Value {
                    key,
                    version: s.versions[key as usize],
                    read_at: Instant::now(),
                };
                (value, s.failing, s.deleted[key as usize], s.delay_ms)
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            match (fail, deleted) {
                (true, _) => Err(LoadError::Down),
                (false, true) => Err(LoadError::NotFound),
                (false, false) => Ok(value),
            }
        }
    });
    let classify = classify_fn(|out: Result<&Value, &LoadError>| match out {
        Ok(_) => Class::Success,
        Err(LoadError::Down) => Class::Transient,
        Err(LoadError::NotFound) => Class::Permanent,
    });
    let mut svc = cache.layer().classifier(classify).layer(loader);

    let src = Arc::clone(&source);
    let batch_loader = service_fn(move |keys: Vec<u8>| {
        let src = Arc::clone(&src);
        async move {
            assert!(keys.len() <= 4, "batch of {} keys", keys.len());
            let (values, fail, delay) = {
                let mut s = src.lock().unwrap();
                s.calls += 1;
                let values: HashMap<u8, Value> = keys
                    .iter()
                    .filter(|&&k| !s.deleted[k as usize])
                    .map(|&k| {
                        let v = Value {
                            key: k,
                            version: s.versions[k as usize],
                            read_at: Instant::now(),
                        };
                        (k, v)
                    })
                    .collect();
                (values, s.failing, s.delay_ms)
            };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if fail {
                Err(LoadError::Down)
            } else {
                Ok(values)
            }
        }
    });
    let refresher = batch.then(|| {
        let config = BatchConfig::builder()
            .max_batch(4)
            .interval(Duration::from_millis(20))
            .max_pending(KEYS as usize)
            .build()
            .unwrap();
        cache.batch_refresher(batch_loader, config).unwrap()
    });

    let checker = Rc::new(RefCell::new(Checker {
        failed_ever: false,
        errors_allowed: false,
    }));
    // The version every read must at least see, per key.
    let mut min_version = [0u64; KEYS as usize];
    let local = tokio::task::LocalSet::new();
    let mut reads = Vec::new();

    local
        .run_until(async {
            for &op in ops {
                match op {
                    Op::Read(k) => {
                        let fut = svc.call(k);
                        let min = min_version[k as usize];
                        let checker = Rc::clone(&checker);
                        reads.push(tokio::task::spawn_local(async move {
                            let out = fut.await.map_err(|e| match e {
                                CacheError::Load(e) => format!("{e:?}"),
                                other => format!("{other:?}"),
                            });
                            checker.borrow().check(k, min, &out);
                        }));
                    }
                    Op::Peek(k) => {
                        if let Some(v) = cache.get(&k) {
                            checker.borrow().check(k, min_version[k as usize], &Ok(v));
                        }
                    }
                    Op::Write(k) | Op::Delete(k) => {
                        let mut s = source.lock().unwrap();
                        s.versions[k as usize] += 1;
                        s.deleted[k as usize] = matches!(op, Op::Delete(_));
                        if s.deleted[k as usize] {
                            checker.borrow_mut().errors_allowed = true;
                        }
                        min_version[k as usize] = s.versions[k as usize];
                        drop(s);
                        cache.invalidate(&k);
                    }
                    Op::SilentWrite(k) => {
                        let mut s = source.lock().unwrap();
                        s.versions[k as usize] += 1;
                    }
                    Op::Insert(k) => {
                        let mut s = source.lock().unwrap();
                        s.versions[k as usize] += 1;
                        s.deleted[k as usize] = false;
                        let version = s.versions[k as usize];
                        drop(s);
                        min_version[k as usize] = version;
                        let value = Value {
                            key: k,
                            version,
                            read_at: Instant::now(),
                        };
                        cache.insert(k, value);
                    }
                    Op::InvalidateAll => {
                        let s = source.lock().unwrap();
                        min_version = s.versions;
                        drop(s);
                        cache.invalidate_all();
                    }
                    Op::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms.into())).await,
                    Op::Failing(on) => {
                        source.lock().unwrap().failing = on;
                        if on {
                            let mut c = checker.borrow_mut();
                            c.failed_ever = true;
                            c.errors_allowed = true;
                        }
                    }
                    Op::Delay(ms) => source.lock().unwrap().delay_ms = ms.into(),
                }
            }
            // Let every load and read finish: none may be stranded.
            tokio::time::sleep(Duration::from_secs(5)).await;
            for read in reads.drain(..) {
                assert!(read.is_finished(), "a read never finished");
                read.await.unwrap();
            }
        })
        .await;

    let m = cache.metrics();
    assert_eq!(m.in_flight, 0, "a load slot leaked");
    if let Some(r) = &refresher {
        assert!(r.pending() <= KEYS as usize);
    }
    drop(refresher);
}
