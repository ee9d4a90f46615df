//! A primary and its streaming replicas: created with `initdb` and
//! `pg_basebackup`, started with `pg_ctl`, stopped and removed on drop.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::account::{chown, server_owner, TempDir};
use crate::bins::pg_bin;
use crate::process::{run_ok, tail, DEFAULT_CMD_TIMEOUT};
use crate::server::{PgCtx, PgServer, WAIT_TIMEOUT};

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
            .field("root", &self.root.path())
            .finish()
    }
}

impl Cluster {
    /// Creates and starts a primary and `opts.replicas` streaming replicas
    /// in a fresh `temp_dir()/shardgate-test-XXXXXXXX`, returning once every
    /// replica streams and accepts connections.
    ///
    /// A blocking call (a few seconds): fine inside `#[tokio::test]`.
    pub fn start(opts: ClusterOptions) -> Result<Cluster> {
        Self::start_at(None, opts)
    }

    /// Like [`start`](Self::start), in the directory `dir`, which is created
    /// (its parent must exist, it must not) and removed on drop.
    pub fn start_in(dir: &Path, opts: ClusterOptions) -> Result<Cluster> {
        Self::start_at(Some(dir), opts)
    }

    fn start_at(dir: Option<&Path>, opts: ClusterOptions) -> Result<Cluster> {
        let bin_dir = server_bin_dir()?;
        let owner = server_owner()?;
        let root = match dir {
            Some(dir) => TempDir::create(dir, owner)?,
            None => TempDir::owned_by(owner)?,
        };
        let ctx = Arc::new(PgCtx {
            bin_dir,
            owner,
            work_dir: root.path().to_path_buf(),
        });

        let mut primary = PgServer::new("primary", &ctx, root.path());
        init_primary(&mut primary, opts.auth)?;

        let replicas = thread::scope(|scope| {
            let handles: Vec<_> = (1..=opts.replicas)
                .map(|i| {
                    let (ctx, root, primary) = (&ctx, root.path(), &primary);
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
        Self::start_parallel(n, |_| Cluster::start(opts))
    }

    /// Starts `n` clusters like [`Cluster::start_in`], in parallel, in the
    /// directories `parent/s0`, `parent/s1`, … (`parent` must exist).
    pub fn start_many_in(parent: &Path, n: usize, opts: ClusterOptions) -> Result<Vec<Cluster>> {
        Self::start_parallel(n, |i| {
            Cluster::start_in(&parent.join(format!("s{i}")), opts)
        })
    }

    /// Runs `start(0)` … `start(n - 1)` on threads of their own; all of them
    /// or the first error (the clusters that did start are dropped).
    fn start_parallel(
        n: usize,
        start: impl Fn(usize) -> Result<Cluster> + Sync,
    ) -> Result<Vec<Cluster>> {
        thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let start = &start;
                    scope.spawn(move || start(i))
                })
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

/// The directory of `initdb`, checked to hold the other programs a
/// cluster needs.
fn server_bin_dir() -> Result<PathBuf> {
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
    Ok(bin_dir)
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
}
