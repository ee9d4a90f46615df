//! Differential test of CTEs and derived tables that keep the sharding key
//! (row-wise, or grouped by the key) and are read alone or joined on the key
//! to co-located tables: the same users and orders in one plain Postgres and
//! over three shards behind shardgate must give the same rows; CTEs that
//! would need rows of several shards are refused with SQLSTATE 0A000.

use integration::users_orders;

const ALLOWED: &[&str] = &[
    "WITH t AS (SELECT user_id, sum(total) AS spent FROM orders GROUP BY user_id) SELECT u.id, u.name, t.spent FROM users u JOIN t ON t.user_id = u.id ORDER BY u.id",
    "SELECT u.id, o.id, o.total FROM users u JOIN (SELECT id, user_id AS uid, total FROM orders WHERE status = 'paid') o ON o.uid = u.id ORDER BY o.id",
    "SELECT * FROM (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id) t ORDER BY 2 DESC, 1 LIMIT 5",
    "SELECT t.uid, t.n FROM (SELECT user_id AS uid, count(*) AS n FROM orders GROUP BY user_id) t ORDER BY t.uid",
    "SELECT t.uid, t.spent FROM (SELECT user_id AS uid, sum(total) AS spent FROM orders GROUP BY user_id HAVING count(*) > 3) t ORDER BY t.spent DESC, t.uid LIMIT 10 OFFSET 2",
    "WITH t AS (SELECT user_id, count(*) AS n FROM orders WHERE user_id = 42 GROUP BY user_id) SELECT * FROM t",
    "WITH t AS (SELECT user_id, max(total) AS top FROM orders GROUP BY user_id) SELECT count(*), sum(top), max(top) FROM t",
    "WITH t AS (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id) SELECT n, count(*) FROM t GROUP BY n ORDER BY n",
    "SELECT u.id, t.n FROM users u LEFT JOIN (SELECT user_id, count(*) AS n FROM orders GROUP BY 1) t ON t.user_id = u.id WHERE u.tier = 1 ORDER BY u.id",
    "SELECT u.id, t.n FROM users u, (SELECT user_id, count(*) AS n FROM orders WHERE status <> 'cancelled' GROUP BY user_id) t WHERE t.user_id = u.id AND u.tier = 2 ORDER BY t.n DESC, u.id LIMIT 15",
    "WITH a AS (SELECT user_id, total FROM orders WHERE total > 800), b AS (SELECT user_id, count(*) AS n FROM orders GROUP BY user_id) SELECT a.user_id, a.total, b.n FROM a JOIN b ON b.user_id = a.user_id ORDER BY a.total, a.user_id, b.n",
    "SELECT s.id, s.name FROM (SELECT * FROM users WHERE tier = 0) s JOIN orders o ON o.user_id = s.id AND o.total > 950 ORDER BY o.id",
    "WITH t(k, c) AS (SELECT user_id, count(DISTINCT total) FROM orders GROUP BY user_id) SELECT k, c FROM t WHERE c >= 3 ORDER BY k",
];

const REFUSED: &[&str] = &[
    "WITH t AS (SELECT status, count(*) AS n FROM orders GROUP BY status) SELECT * FROM t ORDER BY status",
    "WITH t AS (SELECT user_id, total FROM orders ORDER BY total LIMIT 10) SELECT u.id, t.total FROM t JOIN users u ON u.id = t.user_id ORDER BY 2, 1",
    "SELECT * FROM (SELECT user_id, total FROM orders) t JOIN users u ON u.tier = t.user_id ORDER BY 1, 2",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_preserving_ctes_equal_one_database() {
    let f = users_orders::start().await;
    users_orders::compare(&f, ALLOWED, REFUSED).await;
}
