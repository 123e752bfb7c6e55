//! Per-customer configuration in SQLite, read by many workers through riprap's cache.
//!
//! Shows: one query for a thousand concurrent misses; a change visible at once after
//! `invalidate`, and within `refresh_after` without it; a "not found" remembered for its own
//! TTL; and the database queries made under the same read load with per-key refresh versus
//! batch refresh.
//!
//! Run with: `cargo run --example db_cache --features rusqlite` (a few seconds).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::cache::{BatchConfig, Cache, CacheConfig, CacheError, ResponseFuture};
use riprap::classify::ByError;
use rusqlite::{Connection, params_from_iter};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const KEYS: usize = 500;
const READERS: usize = 32;
const LOAD: Duration = Duration::from_millis(1500);
const REFRESH_AFTER: Duration = Duration::from_millis(200);

/// The database, and how many queries it has answered.
#[derive(Clone)]
struct Db {
    conn: Arc<Mutex<Connection>>,
    queries: Arc<AtomicU64>,
}

impl Db {
    fn open() -> rusqlite::Result<Db> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);")?;
        {
            let mut insert = conn.prepare("INSERT INTO config (key, value) VALUES (?1, ?2)")?;
            for i in 0..KEYS {
                insert.execute([key(i), format!("v1 of setting {i}")])?;
            }
        }
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
            queries: Arc::new(AtomicU64::new(0)),
        })
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn update(&self, key: &str, value: &str) -> rusqlite::Result<usize> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute("UPDATE config SET value = ?2 WHERE key = ?1", [key, value])
    }

    /// `SELECT value ... WHERE key = ?`. An in-memory query takes microseconds, so it runs
    /// inline; with a file or a server, use `spawn_blocking` or an async driver.
    fn load_one(&self, key: &str) -> rusqlite::Result<String> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row("SELECT value FROM config WHERE key = ?1", [key], |row| {
            row.get(0)
        })
    }

    /// `SELECT key, value ... WHERE key IN (...)`: one query for a whole batch.
    fn load_many(&self, keys: &[String]) -> rusqlite::Result<HashMap<String, String>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let marks = vec!["?"; keys.len()].join(",");
        let mut stmt = conn.prepare(&format!(
            "SELECT key, value FROM config WHERE key IN ({marks})"
        ))?;
        let rows = stmt.query_map(params_from_iter(keys), |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.collect()
    }
}

fn key(i: usize) -> String {
    format!("customer-{i}.setting")
}

type ConfigCache = Cache<String, String, rusqlite::Error>;

fn new_cache() -> ConfigCache {
    let config = CacheConfig::builder()
        .capacity(10_000)
        .refresh_after(REFRESH_AFTER)
        .expire_after(Duration::from_secs(2))
        .stale_if_error(Duration::from_secs(30))
        .negative_ttl(Duration::from_secs(1))
        .build()
        .expect("valid cache config");
    Cache::new(config)
}

/// The per-key loader behind the cache; `rusqlite::Error` classifies itself (busy and
/// locked are transient, no rows and constraint violations permanent).
fn config_service(
    cache: &ConfigCache,
    db: &Db,
) -> impl Service<
    String,
    Response = String,
    Error = CacheError<rusqlite::Error>,
    Future = ResponseFuture<String, rusqlite::Error>,
> + Clone
+ Send
+ 'static {
    let db = db.clone();
    ServiceBuilder::new()
        .layer(cache.layer().classifier(ByError))
        .service(service_fn(move |key: String| {
            let out = db.load_one(&key);
            async move { out }
        }))
}

/// `READERS` workers reading random settings for `LOAD`.
async fn read_load(cache: &ConfigCache, db: &Db) -> u64 {
    let svc = config_service(cache, db);
    let mut workers = Vec::new();
    for w in 0..READERS {
        let mut svc = svc.clone();
        workers.push(tokio::spawn(async move {
            let mut x = w as u64 + 1;
            let until = Instant::now() + LOAD;
            let mut reads = 0;
            while Instant::now() < until {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = key((x >> 33) as usize % KEYS);
                let value = svc.ready().await.unwrap().call(k).await;
                assert!(value.is_ok(), "{value:?}");
                reads += 1;
                sleep(Duration::from_millis(1)).await;
            }
            reads
        }));
    }
    let mut reads = 0;
    for w in workers {
        reads += w.await.expect("reader");
    }
    reads
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = Db::open()?;

    // 1. A thousand workers miss the same key at once: one query.
    let cache = new_cache();
    let svc = config_service(&cache, &db);
    let before = db.queries();
    let reads = futures_util::future::join_all(
        (0..1_000).map(|_| svc.clone().oneshot("customer-7.setting".to_string())),
    )
    .await;
    assert!(reads.iter().all(|r| r.is_ok()));
    println!(
        "stampede: 1000 concurrent reads of a cold key -> {} query",
        db.queries() - before
    );

    // 2. A write made visible at once by invalidation.
    db.update("customer-7.setting", "v2 of setting 7")?;
    cache.invalidate("customer-7.setting");
    let now = svc
        .clone()
        .oneshot("customer-7.setting".to_string())
        .await?;
    println!("after UPDATE + invalidate: {now:?} (immediately)");

    // 3. A write nobody invalidated shows within refresh_after.
    let key8 = "customer-8.setting".to_string();
    svc.clone().oneshot(key8.clone()).await?;
    db.update(&key8, "v2 of setting 8")?;
    let written = Instant::now();
    loop {
        if svc.clone().oneshot(key8.clone()).await? == "v2 of setting 8" {
            break;
        }
        sleep(Duration::from_millis(5)).await;
    }
    println!(
        "after UPDATE alone: visible after {:?} (refresh_after is {REFRESH_AFTER:?})",
        written.elapsed()
    );

    // 4. A missing key is asked for once per negative_ttl, not once per read.
    let before = db.queries();
    for _ in 0..100 {
        let err = svc.clone().oneshot("no-such.setting".to_string()).await;
        assert!(matches!(err, Err(CacheError::Load(_))));
    }
    println!(
        "100 reads of a missing key -> {} query (remembered for 1 s)",
        db.queries() - before
    );

    // 5. The same read load, refreshed per key and then in batches.
    let per_key = new_cache();
    let before = db.queries();
    for i in 0..KEYS {
        config_service(&per_key, &db).oneshot(key(i)).await?;
    }
    let fill = db.queries() - before;
    let before = db.queries();
    let reads = read_load(&per_key, &db).await;
    let per_key_queries = db.queries() - before;
    println!(
        "per-key refresh: {reads} reads by {READERS} workers over {LOAD:?} -> {per_key_queries} \
         queries ({fill} more to fill the cache)"
    );

    let batched = new_cache();
    let batch_db = db.clone();
    let batch_loader = service_fn(move |keys: Vec<String>| {
        let out = batch_db.load_many(&keys);
        async move { out }
    });
    let refresher = batched.batch_refresher_classified(
        batch_loader,
        BatchConfig::builder()
            .max_batch(200)
            .interval(Duration::from_millis(50))
            .build()?,
        ByError,
    )?;
    let before = db.queries();
    refresher.warm((0..KEYS).map(key)).await?;
    let fill = db.queries() - before;
    let before = db.queries();
    let reads = read_load(&batched, &db).await;
    let batch_queries = db.queries() - before;
    println!(
        "batch refresh:   {reads} reads by {READERS} workers over {LOAD:?} -> {batch_queries} \
         queries ({fill} more to warm the cache)"
    );
    let m = batched.metrics();
    println!(
        "batch cache: hits {} (stale {}), misses {}, batch loads {} storing {} keys",
        m.hits, m.stale_hits, m.misses, m.batch_loads, m.batch_keys
    );
    drop(refresher);
    Ok(())
}
