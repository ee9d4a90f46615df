//! Harness for end-to-end tests: real PostgreSQL clusters (a primary and
//! streaming replicas, from the `pg-cluster` crate, re-exported here) and
//! the `shardgate` proxy in front of them.
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

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use pg_cluster::{connect, read_lossy, send_signal, tail, TempDir};
pub use pg_cluster::{
    free_port, pg_bin, process_alive, run_cmd, run_cmd_timeout, Auth, Cluster, ClusterOptions,
    PgServer, DEFAULT_CMD_TIMEOUT,
};

// ---------------------------------------------------------------------------
// The shardgate binary
// ---------------------------------------------------------------------------

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
        let dir = TempDir::new()?;
        let (port, config) = if config_toml.contains("{listen}") {
            let port = free_port();
            (
                port,
                config_toml.replace("{listen}", &format!("127.0.0.1:{port}")),
            )
        } else {
            (listen_port(config_toml)?, config_toml.to_owned())
        };
        let config_path = dir.path().join("shardgate.toml");
        std::fs::write(&config_path, &config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let log_path = dir.path().join("shardgate.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let log2 = log
            .try_clone()
            .with_context(|| format!("duplicating {}", log_path.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
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
    fn listen_port_is_read_from_config() {
        assert_eq!(
            listen_port("[proxy]\nlisten = \"127.0.0.1:7777\"\n").unwrap(),
            7777
        );
        assert!(listen_port("[proxy]\n").is_err());
    }
}
