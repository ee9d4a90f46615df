//! One Postgres server of a cluster: its port and data directory, `psql`,
//! connecting, stopping and starting it again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::account::{keep_dirs, Owner};
use crate::process::{
    free_port, process_alive, process_name, read_lossy, run_ok, send_signal, tail, wait_gone,
    DEFAULT_CMD_TIMEOUT,
};

/// How long a cluster waits for a server to start, a replica to stream or
/// to catch up.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables of libpq that must not leak into the cluster's own
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

/// What the servers of one cluster share.
pub(crate) struct PgCtx {
    pub(crate) bin_dir: PathBuf,
    pub(crate) owner: Option<Owner>,
    /// A directory the server account can enter, to run its programs in.
    pub(crate) work_dir: PathBuf,
}

impl PgCtx {
    /// A command running the Postgres program `program` as the server account.
    pub(crate) fn server_cmd(&self, program: &str) -> Command {
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
    pub(crate) ctx: Arc<PgCtx>,
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
    pub(crate) fn new(name: &str, ctx: &Arc<PgCtx>, root: &Path) -> PgServer {
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

    pub(crate) fn psql_db(&self, user: &str, db: &str, commands: &[&str]) -> Result<String> {
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

    pub(crate) fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    pub(crate) fn describe(&self) -> String {
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
    pub(crate) fn start_first_time(&mut self) -> Result<()> {
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

    pub(crate) fn append_conf(&self, text: &str) -> Result<()> {
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
    pub(crate) fn own_settings(&self) -> String {
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
    pub(crate) fn shutdown(&self) {
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
    pub(crate) fn wait_streaming(&self) -> Result<()> {
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

/// Connects with tokio-postgres (no TLS, 10 s timeout) and spawns the
/// connection task on the current tokio runtime.
pub async fn connect(conn_str: &str) -> Result<tokio_postgres::Client> {
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
