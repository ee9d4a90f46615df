//! The `users`/`orders` fixture of the differential subquery and CTE tests:
//! 300 users and 1000 orders (`orders` co-located with `users` on
//! `user_id`), loaded both into a plain reference server and, through
//! shardgate, onto three shards.

use crate::reference::{self, rows, Differential};

/// The tables.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE users (id bigint PRIMARY KEY, name text, tier int)",
    "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, status text, total int)",
];

/// 300 users; 1000 orders, none for every fifth user, some for user ids
/// without a user (300..320).
pub fn data() -> Vec<String> {
    let users: Vec<String> = (0..300i64)
        .map(|i| format!("({i}, 'user {i}', {})", i % 3))
        .collect();
    let statuses = ["paid", "shipped", "cancelled", "new"];
    let orders: Vec<String> = (0..1000i64)
        .map(|i| {
            let mut user = (i * 7919) % 320;
            if user < 300 && user % 5 == 0 {
                user += 1;
            }
            format!(
                "({}, {user}, '{}', {})",
                i + 10_000,
                statuses[(i % 4) as usize],
                (i * 37) % 1000
            )
        })
        .collect();
    vec![
        format!(
            "INSERT INTO users (id, name, tier) VALUES {}",
            users.join(", ")
        ),
        format!(
            "INSERT INTO orders (id, user_id, status, total) VALUES {}",
            orders.join(", ")
        ),
    ]
}

/// The shards, the reference and the proxy of the subquery and CTE tests.
pub type UsersOrders = Differential;

/// Starts three shards, the reference and the proxy (`users` by `id`,
/// `orders` by `user_id` co-located with them), and loads the rows into both.
pub async fn start() -> UsersOrders {
    let tables = "[tables.users]\nsharding_key = \"id\"\n\n[tables.orders]\nsharding_key = \"user_id\"\ncolocate_with = \"users\"\n";
    let mut load: Vec<String> = SCHEMA.iter().map(|s| s.to_string()).collect();
    load.extend(data());
    reference::start(3, 1, tables, &load, ("orders", 100)).await
}

/// Runs each query through shardgate and on the reference: `allowed` must
/// return the reference's rows (which must not be empty), `refused` must
/// fail with SQLSTATE 0A000 (and run on the reference).
pub async fn compare(f: &UsersOrders, allowed: &[&str], refused: &[&str]) {
    for sql in allowed {
        let want = rows(&f.reference_client, sql).await.expect("reference");
        let got = rows(&f.client, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(!want.is_empty(), "{sql}: the reference returns rows");
        assert_eq!(got, want, "{sql}");
    }
    for sql in refused {
        rows(&f.reference_client, sql).await.expect("reference");
        let err = rows(&f.client, sql).await.expect_err(sql);
        assert!(err.starts_with("0A000"), "{sql}: {err}");
    }
}
