//! A background check of every replica: reachable, and replaying close
//! enough behind its primary (`routing.max_replica_lag_ms`). Replicas that
//! fail are skipped by the read path until they pass again.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::conn::ServerConn;
use super::pool::{Server, Servers};
use crate::protocol::messages::{self, Reader};

/// Replay lag in milliseconds: 0 when everything received is replayed.
const LAG_SQL: &str = "SELECT CASE WHEN pg_last_wal_receive_lsn() IS NULL \
     OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
     ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0) END::bigint";

/// Runs one query returning a single value on a dedicated connection.
async fn query_value(conn: &mut ServerConn, addr: &str, sql: &str) -> Option<String> {
    let mut out = BytesMut::new();
    messages::query(&mut out, sql);
    conn.wr.write_all(&out).await.ok()?;
    let mut value = None;
    let mut failed = false;
    loop {
        let f = conn.read_frame(addr).await.ok()?;
        match f.tag {
            b'D' => {
                let mut r = Reader::new(f.body(), "DataRow");
                if r.i16().ok()? >= 1 {
                    let len = r.i32().ok()?;
                    if len >= 0 {
                        value =
                            Some(String::from_utf8_lossy(r.take(len as usize).ok()?).into_owned());
                    }
                }
            }
            b'E' => failed = true,
            b'Z' => return if failed { None } else { value },
            _ => {}
        }
    }
}

async fn watch(server: Arc<Server>, max_lag_ms: i64, every: Duration) {
    let addr = server.addr.to_string();
    let mut conn: Option<ServerConn> = None;
    loop {
        if conn.is_none() {
            conn = server.probe().await.ok();
        }
        let lag = match conn.as_mut() {
            Some(c) => query_value(c, &addr, LAG_SQL).await,
            None => None,
        };
        match lag.and_then(|l| l.parse::<i64>().ok()) {
            Some(l) if l <= max_lag_ms => server.mark_up(),
            Some(l) => {
                tracing::warn!(server = %addr, lag_ms = l, "replica lags too far behind; skipping it");
                server.mark_down();
            }
            None => {
                if conn.take().is_some() || server.is_up() {
                    tracing::warn!(server = %addr, "replica health check failed; skipping it");
                }
                server.mark_down();
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Spawns one watcher per replica.
pub fn spawn(servers: &Servers, max_lag_ms: u64) {
    for shard in &servers.shards {
        for r in &shard.replicas {
            tokio::spawn(watch(
                r.clone(),
                max_lag_ms.min(i64::MAX as u64) as i64,
                Duration::from_millis(1000),
            ));
        }
    }
}
