//! Local Postgres clusters (a primary and streaming replicas) started from
//! the Postgres binaries on the machine, for `shardgate demo`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context as _};

/// Finds a Postgres binary: `$PG_BIN`, the newest `/usr/lib/postgresql/*/bin`, or PATH.
pub fn pg_bin(name: &str) -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Ok(d) = std::env::var("PG_BIN") {
        dirs.push(d.into());
    }
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versions.sort();
        dirs.extend(versions.into_iter().rev().map(|(_, p)| p));
    }
    if let Ok(path) = std::env::var("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("Postgres binary `{name}` not found: install PostgreSQL (Debian: apt-get install postgresql-15) or set PG_BIN")
        })
}

/// A Postgres client program (`psql`, `pg_basebackup`) connecting to the
/// local server on `port` as `postgres`.
fn pg_client(program: &str, port: &str) -> anyhow::Result<Command> {
    let mut cmd = pg_command(&pg_bin(program)?);
    cmd.args(["-h", "127.0.0.1", "-p", port, "-U", "postgres"]);
    Ok(cmd)
}

/// A free loopback TCP port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn is_root() -> bool {
    // SAFETY-free check: the effective uid via /proc
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A command run as the `postgres` account when we are root (Postgres
/// refuses to run as root).
fn pg_command(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn run(mut cmd: Command, what: &str) -> anyhow::Result<Output> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// One running server.
pub struct LocalServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// A primary and its replicas, stopped and removed on drop.
pub struct LocalCluster {
    root: PathBuf,
    /// The primary.
    pub primary: LocalServer,
    /// Streaming replicas.
    pub replicas: Vec<LocalServer>,
}

const CONF: &str = "listen_addresses = '127.0.0.1'\nfsync = off\nfull_page_writes = off\nshared_buffers = 32MB\nmax_connections = 200\nwal_level = replica\nmax_wal_senders = 10\nhot_standby = on\nlogging_collector = off\n";

impl LocalCluster {
    /// Creates and starts a cluster under `root` with role and database
    /// `shop` (password `shop`, SCRAM-SHA-256).
    pub fn start(root: &Path, replicas: usize) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(root);
                    c
                },
                "chown",
            )?;
        }
        let mut cluster = LocalCluster {
            root: root.to_path_buf(),
            primary: LocalServer {
                port: free_port()?,
                data_dir: root.join("primary"),
            },
            replicas: Vec::new(),
        };
        let p = &cluster.primary;
        let mut initdb = pg_command(&pg_bin("initdb")?);
        initdb
            .args([
                "-N",
                "-A",
                "trust",
                "-U",
                "postgres",
                "--locale=C",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&p.data_dir);
        run(initdb, "initdb")?;
        let conf = format!(
            "{CONF}port = {}\nunix_socket_directories = '{}'\npassword_encryption = 'scram-sha-256'\n",
            p.port,
            root.display()
        );
        append(&p.data_dir.join("postgresql.conf"), &conf)?;
        std::fs::write(
            p.data_dir.join("pg_hba.conf"),
            "local all all trust\nhost replication all 127.0.0.1/32 trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )?;
        cluster.start_server(0)?;
        let port = cluster.primary.port.to_string();
        for sql in [
            "CREATE ROLE shop LOGIN PASSWORD 'shop'",
            "CREATE DATABASE shop OWNER shop",
        ] {
            let mut psql = pg_client("psql", &port)?;
            psql.args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]);
            run(psql, sql)?;
        }
        for i in 0..replicas {
            let r = LocalServer {
                port: free_port()?,
                data_dir: root.join(format!("replica{}", i + 1)),
            };
            let mut bb = pg_client("pg_basebackup", &port)?;
            bb.args(["-R", "-X", "stream", "-c", "fast", "-D"])
                .arg(&r.data_dir);
            run(bb, "pg_basebackup")?;
            append(
                &r.data_dir.join("postgresql.conf"),
                &format!("port = {}\n", r.port),
            )?;
            cluster.replicas.push(r);
            cluster.start_server(i + 1)?;
        }
        Ok(cluster)
    }

    fn server(&self, i: usize) -> &LocalServer {
        if i == 0 {
            &self.primary
        } else {
            &self.replicas[i - 1]
        }
    }

    fn start_server(&self, i: usize) -> anyhow::Result<()> {
        let s = self.server(i);
        let mut c = pg_command(&pg_bin("pg_ctl")?);
        c.args(["start", "-w", "-t", "60", "-D"])
            .arg(&s.data_dir)
            .arg("-l")
            .arg(s.data_dir.join("server.log"));
        run(c, "pg_ctl start")?;
        Ok(())
    }
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let servers: Vec<PathBuf> = self
            .replicas
            .iter()
            .map(|r| r.data_dir.clone())
            .chain(std::iter::once(self.primary.data_dir.clone()))
            .collect();
        if let Ok(pg_ctl) = pg_bin("pg_ctl") {
            for d in servers {
                let mut c = pg_command(&pg_ctl);
                c.args(["stop", "-m", "fast", "-w", "-D"]).arg(&d);
                let _ = c.output();
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
