//! The shop: its schema ([`SCHEMA`]), the `[tables.*]` part of its shardgate
//! config ([`TABLES`]) and deterministic sample data as SQL statements, plus
//! [`load`], which creates and fills the shop through a shardgate proxy.
//!
//! Every statement is meant to be sent on its own in the simple protocol
//! (`simple_query`/`batch_execute`): that is where shardgate splits a
//! multi-row INSERT per shard and fills a missing `users.id`.

use std::fmt::Write as _;

/// `schema.sql`: the tables, indexes and the 2026 month tables of `orders_archive`.
pub const SCHEMA: &str = include_str!("../schema.sql");

/// `shardgate.toml`: the `[tables.*]` sections; append them to a config's shards.
pub const TABLES: &str = include_str!("../shardgate.toml");

/// How many users [`user_inserts`] creates.
pub const USERS: usize = 200;
/// How many products [`product_inserts`] creates (ids 1..=PRODUCTS).
pub const PRODUCTS: usize = 20;
/// How many orders [`order_inserts`] creates (ids 1..=ORDERS).
pub const ORDERS: usize = 500;
/// The months of 2026 that have an `orders_archive_2026_MM` table and archive rows.
pub const ARCHIVE_MONTHS: std::ops::RangeInclusive<u32> = 1..=6;
/// Archive rows per month.
pub const ARCHIVE_ROWS_PER_MONTH: usize = 25;

/// Rows per multi-row INSERT.
const BATCH: usize = 50;

/// The statements of `sql` in order: split on `;` at line ends, `--` comment
/// lines dropped, empty pieces skipped.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with("--") {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix(';') {
            current.push_str(body);
            let stmt = current.trim();
            if !stmt.is_empty() {
                out.push(stmt.to_string());
            }
            current.clear();
        } else {
            current.push_str(trimmed);
            current.push('\n');
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// The statements of [`SCHEMA`].
pub fn schema_statements() -> Vec<String> {
    statements(SCHEMA)
}

/// A price in cents, written as a numeric literal (`12.34`).
fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The price of product `id` (1-based), in cents.
fn product_price(id: usize) -> u64 {
    199 + (id as u64 * 1373) % 9800
}

const ADJECTIVES: [&str; 5] = ["Red", "Blue", "Green", "Small", "Large"];
const NOUNS: [&str; 4] = ["Mug", "Pen", "Notebook", "Lamp"];
const FIRST: [&str; 10] = [
    "Alice", "Bob", "Chloe", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas",
];
const LAST: [&str; 10] = [
    "Martin", "Bernard", "Dubois", "Smith", "Garcia", "Müller", "Rossi", "Nowak", "Silva", "Kim",
];
const STATUSES: [&str; 4] = ["new", "paid", "shipped", "delivered"];

/// One multi-row INSERT per [`BATCH`] rows of `rows` (each `(…)`).
fn batched(head: &str, rows: &[String]) -> Vec<String> {
    rows.chunks(BATCH)
        .map(|chunk| format!("{head} VALUES {}", chunk.join(", ")))
        .collect()
}

/// Products 1..=[`PRODUCTS`] (one INSERT, broadcast to every shard) and an
/// inventory row per product (split per shard by product_id).
pub fn product_inserts() -> Vec<String> {
    let products: Vec<String> = (1..=PRODUCTS)
        .map(|id| {
            let name = format!(
                "{} {}",
                ADJECTIVES[id % ADJECTIVES.len()],
                NOUNS[id % NOUNS.len()]
            );
            format!("({id}, '{name}', {})", money(product_price(id)))
        })
        .collect();
    let stock: Vec<String> = (1..=PRODUCTS)
        .map(|id| format!("({id}, {})", (id * 37) % 100 + 5))
        .collect();
    let mut out = batched("INSERT INTO products (id, name, price)", &products);
    out.extend(batched("INSERT INTO inventory (product_id, stock)", &stock));
    out
}

/// [`USERS`] users without ids (shardgate generates them), [`BATCH`] per INSERT.
pub fn user_inserts() -> Vec<String> {
    let rows: Vec<String> = (0..USERS)
        .map(|n| {
            let first = FIRST[n % FIRST.len()];
            let last = LAST[(n / FIRST.len()) % LAST.len()];
            format!(
                "('{first} {last}', '{}.{}{n}@shop.example', '2026-{:02}-{:02} 09:00:00+00')",
                first.to_lowercase(),
                last.to_lowercase(),
                1 + n % 6,
                1 + n % 28
            )
        })
        .collect();
    batched("INSERT INTO users (name, email, created_at)", &rows)
}

/// The query that reads the generated user ids back (a key-less read:
/// every shard, rows concatenated), on the primaries so it sees the rows
/// just written.
pub const USER_IDS_QUERY: &str = "/* shardgate: primary */ SELECT id FROM users";

/// [`ORDERS`] orders of the users `user_ids` (ids 1..=ORDERS, spread over the
/// users) and their 1 to 3 items each, [`BATCH`] rows per INSERT (split per
/// shard by user_id). Empty when `user_ids` is.
pub fn order_inserts(user_ids: &[i64]) -> Vec<String> {
    if user_ids.is_empty() {
        return Vec::new();
    }
    let mut orders = Vec::new();
    let mut items = Vec::new();
    for id in 1..=ORDERS {
        let user = user_ids[(id * 7) % user_ids.len()];
        let mut total = 0;
        for j in 0..1 + id % 3 {
            // 3·id + 7·j mod PRODUCTS: distinct for j = 0, 1, 2
            let product = (id * 3 + j * 7) % PRODUCTS + 1;
            let qty = 1 + (id + j) % 4;
            let price = product_price(product);
            total += price * qty as u64;
            items.push(format!(
                "({user}, {id}, {product}, {qty}, {})",
                money(price)
            ));
        }
        orders.push(format!(
            "({id}, {user}, {}, '{}', '2026-{:02}-{:02} 12:00:00+00')",
            money(total),
            STATUSES[id % STATUSES.len()],
            7 + id % 6,
            1 + id % 28
        ));
    }
    let mut out = batched(
        "INSERT INTO orders (id, user_id, total, status, created_at)",
        &orders,
    );
    out.extend(batched(
        "INSERT INTO order_items (user_id, order_id, product_id, qty, price)",
        &items,
    ));
    out
}

/// Archive rows: one INSERT per month of [`ARCHIVE_MONTHS`] (a statement may
/// use one month table per shard), [`ARCHIVE_ROWS_PER_MONTH`] rows each, ids
/// `month * 1000 + n`. Empty when `user_ids` is.
pub fn archive_inserts(user_ids: &[i64]) -> Vec<String> {
    if user_ids.is_empty() {
        return Vec::new();
    }
    ARCHIVE_MONTHS
        .map(|month| {
            let mut sql =
                String::from("INSERT INTO orders_archive (id, user_id, total, created_at) VALUES ");
            for n in 0..ARCHIVE_ROWS_PER_MONTH {
                let id = month as usize * 1000 + n;
                let user = user_ids[(id * 13) % user_ids.len()];
                if n > 0 {
                    sql.push_str(", ");
                }
                let _ = write!(
                    sql,
                    "({id}, {user}, {}, '2026-{month:02}-{:02}')",
                    money(product_price(n + 1) * (1 + n as u64 % 3)),
                    1 + n % 28
                );
            }
            sql
        })
        .collect()
}

/// A statement of the shop that failed.
#[derive(Debug, thiserror::Error)]
#[error("{statement}: {source}")]
pub struct LoadError {
    /// The statement (its first 120 characters).
    pub statement: String,
    /// What the server or proxy answered.
    #[source]
    pub source: tokio_postgres::Error,
}

/// What [`load`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The generated ids of the users, sorted.
    pub user_ids: Vec<i64>,
}

async fn run(client: &tokio_postgres::Client, sql: &str) -> Result<(), LoadError> {
    client.batch_execute(sql).await.map_err(|source| LoadError {
        statement: sql.chars().take(120).collect(),
        source,
    })
}

/// Creates the schema and loads the sample data through a shardgate proxy
/// serving [`TABLES`], one statement at a time.
pub async fn load(client: &tokio_postgres::Client) -> Result<Loaded, LoadError> {
    for sql in schema_statements() {
        run(client, &sql).await?;
    }
    for sql in product_inserts().iter().chain(&user_inserts()) {
        run(client, sql).await?;
    }
    let rows = client
        .simple_query(USER_IDS_QUERY)
        .await
        .map_err(|source| LoadError {
            statement: USER_IDS_QUERY.to_string(),
            source,
        })?;
    let mut user_ids: Vec<i64> = rows
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0)?.parse().ok(),
            _ => None,
        })
        .collect();
    user_ids.sort_unstable();
    for sql in order_inserts(&user_ids)
        .iter()
        .chain(&archive_inserts(&user_ids))
    {
        run(client, sql).await?;
    }
    Ok(Loaded { user_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_splits_into_statements() {
        let s = schema_statements();
        assert!(s[0].starts_with("CREATE TABLE users ("), "{}", s[0]);
        assert!(s.iter().all(|x| !x.contains(';') && !x.contains("--")));
        assert_eq!(
            s.iter()
                .filter(|x| x.contains("(LIKE orders_archive INCLUDING DEFAULTS)"))
                .count(),
            ARCHIVE_MONTHS.count()
        );
        assert_eq!(
            statements("SELECT 1;\n-- c\nSELECT\n 2 ;\n\nSELECT 3"),
            ["SELECT 1", "SELECT\n 2", "SELECT 3"]
        );
    }

    #[test]
    fn sample_data_sizes() {
        let users: usize = user_inserts()
            .iter()
            .map(|s| s.matches("@shop.example").count())
            .sum();
        assert_eq!(users, USERS);
        let orders = order_inserts(&[1, 2, 3]);
        let order_rows: usize = orders
            .iter()
            .filter(|s| s.starts_with("INSERT INTO orders "))
            .map(|s| s.matches("+00')").count())
            .sum();
        assert_eq!(order_rows, ORDERS);
        assert!(order_inserts(&[]).is_empty());
        assert_eq!(archive_inserts(&[7]).len(), ARCHIVE_MONTHS.count());
    }
}
