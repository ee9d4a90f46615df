//! Local PostgreSQL clusters, a primary and streaming replicas, started from
//! the PostgreSQL programs installed on the machine: `shardgate demo` and
//! the end-to-end tests (`tests/integration`) both start their servers here.
//!
//! Everything runs on loopback ports handed out by [`free_port`], in a
//! directory (by default `std::env::temp_dir()/shardgate-test-XXXXXXXX`)
//! that is removed when the [`Cluster`] is dropped (also when a test
//! panics). Postgres refuses to run as root: when we are root, the servers
//! run as the unprivileged `postgres` account (`runuser -u postgres`) and
//! their directories belong to it.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use pg_cluster::{Cluster, ClusterOptions};
//! let cluster = Cluster::start(ClusterOptions::default())?;
//! let client = cluster.primary.connect("shop").await?;
//! client.simple_query("SELECT 1").await?;
//! cluster.wait_replicated().await?;
//! # Ok(()) }
//! ```
//!
//! Set `SHARDGATE_KEEP_TEST_DIRS=1` to keep the directories (server logs)
//! for a post-mortem; the servers are stopped anyway.
//!
//! A crate of its own (not a module of `router` or of the test harness) so
//! that both depend on one copy; the pure crates (`sql-rewrite`,
//! `shard-config`) do not depend on it.

#![warn(missing_docs)]

mod account;
mod bins;
mod cluster;
mod process;
mod server;

pub use account::TempDir;
pub use bins::pg_bin;
pub use cluster::{Auth, Cluster, ClusterOptions};
pub use process::{
    free_port, process_alive, read_lossy, run_cmd, run_cmd_timeout, send_signal, tail,
    DEFAULT_CMD_TIMEOUT,
};
pub use server::{connect, PgServer};
