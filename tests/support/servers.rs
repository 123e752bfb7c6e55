//! Throwaway PostgreSQL and Redis servers for the tests that need a real one.
//!
//! Each guard starts its own server on 127.0.0.1 with a free port and its own temporary
//! directory, and stops it and removes the directory when dropped, including while a failing
//! test unwinds.
//!
//! ```ignore
//! let Some(pg) = Postgres::start() else { return }; // skipped: one loud line on stderr
//! let url = pg.url(); // postgres://postgres@127.0.0.1:PORT/postgres, trust authentication
//!
//! // One cluster for every test of the binary that runs meanwhile, a database for each.
//! let Some(pg) = Postgres::shared() else { return };
//! let url = pg.database();
//!
//! let Some(redis) = Redis::start() else { return };
//! let url = redis.url(); // redis://127.0.0.1:PORT/
//! ```
//!
//! Where the binaries come from:
//! - PostgreSQL: `$RIPRAP_PG_BIN` (a directory holding `initdb`, `pg_ctl` and `createdb`) when
//!   set, else the newest `/usr/lib/postgresql/*/bin` (Debian's layout), else `initdb` on
//!   `PATH`.
//! - Redis: `$RIPRAP_REDIS_SERVER` (the binary) when set, else `redis-server` on `PATH`, else
//!   `/usr/bin/redis-server`.
//!
//! Without them the guard prints one line saying what to install and returns `None`, so the
//! test passes as skipped; with `CI=true` it panics instead. Point the variables at a path
//! that does not exist (`RIPRAP_PG_BIN=/nowhere`) to see the skip on a machine that has them.
//!
//! PostgreSQL refuses to run as root: as root, the directory is handed to the `postgres` user
//! and `initdb` / `pg_ctl` run through `runuser -u postgres --`.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

/// How many times a start is tried on a fresh port when another process took the one chosen.
const PORT_ATTEMPTS: usize = 3;
/// Bound on `pg_ctl`'s wait for the server to accept connections, and for it to stop.
const PG_CTL_WAIT_SECS: &str = "30";

/// A port on 127.0.0.1 that was free a moment ago: bound, read and released.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// A port on 127.0.0.1 that refuses connections for as long as this guard lives: bound, so
/// no server can take it, and not listening.
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl RefusedPort {
    pub fn new() -> RefusedPort {
        let bound = tokio::net::TcpSocket::new_v4().and_then(|s| {
            s.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
            let addr = s.local_addr()?;
            Ok((s, addr))
        });
        let (socket, addr) = bound.unwrap_or_else(|e| panic!("no port on 127.0.0.1: {e}"));
        RefusedPort {
            _socket: socket,
            addr,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// `CI=true` (or `1`): a missing server is a failure, not a skip.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Skip (one loud line on stderr, `None`) or, in CI, fail.
fn skip<T>(what: &str, install: &str) -> Option<T> {
    let missing = format!("{what} not found; install it ({install}) to run this test");
    if in_ci() {
        panic!("{missing} (CI=true: a missing server fails the run)");
    }
    // Straight to the process's stderr, past the test harness's capture, so the skip is seen.
    let _ = writeln!(io::stderr(), "SKIPPED: {missing}");
    None
}

/// A fresh directory under the system temp directory, unique to this process and call.
fn fresh_dir(kind: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("riprap-{kind}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
    panic!("no fresh directory under {}", base.display());
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

/// A throwaway PostgreSQL cluster: superuser `postgres`, trust authentication on 127.0.0.1
/// only, no Unix socket, `fsync` off. Stopped (immediate mode) and removed on drop.
pub struct Postgres {
    bin: PathBuf,
    /// Owned by the server's user; holds `data/` and `server.log`.
    root: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
}

impl Postgres {
    /// Initialise and start a cluster, or `None` (after one loud line) when PostgreSQL is not
    /// installed. Panics when it is installed but does not start, and under `CI=true` when it
    /// is missing.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = postgres_bin() else {
            return skip(
                "PostgreSQL (initdb, pg_ctl, createdb)",
                "apt-get install -y postgresql, or set RIPRAP_PG_BIN to their directory",
            );
        };
        let as_postgres = is_root();
        let root = fresh_dir("postgres");
        let mut pg = Postgres {
            bin,
            root,
            port: 0,
            as_postgres,
            running: false,
        };
        if as_postgres {
            pg.or_panic(run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&pg.root)));
        }
        let data = pg.data_dir();
        let initdb = pg.command("initdb", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "--no-sync"])
                .args(["-E", "UTF8", "--locale=C"])
        });
        pg.or_panic(initdb);
        // Settings for a test server: loopback only, nothing durable, few resources.
        let conf = "\n# riprap test server\nlisten_addresses = '127.0.0.1'\n\
                    unix_socket_directories = ''\nfsync = off\nsynchronous_commit = off\n\
                    full_page_writes = off\nmax_connections = 40\nshared_buffers = 16MB\n";
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(|e| format!("postgresql.conf: {e}"));
        pg.or_panic(appended);
        pg.start_on_fresh_port();
        Some(pg)
    }

    /// A cluster shared by every caller in this test binary while any of them holds it:
    /// started by the first, stopped and removed when the last lets go. Give each test its
    /// own [`database`](Self::database), and roles names of its own.
    pub fn shared() -> Option<Arc<Postgres>> {
        static SHARED: Mutex<Weak<Postgres>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pg) = slot.upgrade() {
            return Some(pg);
        }
        let pg = Arc::new(Postgres::start()?);
        *slot = Arc::downgrade(&pg);
        Some(pg)
    }

    /// Create a new, empty database and return its URL (as `postgres`).
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("test_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let port = self.port.to_string();
        let created = run(Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name])
            .current_dir(&self.root));
        self.or_panic(created);
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `url` (from [`url`](Self::url) or [`database`](Self::database)) for another role,
    /// which trust authentication lets in without a password.
    pub fn url_as(url: &str, user: &str) -> String {
        url.replacen("postgres://postgres@", &format!("postgres://{user}@"), 1)
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Stop the server at once (`pg_ctl stop -m immediate`): connections drop, and new ones
    /// are refused on the same port until [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if self.running {
            self.running = false;
            let stop = self.pg_ctl_stop();
            self.or_panic(stop);
        }
    }

    /// Start the server again on the same port after [`kill`](Self::kill).
    pub fn restart(&mut self) {
        if !self.running {
            let started = self.pg_ctl_start(self.port);
            self.or_panic(started);
            self.running = true;
        }
    }

    fn start_on_fresh_port(&mut self) {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match self.pg_ctl_start(port) {
                Ok(_) => {
                    self.port = port;
                    self.running = true;
                    return;
                }
                // Most likely another process took the port between probe and bind.
                Err(e) => last = e,
            }
        }
        self.or_panic::<()>(Err(last));
    }

    fn pg_ctl_start(&self, port: u16) -> Result<Output, String> {
        let (data, log) = (self.data_dir(), self.root.join("server.log"));
        self.command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &format!("-p {port}")])
                .args(["-w", "-t", PG_CTL_WAIT_SECS, "start"])
        })
    }

    fn pg_ctl_stop(&self) -> Result<Output, String> {
        let data = self.data_dir();
        self.command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "-t", PG_CTL_WAIT_SECS, "stop"])
        })
    }

    /// Run one of the cluster's binaries, as the `postgres` user when we are root. Its working
    /// directory is the cluster's own, which that user can always enter.
    fn command(
        &self,
        program: &str,
        args: impl FnOnce(&mut Command) -> &mut Command,
    ) -> Result<Output, String> {
        let program = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.current_dir(&self.root);
        run(args(&mut cmd))
    }

    /// Panic with the server's log, after cleaning up (the guard's drop runs while unwinding).
    fn or_panic<T>(&self, result: Result<T, String>) -> T {
        result.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL test server in {}: {e}\n-- server.log --\n{}",
                self.root.display(),
                tail(&self.root.join("server.log"))
            )
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            // Errors are ignored: this also runs while a failed test unwinds. Should the stop
            // fail, removing the directory makes the server shut itself down within a minute
            // (it checks that its lock file is still there).
            let _ = self.pg_ctl_stop();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The directory holding `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let has_tools = |dir: &Path| {
        ["initdb", "pg_ctl", "createdb"]
            .iter()
            .all(|tool| dir.join(tool).is_file())
    };
    if let Some(dir) = std::env::var_os("RIPRAP_PG_BIN") {
        let dir = PathBuf::from(dir);
        return has_tools(&dir).then_some(dir);
    }
    // Debian: /usr/lib/postgresql/<major>/bin, newest major first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    on_path("initdb")
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|dir| has_tools(dir))
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// A throwaway Redis server: 127.0.0.1 only, no persistence (`--save ''`, `--appendonly no`).
/// Killed (SIGKILL) and its directory removed on drop.
pub struct Redis {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Start a server, or `None` (after one loud line) when `redis-server` is not installed.
    /// Panics when it is installed but does not start, and under `CI=true` when it is missing.
    pub fn start() -> Option<Redis> {
        let Some(bin) = redis_bin() else {
            return skip(
                "redis-server",
                "apt-get install -y redis-server, or set RIPRAP_REDIS_SERVER to the binary",
            );
        };
        let mut redis = Redis {
            bin,
            root: fresh_dir("redis"),
            port: 0,
            child: None,
        };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match redis.spawn(port) {
                Ok(child) => {
                    redis.port = port;
                    redis.child = Some(child);
                    return Some(redis);
                }
                Err(e) => last = e,
            }
        }
        panic!("Redis test server in {}: {last}", redis.root.display());
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kill the server (SIGKILL), as a crash would; connections are refused until
    /// [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections stay open and nothing answers, as a server
    /// stuck in a long command or a network that drops packets would behave, until
    /// [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Let a [`pause`](Self::pause)d server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        if let Some(child) = &self.child {
            let sent = Command::new("kill")
                .arg(which)
                .arg(child.id().to_string())
                .status();
            assert!(
                matches!(sent, Ok(s) if s.success()),
                "kill {which} redis-server: {sent:?}"
            );
        }
    }

    /// Start the server again on the same port, empty, after [`kill`](Self::kill).
    pub fn restart(&mut self) {
        if self.child.is_none() {
            match self.spawn(self.port) {
                Ok(child) => self.child = Some(child),
                Err(e) => panic!("Redis test server in {}: {e}", self.root.display()),
            }
        }
    }

    /// Spawn on `port` and return once the server says it accepts connections (read from its
    /// log on stdout: an ordering, not a guess); an exit before that is an error.
    fn spawn(&self, port: u16) -> Result<Child, String> {
        let mut child = Command::new(&self.bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.root)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err("redis-server: no stdout".into());
        };
        let mut lines = BufReader::new(stdout);
        let mut log = String::new();
        loop {
            let mut line = String::new();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("redis-server exited before it was ready:\n{log}"));
                }
                Ok(_) if line.contains("Ready to accept connections") => break,
                Ok(_) => log.push_str(&line),
            }
        }
        // Keep draining its log so a full pipe never blocks it; ends when the server does.
        std::thread::spawn(move || io::copy(&mut lines, &mut io::sink()));
        Ok(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A paused server would not die of SIGKILL's delivery any later, but resume it
        // anyway so nothing is left stopped should the kill fail.
        self.resume();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn redis_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("RIPRAP_REDIS_SERVER") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    on_path("redis-server").or_else(|| {
        let bin = PathBuf::from("/usr/bin/redis-server");
        bin.is_file().then_some(bin)
    })
}

/// A plain TCP connection with a read timeout, for smoke tests that speak a line protocol.
pub fn connect(port: u16) -> io::Result<std::net::TcpStream> {
    let stream = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}
