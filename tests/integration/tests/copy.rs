//! COPY FROM STDIN into a sharded table through the proxy, on 2 shards:
//! rows in text, CSV and binary land on the shards that own their keys
//! (checked on the primaries against the shard map), one CommandComplete
//! with the total, in the simple and the extended protocol; a failure on
//! any shard (a duplicate key) or in the data (a NULL key) fails the whole
//! COPY and leaves no row anywhere; inside a transaction a COPY that
//! would write both shards is refused.

use std::collections::BTreeSet;

use integration::wire::{self, read_msg};
use integration::{config_for_shards, Cluster, ClusterOptions, Proxy};
use shard_config::hash::KeyValue;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

const TABLES: &str = "\n[tables.users]\nsharding_key = \"id\"\nalgorithm = \"hash\"\n";

/// What a simple-protocol COPY answered: the CommandComplete tag or the
/// SQLSTATE of its error.
async fn copy_simple(s: &mut TcpStream, sql: &str, chunks: &[&[u8]]) -> Result<String, String> {
    s.write_all(&wire::query(sql)).await.expect("send");
    let mut outcome = Err("no answer".to_string());
    loop {
        let (tag, body) = read_msg(s).await.expect("answer");
        match tag {
            b'G' => {
                let mut out = Vec::new();
                for c in chunks {
                    out.extend_from_slice(&wire::msg(b'd', c));
                }
                out.extend_from_slice(&wire::msg(b'c', b""));
                s.write_all(&out).await.expect("data");
            }
            b'C' => outcome = Ok(String::from_utf8_lossy(&body[..body.len() - 1]).into()),
            b'E' => outcome = Err(wire::sqlstate(&body)),
            b'Z' => return outcome,
            _ => {}
        }
    }
}

/// The CopyData lines of a simple-protocol COPY TO STDOUT; its tag must be
/// `COPY <lines, less a header>`.
async fn copy_out(s: &mut TcpStream, sql: &str) -> Vec<String> {
    s.write_all(&wire::query(sql)).await.expect("send");
    let mut lines = Vec::new();
    let mut tag = String::new();
    loop {
        let (t, body) = read_msg(s).await.expect("answer");
        match t {
            b'd' => lines.push(String::from_utf8_lossy(&body).into_owned()),
            b'C' => tag = String::from_utf8_lossy(&body[..body.len() - 1]).into(),
            b'E' => panic!("{sql}: {}", wire::error_field(&body, b'M')),
            b'Z' => break,
            _ => {}
        }
    }
    let header = usize::from(sql.contains("HEADER"));
    assert_eq!(tag, format!("COPY {}", lines.len() - header), "{sql}");
    lines
}

/// The ids each shard's primary holds.
async fn ids_on(clusters: &[Cluster]) -> Vec<BTreeSet<i64>> {
    let mut out = Vec::new();
    for c in clusters {
        let d = c.primary.connect("shop").await.expect("direct");
        let rows = d.query("SELECT id FROM users", &[]).await.expect("ids");
        out.push(rows.iter().map(|r| r.get::<_, i64>(0)).collect());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_stdin_splits_rows_by_key() {
    let clusters = Cluster::start_many(2, ClusterOptions::default()).expect("clusters");
    let refs: Vec<&Cluster> = clusters.iter().collect();
    let config = format!("{}{TABLES}", config_for_shards(&refs));
    let map = shard_config::parse(&config.replace("{listen}", "127.0.0.1:1"), "copy.toml")
        .expect("config")
        .shard_map();
    let proxy = Proxy::start(&config).expect("proxy");
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.batch_execute("CREATE TABLE users (id bigint PRIMARY KEY, name text)")
        .await
        .expect("schema");

    // text, rows cut across CopyData messages
    let mut s = wire::raw_login(proxy.port).await;
    let text: String = (1..=100).map(|i| format!("{i}\tuser\\t{i}\n")).collect();
    let (a, b) = text.as_bytes().split_at(text.len() / 2 + 3);
    assert_eq!(
        copy_simple(&mut s, "COPY users (id, name) FROM STDIN", &[a, b]).await,
        Ok("COPY 100".into())
    );
    // CSV with a header, quoted newlines
    let csv: String = std::iter::once("name,id\n".to_string())
        .chain((101..=150).map(|i| format!("\"a,\nb {i}\",{i}\n")))
        .collect();
    assert_eq!(
        copy_simple(
            &mut s,
            "COPY users (name, id) FROM STDIN WITH (FORMAT csv, HEADER)",
            &[csv.as_bytes()]
        )
        .await,
        Ok("COPY 50".into())
    );
    // binary, in the extended protocol (tokio-postgres)
    let sink = c
        .copy_in("COPY users (id, name) FROM STDIN (FORMAT binary)")
        .await
        .expect("copy in");
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::TEXT]);
    futures::pin_mut!(writer);
    for i in 151..=200i64 {
        writer
            .as_mut()
            .write(&[&i, &format!("bin {i}")])
            .await
            .expect("row");
    }
    assert_eq!(writer.finish().await.expect("finish"), 50);
    let n: i64 = c
        .query_one("/* shardgate: primary */ SELECT count(*) FROM users", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 200, "the session goes on after an extended COPY");

    let on = ids_on(&clusters).await;
    for (shard, ids) in on.iter().enumerate() {
        assert!(!ids.is_empty(), "shard {shard} got rows");
        for &id in ids {
            assert_eq!(
                map.shard_for_key("users", &KeyValue::Int(id)),
                Some(shard),
                "id {id}"
            );
        }
    }
    assert_eq!(on[0].len() + on[1].len(), 200);
    let name: String = c
        .query_one(
            "/* shardgate: primary */ SELECT name FROM users WHERE id = 7",
            &[],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(name, "user\t7", "text escapes arrive unchanged");

    // COPY out of several shards, merged like the query (read on replicas)
    for cl in &clusters {
        cl.wait_replicated().await.expect("replicas caught up");
    }
    let lines = copy_out(
        &mut s,
        "COPY (SELECT id, name FROM users WHERE id <= 160 ORDER BY id) TO STDOUT",
    )
    .await;
    assert_eq!(lines.len(), 160);
    assert_eq!(lines[6], "7\tuser\\t7\n", "text-format escapes");
    assert_eq!(lines[100], "101\ta,\\nb 101\n");
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap_or("").parse().unwrap_or(0))
        .collect();
    assert_eq!(ids, (1..=160).collect::<Vec<_>>(), "in the query's order");
    let csv = copy_out(
        &mut s,
        "COPY users (id, name) TO STDOUT WITH (FORMAT csv, HEADER)",
    )
    .await;
    assert_eq!(csv[0], "id,name\n");
    assert_eq!(csv.len(), 201);
    assert!(
        csv.contains(&"101,\"a,\nb 101\"\n".to_string()),
        "CSV quoting"
    );

    // a duplicate key on one shard fails the COPY everywhere
    let dup: String = (201..=240)
        .map(|i| format!("{i}\tx\n"))
        .chain(["5\tdup\n".into()])
        .collect();
    assert_eq!(
        copy_simple(
            &mut s,
            "COPY users (id, name) FROM STDIN",
            &[dup.as_bytes()]
        )
        .await,
        Err("23505".into())
    );
    // a NULL key fails it too, by the proxy
    assert_eq!(
        copy_simple(
            &mut s,
            "COPY users (id, name) FROM STDIN",
            &[b"241\tx\n\\N\ty\n"]
        )
        .await,
        Err("22P04".into())
    );
    let after = ids_on(&clusters).await;
    assert_eq!(after, on, "a failed COPY leaves no row on any shard");
    assert_eq!(
        wire::round_trip(&mut s, &[wire::query("SELECT 1")])
            .await
            .tag,
        "SELECT 1",
        "the session answers after failed COPYs"
    );

    // inside a transaction, rows for both shards would be a two-shard write
    let mut t = wire::raw_login(proxy.port).await;
    let begin = wire::round_trip(&mut t, &[wire::query("BEGIN")]).await;
    assert_eq!(begin.tags, ['C', 'Z']);
    let prepare = [
        wire::parse("", "COPY users (id, name) FROM STDIN"),
        wire::msg(b'D', b"S\0"),
        wire::sync(),
    ];
    assert_eq!(
        wire::round_trip(&mut t, &prepare).await.tags,
        ['1', 't', 'n', 'Z']
    );
    let copy = [wire::bind("", &[], 0), wire::execute(), wire::sync()];
    let got = wire::round_trip(&mut t, &copy).await;
    assert_eq!(got.tags, ['E', 'Z'], "{got:?}");
    assert_eq!(got.error.map(|e| e.0), Some("0A000".into()));
    let got = wire::round_trip(&mut t, &[wire::query("ROLLBACK")]).await;
    assert_eq!(got.tag, "ROLLBACK");
    assert_eq!(ids_on(&clusters).await, on);
}
