//! Harness for end-to-end tests: starts real PostgreSQL clusters (a primary
//! and streaming replicas) and the `shardgate` proxy in front of them.
//!
//! Everything runs on loopback ports handed out by [`free_port`], in
//! directories under `std::env::temp_dir()/shardgate-test-XXXXXXXX` that are
//! removed when the owning value is dropped (also when a test panics).
//! Postgres refuses to run as root: when the tests run as root, the servers
//! run as the unprivileged `postgres` account (`runuser -u postgres`) and
//! their directories belong to it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use integration::{config_for, Cluster, ClusterOptions, Proxy};
//! let cluster = Cluster::start(ClusterOptions::default())?;
//! let proxy = Proxy::start(&config_for(&cluster))?;
//! let client = proxy.connect("shop", "shop").await?;
//! client.simple_query("SELECT 1").await?;
//! # Ok(()) }
//! ```
//!
//! Set `SHARDGATE_KEEP_TEST_DIRS=1` to keep the directories (server logs,
//! proxy config and log) for a post-mortem; the servers are stopped anyway.

#![warn(missing_docs)]

pub mod items;
pub mod querygen;
pub mod reference;
pub mod users_orders;
pub mod wire;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::Rng;

/// How long [`run_cmd`] lets a command run before killing it.
pub const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the harness waits for a server to start, a replica to stream or
/// to catch up.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables of libpq that must not leak into the harness's own
/// `psql`/`pg_basebackup` calls (every connection parameter is explicit).
const LIBPQ_ENV: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGOPTIONS",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
    "PGDATA",
    "PGAPPNAME",
    "PGTARGETSESSIONATTRS",
];

// ---------------------------------------------------------------------------
// Finding binaries
// ---------------------------------------------------------------------------

/// Finds the PostgreSQL program `name` (`initdb`, `pg_ctl`, `psql`,
/// `pgbench`, …): in the directory `$PG_BIN` if that is set, else in the
/// newest `/usr/lib/postgresql/<version>/bin`, else on `PATH`.
///
/// When it is missing, the error says how to install it.
pub fn pg_bin(name: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let path = Path::new(&dir).join(name);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "PG_BIN={} has no `{name}`: point PG_BIN at the directory holding the PostgreSQL \
             server programs (initdb, pg_ctl, postgres, psql, …)",
            Path::new(&dir).display()
        );
    }
    for dir in debian_pg_bin_dirs() {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    bail!(
        "the PostgreSQL program `{name}` was not found (looked in $PG_BIN, \
         /usr/lib/postgresql/*/bin and PATH). The end-to-end tests need a PostgreSQL server \
         installation: on Debian/Ubuntu run `apt-get install postgresql-15` (or \
         `apt-get install postgresql` for the distribution's default version), or set PG_BIN \
         to the directory that holds initdb, pg_ctl, postgres, pg_basebackup and psql"
    )
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn debian_pg_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|(_, dir)| dir).collect()
}

/// The `shardgate` binary: `$SHARDGATE_BIN` if set; otherwise it is built
/// once per test process with `$CARGO build -p router --bin shardgate`, in
/// the profile the tests run in (release when the test binary lives under
/// `/release/`, else debug), and its path is returned.
pub fn shardgate_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SHARDGATE_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("SHARDGATE_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    static BUILT: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_shardgate().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn build_shardgate() -> Result<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = workspace
        .canonicalize()
        .with_context(|| format!("workspace directory {}", workspace.display()))?;
    let release = std::env::current_exe()
        .map(|p| p.to_string_lossy().contains("/release/"))
        .unwrap_or(false);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&workspace).args([
        "build",
        "-p",
        "router",
        "--bin",
        "shardgate",
        "--message-format=json-render-diagnostics",
    ]);
    if release {
        cmd.arg("--release");
    }
    // `cargo test` sets variables about the running test crate
    // (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, OUT_DIR, …). Some build scripts
    // (ring's) ask to be rerun when those change, so passing them on would
    // rebuild those crates here and again on the next `cargo test`.
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("CARGO_PKG_")
            || key_str.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key_str.as_ref())
        {
            cmd.env_remove(&key);
        }
    }
    let out = cmd.stdin(Stdio::null()).output().with_context(|| {
        format!(
            "could not run `{} build -p router --bin shardgate`",
            Path::new(&cargo).display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "`cargo build -p router --bin shardgate` failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 60)
        );
    }
    // Prefer the path cargo reports (it knows about build.target-dir and
    // friends); fall back to the conventional location.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reported = stdout.lines().rev().find_map(|line| {
        let start = line.find("\"executable\":\"")? + "\"executable\":\"".len();
        let end = line[start..].find('"')? + start;
        let path = PathBuf::from(&line[start..end]);
        (path.file_name() == Some(OsStr::new("shardgate"))).then_some(path)
    });
    let path = match reported {
        Some(path) => path,
        None => {
            let target = match std::env::var_os("CARGO_TARGET_DIR") {
                Some(dir) => workspace.join(dir),
                None => workspace.join("target"),
            };
            target
                .join(if release { "release" } else { "debug" })
                .join("shardgate")
        }
    };
    if !path.is_file() {
        bail!(
            "cargo built shardgate but {} does not exist",
            path.display()
        );
    }
    Ok(path)
}

// ---------------------------------------------------------------------------
// Ports, processes, commands
// ---------------------------------------------------------------------------

/// Returns a loopback TCP port that is free right now and was not handed out
/// before by this process.
///
/// Ports are drawn at random from below the kernel's ephemeral range
/// (`ip_local_port_range`), so outgoing client connections cannot take a port
/// between the moment it is handed out and the moment a server binds it.
///
/// # Panics
/// Only if no port at all can be bound on 127.0.0.1.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut handed_out = HANDED_OUT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let bindable = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();

    let (low, high) = ephemeral_port_range();
    let range = if low > 12_000 {
        Some(10_000..low)
    } else if high < 64_000 {
        Some(high + 1..65_535)
    } else {
        None
    };
    if let Some(range) = range {
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let port = rng.gen_range(range.clone());
            if port == 5432 || port == 6432 || handed_out.contains(&port) {
                continue;
            }
            if bindable(port) {
                handed_out.insert(port);
                return port;
            }
        }
    }
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot bind any TCP port on 127.0.0.1: {e}"));
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("no free loopback TCP port left");
}

fn ephemeral_port_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(low), Some(high)) => (low, high),
        _ => (32_768, 60_999),
    }
}

/// Whether process `pid` exists and is not a zombie (a process that exited
/// but was not reaped yet counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself
        // contain parentheses: take the last ')'.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn send_signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// Waits up to `timeout` for `pid` to be gone; true if it is.
fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !process_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `program args…` with extra environment variables `env`, collects its
/// stdout and stderr, and kills it if it runs longer than
/// [`DEFAULT_CMD_TIMEOUT`] (60 s). A non-zero exit is *not* an error: check
/// `status` in the returned [`Output`].
///
/// Meant for `psql`, `pgbench` and friends in tests (see [`pg_bin`]).
pub fn run_cmd(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    run_cmd_timeout(program, args, env, DEFAULT_CMD_TIMEOUT)
}

/// Like [`run_cmd`] with an explicit timeout; a command that overruns it is
/// killed (with its process group) and reported as an error.
pub fn run_cmd_timeout(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_with_timeout(cmd, timeout)
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let what = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{what}`"))?;
    let pid = child.id();
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = rx.recv_timeout(timeout).is_err();
    if timed_out {
        // The child is not reaped yet (the waiter has not returned), so its
        // pid, which is also its process group id, still belongs to it.
        if let Ok(pgid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
    let status = waiter
        .join()
        .map_err(|_| anyhow!("waiting for `{what}` panicked"))?
        .with_context(|| format!("waiting for `{what}`"))?;
    // A daemon started by the command may hold the pipes open: do not wait
    // for it forever.
    let grace = Duration::from_secs(if timed_out { 1 } else { 10 });
    let stdout = stdout.recv_timeout(grace).unwrap_or_default();
    let stderr = stderr.recv_timeout(grace).unwrap_or_default();
    if timed_out {
        bail!(
            "`{what}` did not finish within {timeout:?} and was killed\nstdout:\n{}\nstderr:\n{}",
            tail(&String::from_utf8_lossy(&stdout), 30),
            tail(&String::from_utf8_lossy(&stderr), 30)
        );
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs `cmd`, failing unless it exits 0; returns its stdout.
fn run_ok(cmd: Command, timeout: Duration) -> Result<String> {
    let what = describe(&cmd);
    let out = run_with_timeout(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 30),
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Who runs the servers, and their directories
// ---------------------------------------------------------------------------

/// The account that owns and runs the Postgres servers when we are root.
#[derive(Clone, Copy, Debug)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// `None` when not root (servers run as the current user), else the
/// `postgres` account.
fn server_owner() -> Result<Option<Owner>> {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    static OWNER: OnceLock<std::result::Result<Owner, String>> = OnceLock::new();
    OWNER
        .get_or_init(|| lookup_postgres_account().map_err(|e| format!("{e:#}")))
        .clone()
        .map(Some)
        .map_err(|e| anyhow!(e))
}

fn lookup_postgres_account() -> Result<Owner> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .stdin(Stdio::null())
            .output()
            .context("could not run `id`")?;
        if !out.status.success() {
            bail!(
                "the tests run as root, Postgres refuses to run as root, and there is no \
                 `postgres` account to run it as: install Debian's postgresql package (it \
                 creates the account) or `useradd --system --home /var/lib/postgresql postgres`"
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("unexpected output of `id`")
    };
    Ok(Owner {
        uid: id("-u")?,
        gid: id("-g")?,
    })
}

fn chown(path: &Path, owner: Option<Owner>) -> Result<()> {
    if let Some(o) = owner {
        std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
            .with_context(|| format!("chown postgres {}", path.display()))?;
    }
    Ok(())
}

fn keep_dirs() -> bool {
    std::env::var_os("SHARDGATE_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A directory `temp_dir()/shardgate-test-XXXXXXXX`, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(owner: Option<Owner>) -> Result<TempDir> {
        let base = std::env::temp_dir();
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let path = base.join(format!("shardgate-test-{:08x}", rng.gen::<u32>()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let dir = TempDir { path };
                    chown(&dir.path, owner)?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("could not create {}", path.display()))
                }
            }
        }
        bail!(
            "could not find an unused directory name in {}",
            base.display()
        )
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if keep_dirs() {
            eprintln!("SHARDGATE_KEEP_TEST_DIRS: keeping {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// Postgres servers
// ---------------------------------------------------------------------------

/// How the role `shop` logs in over TCP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// `scram-sha-256`, password stored as a SCRAM verifier.
    #[default]
    Scram,
    /// `md5`, password stored as an MD5 hash (`password_encryption = md5`).
    Md5,
    /// `trust`: any password (or none) is accepted.
    Trust,
}

impl Auth {
    fn hba_method(self) -> &'static str {
        match self {
            Auth::Scram => "scram-sha-256",
            Auth::Md5 => "md5",
            Auth::Trust => "trust",
        }
    }

    fn password_encryption(self) -> &'static str {
        match self {
            Auth::Md5 => "md5",
            Auth::Scram | Auth::Trust => "scram-sha-256",
        }
    }
}

/// What [`Cluster::start`] builds.
#[derive(Clone, Copy, Debug)]
pub struct ClusterOptions {
    /// Number of streaming replicas (hot standbys) of the primary.
    pub replicas: usize,
    /// How the role `shop` logs in over TCP.
    pub auth: Auth,
}

impl Default for ClusterOptions {
    /// One replica, SCRAM.
    fn default() -> Self {
        ClusterOptions {
            replicas: 1,
            auth: Auth::Scram,
        }
    }
}

/// What the servers of one cluster share.
struct PgCtx {
    bin_dir: PathBuf,
    owner: Option<Owner>,
    /// A directory the server account can enter, to run its programs in.
    work_dir: PathBuf,
}

impl PgCtx {
    /// A command running the Postgres program `program` as the server account.
    fn server_cmd(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut cmd = match self.owner {
            Some(_) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", "postgres", "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        };
        cmd.current_dir(&self.work_dir);
        for var in LIBPQ_ENV {
            cmd.env_remove(var);
        }
        cmd
    }

    /// A command running a client program (`psql`) as ourselves.
    fn client_cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(&self.work_dir);
        for var in LIBPQ_ENV {
            cmd.env_remove(var);
        }
        cmd
    }
}

/// One running Postgres server (a primary or a replica) of a [`Cluster`].
///
/// Dropping it stops the server (immediate shutdown, then SIGKILL) and
/// removes its data directory.
pub struct PgServer {
    /// The TCP port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Its data directory (which also holds its Unix socket and `server.log`).
    pub data_dir: PathBuf,
    name: String,
    ctx: Arc<PgCtx>,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl PgServer {
    fn new(name: &str, ctx: &Arc<PgCtx>, root: &Path) -> PgServer {
        PgServer {
            port: free_port(),
            data_dir: root.join(name),
            name: name.to_owned(),
            ctx: Arc::clone(ctx),
        }
    }

    /// The postmaster's pid as written in `postmaster.pid`, if that file
    /// exists (after a crash it may name a process that is gone: see
    /// [`process_alive`]).
    pub fn pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// A libpq/tokio-postgres connection string for `user` on database
    /// `shop` with password `shop`.
    pub fn conn_str(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=shop password=shop",
            self.port
        )
    }

    /// Connects as `user` (password `shop`) to database `shop`; the
    /// connection task is spawned on the current tokio runtime.
    pub async fn connect(&self, user: &str) -> Result<tokio_postgres::Client> {
        connect(&self.conn_str(user))
            .await
            .with_context(|| format!("connecting to {} as {user}", self.describe()))
    }

    /// Runs `sql` with `psql` as `user` (password `shop`) on database `shop`,
    /// stopping at the first error; returns the unaligned, tuples-only output
    /// (`psql -At`). A blocking call.
    pub fn psql(&self, user: &str, sql: &str) -> Result<String> {
        self.psql_db(user, "shop", &[sql])
    }

    fn psql_db(&self, user: &str, db: &str, commands: &[&str]) -> Result<String> {
        let mut cmd = self.ctx.client_cmd("psql");
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-U", user, "-d", db])
        .env("PGPASSWORD", "shop")
        .env("PGCONNECT_TIMEOUT", "10");
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        run_ok(cmd, DEFAULT_CMD_TIMEOUT).with_context(|| format!("psql on {}", self.describe()))
    }

    /// The server's log so far (`server.log` in the data directory), for
    /// failure messages.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    fn describe(&self) -> String {
        format!("{} on port {}", self.name, self.port)
    }

    /// Stops the server with `pg_ctl stop -m immediate` (no checkpoint: like
    /// a crash, but the postmaster still cleans up), for fault-injection
    /// tests. An error if it is not running.
    pub fn stop_immediate(&self) -> Result<()> {
        let mut cmd = self.ctx.server_cmd("pg_ctl");
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "-t", "30"]);
        run_ok(cmd, DEFAULT_CMD_TIMEOUT)
            .with_context(|| format!("stopping {}", self.describe()))?;
        Ok(())
    }

    /// Starts the server again after [`stop_immediate`](Self::stop_immediate)
    /// (or a crash); returns once it accepts connections (a replica: once it
    /// accepts read-only connections).
    pub fn start_again(&self) -> Result<()> {
        // After a SIGKILL the lock file survives; if its pid is gone (or a
        // zombie nobody reaps, which Postgres would still take for alive),
        // remove it so the new postmaster does not refuse to start.
        if let Some(pid) = self.pid() {
            if !process_alive(pid) {
                let _ = std::fs::remove_file(self.data_dir.join("postmaster.pid"));
            }
        }
        let mut cmd = self.ctx.server_cmd("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60"]);
        let log_start = self.log().len();
        run_ok(cmd, Duration::from_secs(90)).map_err(|e| {
            let log = self.log();
            anyhow!(
                "{e:#}\nserver log:\n{}",
                tail(log.get(log_start..).unwrap_or(&log), 30)
            )
            .context(format!("starting {}", self.describe()))
        })?;
        Ok(())
    }

    /// Starts the server; if its port was taken meanwhile, moves it to
    /// another port and tries again.
    fn start_first_time(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            let log_start = self.log().len();
            match self.start_again() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = self.log();
                    let new = log.get(log_start..).unwrap_or("");
                    let port_taken =
                        new.contains("could not bind") || new.contains("Address already in use");
                    attempt += 1;
                    if !port_taken || attempt >= 4 {
                        return Err(e);
                    }
                    self.port = free_port();
                    self.append_conf(&format!("port = {}\n", self.port))?;
                }
            }
        }
    }

    fn append_conf(&self, text: &str) -> Result<()> {
        let path = self.data_dir.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The settings that differ per server (appended last, so they win over
    /// the ones a replica copied from its primary).
    fn own_settings(&self) -> String {
        let dir = self.data_dir.to_string_lossy().replace('\'', "''");
        format!(
            "\n# --- this server (shardgate test harness)\n\
             port = {}\n\
             unix_socket_directories = '{dir}'\n",
            self.port
        )
    }

    /// Immediate shutdown by pid (SIGQUIT, as `pg_ctl stop -m immediate`
    /// sends), SIGKILL if that did not work. Idempotent.
    fn shutdown(&self) {
        let Some(pid) = self.pid() else { return };
        let is_ours = process_alive(pid) && process_name(pid).as_deref() == Some("postgres");
        if !is_ours {
            return;
        }
        send_signal(pid, libc::SIGQUIT);
        if !wait_gone(pid, Duration::from_secs(10)) {
            send_signal(pid, libc::SIGKILL);
            wait_gone(pid, Duration::from_secs(5));
        }
    }

    /// Polls until this replica's WAL receiver is streaming.
    fn wait_streaming(&self) -> Result<()> {
        let deadline = Instant::now() + WAIT_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.psql_db(
                "postgres",
                "postgres",
                &["SELECT status FROM pg_stat_wal_receiver"],
            ) {
                Ok(status) if status.trim() == "streaming" => return Ok(()),
                Ok(status) => last = format!("WAL receiver status {:?}", status.trim()),
                Err(e) => last = format!("{e:#}"),
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "{} did not start streaming within {WAIT_TIMEOUT:?} (last: {last})\nserver log:\n{}",
            self.describe(),
            tail(&self.log(), 30)
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.shutdown();
        if !keep_dirs() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// A Postgres primary with streaming replicas, in a temporary directory.
///
/// The superuser `postgres` logs in without a password over TCP and may
/// replicate; the plain role `shop` (password `shop`) owns database `shop`
/// and logs in as [`ClusterOptions::auth`] says. Dropping the cluster stops
/// every server and removes all its files.
pub struct Cluster {
    /// The read-write server.
    pub primary: PgServer,
    /// Hot standbys streaming from the primary.
    pub replicas: Vec<PgServer>,
    // Declared last: removed after the servers' own drops ran.
    root: TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("primary", &self.primary)
            .field("replicas", &self.replicas)
            .field("root", &self.root.path)
            .finish()
    }
}

impl Cluster {
    /// Creates and starts a primary and `opts.replicas` streaming replicas,
    /// returning once every replica streams and accepts connections.
    ///
    /// A blocking call (a few seconds): fine inside `#[tokio::test]`.
    pub fn start(opts: ClusterOptions) -> Result<Cluster> {
        let initdb = pg_bin("initdb")?;
        let bin_dir = initdb
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent directory", initdb.display()))?
            .to_path_buf();
        for program in ["pg_ctl", "postgres", "pg_basebackup", "psql"] {
            if !bin_dir.join(program).is_file() {
                bail!(
                    "{} has initdb but no {program}: install the full PostgreSQL server \
                     (`apt-get install postgresql-15`) or set PG_BIN",
                    bin_dir.display()
                );
            }
        }
        let owner = server_owner()?;
        let root = TempDir::new(owner)?;
        let ctx = Arc::new(PgCtx {
            bin_dir,
            owner,
            work_dir: root.path.clone(),
        });

        let mut primary = PgServer::new("primary", &ctx, &root.path);
        init_primary(&mut primary, opts.auth)?;

        let replicas = thread::scope(|scope| {
            let handles: Vec<_> = (1..=opts.replicas)
                .map(|i| {
                    let (ctx, root, primary) = (&ctx, &root.path, &primary);
                    scope.spawn(move || {
                        let mut replica = PgServer::new(&format!("replica{i}"), ctx, root);
                        init_replica(&mut replica, primary)?;
                        Ok::<_, anyhow::Error>(replica)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("replica setup thread panicked")))
                })
                .collect::<Result<Vec<_>>>()
        })?;

        Ok(Cluster {
            primary,
            replicas,
            root,
        })
    }

    /// Starts `n` clusters (shards) like [`Cluster::start`], in parallel.
    pub fn start_many(n: usize, opts: ClusterOptions) -> Result<Vec<Cluster>> {
        thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|_| scope.spawn(move || Cluster::start(opts)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("cluster setup thread panicked")))
                })
                .collect()
        })
    }

    /// The primary, then the replicas.
    pub fn all_servers(&self) -> impl Iterator<Item = &PgServer> {
        std::iter::once(&self.primary).chain(self.replicas.iter())
    }

    /// Waits until every replica has replayed all the WAL the primary has
    /// written so far (so everything committed on the primary before this
    /// call is visible on the replicas). Polls; fails after 30 s.
    pub async fn wait_replicated(&self) -> Result<()> {
        if self.replicas.is_empty() {
            return Ok(());
        }
        let primary = self.primary.connect("postgres").await?;
        let row = primary
            .query_one(
                "SELECT pg_current_wal_insert_lsn()::text, \
                 current_setting('wal_block_size')::int8",
                &[],
            )
            .await
            .context("reading the primary's WAL position")?;
        let insert: String = row.get(0);
        let block_size: i64 = row.get(1);
        let target = replay_target(parse_lsn(&insert)?, block_size as u64);

        let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
        for replica in &self.replicas {
            let client = replica.connect("postgres").await?;
            loop {
                let replayed: Option<String> = client
                    .query_one("SELECT pg_last_wal_replay_lsn()::text", &[])
                    .await
                    .with_context(|| format!("reading {}'s replay position", replica.describe()))?
                    .get(0);
                let replayed =
                    replayed.ok_or_else(|| anyhow!("{} is not in recovery", replica.describe()))?;
                if parse_lsn(&replayed)? >= target {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    bail!(
                        "{} replayed WAL only up to {replayed}, not to the primary's {insert}, \
                         within {WAIT_TIMEOUT:?}\nreplica log:\n{}",
                        replica.describe(),
                        tail(&replica.log(), 20)
                    );
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for replica in &self.replicas {
            replica.shutdown();
        }
        self.primary.shutdown();
    }
}

fn init_primary(primary: &mut PgServer, auth: Auth) -> Result<()> {
    let ctx = Arc::clone(&primary.ctx);
    let mut cmd = ctx.server_cmd("initdb");
    cmd.arg("-D").arg(&primary.data_dir).args([
        "-N",
        "--locale=C",
        "-E",
        "UTF8",
        "-U",
        "postgres",
        "-A",
        "trust",
    ]);
    run_ok(cmd, DEFAULT_CMD_TIMEOUT).context(
        "initdb failed (the temporary directory must be reachable by the account running \
         Postgres; set TMPDIR to e.g. /tmp)",
    )?;

    let mut conf = String::from(
        "\n# --- shardgate test harness\n\
         listen_addresses = '127.0.0.1'\n\
         max_connections = 100\n\
         shared_buffers = 16MB\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         wal_keep_size = 64MB\n\
         hot_standby = on\n\
         wal_receiver_status_interval = 1s\n\
         wal_retrieve_retry_interval = 200ms\n\
         logging_collector = off\n\
         log_line_prefix = '%m [%p] %q%u@%d '\n",
    );
    let _ = writeln!(conf, "password_encryption = {}", auth.password_encryption());
    conf.push_str(&primary.own_settings());
    primary.append_conf(&conf)?;

    let method = auth.hba_method();
    let hba = format!(
        "# shardgate test harness\n\
         local all all trust\n\
         local replication all trust\n\
         host replication all 127.0.0.1/32 trust\n\
         host all postgres 127.0.0.1/32 trust\n\
         host all shop 127.0.0.1/32 {method}\n\
         host all all 127.0.0.1/32 {method}\n"
    );
    let hba_path = primary.data_dir.join("pg_hba.conf");
    std::fs::write(&hba_path, hba).with_context(|| format!("writing {}", hba_path.display()))?;
    chown(&hba_path, ctx.owner)?;

    primary.start_first_time()?;
    primary.psql_db(
        "postgres",
        "postgres",
        &[
            "CREATE ROLE shop LOGIN PASSWORD 'shop'",
            "CREATE DATABASE shop OWNER shop",
        ],
    )?;
    Ok(())
}

fn init_replica(replica: &mut PgServer, primary: &PgServer) -> Result<()> {
    let mut cmd = replica.ctx.server_cmd("pg_basebackup");
    cmd.args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
        .args(["-U", "postgres", "-D"])
        .arg(&replica.data_dir)
        .args(["-R", "-X", "stream", "-c", "fast", "-N"]);
    run_ok(cmd, Duration::from_secs(120))
        .with_context(|| format!("pg_basebackup for {}", replica.describe()))?;
    // The primary's log was copied along.
    let _ = std::fs::remove_file(replica.log_path());
    replica.append_conf(&replica.own_settings())?;
    replica.start_first_time()?;
    replica.wait_streaming()
}

/// Parses a `pg_lsn` text (`16/B374D848`).
fn parse_lsn(text: &str) -> Result<u64> {
    let (high, low) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| anyhow!("not an LSN: {text:?}"))?;
    let high = u64::from_str_radix(high, 16).with_context(|| format!("not an LSN: {text:?}"))?;
    let low = u64::from_str_radix(low, 16).with_context(|| format!("not an LSN: {text:?}"))?;
    Ok(high << 32 | low)
}

/// The replay position that covers everything inserted before `insert`.
///
/// When the last record ended exactly at a page boundary, the insert
/// position points past the next page's header (24 bytes, 40 at a segment
/// start), where no record will ever end: a replica stops at the boundary.
fn replay_target(insert: u64, block_size: u64) -> u64 {
    let offset = insert % block_size.max(1);
    if offset == 24 || offset == 40 {
        insert - offset
    } else {
        insert
    }
}

/// Connects with tokio-postgres (no TLS, 10 s timeout) and spawns the
/// connection task.
async fn connect(conn_str: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(conn_str, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| anyhow!("connection attempt timed out after 10 s"))??;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

/// A running `shardgate serve` process.
///
/// Dropping it kills the process (SIGKILL) and removes its directory.
pub struct Proxy {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    pid: u32,
    config_path: PathBuf,
    log_path: PathBuf,
    // Declared last: removed after the child is gone.
    _dir: TempDir,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port)
            .field("pid", &self.pid)
            .field("config_path", &self.config_path)
            .field("log_path", &self.log_path)
            .finish()
    }
}

impl Proxy {
    /// Starts `shardgate serve --config FILE` with `config_toml` written to
    /// FILE, after replacing the placeholder `{listen}` with
    /// `127.0.0.1:<free port>` (without it, the port is read from the
    /// config's `listen = "host:port"` line). Output goes to a log file
    /// ([`log`](Self::log)); `RUST_LOG` defaults to `info`. Returns once the
    /// port accepts TCP connections (at most 15 s); if the process exits
    /// first, the error carries the end of its log.
    pub fn start(config_toml: &str) -> Result<Proxy> {
        let bin = shardgate_bin()?;
        let dir = TempDir::new(None)?;
        let (port, config) = if config_toml.contains("{listen}") {
            let port = free_port();
            (
                port,
                config_toml.replace("{listen}", &format!("127.0.0.1:{port}")),
            )
        } else {
            (listen_port(config_toml)?, config_toml.to_owned())
        };
        let config_path = dir.path.join("shardgate.toml");
        std::fs::write(&config_path, &config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let log_path = dir.path.join("shardgate.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .with_context(|| format!("duplicating {}", log_path.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {}", bin.display()))?;
        let mut proxy = Proxy {
            port,
            pid: child.id(),
            child: Some(child),
            config_path,
            log_path,
            _dir: dir,
        };
        proxy.wait_listening(Duration::from_secs(15))?;
        Ok(proxy)
    }

    fn wait_listening(&mut self, timeout: Duration) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    bail!(
                        "shardgate exited ({status}) before listening on {addr}\nlog:\n{}",
                        tail(&self.log(), 40)
                    );
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                bail!(
                    "shardgate did not listen on {addr} within {timeout:?}\nlog:\n{}",
                    tail(&self.log(), 40)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The proxy's log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Where the config file the proxy runs with lives (tests may rewrite
    /// it before a reload).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The proxy's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the proxy with SIGKILL and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`, `libc::SIGHUP`) to the proxy if
    /// it is still running.
    pub fn signal(&mut self, signal: i32) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(None) = child.try_wait() {
                send_signal(self.pid, signal);
            }
        }
    }

    /// Waits up to `timeout` for the proxy to exit by itself and returns its
    /// exit status; an error if it is still running then (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| anyhow!("shardgate was already killed or reaped"))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().context("waiting for shardgate")? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("shardgate still running after {timeout:?}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// A connection string for `user`/`password` on database `shop`.
    pub fn conn_str(&self, user: &str, password: &str) -> String {
        self.conn_str_db(user, password, "shop")
    }

    /// A connection string for `user`/`password` on database `dbname`
    /// (`shardgate` is the admin console).
    pub fn conn_str_db(&self, user: &str, password: &str, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname={dbname}",
            self.port
        )
    }

    /// Connects through the proxy as `user`/`password` to database `shop`;
    /// the connection task is spawned on the current tokio runtime. The
    /// error includes the end of the proxy's log.
    pub async fn connect(&self, user: &str, password: &str) -> Result<tokio_postgres::Client> {
        self.connect_db(user, password, "shop").await
    }

    /// Like [`connect`](Self::connect), to database `dbname`.
    pub async fn connect_db(
        &self,
        user: &str,
        password: &str,
        dbname: &str,
    ) -> Result<tokio_postgres::Client> {
        connect(&self.conn_str_db(user, password, dbname))
            .await
            .with_context(|| {
                format!(
                    "connecting to shardgate on port {} as {user}\nproxy log:\n{}",
                    self.port,
                    tail(&self.log(), 20)
                )
            })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The port of a config's `listen = "host:port"` line.
fn listen_port(config: &str) -> Result<u16> {
    config
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("listen") && l.contains('='))
        .find_map(|l| {
            let value = l.split_once('=')?.1.trim().trim_matches('"');
            value.rsplit_once(':')?.1.parse().ok()
        })
        .ok_or_else(|| {
            anyhow!("the config has neither a {{listen}} placeholder nor a listen = \"host:port\"")
        })
}

/// A shardgate config (see PRODUCT.md) with one shard `s0` made of
/// `cluster`'s primary and replicas: `listen = "{listen}"` (for
/// [`Proxy::start`]), user `shop`/`shop`, admin `admin`/`admin`, backend login
/// `shop`/`shop` on database `shop`, `pool_size = 20`, no sharded tables.
pub fn config_for(cluster: &Cluster) -> String {
    config_for_shards(&[cluster])
}

/// Like [`config_for`] with one shard per cluster, named `s0`, `s1`, … in
/// order; `default_shard = "s0"`. Append `[tables.…]` sections as needed.
pub fn config_for_shards(clusters: &[&Cluster]) -> String {
    let mut config = String::from(
        "[proxy]\n\
         listen = \"{listen}\"\n\
         pool_mode = \"session\"\n\
         pool_size = 20\n\
         \n\
         [admin]\n\
         user = \"admin\"\n\
         password = \"admin\"\n\
         \n\
         [[users]]\n\
         name = \"shop\"\n\
         password = \"shop\"\n\
         \n\
         [backend]\n\
         user = \"shop\"\n\
         password = \"shop\"\n\
         database = \"shop\"\n",
    );
    for (i, cluster) in clusters.iter().enumerate() {
        let replicas: Vec<String> = cluster
            .replicas
            .iter()
            .map(|r| format!("\"127.0.0.1:{}\"", r.port))
            .collect();
        let _ = write!(
            config,
            "\n[[shards]]\n\
             name = \"s{i}\"\n\
             primary = \"127.0.0.1:{}\"\n\
             replicas = [{}]\n",
            cluster.primary.port,
            replicas.join(", ")
        );
    }
    config.push_str("\n[routing]\ndefault_shard = \"s0\"\n");
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_parsing_and_page_boundaries() {
        assert_eq!(parse_lsn("16/B374D848").unwrap(), 0x16_B374_D848);
        assert_eq!(parse_lsn("0/0").unwrap(), 0);
        assert!(parse_lsn("nope").is_err());
        assert_eq!(replay_target(0x2000 + 24, 8192), 0x2000);
        assert_eq!(replay_target(0x100_0000 + 40, 8192), 0x100_0000);
        assert_eq!(replay_target(0x2000 + 48, 8192), 0x2030);
    }

    #[test]
    fn listen_port_is_read_from_config() {
        assert_eq!(
            listen_port("[proxy]\nlisten = \"127.0.0.1:7777\"\n").unwrap(),
            7777
        );
        assert!(listen_port("[proxy]\n").is_err());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
