//! Cross-shard statements in the extended protocol, against one plain
//! Postgres holding the same rows: prepared statements with parameters, a
//! Describe before Bind (answered from one shard), results in binary (every
//! value's bytes compared) and in text, the exact sequence of protocol
//! messages, errors mid-batch, pipelining, mirrored and split writes.

use std::error::Error;

use integration::items::{self, Items};
use integration::wire::{self, bind, describe_portal, execute, parse, round_trip, sync};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::Client;

/// A value's bytes as the server sent them, whatever its type.
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

type Rows = Vec<Vec<Option<Vec<u8>>>>;

/// Every row of a prepared query, binary values as sent.
async fn binary_rows(
    c: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Rows, String> {
    let rows = c.query(sql, params).await.map_err(|e| {
        e.as_db_error()
            .map(|d| format!("{}: {}", d.code().code(), d.message()))
            .unwrap_or_else(|| e.to_string())
    })?;
    Ok(rows
        .iter()
        .map(|r| (0..r.len()).map(|i| r.get::<_, Raw>(i).0).collect())
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_cross_shard_statements_equal_one_database() {
    let Items {
        shards,
        reference,
        proxy,
        client: c,
        reference_client: r,
        ..
    } = items::start(2, "[tables.colors]\nbroadcast = true\n").await;

    // Ordered: the same rows in the same order, byte for byte in binary.
    let keys = vec![-400i64, -393, 10, 1689, 3];
    let ordered: Vec<(&str, Vec<&(dyn ToSql + Sync)>)> = vec![
        ("SELECT * FROM items ORDER BY id", vec![]),
        ("SELECT id, name FROM items WHERE grp > $1 ORDER BY name, id LIMIT $2", vec![&0i32, &10i64]),
        ("SELECT * FROM items ORDER BY price DESC NULLS LAST, id OFFSET $1 LIMIT $2", vec![&5i64, &7i64]),
        ("SELECT id, score, at FROM items WHERE score > $1 ORDER BY score, id", vec![&-10.5f64]),
        ("SELECT id, at, day FROM items ORDER BY at DESC, id FETCH FIRST 9 ROWS ONLY", vec![]),
        ("SELECT id FROM items WHERE id = ANY($1) ORDER BY id DESC", vec![&keys]),
        ("SELECT DISTINCT name FROM items WHERE name IS NOT NULL ORDER BY name", vec![]),
        ("SELECT DISTINCT ON (grp) grp, id, price FROM items ORDER BY grp, id", vec![]),
        ("SELECT count(*), sum(price), sum(grp), min(at), max(day), min(name) FROM items WHERE flag = $1", vec![&true]),
        ("SELECT count(*), sum(id), max(score) FROM items WHERE id < $1", vec![&-10_000i64]),
        ("SELECT bool_and(flag), bool_or(flag), count(name) FROM items", vec![]),
        ("SELECT grp, count(*), sum(id), max(price) FROM items WHERE id > $1 GROUP BY grp ORDER BY grp", vec![&-100i64]),
        ("SELECT name, flag, count(*) FROM items GROUP BY name, flag ORDER BY name DESC, flag LIMIT $1", vec![&6i64]),
    ];
    for (sql, params) in &ordered {
        let want = binary_rows(&r, sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: reference: {e}"));
        let got = binary_rows(&c, sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: shardgate: {e}"));
        assert!(
            !want.is_empty() || sql.contains("-10_000") || sql.contains("$1"),
            "{sql}: no rows to compare"
        );
        assert_eq!(got, want, "{sql}");
    }

    // Unordered: the same rows.
    for (sql, params) in [
        (
            "SELECT id, price, name FROM items WHERE grp = $1",
            vec![&2i32 as &(dyn ToSql + Sync)],
        ),
        (
            "SELECT * FROM items WHERE name = $1 OR flag IS NULL",
            vec![&"zed"],
        ),
        ("SELECT grp, count(*) FROM items GROUP BY grp", vec![]),
    ] {
        let mut want = binary_rows(&r, sql, &params).await.expect(sql);
        let mut got = binary_rows(&c, sql, &params).await.expect(sql);
        want.sort();
        got.sort();
        assert!(want.len() > 1, "{sql}");
        assert_eq!(got, want, "{sql}");
    }

    // A statement prepared once (Parse + Describe answered by one shard)
    // runs many times with other parameters; its columns are the reference's.
    let stmt = c
        .prepare("SELECT id, name, price FROM items WHERE grp = $1 ORDER BY id LIMIT $2")
        .await
        .expect("prepare");
    let ref_stmt = r
        .prepare("SELECT id, name, price FROM items WHERE grp = $1 ORDER BY id LIMIT $2")
        .await
        .expect("prepare");
    let cols = |s: &tokio_postgres::Statement| -> Vec<(String, Type)> {
        s.columns()
            .iter()
            .map(|c| (c.name().to_string(), c.type_().clone()))
            .collect()
    };
    assert_eq!(cols(&stmt), cols(&ref_stmt));
    assert_eq!(stmt.params(), ref_stmt.params());
    for grp in -3..=3i32 {
        let got: Vec<i64> = c
            .query(&stmt, &[&grp, &5i64])
            .await
            .expect("run")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let want: Vec<i64> = r
            .query(&ref_stmt, &[&grp, &5i64])
            .await
            .expect("run")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(got, want, "grp {grp}");
        assert_eq!(got.len(), 5, "grp {grp}");
    }

    // Pipelined executions on one connection each get their own answer.
    let (a, b, d) = futures::join!(
        c.query_one("SELECT count(*) FROM items WHERE grp = $1", &[&1i32]),
        c.query("SELECT id FROM items ORDER BY id LIMIT $1", &[&3i64]),
        c.query_one("SELECT max(id) FROM items WHERE id < $1", &[&0i64]),
    );
    let want_a: i64 = r
        .query_one("SELECT count(*) FROM items WHERE grp = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(a.expect("pipelined count").get::<_, i64>(0), want_a);
    let ids: Vec<i64> = b.expect("pipelined ids").iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [-400, -393, -386]);
    assert_eq!(d.expect("pipelined max").get::<_, i64>(0), -1);

    // Raw batches: the exact messages, with text and with binary results.
    let mut pc = wire::raw_login(proxy.port).await;
    let mut rc = wire::raw_login(reference.primary.port).await;
    for (sql, params) in [
        ("SELECT id, price, score, name, flag, at, day FROM items WHERE id > $1 ORDER BY at, id LIMIT 40", vec![Some("-200")]),
        ("SELECT grp, sum(price), count(*), min(day) FROM items GROUP BY grp ORDER BY grp", vec![]),
        ("SELECT sum(id), count(*), max(at) FROM items WHERE grp IS NOT NULL AND name <> $1", vec![Some("a")]),
        ("SELECT id FROM items WHERE grp = $1", vec![None]),
        ("SELECT 100 / (id - id) FROM items ORDER BY 1", vec![]),
    ] {
        for format in [0i16, 1] {
            let batch = [parse("", sql), bind("", &params, format), describe_portal(), execute(), sync()];
            let want = round_trip(&mut rc, &batch).await;
            let got = round_trip(&mut pc, &batch).await;
            assert_eq!(got.tags, want.tags, "{sql} (format {format})");
            assert_eq!(got.formats, want.formats, "{sql} (format {format})");
            assert_eq!(got.error.as_ref().map(|e| &e.0), want.error.as_ref().map(|e| &e.0), "{sql}");
            assert_eq!(got.tag, want.tag, "{sql} (format {format})");
            let (mut g, mut w) = (got.rows, want.rows);
            if !sql.contains("ORDER BY") {
                g.sort();
                w.sort();
            }
            assert_eq!(g, w, "{sql} (format {format})");
        }
    }
    // without a Describe, and a named statement parsed in the same batch
    let batch = [
        parse("s1", "SELECT id FROM items ORDER BY id LIMIT 2"),
        bind("s1", &[], 1),
        execute(),
        sync(),
    ];
    let got = round_trip(&mut pc, &batch).await;
    assert_eq!(got, round_trip(&mut rc, &batch).await);
    assert_eq!(got.tags, ['1', '2', 'D', 'C', 'Z']);
    let again = [bind("s1", &[], 0), execute(), sync()];
    assert_eq!(
        round_trip(&mut pc, &again).await,
        round_trip(&mut rc, &again).await
    );

    // Merged arrays (and intervals, inets) come back in binary as one
    // server sends them.
    let batch = [
        parse(
            "",
            "SELECT id, ARRAY[id, NULL] AS a, ARRAY[[name, 'x,\"y']] AS names, \
             make_interval(days => id::int) AS i, \
             '10.0.0.0/8'::inet + (id + 100000) AS n FROM items ORDER BY id",
        ),
        bind("", &[], 1),
        execute(),
        sync(),
    ];
    let got = round_trip(&mut pc, &batch).await;
    assert_eq!(got, round_trip(&mut rc, &batch).await);
    assert!(got.tags.contains(&'D'), "{got:?}");

    // A type the proxy cannot send in binary after a merge is refused, not garbled.
    let batch = [
        parse(
            "",
            "SELECT id, int8range(id, id + 1) AS r FROM items ORDER BY id",
        ),
        bind("", &[], 1),
        execute(),
        sync(),
    ];
    let got = round_trip(&mut pc, &batch).await;
    assert_eq!(
        got.error.as_ref().map(|e| e.0.as_str()),
        Some("0A000"),
        "{got:?}"
    );
    let text = [
        parse(
            "",
            "SELECT id, ARRAY[id] AS a FROM items ORDER BY id LIMIT 3",
        ),
        bind("", &[], 0),
        execute(),
        sync(),
    ];
    assert_eq!(
        round_trip(&mut pc, &text).await,
        round_trip(&mut rc, &text).await
    );
    // A fetch size (Execute with a row limit) across shards: the rows come
    // in batches ending in PortalSuspended, the last with its count, as on
    // one server (outside a transaction the portal ends at Sync; inside it
    // goes on Execute after Execute).
    let limited = |n: i32| {
        let mut e = execute();
        e[6..10].copy_from_slice(&n.to_be_bytes());
        e
    };
    let first = [
        parse("", "SELECT id FROM items ORDER BY id"),
        bind("", &[], 0),
        limited(7),
        sync(),
    ];
    let got = round_trip(&mut pc, &first).await;
    assert_eq!(got, round_trip(&mut rc, &first).await);
    assert_eq!(got.rows.len(), 7);
    assert!(got.tags.contains(&'s'), "{got:?}");
    let begin = [wire::query("BEGIN")];
    round_trip(&mut pc, &begin).await;
    round_trip(&mut rc, &begin).await;
    let open = [
        parse("", "SELECT id, grp FROM items ORDER BY grp, id"),
        bind("", &[], 1),
        describe_portal(),
        limited(20),
        sync(),
    ];
    assert_eq!(
        round_trip(&mut pc, &open).await,
        round_trip(&mut rc, &open).await
    );
    for n in [15, 0] {
        let more = [limited(n), sync()];
        let got = round_trip(&mut pc, &more).await;
        assert_eq!(got, round_trip(&mut rc, &more).await, "Execute({n})");
        assert!(!got.rows.is_empty());
    }
    let end = [wire::query("COMMIT")];
    round_trip(&mut pc, &end).await;
    round_trip(&mut rc, &end).await;

    // Inside a transaction a read of several shards works (each shard joins
    // the transaction); a write on a second shard is refused and the
    // transaction fails as it would on one server.
    let outside = c
        .query("SELECT id FROM items WHERE grp = $1 ORDER BY id", &[&1i32])
        .await
        .expect("cross-shard read");
    c.batch_execute("BEGIN").await.expect("begin");
    let inside = c
        .query("SELECT id FROM items WHERE grp = $1 ORDER BY id", &[&1i32])
        .await
        .expect("cross-shard read in txn");
    let ids =
        |rows: &[tokio_postgres::Row]| rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>();
    assert_eq!(ids(&inside), ids(&outside));
    assert!(!inside.is_empty());
    let err = c
        .execute(
            "UPDATE items SET grp = grp WHERE id = ANY($1)",
            &[&ids(&outside)],
        )
        .await
        .expect_err("cross-shard write in txn");
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("0A000"),
        "{err}"
    );
    let err = c.query("SELECT 1", &[]).await.expect_err("aborted");
    assert_eq!(
        err.as_db_error().map(|d| d.code().code()),
        Some("25P02"),
        "{err}"
    );
    c.batch_execute("ROLLBACK").await.expect("rollback");

    // Writes: a broadcast insert mirrored to every shard, a multi-row insert
    // split over two shards, a key-less update refused.
    c.batch_execute("CREATE TABLE colors (id int PRIMARY KEY, name text)")
        .await
        .expect("create");
    let n = c
        .execute("INSERT INTO colors VALUES ($1, $2)", &[&1i32, &"red"])
        .await
        .expect("mirrored insert");
    assert_eq!(n, 1);
    let ret = c
        .query(
            "INSERT INTO colors VALUES ($1, $2) RETURNING name",
            &[&2i32, &"blue"],
        )
        .await
        .expect("returning");
    assert_eq!(ret.len(), 1, "one answer for all copies");
    for s in &shards {
        s.wait_replicated().await.expect("replicated");
        let d = s.primary.connect("shop").await.expect("direct");
        let names: Vec<String> = d
            .query("SELECT name FROM colors ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names, ["red", "blue"]);
    }
    let insert = "INSERT INTO items (id, grp, name) VALUES ($1, $2, $3), ($4, $5, $6)";
    let params: [&(dyn ToSql + Sync); 6] = [&5000i64, &1i32, &"x", &5001i64, &2i32, &"y"];
    assert_eq!(c.execute(insert, &params).await.expect("split insert"), 2);
    assert_eq!(
        r.execute(insert, &params).await.expect("reference insert"),
        2
    );
    let on: Vec<i64> = futures::future::join_all(shards.iter().map(|s| async {
        let d = s.primary.connect("shop").await.expect("direct");
        d.query_one("SELECT count(*) FROM items WHERE id IN (5000, 5001)", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    }))
    .await;
    assert_eq!(on.iter().sum::<i64>(), 2);
    // reads go to the replicas: let them replay the insert first
    for s in &shards {
        s.wait_replicated().await.expect("replicated");
    }
    let all = "SELECT * FROM items ORDER BY id";
    assert_eq!(
        binary_rows(&c, all, &[]).await.unwrap(),
        binary_rows(&r, all, &[]).await.unwrap()
    );
    let err = c
        .execute("UPDATE items SET grp = $1", &[&0i32])
        .await
        .expect_err("key-less update");
    assert_eq!(err.as_db_error().map(|d| d.code().code()), Some("0A000"));
    assert_eq!(
        c.query_one("SELECT 1", &[])
            .await
            .expect("alive")
            .get::<_, i32>(0),
        1
    );

    // A cancel request stops a statement on every shard it runs on.
    let token = c.cancel_token();
    let sleeper = "/* scatter-cancel */ SELECT count(*) FROM items WHERE pg_sleep(60) IS NOT NULL";
    let monitors: Vec<String> = shards
        .iter()
        .flat_map(|s| s.all_servers().map(|v| v.conn_str("postgres")))
        .collect();
    let running = || async {
        let mut active = 0;
        for m in &monitors {
            let (d, conn) = tokio_postgres::connect(m, tokio_postgres::NoTls)
                .await
                .expect("monitor");
            tokio::spawn(conn);
            active += d
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '/* scatter-cancel%' AND state = 'active'",
                    &[],
                )
                .await
                .expect("pg_stat_activity")
                .get::<_, i64>(0);
        }
        active
    };
    let started = std::time::Instant::now();
    let canceller = async {
        while running().await < shards.len() as i64 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        token
            .cancel_query(tokio_postgres::NoTls)
            .await
            .expect("cancel request");
    };
    let (res, ()) = tokio::join!(c.simple_query(sleeper), canceller);
    let err = res.expect_err("cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "every shard stopped"
    );
    assert_eq!(running().await, 0, "nothing left running on any shard");
    assert_eq!(
        c.query_one("SELECT 1", &[])
            .await
            .expect("alive")
            .get::<_, i32>(0),
        1
    );
}
