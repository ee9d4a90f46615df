//! A background check of every replica: reachable, and replaying close
//! enough behind its primary (`routing.max_replica_lag_ms`). Replicas that
//! fail are skipped by the read path until they pass again.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::conn::ServerConn;
use super::pool::{Server, Servers};
use crate::protocol::messages::{self, Reader};

/// Received and replayed WAL positions, and the age of the last replayed
/// commit in milliseconds, as one text value `received replayed age`.
const LAG_SQL: &str = "SELECT concat_ws(' ', COALESCE(pg_last_wal_receive_lsn(), '0/0'), \
     COALESCE(pg_last_wal_replay_lsn(), '0/0'), \
     COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000, 0)::bigint)";

/// Parses an LSN (`16/B374D848`) into a number.
fn lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// One health sample of a replica.
#[derive(Debug, Clone, Copy)]
struct Sample {
    received: u64,
    replayed: u64,
    age_ms: i64,
}

fn sample(text: &str) -> Option<Sample> {
    let mut it = text.split(' ');
    Some(Sample {
        received: lsn(it.next()?)?,
        replayed: lsn(it.next()?)?,
        age_ms: it.next()?.parse().ok()?,
    })
}

/// A replica lags when it has not even replayed what it had received at the
/// previous check, and its last replayed commit is older than `max_ms`. (A
/// quiet primary's replica is never "behind": the age of its last commit
/// alone says nothing.)
fn lagging(prev: Option<Sample>, now: Sample, max_ms: i64) -> bool {
    match prev {
        Some(p) => now.replayed < p.received && now.age_ms > max_ms,
        None => false,
    }
}

/// Runs one query returning a single value on a dedicated connection.
async fn query_value(conn: &mut ServerConn, addr: &str, sql: &str) -> Option<String> {
    let mut out = BytesMut::new();
    messages::query(&mut out, sql);
    conn.write(addr, &out).await.ok()?;
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
    let mut prev: Option<Sample> = None;
    loop {
        if conn.is_none() {
            conn = server.probe().await.ok();
        }
        let now = match conn.as_mut() {
            Some(c) => query_value(c, &addr, LAG_SQL).await,
            None => None,
        };
        match now.as_deref().and_then(sample) {
            Some(s) if !lagging(prev, s, max_lag_ms) => {
                prev = Some(s);
                server.mark_up();
            }
            Some(s) => {
                prev = Some(s);
                tracing::warn!(server = %addr, lag_ms = s.age_ms, "replica lags too far behind; skipping it");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples() {
        let s = sample("1/10 0/FF 42").unwrap();
        assert_eq!(
            (s.received, s.replayed, s.age_ms),
            ((1 << 32) | 16, 255, 42)
        );
        assert!(sample("x y z").is_none());
    }

    #[test]
    fn lag_needs_replay_stuck_behind_what_was_received() {
        let s = |received, replayed, age_ms| Sample {
            received,
            replayed,
            age_ms,
        };
        // quiet primary: old last commit, but caught up
        assert!(!lagging(Some(s(10, 10, 0)), s(12, 12, 60_000), 1000));
        // a little unreplayed WAL right now, but it replayed what it had before
        assert!(!lagging(Some(s(10, 10, 0)), s(12, 10, 60_000), 1000));
        // stuck: still behind what it had received a check ago, and old
        assert!(lagging(Some(s(12, 10, 0)), s(14, 10, 5_000), 1000));
        assert!(!lagging(Some(s(12, 10, 0)), s(14, 10, 500), 1000));
        assert!(!lagging(None, s(14, 10, 5_000), 1000));
    }
}
