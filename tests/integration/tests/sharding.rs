//! Sharding on real servers: two and three shards, each a primary and a
//! streaming replica. Rows written through shardgate must land where a
//! reference `PARTITION BY HASH (id) … MODULUS 1024` table puts them; reads by
//! key must reach only the owning shard (counted in the servers' statement
//! logs); time-sharded rows land in their month's table on its shard;
//! broadcast rows exist on every shard; generated ids stay distinct under
//! concurrency.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use integration::{config_for_shards, Cluster, ClusterOptions, PgServer, Proxy};
use tokio_postgres::{Client, SimpleQueryMessage};

/// A `date` parameter in binary: days since 2000-01-01.
#[derive(Debug)]
struct PgDate(i32);

impl tokio_postgres::types::ToSql for PgDate {
    fn to_sql(
        &self,
        _: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&self.0.to_be_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::DATE
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Tables of the test deployment (appended to the generated shard list).
const TABLES: &str = r#"
[tables.users]
sharding_key = "id"

[tables.orders]
sharding_key = "user_id"
colocate_with = "users"

[tables.products]
broadcast = true

[tables.notes]
sharding_key = "id"
generated_column = "id"

[tables.orders_archive]
sharding_key = "created_at"
algorithm = "time"
key_type = "date"
interval = "month"
table_per_interval = true
start = "2026-01-01"
"#;

/// Starts `n` shards (primary + one replica each) in parallel and a proxy.
fn deployment(n: usize) -> (Vec<Cluster>, Proxy) {
    let opts = ClusterOptions {
        replicas: 1,
        ..Default::default()
    };
    let clusters = Cluster::start_many(n, opts).expect("clusters");
    let refs: Vec<&Cluster> = clusters.iter().collect();
    let config = format!("{}{TABLES}", config_for_shards(&refs));
    let proxy = Proxy::start(&config).expect("proxy");
    (clusters, proxy)
}

/// Every row of the first column of a simple query.
async fn column(c: &Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect()
}

/// The SQLSTATE and message of a failing simple query.
async fn refusal(c: &Client, sql: &str) -> (String, String) {
    let e = c
        .simple_query(sql)
        .await
        .err()
        .unwrap_or_else(|| panic!("{sql}: expected an error"));
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// Which shard owns each id: the remainder of a reference server's
/// `PARTITION BY HASH (id)` with MODULUS 1024, and the even split of the
/// 1024 slots over `shards` shards.
async fn reference_owner(reference: &PgServer, ids: &[i64], shards: usize) -> BTreeMap<i64, usize> {
    let c = reference.connect("shop").await.expect("reference");
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS ref_users (id bigint) PARTITION BY HASH (id);
         DO $$ BEGIN FOR r IN 0..1023 LOOP
           EXECUTE format('CREATE TABLE IF NOT EXISTS ref_users_%s PARTITION OF ref_users FOR VALUES WITH (MODULUS 1024, REMAINDER %s)', r, r);
         END LOOP; END $$;
         TRUNCATE ref_users;",
    )
    .await
    .expect("reference table");
    let list: Vec<String> = ids.iter().map(|i| format!("({i})")).collect();
    c.batch_execute(&format!("INSERT INTO ref_users VALUES {}", list.join(",")))
        .await
        .expect("reference rows");
    let rows = c
        .query(
            "SELECT id, substr(tableoid::regclass::text, 11)::int FROM ref_users",
            &[],
        )
        .await
        .expect("reference placement");
    let base = 1024 / shards;
    let extra = 1024 % shards;
    rows.iter()
        .map(|r| {
            let id: i64 = r.get(0);
            let slot = usize::try_from(r.get::<_, i32>(1)).expect("slot");
            // even split: the first `extra` shards get base + 1 slots
            let mut start = 0;
            let mut owner = 0;
            for s in 0..shards {
                let len = base + usize::from(s < extra);
                if slot < start + len {
                    owner = s;
                    break;
                }
                start += len;
            }
            (id, owner)
        })
        .collect()
}

/// Turns on statement logging on every server of every shard.
async fn log_statements(clusters: &[Cluster]) {
    for c in clusters {
        for s in c.all_servers() {
            let client = s.connect("postgres").await.expect("direct");
            for sql in [
                "ALTER SYSTEM SET log_statement = 'all'",
                "SELECT pg_reload_conf()",
            ] {
                client.batch_execute(sql).await.expect("log_statement");
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
}

/// The shards whose servers logged `marker`.
fn shards_that_logged(clusters: &[Cluster], marker: &str) -> BTreeSet<usize> {
    clusters
        .iter()
        .enumerate()
        .filter(|(_, c)| c.all_servers().any(|s| s.log().contains(marker)))
        .map(|(i, _)| i)
        .collect()
}

async fn placement_and_key_reads(n: usize) {
    let (clusters, proxy) = deployment(n);
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.batch_execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text);
         CREATE TABLE orders (id bigint, user_id bigint, total int, PRIMARY KEY (user_id, id));
         CREATE TABLE products (id bigint PRIMARY KEY, name text)",
    )
    .await
    .expect("schema through the proxy");

    // 600 users: half in multi-row simple INSERTs (split per shard), half
    // one by one through a prepared statement with a binary int8 parameter.
    let ids: Vec<i64> = (1..=600).map(|i| i * 7919 - 3000).collect();
    for chunk in ids[..300].chunks(50) {
        let rows: Vec<String> = chunk.iter().map(|i| format!("({i}, 'u{i}')")).collect();
        c.batch_execute(&format!(
            "INSERT INTO users (id, name) VALUES {}",
            rows.join(", ")
        ))
        .await
        .expect("multi-row insert");
    }
    let insert = c
        .prepare("INSERT INTO users (id, name) VALUES ($1, $2)")
        .await
        .expect("prepare");
    for id in &ids[300..] {
        c.execute(&insert, &[id, &format!("u{id}")])
            .await
            .expect("prepared insert");
    }

    // Where the rows are, asked of each shard directly.
    let expected = reference_owner(&clusters[0].primary, &ids, n).await;
    let mut used = BTreeSet::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let direct = cluster.primary.connect("shop").await.expect("direct");
        let here: BTreeSet<i64> = direct
            .query("SELECT id FROM users", &[])
            .await
            .expect("direct read")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let want: BTreeSet<i64> = expected
            .iter()
            .filter(|(_, &s)| s == i)
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(here, want, "rows on shard s{i}");
        if !here.is_empty() {
            used.insert(i);
        }
    }
    assert_eq!(used.len(), n, "every shard got rows");

    // Reads by key reach only the owning shard (primary or replica).
    for c in &clusters {
        c.wait_replicated().await.expect("replicated");
    }
    log_statements(&clusters).await;
    let probe = c
        .prepare("SELECT name FROM users WHERE id = $1 /* probe-prepared */")
        .await
        .expect("prepare probe");
    for (k, id) in ids.iter().step_by(37).enumerate() {
        let marker = format!("probe-{n}-{k}-");
        let names = column(
            &c,
            &format!("SELECT name FROM users WHERE id = {id} /* {marker} */"),
        )
        .await;
        assert_eq!(names, [format!("u{id}")]);
        let row = c.query_one(&probe, &[id]).await.expect("prepared probe");
        assert_eq!(row.get::<_, String>(0), format!("u{id}"));
        let logged = shards_that_logged(&clusters, &marker);
        assert_eq!(
            logged,
            BTreeSet::from([expected[id]]),
            "shards that ran {marker}"
        );
    }
    // IN over two shards' keys reaches exactly those shards, rows concatenated.
    let (a, b) = {
        let a = ids[0];
        let b = *ids
            .iter()
            .find(|i| expected[i] != expected[&a])
            .expect("another shard");
        (a, b)
    };
    let marker = format!("probe-in-{n}-");
    let mut got = column(
        &c,
        &format!("SELECT id FROM users WHERE id IN ({a}, {b}) /* {marker} */"),
    )
    .await;
    got.sort();
    let mut want = vec![a.to_string(), b.to_string()];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        shards_that_logged(&clusters, &marker),
        BTreeSet::from([expected[&a], expected[&b]])
    );

    // A key-less read gets every shard's rows, concatenated.
    let all = column(&c, "SELECT id FROM users").await;
    assert_eq!(all.len(), ids.len());
    let tag = c
        .simple_query("SELECT id FROM users")
        .await
        .expect("scatter");
    assert!(
        tag.iter()
            .any(|m| matches!(m, SimpleQueryMessage::CommandComplete(k) if *k == ids.len() as u64)),
        "one CommandComplete with the summed count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_place_rows_like_partition_by_hash_and_route_reads_by_key() {
    placement_and_key_reads(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_place_rows_like_partition_by_hash_and_route_reads_by_key() {
    placement_and_key_reads(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_time_tables_refusals_and_transactions() {
    let (clusters, proxy) = deployment(2);
    let c = proxy.connect("shop", "shop").await.expect("connect");
    // DDL on mapped tables runs on every shard; an interval table's only on its own.
    c.batch_execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text);
         CREATE TABLE products (id bigint PRIMARY KEY, name text);
         CREATE TABLE orders_archive (id bigint, created_at date, total int)",
    )
    .await
    .expect("schema");
    for month in ["11", "12"] {
        c.batch_execute(&format!(
            "CREATE TABLE orders_archive_2026_{month} (LIKE orders_archive)"
        ))
        .await
        .expect("interval table");
    }
    // Several statements in one Query run one by one, each on its shards:
    // consecutive months live on different shards.
    c.batch_execute(
        "CREATE TABLE orders_archive_2027_01 (LIKE orders_archive); CREATE TABLE orders_archive_2027_02 (LIKE orders_archive)",
    )
    .await
    .expect("interval tables of two shards in one Query");
    let mut homes = Vec::new();
    for month in ["01", "02"] {
        let mut on = Vec::new();
        for (i, cl) in clusters.iter().enumerate() {
            let d = cl.primary.connect("shop").await.expect("direct");
            let exists: bool = d
                .query_one(
                    &format!("SELECT to_regclass('orders_archive_2027_{month}') IS NOT NULL"),
                    &[],
                )
                .await
                .expect("regclass")
                .get(0);
            if exists {
                on.push(i);
            }
        }
        assert_eq!(on.len(), 1, "2027-{month} lives on one shard: {on:?}");
        homes.push(on[0]);
    }
    assert_ne!(homes[0], homes[1], "consecutive months alternate shards");

    // Broadcast: a copy on every shard.
    c.batch_execute("INSERT INTO products (id, name) VALUES (1, 'pen'), (2, 'ink')")
        .await
        .expect("broadcast insert");
    c.batch_execute("UPDATE products SET name = 'quill' WHERE id = 1")
        .await
        .expect("broadcast update");
    for cluster in &clusters {
        let d = cluster.primary.connect("shop").await.expect("direct");
        let names: Vec<String> = d
            .query("SELECT name FROM products ORDER BY id", &[])
            .await
            .expect("read")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names, ["quill", "ink"]);
    }
    assert_eq!(column(&c, "SELECT count(*) FROM products").await, ["2"]);

    // Time: month tables, round robin from 2026-01 over s0, s1: November
    // (the 11th month, index 10) is on s0, December on s1.
    c.batch_execute(
        "INSERT INTO orders_archive (id, created_at, total) VALUES (1, '2026-11-05', 10), (2, '2026-11-30', 20)",
    )
    .await
    .expect("november rows");
    c.batch_execute(
        "INSERT INTO orders_archive (id, created_at, total) VALUES (3, '2026-12-01', 30)",
    )
    .await
    .expect("december row");
    for cluster in &clusters {
        cluster.wait_replicated().await.expect("replicated");
    }
    let count = |shard: usize, table: &'static str| {
        let server = &clusters[shard].primary;
        async move {
            let d = server.connect("shop").await.expect("direct");
            let n: i64 = d
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .expect("count")
                .get(0);
            n
        }
    };
    assert_eq!(count(0, "orders_archive_2026_11").await, 2);
    assert_eq!(count(1, "orders_archive_2026_12").await, 1);
    let d1 = clusters[1].primary.connect("shop").await.expect("direct");
    let exists: bool = d1
        .query_one(
            "SELECT to_regclass('orders_archive_2026_11') IS NOT NULL",
            &[],
        )
        .await
        .expect("regclass")
        .get(0);
    assert!(
        !exists,
        "an interval table is created on its own shard only"
    );
    assert_eq!(
        count(0, "orders_archive").await,
        0,
        "the logical table stays empty"
    );
    assert_eq!(
        column(
            &c,
            "SELECT total FROM orders_archive WHERE created_at = '2026-12-01'"
        )
        .await,
        ["30"]
    );
    assert_eq!(
        column(&c, "SELECT total FROM orders_archive o WHERE o.created_at BETWEEN '2026-11-01' AND '2026-12-31'")
            .await
            .len(),
        3
    );
    // Prepared, with a binary date parameter: routed at Bind, rewritten to
    // the month table on its shard.
    let insert = c
        .prepare("INSERT INTO orders_archive (id, created_at, total) VALUES ($1, $2, $3)")
        .await
        .expect("prepare");
    c.execute(&insert, &[&4i64, &PgDate(9840), &40i32]) // 2026-12-10
        .await
        .expect("prepared insert into a month table");
    assert_eq!(count(1, "orders_archive_2026_12").await, 2);
    for cluster in &clusters {
        cluster.wait_replicated().await.expect("replicated");
    }
    let select = c
        .prepare("SELECT total FROM orders_archive WHERE created_at = $1")
        .await
        .expect("prepare");
    let totals: Vec<i32> = c
        .query(&select, &[&PgDate(9840)])
        .await
        .expect("prepared read of a month table")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(totals, [40]);
    let (code, msg) = refusal(&c, "SELECT * FROM orders_archive").await;
    assert_eq!(code, "0A000");
    assert!(msg.contains("one table per time interval"), "{msg}");

    // Refusals: merges, key-less writes; the session goes on after each.
    for (sql, words) in [
        (
            "SELECT count(DISTINCT name) FROM users",
            "count(DISTINCT …) across shards",
        ),
        (
            "SELECT name, count(*) FROM users GROUP BY name HAVING count(*) + 1 > 2",
            "HAVING",
        ),
        ("UPDATE users SET name = 'x'", "allow_scatter_writes"),
        (
            "DELETE FROM users WHERE name = 'x'",
            "without its sharding key",
        ),
        (
            "UPDATE users SET id = id + 1 WHERE id = 5",
            "changes the sharding key",
        ),
        // a column-less INSERT whose values do not fit the table's columns
        ("INSERT INTO users VALUES (1)", "without a column list"),
    ] {
        let (code, msg) = refusal(&c, sql).await;
        assert_eq!(code, "0A000", "{sql}");
        assert!(msg.contains(words), "{sql}: {msg}");
        assert_eq!(
            column(&c, "SELECT 1").await,
            ["1"],
            "session alive after {sql}"
        );
    }

    // A transaction goes to the shard of its first statement, wherever that is.
    let (first_key, s1_key) = (1i64, 42i64);
    c.batch_execute(&format!(
        "BEGIN; INSERT INTO users (id, name) VALUES ({first_key}, 'a'); UPDATE users SET name = 'b' WHERE id = {first_key}; COMMIT"
    ))
    .await
    .expect("one-shard multi-statement transaction");
    c.simple_query("BEGIN").await.expect("begin");
    c.simple_query(&format!(
        "INSERT INTO users (id, name) VALUES ({s1_key}, 'c')"
    ))
    .await
    .expect("first statement places the transaction");
    let in_txn = column(&c, &format!("SELECT name FROM users WHERE id = {s1_key}")).await;
    assert_eq!(in_txn, ["c"], "read inside the transaction sees its write");
    c.simple_query("COMMIT").await.expect("commit");
    let mut found = 0;
    for cluster in &clusters {
        let d = cluster.primary.connect("shop").await.expect("direct");
        found += d
            .query("SELECT 1 FROM users WHERE id = $1", &[&s1_key])
            .await
            .expect("read")
            .len();
    }
    assert_eq!(found, 1, "committed on exactly one shard");

    // A driver's transaction: BEGIN, then prepared statements (read, then
    // write: the read already runs on the primary of the key's shard).
    {
        let mut c2 = proxy.connect("shop", "shop").await.expect("connect");
        let tx = c2.transaction().await.expect("begin");
        let rows = tx
            .query("SELECT name FROM users WHERE id = $1", &[&s1_key])
            .await
            .expect("read in a transaction");
        assert_eq!(rows.len(), 1);
        tx.execute("UPDATE users SET name = 'd' WHERE id = $1", &[&s1_key])
            .await
            .expect("write after a read in the same transaction");
        tx.simple_query("SHOW ROUTE SELECT 1")
            .await
            .expect("SHOW ROUTE inside a transaction answers at once");
        tx.commit().await.expect("commit");
    }
    assert_eq!(
        column(
            &c,
            &format!("SELECT name FROM users WHERE id = {s1_key} /* shardgate: primary */")
        )
        .await,
        ["d"]
    );

    // A transaction that would span shards is refused and rolled back.
    let keys: Vec<i64> = (100..200).collect();
    let owners = reference_owner(&clusters[0].primary, &keys, 2).await;
    let a = *keys.iter().find(|k| owners[k] == 0).expect("a key on s0");
    let b = *keys.iter().find(|k| owners[k] == 1).expect("a key on s1");
    c.simple_query("BEGIN").await.expect("begin");
    c.simple_query(&format!("INSERT INTO users (id, name) VALUES ({a}, 'x')"))
        .await
        .expect("first shard");
    let (code, msg) = refusal(
        &c,
        &format!("INSERT INTO users (id, name) VALUES ({b}, 'y')"),
    )
    .await;
    assert_eq!(code, "0A000");
    assert!(msg.contains("writes on more than one shard"), "{msg}");
    let (code, _) = refusal(&c, "SELECT 1").await;
    assert_eq!(
        code, "25P02",
        "the transaction is aborted, as on one server"
    );
    c.simple_query("ROLLBACK").await.expect("rollback");
    assert!(
        column(&c, &format!("SELECT id FROM users WHERE id IN ({a}, {b})"))
            .await
            .is_empty()
    );

    // A BEGIN … COMMIT with nothing in it never reaches a server.
    c.batch_execute("BEGIN; COMMIT")
        .await
        .expect("empty transaction");
    c.simple_query("BEGIN").await.expect("begin");
    c.simple_query("COMMIT").await.expect("commit");

    // SHOW ROUTE answers one row per target.
    let rows = c
        .simple_query("SHOW ROUTE SELECT * FROM users")
        .await
        .expect("show route");
    let shards: Vec<String> = rows
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    assert_eq!(shards, ["s0", "s1"]);
    let (code, msg) = refusal(&c, "SHOW ROUTE SELECT count(DISTINCT name) FROM users").await;
    assert_eq!(code, "0A000");
    assert!(msg.contains("count(DISTINCT"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_ids_from_16_clients_are_distinct() {
    let (clusters, proxy) = deployment(2);
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.batch_execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text)")
        .await
        .expect("schema");
    let mut tasks = Vec::new();
    for client in 0..16 {
        let conn = proxy.conn_str("shop", "shop");
        tasks.push(tokio::spawn(async move {
            let (c, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            for batch in 0..25 {
                let rows: Vec<String> = (0..250)
                    .map(|r| format!("('c{client} b{batch} r{r}')"))
                    .collect();
                c.batch_execute(&format!(
                    "INSERT INTO notes (body) VALUES {}",
                    rows.join(", ")
                ))
                .await
                .expect("insert with generated ids");
            }
            // The extended protocol: the rewritten INSERT runs on the owner of its new id.
            let insert = c
                .prepare("INSERT INTO notes (body) VALUES ($1) RETURNING id")
                .await
                .expect("prepare");
            let mut returned = Vec::new();
            for r in 0..50 {
                let row = c
                    .query_one(&insert, &[&format!("c{client} prepared {r}")])
                    .await
                    .expect("prepared insert with a generated id");
                returned.push(row.get::<_, i64>(0));
            }
            returned
        }));
    }
    let mut returned = HashSet::new();
    for t in tasks {
        returned.extend(t.await.expect("client task"));
    }
    assert_eq!(
        returned.len(),
        16 * 50,
        "RETURNING gave each prepared row its own id"
    );
    let mut ids = HashSet::new();
    let mut total = 0;
    for cluster in &clusters {
        let d = cluster.primary.connect("shop").await.expect("direct");
        for r in d.query("SELECT id FROM notes", &[]).await.expect("read") {
            let id: i64 = r.get(0);
            assert!(id > 0);
            ids.insert(id);
            total += 1;
        }
    }
    assert_eq!(total, 100_800, "every row stored once");
    assert_eq!(ids.len(), 100_800, "all generated ids distinct");
    assert!(
        returned.is_subset(&ids),
        "the returned ids are the stored ones"
    );
}
