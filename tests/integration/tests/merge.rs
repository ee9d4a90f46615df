//! Differential tests of ordered merges: the same rows in one plain Postgres
//! (the reference) and sharded over two shards behind shardgate; every
//! ORDER BY / LIMIT / OFFSET query must return exactly the reference's rows
//! in the reference's order. Text keys include mixed case and non-ASCII
//! strings; the servers use the C collation, which is the order the merge
//! uses (see README).

use integration::{config_for_shards, Cluster, ClusterOptions, Proxy};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Every row of a simple query, as text.
async fn rows(c: &Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let msgs = c.simple_query(sql).await.map_err(|e| {
        e.as_db_error()
            .map(|d| format!("{}: {}", d.code().code(), d.message()))
            .unwrap_or_else(|| e.to_string())
    })?;
    Ok(msgs
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

/// 300 rows with NULLs, duplicates, negative and special values.
fn data() -> String {
    let names = [
        "a", "B", "b", "Zed", "zed", "Zoë", "ábc", "Émile", "émile", "", "a b", "ä", "Ω", "z",
    ];
    let mut values = Vec::new();
    for i in 0..300i64 {
        let grp = if i % 11 == 0 {
            "NULL".to_string()
        } else {
            (i % 7 - 3).to_string()
        };
        let price = match i % 13 {
            0 => "NULL".to_string(),
            1 => "'NaN'".to_string(),
            _ => format!("{}.{:02}", (i * 37) % 200 - 100, (i * 7) % 100),
        };
        let score = match i % 17 {
            0 => "NULL".to_string(),
            1 => "'NaN'".to_string(),
            2 => "'-Infinity'".to_string(),
            3 => "'Infinity'".to_string(),
            _ => format!("{}", ((i * 7919) % 1000) as f64 / 8.0 - 60.0),
        };
        let name = if i % 19 == 0 {
            "NULL".to_string()
        } else {
            format!("'{}'", names[(i as usize * 5) % names.len()])
        };
        let flag = match i % 3 {
            0 => "true",
            1 => "false",
            _ => "NULL",
        };
        let at = if i % 23 == 0 {
            "NULL".to_string()
        } else {
            format!(
                "'2026-{:02}-{:02} {:02}:{:02}:00+0{}'",
                i % 12 + 1,
                i % 28 + 1,
                i % 24,
                i % 60,
                i % 3
            )
        };
        let day = if i % 29 == 0 {
            "NULL".to_string()
        } else {
            format!("'2025-{:02}-{:02}'", i % 12 + 1, (i * 3) % 28 + 1)
        };
        values.push(format!(
            "({}, {grp}, {price}, {score}, {name}, {flag}, {at}, {day})",
            i * 7 - 400
        ));
    }
    format!(
        "INSERT INTO items (id, grp, price, score, name, flag, at, day) VALUES {}",
        values.join(", ")
    )
}

const SCHEMA: &str = "CREATE TABLE items (id bigint PRIMARY KEY, grp int, price numeric(10,2), score float8, name text, flag bool, at timestamptz, day date)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_merges_equal_one_database() {
    let opts = ClusterOptions {
        replicas: 1,
        ..Default::default()
    };
    let shards = Cluster::start_many(2, opts).expect("shards");
    let reference = Cluster::start(ClusterOptions {
        replicas: 0,
        ..Default::default()
    })
    .expect("reference");
    let refs: Vec<&Cluster> = shards.iter().collect();
    let config = format!(
        "{}\n[tables.items]\nsharding_key = \"id\"\n",
        config_for_shards(&refs)
    );
    let proxy = Proxy::start(&config).expect("proxy");
    let c = proxy.connect("shop", "shop").await.expect("connect");
    let r = reference.primary.connect("shop").await.expect("reference");
    for sql in [SCHEMA.to_string(), data()] {
        c.batch_execute(&sql).await.expect("through shardgate");
        r.batch_execute(&sql).await.expect("reference");
    }
    for s in &shards {
        s.wait_replicated().await.expect("replicated");
        let d = s.primary.connect("shop").await.expect("direct");
        let n: i64 = d
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .expect("count")
            .get(0);
        assert!(n > 100, "both shards hold rows ({n})");
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

    // Aggregates that cannot be combined exactly are refused.
    for (sql, words) in [
        ("SELECT avg(price) FROM items", "aggregate function avg"),
        ("SELECT sum(score) FROM items", "floating-point"),
        ("SELECT count(DISTINCT name) FROM items", "count(DISTINCT"),
        ("SELECT count(*), 1 FROM items", "next to aggregates"),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp HAVING count(*) > 3",
            "HAVING",
        ),
        (
            "SELECT grp, count(*) FROM items GROUP BY grp ORDER BY 2",
            "ORDER BY other than the group keys",
        ),
        (
            "SELECT grp, avg(price) FROM items GROUP BY grp",
            "aggregate function avg",
        ),
        (
            "SELECT DISTINCT grp, count(*) FROM items GROUP BY grp",
            "DISTINCT with GROUP BY",
        ),
        (
            "SELECT lower(name), count(*) FROM items GROUP BY name",
            "not in the select list",
        ),
        ("SELECT DISTINCT * FROM items", "DISTINCT *"),
    ] {
        let err = rows(&c, sql).await.expect_err(sql);
        assert!(
            err.starts_with("0A000") && err.contains(words),
            "{sql}: {err}"
        );
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
