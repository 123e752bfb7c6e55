//! Per-customer configuration in a database, read by many workers through riprap's cache.
//!
//! Shows: one query for a thousand concurrent misses; a change visible at once after
//! `invalidate`, and within `refresh_after` without it; a "not found" remembered for its own
//! TTL; and the database queries made under the same read load with per-key refresh versus
//! batch refresh.
//!
//! The database is an in-memory SQLite by default, so it runs anywhere:
//! `cargo run --example db_cache --features rusqlite,sqlx` (a few seconds).
//! Given a PostgreSQL URL, as `--postgres URL` or in `DATABASE_URL`, it runs the same story on
//! that server through sqlx, in a table of its own (`riprap_db_cache_config`, dropped at the
//! end): `cargo run --example db_cache --features rusqlite,sqlx -- --postgres
//! postgres://postgres@127.0.0.1:5432/postgres`.
//!
//! Either way the loader's errors classify themselves (riprap's `rusqlite` and `sqlx`
//! features): a missing row is permanent, so the cache remembers it; a busy database, a
//! serialization failure or a dropped connection is transient, so a stale value stands in.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riprap::cache::{BatchConfig, Cache, CacheConfig, CacheError, ResponseFuture};
use riprap::classify::{ByError, Class, Classified};
use rusqlite::{Connection, params_from_iter};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::time::{Instant, sleep};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

const KEYS: usize = 500;
const READERS: usize = 32;
const LOAD: Duration = Duration::from_millis(1500);
const REFRESH_AFTER: Duration = Duration::from_millis(200);
/// The PostgreSQL table, created and dropped by the example.
const TABLE: &str = "riprap_db_cache_config";

/// Either database's error. Each classifies itself, so the enum only passes the verdict on.
#[derive(Debug)]
enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(sqlx::Error),
}

impl Classified for DbError {
    fn class(&self) -> Class {
        match self {
            DbError::Sqlite(e) => e.class(),
            DbError::Postgres(e) => e.class(),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite(e) => write!(f, "sqlite: {e}"),
            DbError::Postgres(e) => write!(f, "postgres: {e}"),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Sqlite(e) => Some(e),
            DbError::Postgres(e) => Some(e),
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Postgres(e)
    }
}

#[derive(Clone)]
enum Store {
    Sqlite(Arc<Mutex<Connection>>),
    Postgres(PgPool),
}

/// The database, and how many queries it has answered.
#[derive(Clone)]
struct Db {
    store: Store,
    queries: Arc<AtomicU64>,
}

impl Db {
    fn sqlite() -> Result<Db, DbError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch("CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);")?;
        {
            let mut insert = conn.prepare("INSERT INTO config (key, value) VALUES (?1, ?2)")?;
            for i in 0..KEYS {
                insert.execute([key(i), format!("v1 of setting {i}")])?;
            }
        }
        Ok(Db::new(Store::Sqlite(Arc::new(Mutex::new(conn)))))
    }

    async fn postgres(url: &str) -> Result<Db, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::raw_sql(&format!(
            "DROP TABLE IF EXISTS {TABLE};
             CREATE TABLE {TABLE} (key text PRIMARY KEY, value text NOT NULL);"
        ))
        .execute(&pool)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {TABLE} (key, value)
             SELECT 'customer-' || i || '.setting', 'v1 of setting ' || i
             FROM generate_series(0, $1 - 1) AS i"
        ))
        .bind(KEYS as i32)
        .execute(&pool)
        .await?;
        Ok(Db::new(Store::Postgres(pool)))
    }

    fn new(store: Store) -> Db {
        Db {
            store,
            queries: Arc::new(AtomicU64::new(0)),
        }
    }

    fn name(&self) -> &'static str {
        match self.store {
            Store::Sqlite(_) => "SQLite (in memory)",
            Store::Postgres(_) => "PostgreSQL",
        }
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    async fn update(&self, key: &str, value: &str) -> Result<(), DbError> {
        match &self.store {
            Store::Sqlite(conn) => {
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                conn.execute("UPDATE config SET value = ?2 WHERE key = ?1", [key, value])?;
            }
            Store::Postgres(pool) => {
                sqlx::query(&format!("UPDATE {TABLE} SET value = $2 WHERE key = $1"))
                    .bind(key)
                    .bind(value)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// `SELECT value ... WHERE key = ?`. An in-memory SQLite query takes microseconds, so it
    /// runs inline; with a file, use `spawn_blocking` or an async driver.
    async fn load_one(&self, key: &str) -> Result<String, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        match &self.store {
            Store::Sqlite(conn) => {
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                let value =
                    conn.query_row("SELECT value FROM config WHERE key = ?1", [key], |row| {
                        row.get(0)
                    })?;
                Ok(value)
            }
            Store::Postgres(pool) => {
                let value =
                    sqlx::query_scalar(&format!("SELECT value FROM {TABLE} WHERE key = $1"))
                        .bind(key)
                        .fetch_one(pool)
                        .await?;
                Ok(value)
            }
        }
    }

    /// `SELECT key, value ... WHERE key IN (...)`: one query for a whole batch.
    async fn load_many(&self, keys: &[String]) -> Result<HashMap<String, String>, DbError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        match &self.store {
            Store::Sqlite(conn) => {
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                let marks = vec!["?"; keys.len()].join(",");
                let mut stmt = conn.prepare(&format!(
                    "SELECT key, value FROM config WHERE key IN ({marks})"
                ))?;
                let rows = stmt.query_map(params_from_iter(keys), |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Store::Postgres(pool) => {
                let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                    "SELECT key, value FROM {TABLE} WHERE key = ANY($1)"
                ))
                .bind(keys)
                .fetch_all(pool)
                .await?;
                Ok(rows.into_iter().collect())
            }
        }
    }

    /// Drop the example's PostgreSQL table; SQLite's goes with the connection.
    async fn clean_up(&self) -> Result<(), DbError> {
        if let Store::Postgres(pool) = &self.store {
            sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {TABLE}"))
                .execute(pool)
                .await?;
            pool.close().await;
        }
        Ok(())
    }
}

fn key(i: usize) -> String {
    format!("customer-{i}.setting")
}

type ConfigCache = Cache<String, String, DbError>;

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

/// The per-key loader behind the cache; its errors classify themselves (busy, locked,
/// serialization failures and dropped connections are transient, no rows and constraint
/// violations permanent).
fn config_service(
    cache: &ConfigCache,
    db: &Db,
) -> impl Service<
    String,
    Response = String,
    Error = CacheError<DbError>,
    Future = ResponseFuture<String, DbError>,
> + Clone
+ Send
+ 'static {
    let db = db.clone();
    ServiceBuilder::new()
        .layer(cache.layer().classifier(ByError))
        .service(service_fn(move |key: String| {
            let db = db.clone();
            async move { db.load_one(&key).await }
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

/// `--postgres URL`, `--postgres=URL` or `DATABASE_URL`; none of them means SQLite.
fn postgres_url() -> Result<Option<String>, String> {
    let usage = "usage: db_cache [--postgres URL]   (or set DATABASE_URL)";
    let mut args = std::env::args().skip(1);
    if let Some(arg) = args.next() {
        let url = match arg.strip_prefix("--postgres") {
            Some("") => args.next(),
            Some(eq) => eq.strip_prefix('=').map(str::to_string),
            None => None,
        };
        return match (url, args.next()) {
            (Some(url), None) => Ok(Some(url)),
            _ => Err(usage.to_string()),
        };
    }
    Ok(std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = match postgres_url()? {
        Some(url) => Db::postgres(&url).await?,
        None => Db::sqlite()?,
    };
    println!("database: {}", db.name());

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
    db.update("customer-7.setting", "v2 of setting 7").await?;
    cache.invalidate("customer-7.setting");
    let now = svc
        .clone()
        .oneshot("customer-7.setting".to_string())
        .await?;
    println!("after UPDATE + invalidate: {now:?} (immediately)");

    // 3. A write nobody invalidated shows within refresh_after.
    let key8 = "customer-8.setting".to_string();
    svc.clone().oneshot(key8.clone()).await?;
    db.update(&key8, "v2 of setting 8").await?;
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
    // The verdict comes from the database error itself: no row is permanent.
    let before = db.queries();
    let mut verdict = None;
    for _ in 0..100 {
        match svc.clone().oneshot("no-such.setting".to_string()).await {
            Err(CacheError::Load(e)) => verdict = Some((e.class(), e.to_string())),
            other => panic!("expected a load error, got {other:?}"),
        }
    }
    let (class, error) = verdict.unwrap_or((Class::Success, String::new()));
    println!(
        "100 reads of a missing key -> {} query ({error}: {class:?}, remembered for 1 s)",
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
        let db = batch_db.clone();
        async move { db.load_many(&keys).await }
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
    db.clean_up().await?;
    Ok(())
}
