//! The throwaway-server guards of `support/servers.rs`: each server answers on its port, stops
//! and restarts on demand, leaves nothing behind when dropped, and a missing binary skips
//! loudly (fails under `CI=true`). Needs no client crate: each server is spoken to in its own
//! wire protocol's first bytes.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::process::Command;

use support::servers::{Postgres, Redis, RefusedPort, connect};

/// PostgreSQL's SSLRequest: a server without TLS answers with the single byte `N`.
fn postgres_answers(port: u16) -> bool {
    let Ok(mut stream) = connect(port) else {
        return false;
    };
    let ssl_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let mut reply = [0u8; 1];
    stream.write_all(&ssl_request).is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && reply == *b"N"
}

fn redis_answers(port: u16) -> bool {
    let Ok(mut stream) = connect(port) else {
        return false;
    };
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && reply == *b"+PONG\r\n"
}

fn refused(port: u16) -> bool {
    matches!(connect(port), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

#[test]
fn postgres_guard() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let (port, data) = (pg.port(), pg.data_dir());
    assert!(postgres_answers(port));
    assert!(data.join("PG_VERSION").is_file());
    pg.kill();
    assert!(refused(port));
    pg.restart();
    assert!(postgres_answers(port));
    drop(pg);
    assert!(refused(port));
    assert!(!data.exists(), "{} left behind", data.display());
}

#[test]
fn postgres_stops_when_a_test_panics() {
    let mut seen = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let Some(pg) = Postgres::start() else {
            return;
        };
        seen = Some((pg.port(), pg.data_dir()));
        panic!("a failing test holding a server");
    }));
    if let Some((port, data)) = seen {
        assert!(outcome.is_err());
        assert!(refused(port));
        assert!(!data.exists(), "{} left behind", data.display());
    }
}

#[test]
fn redis_guard() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let port = redis.port();
    assert!(redis_answers(port));
    redis.kill();
    assert!(refused(port));
    redis.restart();
    assert!(redis_answers(port));
    drop(redis);
    assert!(refused(port));
}

#[test]
fn refused_port_refuses() {
    let port = RefusedPort::new();
    assert!(refused(port.addr().port()));
}

/// Run this binary's `test` again with the server binaries hidden by `var=path`.
fn rerun_hidden(test: &str, var: &str, ci: bool) -> (bool, String) {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--test-threads=1"])
        .env(var, "/nonexistent/riprap-hidden");
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    let out = cmd.output().expect("rerun the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn hidden_binaries_skip_loudly_and_fail_in_ci() {
    for (test, var, what) in [
        ("postgres_guard", "RIPRAP_PG_BIN", "SKIPPED: PostgreSQL"),
        (
            "redis_guard",
            "RIPRAP_REDIS_SERVER",
            "SKIPPED: redis-server",
        ),
    ] {
        let (passed, text) = rerun_hidden(test, var, false);
        assert!(passed, "{test} without binaries should skip:\n{text}");
        assert_eq!(text.matches(what).count(), 1, "one loud line:\n{text}");

        let (passed, text) = rerun_hidden(test, var, true);
        assert!(
            !passed,
            "{test} without binaries should fail under CI=true:\n{text}"
        );
        assert!(text.contains("CI=true"), "{text}");
    }
}
