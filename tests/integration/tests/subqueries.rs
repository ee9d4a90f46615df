//! Differential test of subqueries tied to the outer rows by co-located
//! sharding keys (`key IN (SELECT key …)`, `[NOT] EXISTS (… WHERE
//! inner.key = outer.key)`): the same users and orders in one plain Postgres
//! and over three shards behind shardgate must give the same rows; other
//! subqueries over sharded tables are refused with SQLSTATE 0A000.

use integration::users_orders;

const ALLOWED: &[&str] = &[
    "SELECT id, name FROM users WHERE id IN (SELECT user_id FROM orders WHERE status = 'paid') ORDER BY id",
    "SELECT id FROM users u WHERE u.id = ANY (SELECT o.user_id FROM orders o WHERE o.total > 500) ORDER BY id",
    "SELECT o.id, o.total FROM orders o WHERE o.user_id IN (SELECT u.id FROM users u WHERE u.tier = 2) ORDER BY o.id",
    "SELECT o.id, o.user_id FROM orders o WHERE o.user_id IN (SELECT u.id FROM users u WHERE u.tier = 2) ORDER BY o.id LIMIT 25 OFFSET 5",
    "SELECT o.id FROM orders o WHERE o.user_id = 8 AND o.user_id IN (SELECT id FROM users WHERE tier = 2) ORDER BY o.id",
    "SELECT o.id FROM orders o WHERE o.user_id IN (7, 8, 11, 203) AND o.user_id IN (SELECT id FROM users WHERE tier = 2) ORDER BY o.id",
    "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.status = 'shipped') ORDER BY id",
    "SELECT id, name FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) ORDER BY id",
    "SELECT o.id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id) ORDER BY o.id",
    "SELECT id FROM users u WHERE u.id IN (3, 4, 5, 6, 150) AND EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id) ORDER BY id",
    "SELECT u.id, o.id FROM users u JOIN orders o ON o.user_id = u.id WHERE EXISTS (SELECT 1 FROM orders x WHERE x.user_id = u.id AND x.total > 900) ORDER BY o.id LIMIT 40",
    "SELECT count(*) FROM users WHERE id IN (SELECT user_id FROM orders WHERE total < 100)",
    "SELECT id FROM users WHERE id IN (SELECT DISTINCT user_id FROM orders) ORDER BY id DESC LIMIT 30",
    "SELECT id FROM users u WHERE u.tier = 1 AND u.id IN (SELECT user_id FROM orders WHERE status = 'paid') AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.status = 'cancelled') ORDER BY id",
    "SELECT user_id, count(*) FROM orders o WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = o.user_id AND u.tier = 0) GROUP BY user_id ORDER BY user_id",
    "SELECT id FROM users u WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id AND o.total > 100) ORDER BY id LIMIT 20",
];

const REFUSED: &[&str] = &[
    "SELECT id FROM users WHERE id NOT IN (SELECT user_id FROM orders) ORDER BY id",
    "SELECT id FROM users WHERE tier IN (SELECT total FROM orders) ORDER BY id",
    "SELECT u.id, (SELECT count(*) FROM orders o WHERE o.user_id = u.id) FROM users u ORDER BY u.id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_subqueries_equal_one_database() {
    let f = users_orders::start().await;
    users_orders::compare(&f, ALLOWED, &[]).await;
    let (client, reference_client) = (&f.client, &f.reference_client);

    // Extended protocol, the outer key a parameter: one shard.
    let sql = "SELECT o.id FROM orders o WHERE o.user_id = $1 AND o.user_id IN (SELECT id FROM users WHERE tier = $2) ORDER BY o.id";
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    let want = ids(reference_client
        .query(sql, &[&11i64, &2i32])
        .await
        .expect("reference"));
    let got = ids(client
        .query(sql, &[&11i64, &2i32])
        .await
        .expect("through shardgate"));
    assert!(!want.is_empty());
    assert_eq!(got, want, "{sql}");

    users_orders::compare(&f, &[], REFUSED).await;
}
