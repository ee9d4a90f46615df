//! Differential tests of ordered merges: the same rows in one plain Postgres
//! (the reference) and sharded over two shards behind shardgate; every
//! ORDER BY / LIMIT / OFFSET query must return exactly the reference's rows
//! in the reference's order. Text keys include mixed case and non-ASCII
//! strings; the servers use the C collation, which is the order the merge
//! uses (see README). Averages, HAVING and sorts of combined groups are
//! compared digit for digit; a second proxy with a tiny
//! `merge_row_limit` shows the limit (54000) and that deep OFFSETs stream.

use integration::items::{self, Items};
use integration::reference::rows;
use integration::wire;
use integration::Proxy;

/// The (name, type oid) of each column of the RowDescription the client
/// gets for a simple query (a raw connection: tokio-postgres does not show
/// simple-query types).
async fn described_types(proxy: &Proxy, sql: &str) -> Vec<(String, u32)> {
    let mut s = wire::raw_login(proxy.port).await;
    let ex = wire::round_trip(&mut s, &[wire::query(sql)]).await;
    assert!(ex.error.is_none(), "{sql}: {:?}", ex.error);
    ex.columns.into_iter().map(|(n, t, _)| (n, t)).collect()
}

/// 12 000 rows (groups of 2 400) of every integer width and numerics of
/// mixed scales, negatives and NULLs, in `batch` of 4 INSERTs.
fn vals(batch: usize) -> String {
    let mut values = Vec::new();
    for i in (batch * 3000) as i64..((batch + 1) * 3000) as i64 {
        let n = match i % 5 {
            0 => "NULL".to_string(),
            1 => format!("{}", (i * 31) % 1000 - 500),
            2 => format!("{}.{}", (i * 17) % 100, i % 10),
            3 => format!("-{}.{:03}", (i * 7) % 50, (i * 13) % 1000),
            _ => format!("{}.{:05}", (i * 3) % 9000, (i * 7919) % 100_000),
        };
        let n2 = if i % 7 == 0 {
            "NULL".to_string()
        } else {
            format!("{}.{:02}", (i * 7) % 20_000 - 10_000, i % 100)
        };
        values.push(format!(
            "({}, {}, {}, {}, {}, {n}, {n2})",
            i * 13 - 50_000,
            i % 5,
            (i * 7) % 20_000 - 10_000,
            (i * 7919) % 2_000_001 - 1_000_000,
            (i * 982_451_653) % 1_000_000_000_007 - 500_000_000_000,
        ));
    }
    format!(
        "INSERT INTO vals (id, k, i2, i4, i8, n, n2) VALUES {}",
        values.join(", ")
    )
}

const VALS: &str = "CREATE TABLE vals (id bigint PRIMARY KEY, k int, i2 smallint, i4 int, i8 bigint, n numeric, n2 numeric(12,2))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_merges_equal_one_database() {
    let Items {
        shards,
        reference: _reference,
        proxy,
        client: c,
        reference_client: r,
        config,
    } = items::start(2, "[tables.vals]\nsharding_key = \"id\"\n").await;
    let mut setup = vec![VALS.to_string()];
    setup.extend((0..4).map(vals));
    for sql in setup {
        c.batch_execute(&sql).await.expect("through shardgate");
        r.batch_execute(&sql).await.expect("reference");
    }
    // reads go to the replicas: let them replay the load first
    for s in &shards {
        s.wait_replicated().await.expect("replicated");
    }

    let queries = [
        "SELECT id, name FROM items ORDER BY name, id",
        "SELECT id, name FROM items ORDER BY name DESC, id DESC",
        "SELECT id, name FROM items ORDER BY name NULLS FIRST, id",
        "SELECT id, price FROM items ORDER BY price, id",
        "SELECT id, price FROM items ORDER BY price DESC NULLS LAST, id",
        "SELECT id, score FROM items ORDER BY score, id",
        "SELECT id, score FROM items ORDER BY score DESC, id LIMIT 17",
        "SELECT id, grp, name FROM items ORDER BY 2, 3, 1 OFFSET 10 LIMIT 25",
        "SELECT id, at FROM items ORDER BY at, id FETCH FIRST 7 ROWS ONLY",
        "SELECT id FROM items ORDER BY day DESC, id",
        "SELECT id FROM items ORDER BY lower(name), name, id",
        "SELECT * FROM items ORDER BY flag, id",
        "SELECT * FROM items ORDER BY grp DESC NULLS LAST, price NULLS FIRST, id",
        "SELECT id, grp FROM items WHERE grp > 0 ORDER BY grp DESC, id LIMIT 20 OFFSET 3",
        "SELECT id, name AS n FROM items ORDER BY n, id",
        "SELECT *, score AS s FROM items ORDER BY s, id",
        "SELECT id FROM items ORDER BY id OFFSET 295",
        "SELECT id FROM items ORDER BY id LIMIT 0",
        "SELECT id FROM items ORDER BY id OFFSET 1000",
        "SELECT id, at FROM items WHERE id IN (-400, -393, 10, 1689) ORDER BY at DESC, id",
        "SELECT id FROM items UNION ALL SELECT id FROM items ORDER BY 1",
        // DISTINCT and DISTINCT ON: duplicates across shards meet in the merge
        "SELECT DISTINCT grp FROM items ORDER BY grp",
        "SELECT DISTINCT name, flag FROM items ORDER BY name DESC, flag",
        "SELECT DISTINCT price FROM items ORDER BY price LIMIT 10 OFFSET 2",
        "SELECT DISTINCT ON (grp) grp, id, name FROM items ORDER BY grp, id",
        "SELECT DISTINCT ON (name) name, id FROM items ORDER BY name, id DESC LIMIT 5",
        // GROUP BY: groups sorted by their keys, combined where they meet
        "SELECT grp, count(*), sum(id), min(name), max(at) FROM items GROUP BY grp ORDER BY grp",
        "SELECT grp, flag, count(*) FROM items GROUP BY grp, flag ORDER BY grp DESC, flag",
        "SELECT name, sum(price), bool_or(flag) FROM items GROUP BY name ORDER BY name LIMIT 4 OFFSET 2",
        "SELECT day, count(*) FROM items GROUP BY 1 ORDER BY 1 DESC NULLS LAST LIMIT 9",
        // aggregates without GROUP BY: partial values combined
        "SELECT count(*) FROM items",
        "SELECT count(name), count(price), count(*) AS n FROM items",
        "SELECT sum(grp), sum(id), sum(price) FROM items",
        "SELECT sum(price) FROM items WHERE price <> 'NaN'",
        "SELECT min(name), max(name), min(at), max(day), min(price), max(score) FROM items",
        "SELECT min(score), max(price) FROM items WHERE price <> 'NaN'",
        "SELECT bool_and(flag), bool_or(flag), every(flag) FROM items",
        "SELECT bool_and(flag) FROM items WHERE flag",
        "SELECT count(*), sum(id), min(id), max(name) FROM items WHERE id < -1000",
        "SELECT count(*) FILTER (WHERE grp > 0), sum(id) FILTER (WHERE flag) FROM items",
        "SELECT count(*) FROM items ORDER BY 1 LIMIT 1",
        "SELECT count(*) FROM items OFFSET 1",
        // avg: shards' sums and counts, divided as one server divides
        "SELECT avg(i2), avg(i4), avg(i8), avg(n), avg(n2), count(*) FROM vals",
        "SELECT avg(n) FROM vals WHERE n IS NULL",
        "SELECT avg(i4), avg(n2) FROM vals WHERE id < -1000000",
        "SELECT k, avg(i2), avg(i4), avg(i8), avg(n), avg(n2), count(n) FROM vals GROUP BY k ORDER BY k",
        "SELECT k, avg(n) AS mean, avg(i8) FROM vals WHERE i4 < 0 GROUP BY k ORDER BY k DESC",
        "SELECT avg(n2) FILTER (WHERE i4 > 0), avg(i8) FILTER (WHERE k = 1), avg(i2) FILTER (WHERE k = 9) FROM vals",
        "SELECT k, avg(n), avg(i4) FROM vals WHERE id % 1000 = 7 GROUP BY k ORDER BY k",
        "SELECT avg(n) FROM vals WHERE id IN (-50000, -49987, -49974)",
        "SELECT avg(price), avg(grp), avg(id) FROM items",
        "SELECT avg(price), avg(grp) FROM items WHERE price <> 'NaN'",
        "SELECT grp, avg(price), avg(id) FROM items WHERE price <> 'NaN' GROUP BY grp ORDER BY grp",
        // HAVING: evaluated after groups combine
        "SELECT grp, count(*) FROM items GROUP BY grp HAVING count(*) > 40 ORDER BY grp",
        "SELECT name, sum(price), max(at) FROM items GROUP BY name HAVING sum(price) >= -50.5 AND (max(at) IS NULL OR NOT bool_or(flag)) OR name = 'Zoë' ORDER BY name",
        "SELECT grp, avg(price) FROM items WHERE price <> 'NaN' GROUP BY grp HAVING avg(price) < 5 AND count(price) <> 0 ORDER BY 1 LIMIT 3",
        "SELECT count(*) FROM items HAVING count(*) > 5",
        "SELECT count(*) FROM items HAVING count(*) > 500",
        "SELECT k, avg(n) FROM vals GROUP BY k HAVING avg(n) > 100 ORDER BY k",
        "SELECT k FROM vals GROUP BY k HAVING avg(i8) < 0 OR min(n2) = -9993.00 ORDER BY k",
        "SELECT flag, min(day) FROM items GROUP BY flag HAVING min(day) > '2025-01-05' ORDER BY flag",
        "SELECT grp FROM items GROUP BY grp HAVING max(score) > 10 ORDER BY grp",
        "SELECT grp, count(*) FROM items GROUP BY grp HAVING grp IS NULL OR grp <> 0 ORDER BY grp",
        "SELECT grp FROM items GROUP BY grp HAVING NOT (max(name) < 'b') ORDER BY grp",
        // GROUP BY the sharding key: groups complete on each shard
        "SELECT id, count(*), avg(price), count(DISTINCT name), string_agg(name, ',') FROM items GROUP BY id HAVING count(*) = 1 AND avg(price) > 0 ORDER BY id LIMIT 20",
        "SELECT id, grp, avg(score) FROM items GROUP BY grp, id ORDER BY 3 DESC NULLS LAST, id LIMIT 15",
        "SELECT k, id, count(DISTINCT n) FROM vals GROUP BY id, k ORDER BY id DESC LIMIT 7 OFFSET 100",
        // ORDER BY aggregates: combined groups sorted in the proxy
        "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY count(*) DESC, grp",
        "SELECT name, count(*), sum(price) FROM items GROUP BY name ORDER BY 2 DESC, 1 LIMIT 5 OFFSET 1",
        "SELECT k, avg(i8) FROM vals GROUP BY k ORDER BY avg(i8), k",
        "SELECT grp FROM items GROUP BY grp ORDER BY max(name) DESC NULLS LAST, grp",
        "SELECT count(*) FROM items GROUP BY grp ORDER BY grp",
        "SELECT grp AS g, count(*) AS n FROM items GROUP BY g ORDER BY n DESC, g",
        "SELECT id AS i, avg(price) FROM items GROUP BY i HAVING avg(price) < 0 ORDER BY i LIMIT 9",
        "SELECT price, count(*) FROM items GROUP BY price ORDER BY count(*) DESC, price LIMIT 10",
    ];
    for sql in queries {
        let want = rows(&r, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: reference: {e}"));
        let got = rows(&c, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: shardgate: {e}"));
        assert_eq!(got, want, "{sql}");
    }

    // Without ORDER BY the order is not defined: the same rows, in any order.
    for sql in [
        "SELECT k, avg(n2), count(*) FROM vals GROUP BY k",
        "SELECT grp, max(name) FROM items GROUP BY grp HAVING count(*) >= 40",
        "SELECT DISTINCT name FROM items",
        "SELECT DISTINCT grp, flag FROM items",
        "SELECT DISTINCT ON (grp) grp FROM items",
        "SELECT grp, count(*), max(price) FROM items GROUP BY grp",
        "SELECT flag, grp, count(name) FROM items WHERE id > 0 GROUP BY flag, grp",
    ] {
        let mut want = rows(&r, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: reference: {e}"));
        let mut got = rows(&c, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: shardgate: {e}"));
        want.sort();
        got.sort();
        assert_eq!(got, want, "{sql}");
    }

    // Without ORDER BY, LIMIT/OFFSET may pick any rows: only the counts are defined.
    for (sql, n) in [
        ("SELECT id FROM items LIMIT 12", 12),
        ("SELECT id FROM items OFFSET 290", 10),
        ("SELECT id FROM items LIMIT 5 OFFSET 298", 2),
    ] {
        let got = rows(&c, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_eq!(got.len(), n, "{sql}");
    }

    // The client sees numeric for an avg, as from one server (the shards
    // computed sum: bigint for int4).
    assert_eq!(
        described_types(
            &proxy,
            "SELECT k, avg(i4) AS m, avg(n), count(*) FROM vals GROUP BY k"
        )
        .await,
        [
            ("k".to_string(), 23),
            ("m".to_string(), 1700),
            ("avg".to_string(), 1700),
            ("count".to_string(), 20)
        ]
    );
    assert_eq!(
        described_types(&proxy, "SELECT avg(i2) FROM vals").await,
        [("avg".to_string(), 1700)]
    );

    // What cannot be combined exactly is refused.
    for (sql, words) in [
        ("SELECT sum(score) FROM items", "floating-point"),
        ("SELECT avg(score) FROM items", "avg of a floating-point"),
        (
            "SELECT grp, avg(score) FROM items GROUP BY grp",
            "avg of a floating-point",
        ),
        ("SELECT count(DISTINCT name) FROM items", "count(DISTINCT"),
        (
            "SELECT grp, count(DISTINCT name) FROM items GROUP BY grp",
            "count(DISTINCT",
        ),
        ("SELECT count(*), 1 FROM items", "next to aggregates"),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp HAVING count(*) IN (3, 4)",
            "HAVING count(*) IN (3, 4)",
        ),
        (
            "SELECT grp FROM items GROUP BY grp HAVING max(at) > '2026-01-01'",
            "constant '2026-01-01'",
        ),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY grp * 2",
            "neither a group key nor an aggregate",
        ),
        (
            "SELECT DISTINCT grp, count(*) FROM items GROUP BY grp",
            "DISTINCT with GROUP BY",
        ),
        (
            "SELECT lower(name), count(*) FROM items GROUP BY name",
            "in a grouped select list",
        ),
        ("SELECT DISTINCT * FROM items", "DISTINCT *"),
    ] {
        let err = rows(&c, sql).await.expect_err(sql);
        assert!(
            err.starts_with("0A000") && err.contains(words),
            "{sql}: {err}"
        );
    }

    // A merge that would hold more rows than merge_row_limit fails with
    // 54000 and the session goes on; streamed merges hold nothing, however
    // deep their OFFSET.
    let small =
        Proxy::start(&config.replace("pool_size = 20\n", "pool_size = 20\nmerge_row_limit = 50\n"))
            .expect("proxy with merge_row_limit = 50");
    let c2 = small.connect("shop", "shop").await.expect("connect");
    let many = "SELECT price, count(*) FROM items GROUP BY price ORDER BY count(*) DESC, price";
    assert!(rows(&r, many).await.expect("reference").len() > 50);
    for _ in 0..2 {
        let err = rows(&c2, many).await.expect_err("over the limit");
        assert!(
            err.starts_with("54000") && err.contains("merge_row_limit = 50"),
            "{err}"
        );
        assert_eq!(
            rows(&c2, "SELECT 1").await.expect("session alive"),
            [[Some("1".to_string())]]
        );
    }
    for sql in [
        "SELECT id FROM items ORDER BY id OFFSET 250",
        "SELECT id, name FROM items ORDER BY name, id LIMIT 10 OFFSET 280",
        "SELECT DISTINCT price FROM items ORDER BY price OFFSET 100",
        "SELECT price, count(*) FROM items GROUP BY price ORDER BY price OFFSET 120",
        "SELECT price, count(*) FROM items GROUP BY price ORDER BY count(*) DESC, price LIMIT 10 OFFSET 5",
        "SELECT k, avg(n) FROM vals GROUP BY k ORDER BY 2",
    ] {
        let want = rows(&r, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: reference: {e}"));
        let got = rows(&c2, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: limited shardgate: {e}"));
        assert_eq!(got, want, "{sql}");
    }

    // A sort on a type the merge does not know is refused, not misordered.
    let err = rows(&c, "SELECT id, ARRAY[id] AS a FROM items ORDER BY a").await;
    let err = err.expect_err("array sort key");
    assert!(err.starts_with("0A000"), "{err}");
    assert_eq!(
        rows(&c, "SELECT 1").await.expect("session alive"),
        [[Some("1".to_string())]]
    );
}
