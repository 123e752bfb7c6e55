//! Real PostgreSQL errors, provoked on a throwaway server, classified through the `sqlx` and
//! `tokio-postgres` features: every verdict here comes from a real server's answer, not from a
//! constructed error.
//!
//! The tests share one throwaway cluster (see `support/servers.rs`), each in a database of its
//! own, and skip with one loud line when PostgreSQL is not installed, or fail under `CI=true`. Concurrent
//! transactions are stepped one statement at a time by the test, so every outcome is fixed by
//! the order of the statements, never by timing. PostgreSQL 14 or newer (for
//! `pg_terminate_backend`'s wait).
#![cfg(any(feature = "sqlx", feature = "tokio-postgres"))]

mod support;

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use riprap::classify::{ByError, Class, Classified, Classify};
use support::servers::{Postgres, RefusedPort};

/// Real servers run on the real clock, so every test is bounded by it instead.
const BOUND: Duration = Duration::from_secs(60);

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(BOUND, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: still running after {BOUND:?}"),
    }
}

const THROTTLED: Class = Class::Throttled { retry_after: None };

/// The verdict, checked three ways: the error's own impl, `ByError`, and a boxed error as
/// tower stacks carry it (found by walking the source chain).
fn class_of<E>(err: E) -> Class
where
    E: Classified + StdError + Send + Sync + 'static,
{
    let own = err.class();
    assert_eq!(ByError.classify(Err::<&(), _>(&err)), own, "{err:?}");
    let boxed: Box<dyn StdError + Send + Sync> = Box::new(err);
    assert_eq!(boxed.class(), own, "boxed {boxed:?}");
    own
}

/// The on-call table of PostgreSQL's serializable-isolation docs: two doctors on duty.
const ONCALL: &str = "CREATE TABLE oncall (doctor int PRIMARY KEY, on_duty bool NOT NULL);
                      INSERT INTO oncall VALUES (1, true), (2, true);";
const SERIALIZABLE: &str = "BEGIN ISOLATION LEVEL SERIALIZABLE";
const COUNT_ON_DUTY: &str = "SELECT count(*) FROM oncall WHERE on_duty";

// ---------------------------------------------------------------------------------------------
// sqlx
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "sqlx")]
mod with_sqlx {
    use super::*;
    use sqlx::postgres::PgPoolOptions;
    use sqlx::{Connection, PgConnection};

    async fn connect(url: &str) -> PgConnection {
        PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"))
    }

    async fn run(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop)
    }

    async fn ok(conn: &mut PgConnection, sql: &str) {
        run(conn, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn code(err: &sqlx::Error) -> Option<String> {
        err.as_database_error()
            .and_then(|db| db.code())
            .map(|c| c.into_owned())
    }

    /// The error, its SQLSTATE and its verdict, shown with `--nocapture`.
    fn verdict(what: &str, err: sqlx::Error) -> (Option<String>, Class) {
        let code = code(&err);
        println!("sqlx: {what}: {err} (SQLSTATE {code:?})");
        let class = class_of(err);
        println!("      -> {class:?}");
        (code, class)
    }

    #[tokio::test]
    async fn constraint_data_and_syntax_errors_are_permanent() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("permanent errors", async {
            let mut c = connect(&url).await;
            ok(&mut c, "CREATE TABLE t (id int PRIMARY KEY)").await;
            ok(&mut c, "INSERT INTO t VALUES (1)").await;

            let dup = run(&mut c, "INSERT INTO t VALUES (1)").await.unwrap_err();
            assert_eq!(
                verdict("duplicate key", dup),
                (Some("23505".into()), Class::Permanent)
            );
            let zero = run(&mut c, "SELECT 1 / 0").await.unwrap_err();
            assert_eq!(
                verdict("division by zero", zero),
                (Some("22012".into()), Class::Permanent)
            );
            let syntax = run(&mut c, "SELEKT 1").await.unwrap_err();
            assert_eq!(
                verdict("syntax", syntax),
                (Some("42601".into()), Class::Permanent)
            );
            // A query for a row that is not there: sqlx's own error, not the server's.
            let none = sqlx::query("SELECT id FROM t WHERE id = 2")
                .fetch_one(&mut c)
                .await
                .unwrap_err();
            assert_eq!(verdict("no row", none), (None, Class::Permanent));
        })
        .await;
    }

    #[tokio::test]
    async fn serialization_failure_between_two_transactions_is_transient() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("serialization failure", async {
            let (mut a, mut b) = (connect(&url).await, connect(&url).await);
            ok(&mut a, ONCALL).await;
            // Each doctor checks that someone else is on duty, then goes off duty.
            ok(&mut a, SERIALIZABLE).await;
            ok(&mut b, SERIALIZABLE).await;
            ok(&mut a, COUNT_ON_DUTY).await;
            ok(&mut b, COUNT_ON_DUTY).await;
            ok(&mut a, "UPDATE oncall SET on_duty = false WHERE doctor = 1").await;
            // The second writer either fails at once or when it commits after the first.
            let b_update = run(&mut b, "UPDATE oncall SET on_duty = false WHERE doctor = 2").await;
            ok(&mut a, "COMMIT").await;
            let err = match b_update {
                Err(e) => e,
                Ok(()) => run(&mut b, "COMMIT").await.unwrap_err(),
            };
            assert_eq!(
                verdict("write skew", err),
                (Some("40001".into()), Class::Transient)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn deadlock_victim_is_transient() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("deadlock", async {
            let (mut a, mut b) = (connect(&url).await, connect(&url).await);
            ok(&mut a, ONCALL).await;
            // A checks for the deadlock soon after it starts waiting; B much later, so when
            // both wait A is the victim (and if B's lock request were late, B would be).
            ok(&mut a, "SET deadlock_timeout = '50ms'; BEGIN").await;
            ok(&mut b, "SET deadlock_timeout = '10s'; BEGIN").await;
            ok(&mut a, "UPDATE oncall SET on_duty = false WHERE doctor = 1").await;
            ok(&mut b, "UPDATE oncall SET on_duty = false WHERE doctor = 2").await;
            let (ra, rb) = tokio::join!(
                run(&mut a, "UPDATE oncall SET on_duty = false WHERE doctor = 2"),
                run(&mut b, "UPDATE oncall SET on_duty = false WHERE doctor = 1"),
            );
            let err = match (ra, rb) {
                (Err(e), Ok(())) | (Ok(()), Err(e)) => e,
                other => panic!("expected exactly one deadlock victim, got {other:?}"),
            };
            assert_eq!(
                verdict("deadlock", err),
                (Some("40P01".into()), Class::Transient)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn terminated_backend_is_transient() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("terminated backend", async {
            let (mut victim, mut admin) = (connect(&url).await, connect(&url).await);
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(&mut victim)
                .await
                .unwrap();
            // Returns once the backend has exited (or after 10 s, false).
            let gone: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 10000)")
                .bind(pid)
                .fetch_one(&mut admin)
                .await
                .unwrap();
            assert!(gone, "backend {pid} still running");
            let err = run(&mut victim, "SELECT 1").await.unwrap_err();
            let (code, class) = verdict("terminated backend", err);
            // The server says 57P01 on its way out; should the client find only the closed
            // socket, the I/O error is transient too.
            assert!(matches!(code.as_deref(), Some("57P01") | None), "{code:?}");
            assert_eq!(class, Class::Transient);
        })
        .await;
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        bounded("refused", async {
            let refused = RefusedPort::new();
            let url = format!("postgres://postgres@{}/postgres", refused.addr());
            let err = PgConnection::connect(&url).await.unwrap_err();
            assert!(
                matches!(&err, sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
                "{err:?}"
            );
            assert_eq!(verdict("connection refused", err), (None, Class::Transient));
        })
        .await;
    }

    #[tokio::test]
    async fn pool_timeout_and_too_many_connections_are_throttled() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("pool timeout", async {
            // A pool of one whose connection is held: the next acquire times out.
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(200))
                .connect(&url)
                .await
                .unwrap();
            let held = pool.acquire().await.unwrap();
            let err = pool.acquire().await.unwrap_err();
            assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
            assert_eq!(verdict("pool timeout", err), (None, THROTTLED));
            drop(held);
            assert!(pool.acquire().await.is_ok());

            // The server's own limit: a role allowed one connection asks for a second.
            let mut admin = connect(&url).await;
            ok(&mut admin, "CREATE ROLE app_sqlx LOGIN CONNECTION LIMIT 1").await;
            let app = Postgres::url_as(&url, "app_sqlx");
            let _first = connect(&app).await;
            let err = PgConnection::connect(&app).await.unwrap_err();
            assert_eq!(
                verdict("too many connections", err),
                (Some("53300".into()), THROTTLED)
            );
        })
        .await;
    }

    /// A pool that never reaches the server keeps trying until its acquire timeout, so a
    /// database that is down reads as a pool timeout through a pool.
    #[tokio::test]
    async fn pool_that_cannot_connect_times_out() {
        bounded("pool to nowhere", async {
            let refused = RefusedPort::new();
            let url = format!("postgres://postgres@{}/postgres", refused.addr());
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(200))
                .connect_lazy(&url)
                .unwrap();
            let err = pool.acquire().await.unwrap_err();
            assert_eq!(verdict("pool, server down", err), (None, THROTTLED));
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// tokio-postgres
// ---------------------------------------------------------------------------------------------

#[cfg(feature = "tokio-postgres")]
mod with_tokio_postgres {
    use super::*;
    use tokio::task::JoinHandle;
    use tokio_postgres::{Client, NoTls};

    /// A client, and the task driving its connection (whose result is the connection's fate).
    async fn connect(url: &str) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        (client, tokio::spawn(connection))
    }

    async fn ok(client: &Client, sql: &str) {
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn verdict(what: &str, err: tokio_postgres::Error) -> (Option<String>, Class) {
        let code = err.code().map(|c| c.code().to_owned());
        println!(
            "tokio-postgres: {what}: {err} (SQLSTATE {code:?}, {:?})",
            err.source()
        );
        let class = class_of(err);
        println!("                -> {class:?}");
        (code, class)
    }

    #[tokio::test]
    async fn constraint_data_and_syntax_errors_are_permanent() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("permanent errors", async {
            let (c, _conn) = connect(&url).await;
            ok(
                &c,
                "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)",
            )
            .await;

            let dup = c
                .batch_execute("INSERT INTO t VALUES (1)")
                .await
                .unwrap_err();
            assert_eq!(
                verdict("duplicate key", dup),
                (Some("23505".into()), Class::Permanent)
            );
            let zero = c.batch_execute("SELECT 1 / 0").await.unwrap_err();
            assert_eq!(
                verdict("division by zero", zero),
                (Some("22012".into()), Class::Permanent)
            );
            let syntax = c.batch_execute("SELEKT 1").await.unwrap_err();
            assert_eq!(
                verdict("syntax", syntax),
                (Some("42601".into()), Class::Permanent)
            );
            // The client's own errors: no row where one was expected, a wrong parameter count.
            let none = c
                .query_one("SELECT id FROM t WHERE id = 2", &[])
                .await
                .unwrap_err();
            assert_eq!(verdict("no row", none), (None, Class::Permanent));
            let params = c.query("SELECT $1::int", &[]).await.unwrap_err();
            assert_eq!(verdict("parameters", params), (None, Class::Permanent));
        })
        .await;
    }

    #[tokio::test]
    async fn serialization_failure_between_two_transactions_is_transient() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("serialization failure", async {
            let ((a, _ca), (b, _cb)) = (connect(&url).await, connect(&url).await);
            ok(&a, ONCALL).await;
            ok(&a, SERIALIZABLE).await;
            ok(&b, SERIALIZABLE).await;
            ok(&a, COUNT_ON_DUTY).await;
            ok(&b, COUNT_ON_DUTY).await;
            ok(&a, "UPDATE oncall SET on_duty = false WHERE doctor = 1").await;
            let b_update = b
                .batch_execute("UPDATE oncall SET on_duty = false WHERE doctor = 2")
                .await;
            ok(&a, "COMMIT").await;
            let err = match b_update {
                Err(e) => e,
                Ok(()) => b.batch_execute("COMMIT").await.unwrap_err(),
            };
            assert_eq!(
                verdict("write skew", err),
                (Some("40001".into()), Class::Transient)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn deadlock_victim_is_transient() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("deadlock", async {
            let ((a, _ca), (b, _cb)) = (connect(&url).await, connect(&url).await);
            ok(&a, ONCALL).await;
            ok(&a, "SET deadlock_timeout = '50ms'; BEGIN").await;
            ok(&b, "SET deadlock_timeout = '10s'; BEGIN").await;
            ok(&a, "UPDATE oncall SET on_duty = false WHERE doctor = 1").await;
            ok(&b, "UPDATE oncall SET on_duty = false WHERE doctor = 2").await;
            let (ra, rb) = tokio::join!(
                a.batch_execute("UPDATE oncall SET on_duty = false WHERE doctor = 2"),
                b.batch_execute("UPDATE oncall SET on_duty = false WHERE doctor = 1"),
            );
            let err = match (ra, rb) {
                (Err(e), Ok(())) | (Ok(()), Err(e)) => e,
                other => panic!("expected exactly one deadlock victim, got {other:?}"),
            };
            assert_eq!(
                verdict("deadlock", err),
                (Some("40P01".into()), Class::Transient)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn terminated_backend_is_transient() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("terminated backend", async {
            let ((victim, connection), (admin, _c)) = (connect(&url).await, connect(&url).await);
            let pid: i32 = victim
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .unwrap()
                .get(0);
            let gone: bool = admin
                .query_one("SELECT pg_terminate_backend($1, 10000)", &[&pid])
                .await
                .unwrap()
                .get(0);
            assert!(gone, "backend {pid} still running");
            // The connection task ends with the server's parting 57P01, or, when the socket
            // closes before that message is read, with "connection closed"; the client then
            // finds its connection closed. Every one of them is transient.
            let parting = connection.await.unwrap().unwrap_err();
            let (code, class) = verdict("terminated backend (connection)", parting);
            assert!(matches!(code.as_deref(), Some("57P01") | None), "{code:?}");
            assert_eq!(class, Class::Transient);
            let err = victim.batch_execute("SELECT 1").await.unwrap_err();
            assert!(err.is_closed(), "{err:?}");
            assert_eq!(
                verdict("terminated backend (next query)", err),
                (None, Class::Transient)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn connection_refused_is_transient() {
        bounded("refused", async {
            let refused = RefusedPort::new();
            let url = format!("postgres://postgres@{}/postgres", refused.addr());
            let err = tokio_postgres::connect(&url, NoTls).await.err().unwrap();
            let io = err
                .source()
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind);
            assert_eq!(io, Some(std::io::ErrorKind::ConnectionRefused), "{err:?}");
            assert_eq!(verdict("connection refused", err), (None, Class::Transient));
        })
        .await;
    }

    /// tokio-postgres has no pool; the server's connection limit is its throttle.
    #[tokio::test]
    async fn too_many_connections_is_throttled() {
        let Some(pg) = Postgres::shared() else { return };
        let url = pg.database();
        bounded("too many connections", async {
            let (admin, _c) = connect(&url).await;
            ok(
                &admin,
                "CREATE ROLE app_tokio_postgres LOGIN CONNECTION LIMIT 1",
            )
            .await;
            let app = Postgres::url_as(&url, "app_tokio_postgres");
            let _first = connect(&app).await;
            let err = tokio_postgres::connect(&app, NoTls).await.err().unwrap();
            assert_eq!(
                verdict("too many connections", err),
                (Some("53300".into()), THROTTLED)
            );
        })
        .await;
    }
}
