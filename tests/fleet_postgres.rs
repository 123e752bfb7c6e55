//! The PostgreSQL offset store against a real throwaway server (see `support/servers.rs`;
//! skipped with one loud line without PostgreSQL, failed under `CI=true`): fencing of a
//! zombie consumer, and 50 SIGKILL crash runs of a consumer whose sink writes and offset
//! commit share one transaction.
#![cfg(feature = "postgres")]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use riprap::fleet::{Fenced, PgOffsetStore};
use riprap::stream::{CheckpointError, OffsetStore};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use support::servers::Postgres;

fn fenced(e: &CheckpointError) -> bool {
    matches!(e, CheckpointError::Backend(b) if b.downcast_ref::<Fenced>().is_some())
}

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .expect("connect to the test server")
}

/// A consumer whose stream was claimed by a successor can commit nothing: not in its own
/// transaction (its sink writes roll back with it), not on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombie_commit_is_rejected() {
    let Some(pg) = Postgres::shared() else { return };
    let pool = pool(&pg.database()).await;
    PgOffsetStore::<u64>::create_table(&pool).await.unwrap();
    sqlx::query("CREATE TABLE sink (item BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();

    let zombie = PgOffsetStore::<u64>::builder(pool.clone(), "orders")
        .claim()
        .await
        .unwrap();
    zombie.save(&10).await.unwrap();
    let successor = PgOffsetStore::<u64>::builder(pool.clone(), "orders")
        .claim()
        .await
        .unwrap();
    assert!(successor.epoch() > zombie.epoch());
    assert_eq!(successor.load().await.unwrap(), Some(10));

    // The zombie's transaction: its write and its commit are refused together.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO sink VALUES (11)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = zombie.commit_in(&mut tx, &11).await.unwrap_err();
    assert!(fenced(&err), "{err}");
    tx.rollback().await.unwrap();
    // Nor on its own, and not backwards either.
    assert!(fenced(&zombie.save(&5).await.unwrap_err()));
    assert!(fenced(&zombie.save(&20).await.unwrap_err()));

    successor.save(&12).await.unwrap();
    assert_eq!(successor.load().await.unwrap(), Some(12));
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM sink")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the zombie's write must not land");
}

/// A claim racing a commit in flight: the row lock orders them. The claim waits for the
/// old owner's transaction; whatever it committed is what the new owner resumes from, and
/// its commits after the claim are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_waits_for_a_commit_in_flight() {
    let Some(pg) = Postgres::shared() else { return };
    let pool = pool(&pg.database()).await;
    PgOffsetStore::<u64>::create_table(&pool).await.unwrap();
    let old = PgOffsetStore::<u64>::builder(pool.clone(), "s")
        .claim()
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    old.commit_in(&mut tx, &7).await.unwrap();
    let claiming = tokio::spawn({
        let pool = pool.clone();
        async move {
            PgOffsetStore::<u64>::builder(pool, "s")
                .claim()
                .await
                .unwrap()
        }
    });
    // The claim is blocked on the row the open transaction updated.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!claiming.is_finished());
    tx.commit().await.unwrap();
    let new = tokio::time::timeout(Duration::from_secs(10), claiming)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.load().await.unwrap(), Some(7));
    assert!(fenced(&old.save(&8).await.unwrap_err()));
}

const ITEMS: i64 = 2_000;
const BATCH: i64 = 7;
const CHILD_ENV: &str = "RIPRAP_FLEET_CRASH_CHILD";

/// The consumer the crash runs kill: claims the stream, resumes after the committed
/// position, and writes each batch of items to the sink in the same transaction as its
/// offset. Prints a line after each commit, which is what the parent counts before it
/// kills. Does nothing when run as an ordinary test.
#[tokio::test(flavor = "current_thread")]
async fn crash_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let pool = pool(&url).await;
    let store = PgOffsetStore::<u64>::builder(pool.clone(), "items")
        .claim()
        .await
        .unwrap();
    let mut next = store.load().await.unwrap().map_or(0, |p| p as i64 + 1);
    let mut out = std::io::stdout();
    while next < ITEMS {
        let last = (next + BATCH).min(ITEMS) - 1;
        let mut tx = pool.begin().await.unwrap();
        for item in next..=last {
            sqlx::query("INSERT INTO sink (item) VALUES ($1)")
                .bind(item)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        store.commit_in(&mut tx, &(last as u64)).await.unwrap();
        tx.commit().await.unwrap();
        writeln!(out, "committed {last}").unwrap();
        out.flush().unwrap();
        next = last + 1;
    }
}

/// 50 consumers killed with SIGKILL at a point of the parent's choosing (after a seeded
/// number of commits, 0 to 4), then one run to the end: every item is in the sink exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_runs_leave_every_item_exactly_once() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let Some(pg) = Postgres::shared() else { return };
    let url = pg.database();
    let pool = pool(&url).await;
    PgOffsetStore::<u64>::create_table(&pool).await.unwrap();
    sqlx::query("CREATE TABLE sink (item BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let spawn = move |progress: bool| {
        Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &url)
            .stdin(Stdio::null())
            .stdout(if progress {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut seed = 0x5eed_u64;
    let mut killed_mid_batch = 0;
    for _ in 0..50 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let commits = (seed >> 33) % 5;
        let mut child = spawn(true);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < commits {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("committed") => seen += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        if !status.success() {
            killed_mid_batch += 1;
        }
    }
    assert!(
        killed_mid_batch >= 45,
        "only {killed_mid_batch} runs were killed"
    );
    let status = tokio::task::spawn_blocking(move || spawn(false).wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "the last run must finish: {status}");

    let (rows, distinct, lo, hi): (i64, i64, i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT item), min(item), max(item) FROM sink")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct, lo, hi), (ITEMS, ITEMS, 0, ITEMS - 1));
    println!("50 crash runs ({killed_mid_batch} killed): {rows} rows, {distinct} distinct");
}
