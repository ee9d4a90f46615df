//! A deterministic query generator over the shop schema, for differential
//! tests (the same rows sharded behind shardgate and in one plain Postgres).
//!
//! [`Data`] is the fixed data set (explicit ids, duplicates in non-key
//! columns, mixed-case and non-ASCII text, users without orders, products
//! without inventory); [`generate`] turns a seed into one [`Query`] that
//! reads it, with the way its answers may be compared ([`Compare`]).
//! Everything is pure: the same seed gives the same SQL on every machine.

use std::fmt;

/// A small, stable pseudo-random generator (SplitMix64): its sequence never
/// changes with a crate version, so a seed reproduces a query forever.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as usize) as i64
    }

    /// Shuffles `items` in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// The seed of query number `index` of a run started with `seed`: each query
/// can be regenerated on its own.
pub fn query_seed(seed: u64, index: u64) -> u64 {
    Rng::new(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

// ---------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------

/// Users (the first [`USERS_WITH_ORDERS`] have orders).
pub const USERS: usize = 240;
/// Users that own orders (the rest have none: LEFT JOINs give NULLs).
pub const USERS_WITH_ORDERS: usize = 200;
/// Orders, ids `1..=ORDERS`.
pub const ORDERS: usize = 1100;
/// Products, ids `1..=PRODUCTS`.
pub const PRODUCTS: usize = 30;

const FIRST: [&str; 16] = [
    "Alice", "alice", "ALICE", "Émile", "émile", "Zoë", "zoe", "Ωmega", "Bob", "bob", "Ärger",
    "O'Brien", "Chloé", "ß", "a b", "Z",
];
const LAST: [&str; 6] = ["", " Martin", " Müller", " martin", " Kim", " Ñoño"];
const DOMAINS: [&str; 3] = ["shop.example", "Example.COM", "exämple.org"];
/// Order statuses (text with case and non-ASCII variants).
pub const STATUSES: [&str; 6] = ["new", "paid", "Paid", "shipped", "delivered", "réglé"];
const PRODUCT_NAMES: [&str; 10] = [
    "Red Mug",
    "red mug",
    "Blue Pen",
    "Émail Lamp",
    "Zoë's Cup",
    "lamp",
    "Lamp",
    "Ω Notebook",
    "Blue Pen",
    "äpfel",
];
const PRICES: [&str; 7] = ["4.99", "12.50", "12.50", "0.99", "100.00", "7.00", "12.5"];

/// The fixed rows of the shop used by the differential test.
#[derive(Debug, Clone)]
pub struct Data {
    /// User ids, by user index.
    pub user_ids: Vec<i64>,
    /// User names, by user index.
    pub user_names: Vec<String>,
    /// User emails, by user index.
    pub emails: Vec<String>,
    /// `(id, user id)` of every order.
    pub orders: Vec<(i64, i64)>,
    /// Order totals seen in the data (duplicates removed).
    pub totals: Vec<String>,
}

impl Default for Data {
    fn default() -> Self {
        Data::new()
    }
}

/// `s` as an SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn user_name(i: usize) -> String {
    format!("{}{}", FIRST[i % FIRST.len()], LAST[(i / 7) % LAST.len()])
}

fn email(i: usize) -> String {
    format!(
        "{}{i}@{}",
        FIRST[i % FIRST.len()].to_lowercase().replace(' ', "."),
        DOMAINS[i % DOMAINS.len()]
    )
}

fn order_total(id: usize) -> String {
    format!("{}.{:02}", (id * 53) % 97, (id * 7) % 4 * 25)
}

fn order_user_index(id: usize) -> usize {
    (id * 37 + id / 11) % USERS_WITH_ORDERS
}

fn timestamp(month: usize, day: usize, hour: usize) -> String {
    format!("2026-{month:02}-{day:02} {hour:02}:00:00+00")
}

impl Data {
    /// The data set (always the same).
    pub fn new() -> Data {
        let user_ids: Vec<i64> = (0..USERS).map(|i| i as i64 * 7919 - 400_000).collect();
        let user_names = (0..USERS).map(user_name).collect();
        let emails = (0..USERS).map(email).collect();
        let orders = (1..=ORDERS)
            .map(|id| (id as i64, user_ids[order_user_index(id)]))
            .collect();
        let mut totals: Vec<String> = (1..=ORDERS).map(order_total).collect();
        totals.sort();
        totals.dedup();
        Data {
            user_ids,
            user_names,
            emails,
            orders,
            totals,
        }
    }

    /// The INSERT statements, parents first, [`BATCH`] rows each: send the
    /// same statements to shardgate and to the reference.
    pub fn inserts(&self) -> Vec<String> {
        const BATCH: usize = 100;
        let batched = |head: &str, rows: Vec<String>| -> Vec<String> {
            rows.chunks(BATCH)
                .map(|c| format!("{head} VALUES {}", c.join(", ")))
                .collect()
        };
        let products = (1..=PRODUCTS)
            .map(|id| {
                format!(
                    "({id}, {}, {})",
                    quote(PRODUCT_NAMES[id % PRODUCT_NAMES.len()]),
                    PRICES[id % PRICES.len()]
                )
            })
            .collect();
        let inventory = (1..=PRODUCTS)
            .filter(|id| id % 6 != 0)
            .map(|id| format!("({id}, {})", (id * 37) % 20))
            .collect();
        let users = (0..USERS)
            .map(|i| {
                format!(
                    "({}, {}, {}, {})",
                    self.user_ids[i],
                    quote(&self.user_names[i]),
                    quote(&self.emails[i]),
                    quote(&timestamp(1 + i % 6, 1 + i % 5, i % 3))
                )
            })
            .collect();
        let mut orders = Vec::new();
        let mut items = Vec::new();
        for &(id, user) in &self.orders {
            let n = id as usize;
            orders.push(format!(
                "({id}, {user}, {}, {}, {})",
                order_total(n),
                quote(STATUSES[(n * 5 + n / 7) % STATUSES.len()]),
                quote(&timestamp(1 + n % 6, 1 + n % 28, 12))
            ));
            for j in 0..1 + n % 3 {
                let product = (n * 3 + j * 7) % PRODUCTS + 1;
                items.push(format!(
                    "({user}, {id}, {product}, {}, {})",
                    1 + (n + j) % 5,
                    PRICES[(product + j) % PRICES.len()]
                ));
            }
        }
        let mut out = batched("INSERT INTO products (id, name, price)", products);
        out.extend(batched(
            "INSERT INTO inventory (product_id, stock)",
            inventory,
        ));
        out.extend(batched(
            "INSERT INTO users (id, name, email, created_at)",
            users,
        ));
        out.extend(batched(
            "INSERT INTO orders (id, user_id, total, status, created_at)",
            orders,
        ));
        out.extend(batched(
            "INSERT INTO order_items (user_id, order_id, product_id, qty, price)",
            items,
        ));
        out
    }
}

/// Every table of the data with its primary key, to check both sides hold
/// the same rows.
pub const TABLE_DUMPS: [&str; 5] = [
    "SELECT * FROM users ORDER BY id",
    "SELECT * FROM orders ORDER BY user_id, id",
    "SELECT * FROM order_items ORDER BY user_id, order_id, product_id",
    "SELECT * FROM products ORDER BY id",
    "SELECT * FROM inventory ORDER BY product_id",
];

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// A parameter value of a prepared statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// A bigint, sent in binary.
    Int8(i64),
    /// An integer, sent in binary.
    Int4(i32),
    /// A text value, sent in binary.
    Text(String),
    /// Any type, sent in the text format (numeric, timestamptz, and keys in
    /// text).
    AsText(String),
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::Int8(v) => write!(f, "{v}::int8"),
            Param::Int4(v) => write!(f, "{v}::int4"),
            Param::Text(v) => write!(f, "{v:?}::text"),
            Param::AsText(v) => write!(f, "{v:?} (text format)"),
        }
    }
}

/// How the answers of a query may be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Row by row: the ORDER BY fixes the order (it covers a unique key, or
    /// there is at most one row).
    Ordered,
    /// As multisets: the order is not fixed.
    Multiset,
    /// Only the number of rows (LIMIT without a total order).
    RowCount,
}

/// One generated query.
#[derive(Debug, Clone)]
pub struct Query {
    /// The SQL text.
    pub sql: String,
    /// Its `$n` values (run as a prepared statement when non-empty).
    pub params: Vec<Param>,
    /// Run through the extended protocol even without parameters.
    pub prepared: bool,
    /// How to compare the answers.
    pub compare: Compare,
    /// Its shape, for the summary (`select`, `distinct`, `aggregate`, …).
    pub kind: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Int8,
    Int4,
    Numeric,
    Text,
    Time,
    Bool,
}

/// Where a column's values come from, for literals that hit rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    UserId,
    OrderId,
    ProductId,
    Small,
    Money,
    UserName,
    Email,
    Status,
    ProductName,
    Time,
}

#[derive(Debug, Clone, Copy)]
struct Col {
    expr: &'static str,
    ty: Ty,
    domain: Domain,
    nullable: bool,
    /// Few distinct values: good for GROUP BY and DISTINCT.
    groupable: bool,
}

const fn col(expr: &'static str, ty: Ty, domain: Domain, groupable: bool) -> Col {
    Col {
        expr,
        ty,
        domain,
        nullable: false,
        groupable,
    }
}

const fn nullable(c: Col) -> Col {
    Col {
        nullable: true,
        ..c
    }
}

/// A FROM clause with what can be said about its rows.
struct Source {
    label: &'static str,
    from: &'static str,
    /// Single table: `SELECT *` is allowed.
    star: bool,
    cols: Vec<Col>,
    /// Columns that identify a row of the FROM clause.
    unique: Vec<&'static str>,
    /// The sharding key (or the broadcast table's id), for `=` and `IN`.
    key: Col,
    /// Expressions (with their type) usable in select lists.
    exprs: Vec<(&'static str, Ty, bool)>,
    /// Boolean expressions for bool_and/bool_or.
    bools: Vec<&'static str>,
    /// Subquery predicates (IN, EXISTS, scalar subqueries).
    subqueries: Vec<&'static str>,
}

const U_ID: Col = col("u.id", Ty::Int8, Domain::UserId, false);
const U_NAME: Col = col("u.name", Ty::Text, Domain::UserName, true);
const U_EMAIL: Col = col("u.email", Ty::Text, Domain::Email, false);
const U_CREATED: Col = col("u.created_at", Ty::Time, Domain::Time, true);
const O_ID: Col = col("o.id", Ty::Int8, Domain::OrderId, false);
const O_USER: Col = col("o.user_id", Ty::Int8, Domain::UserId, true);
const O_TOTAL: Col = col("o.total", Ty::Numeric, Domain::Money, false);
const O_STATUS: Col = col("o.status", Ty::Text, Domain::Status, true);
const O_CREATED: Col = col("o.created_at", Ty::Time, Domain::Time, true);
const I_USER: Col = col("i.user_id", Ty::Int8, Domain::UserId, true);
const I_ORDER: Col = col("i.order_id", Ty::Int8, Domain::OrderId, false);
const I_PRODUCT: Col = col("i.product_id", Ty::Int8, Domain::ProductId, true);
const I_QTY: Col = col("i.qty", Ty::Int4, Domain::Small, true);
const I_PRICE: Col = col("i.price", Ty::Numeric, Domain::Money, true);
const P_ID: Col = col("p.id", Ty::Int8, Domain::ProductId, true);
const P_NAME: Col = col("p.name", Ty::Text, Domain::ProductName, true);
const P_PRICE: Col = col("p.price", Ty::Numeric, Domain::Money, true);
const V_PRODUCT: Col = col("v.product_id", Ty::Int8, Domain::ProductId, true);
const V_STOCK: Col = col("v.stock", Ty::Int4, Domain::Small, true);
const S_N: Col = col("s.n", Ty::Int8, Domain::Small, true);
const S_SPENT: Col = col("s.spent", Ty::Numeric, Domain::Money, false);
const S_TOP: Col = col("s.top", Ty::Text, Domain::Status, true);
const S_STATUS: Col = col("s.status", Ty::Text, Domain::Status, true);

fn sources() -> Vec<Source> {
    let user_exprs = vec![
        ("lower(u.name)", Ty::Text, false),
        ("length(u.name)", Ty::Int4, false),
        ("u.id % 5", Ty::Int8, false),
    ];
    let order_exprs = vec![
        ("NULLIF(o.status, 'paid')", Ty::Text, true),
        ("o.total - 10", Ty::Numeric, false),
        ("o.id % 4", Ty::Int8, false),
    ];
    let item_exprs = vec![
        ("i.qty * i.price", Ty::Numeric, false),
        ("i.qty % 2", Ty::Int4, false),
    ];
    vec![
        Source {
            label: "users",
            from: "users u",
            star: true,
            cols: vec![U_ID, U_NAME, U_EMAIL, U_CREATED],
            unique: vec!["u.id"],
            key: U_ID,
            exprs: user_exprs.clone(),
            subqueries: vec!["EXISTS (SELECT 1 FROM orders o2 WHERE o2.user_id = u.id AND o2.status = 'paid')", "u.id NOT IN (SELECT o2.user_id FROM orders o2)", "u.id > (SELECT min(u2.id) + 500000 FROM users u2)"],
 bools: vec!["u.name LIKE 'A%'", "u.id > 0"],
        },
        Source {
            label: "orders",
            from: "orders o",
            star: true,
            cols: vec![O_ID, O_USER, O_TOTAL, O_STATUS, O_CREATED],
            unique: vec!["o.user_id", "o.id"],
            key: O_USER,
            exprs: order_exprs.clone(),
            subqueries: vec!["o.user_id IN (SELECT u2.id FROM users u2 WHERE u2.name LIKE 'A%')", "o.total > (SELECT avg(o2.total) FROM orders o2)"],
 bools: vec!["o.total > 40", "o.status = 'paid'"],
        },
        Source {
            label: "order_items",
            from: "order_items i",
            star: true,
            cols: vec![I_USER, I_ORDER, I_PRODUCT, I_QTY, I_PRICE],
            unique: vec!["i.user_id", "i.order_id", "i.product_id"],
            key: I_USER,
            exprs: item_exprs.clone(),
            subqueries: vec!["i.product_id IN (SELECT p2.id FROM products p2 WHERE p2.price > 10)", "i.qty = (SELECT max(i2.qty) FROM order_items i2)"],
 bools: vec!["i.qty > 2", "i.price < 10"],
        },
        Source {
            label: "inventory",
            from: "inventory v",
            star: true,
            cols: vec![V_PRODUCT, V_STOCK],
            unique: vec!["v.product_id"],
            key: V_PRODUCT,
            exprs: vec![("v.stock * 2", Ty::Int4, false)],
            subqueries: vec!["v.product_id IN (SELECT p2.id FROM products p2 WHERE p2.name LIKE '%a%')", "v.stock < (SELECT count(*) FROM order_items i2 WHERE i2.product_id = v.product_id)"],
 bools: vec!["v.stock > 5"],
        },
        Source {
            label: "products",
            from: "products p",
            star: true,
            cols: vec![P_ID, P_NAME, P_PRICE],
            unique: vec!["p.id"],
            key: P_ID,
            exprs: vec![("upper(p.name)", Ty::Text, false)],
            subqueries: vec!["p.id IN (SELECT v2.product_id FROM inventory v2 WHERE v2.stock > 5)", "NOT EXISTS (SELECT 1 FROM inventory v2 WHERE v2.product_id = p.id)", "p.price < (SELECT max(i2.price) FROM order_items i2)"],
 bools: vec!["p.price > 5"],
        },
        Source {
            label: "orders⋈items",
            from: "orders o JOIN order_items i ON o.user_id = i.user_id AND o.id = i.order_id",
            star: false,
            cols: vec![
                O_ID, O_USER, O_TOTAL, O_STATUS, O_CREATED, I_PRODUCT, I_QTY, I_PRICE,
            ],
            unique: vec!["i.user_id", "i.order_id", "i.product_id"],
            key: O_USER,
            exprs: [order_exprs.clone(), item_exprs.clone()].concat(),
            subqueries: vec!["i.product_id IN (SELECT p2.id FROM products p2 WHERE p2.price > 10)"],
 bools: vec!["i.qty > 2", "o.status = 'paid'"],
        },
        Source {
            label: "users⋈orders",
            from: "users u JOIN orders o ON o.user_id = u.id",
            star: false,
            cols: vec![U_ID, U_NAME, U_EMAIL, O_ID, O_TOTAL, O_STATUS, O_CREATED],
            unique: vec!["o.user_id", "o.id"],
            key: U_ID,
            exprs: [user_exprs.clone(), order_exprs.clone()].concat(),
            subqueries: vec!["EXISTS (SELECT 1 FROM order_items i2 WHERE i2.user_id = o.user_id AND i2.order_id = o.id AND i2.qty > 3)"],
 bools: vec!["o.total > 40", "u.name LIKE 'A%'"],
        },
        Source {
            label: "users⟕orders",
            from: "users u LEFT JOIN orders o ON o.user_id = u.id",
            star: false,
            cols: vec![
                U_ID,
                U_NAME,
                nullable(O_ID),
                nullable(O_TOTAL),
                nullable(O_STATUS),
            ],
            unique: vec!["u.id", "o.id"],
            key: U_ID,
            exprs: vec![
                // -1.00, not 0: an order total of 0.00 and a 0 would be equal
                // keys with two spellings, either one a right answer.
                ("coalesce(o.total, -1.00)", Ty::Numeric, false),
                ("lower(u.name)", Ty::Text, false),
            ],
            subqueries: vec!["NOT EXISTS (SELECT 1 FROM order_items i2 WHERE i2.user_id = u.id)"],
 bools: vec!["o.id IS NULL", "o.total > 40"],
        },
        Source {
            label: "users⋈orders⋈items",
            from: "users u JOIN orders o ON o.user_id = u.id \
                   JOIN order_items i ON i.user_id = o.user_id AND i.order_id = o.id",
            star: false,
            cols: vec![U_ID, U_NAME, O_ID, O_STATUS, I_PRODUCT, I_QTY, I_PRICE],
            unique: vec!["i.user_id", "i.order_id", "i.product_id"],
            key: U_ID,
            exprs: item_exprs.clone(),
            subqueries: vec![],
 bools: vec!["i.qty > 2", "u.name LIKE 'A%'"],
        },
        Source {
            label: "items⋈products",
            from: "order_items i JOIN products p ON p.id = i.product_id",
            star: false,
            cols: vec![I_USER, I_ORDER, I_PRODUCT, I_QTY, I_PRICE, P_NAME, P_PRICE],
            unique: vec!["i.user_id", "i.order_id", "i.product_id"],
            key: I_USER,
            exprs: vec![
                ("i.qty * p.price", Ty::Numeric, false),
                ("i.price - p.price", Ty::Numeric, false),
            ],
            subqueries: vec![],
 bools: vec!["i.price = p.price", "p.price > 5"],
        },
        Source {
            label: "products⋈inventory",
            from: "products p JOIN inventory v ON v.product_id = p.id",
            star: false,
            cols: vec![P_ID, P_NAME, P_PRICE, V_STOCK],
            unique: vec!["p.id"],
            key: V_PRODUCT,
            exprs: vec![("v.stock * p.price", Ty::Numeric, false)],
            subqueries: vec![],
 bools: vec!["v.stock > 5"],
        },
        Source {
            label: "orders⋈items⋈products",
            from: "orders o JOIN order_items i ON i.user_id = o.user_id AND i.order_id = o.id \
                   JOIN products p ON p.id = i.product_id",
            star: false,
            cols: vec![O_ID, O_USER, O_STATUS, I_QTY, P_ID, P_NAME, P_PRICE],
            unique: vec!["i.user_id", "i.order_id", "i.product_id"],
            key: O_USER,
            exprs: vec![("i.qty * p.price", Ty::Numeric, false)],
            subqueries: vec![],
 bools: vec!["p.price > 5", "o.status = 'paid'"],
        },
        // Derived tables that keep the sharding key (grouped by it, or row
        // by row) and are joined on it: each shard computes them whole.
        Source {
            label: "spend⋈users",
            from: "(SELECT user_id, count(*) AS n, sum(total) AS spent, max(status) AS top \
                   FROM orders GROUP BY user_id) s JOIN users u ON u.id = s.user_id",
            star: false,
            cols: vec![U_ID, U_NAME, S_N, S_SPENT, S_TOP],
            unique: vec!["u.id"],
            key: U_ID,
            exprs: vec![("s.n * 2", Ty::Int8, false), ("s.spent - 10", Ty::Numeric, false)],
            subqueries: vec![],
            bools: vec!["s.n > 3", "s.spent > 100"],
        },
        Source {
            label: "open-orders⋈items",
            from: "(SELECT user_id, id, total FROM orders WHERE status <> 'new') o \
                   JOIN order_items i ON i.user_id = o.user_id AND i.order_id = o.id",
            star: false,
            cols: vec![O_ID, O_USER, O_TOTAL, I_PRODUCT, I_QTY, I_PRICE],
            unique: vec!["i.user_id", "i.order_id", "i.product_id"],
            key: O_USER,
            exprs: item_exprs.clone(),
            subqueries: vec![],
            bools: vec!["i.qty > 2", "o.total > 40"],
        },
        // Grouped by a non-key column: a status's orders are on every shard.
        Source {
            label: "per-status",
            from: "(SELECT status, count(*) AS n, sum(total) AS spent FROM orders GROUP BY status) s",
            star: true,
            cols: vec![S_STATUS, S_N, S_SPENT],
            unique: vec!["s.status"],
            key: S_STATUS,
            exprs: vec![("s.n * 2", Ty::Int8, false)],
            subqueries: vec![],
            bools: vec!["s.n > 3"],
        },
        // Joins that do not line up with the shards: each shard holds every
        // product but only some inventory, or another user's items. One
        // database answers them; shardgate must answer alike or refuse.
        Source {
            label: "products⟕inventory",
            from: "products p LEFT JOIN inventory v ON v.product_id = p.id",
            star: false,
            cols: vec![P_ID, P_NAME, P_PRICE, nullable(V_STOCK)],
            unique: vec!["p.id"],
            key: P_ID,
            exprs: vec![("coalesce(v.stock, -1)", Ty::Int4, false)],
            subqueries: vec![],
 bools: vec!["v.stock IS NULL", "p.price > 5"],
        },
        Source {
            label: "items⋈inventory",
            from: "order_items i JOIN inventory v ON v.product_id = i.product_id",
            star: false,
            cols: vec![I_USER, I_ORDER, I_PRODUCT, I_QTY, V_STOCK],
            unique: vec!["i.user_id", "i.order_id", "i.product_id"],
            key: I_USER,
            exprs: vec![("v.stock - i.qty", Ty::Int4, false)],
            subqueries: vec![],
 bools: vec!["v.stock > i.qty"],
        },
    ]
}

/// The literals and `$n` parameters of a query being built.
struct Values<'d> {
    data: &'d Data,
    use_params: bool,
    params: Vec<Param>,
}

impl Values<'_> {
    /// `sql` as is, or as the next `$n` bound to `param`.
    fn put(&mut self, rng: &mut Rng, sql: String, param: Param) -> String {
        if self.use_params && rng.chance(80) {
            self.params.push(param);
            format!("${}", self.params.len())
        } else {
            sql
        }
    }

    /// A value of `c`'s domain (mostly one that occurs in the data).
    fn value(&mut self, rng: &mut Rng, c: &Col) -> String {
        let d = self.data;
        match c.domain {
            Domain::UserId => {
                let v = if rng.chance(90) {
                    *rng.pick(&d.user_ids)
                } else {
                    rng.range(-500_000, 2_000_000)
                };
                self.int8(rng, v)
            }
            Domain::OrderId => {
                let v = rng.range(0, ORDERS as i64 + 3);
                self.int8(rng, v)
            }
            Domain::ProductId => {
                let v = rng.range(1, PRODUCTS as i64 + 1);
                self.int8(rng, v)
            }
            Domain::Small => {
                let v = rng.range(0, 19) as i32 / if c.expr == "i.qty" { 4 } else { 1 };
                self.put(rng, v.to_string(), Param::Int4(v))
            }
            Domain::Money => {
                let v = if rng.chance(60) {
                    rng.pick(&d.totals).clone()
                } else {
                    rng.pick(&PRICES).to_string()
                };
                self.put(rng, v.clone(), Param::AsText(v))
            }
            Domain::UserName | Domain::Email | Domain::Status | Domain::ProductName => {
                let v = self.raw_text(rng, c);
                self.text(rng, v)
            }
            Domain::Time => {
                let v = timestamp(rng.range(1, 6) as usize, rng.range(1, 28) as usize, 12);
                self.put(rng, quote(&v), Param::AsText(v))
            }
        }
    }

    /// A text value of `c`'s domain, unquoted.
    fn raw_text(&self, rng: &mut Rng, c: &Col) -> String {
        let d = self.data;
        match c.domain {
            Domain::UserName => rng.pick(&d.user_names).clone(),
            Domain::Email => rng.pick(&d.emails).clone(),
            Domain::Status => rng.pick(&STATUSES).to_string(),
            _ => rng.pick(&PRODUCT_NAMES).to_string(),
        }
    }

    fn int8(&mut self, rng: &mut Rng, v: i64) -> String {
        let p = if rng.chance(25) {
            Param::AsText(v.to_string())
        } else {
            Param::Int8(v)
        };
        self.put(rng, v.to_string(), p)
    }

    fn text(&mut self, rng: &mut Rng, v: String) -> String {
        self.put(rng, quote(&v), Param::Text(v))
    }

    /// A row count for LIMIT/OFFSET.
    fn count(&mut self, rng: &mut Rng, max: i64) -> String {
        let v = rng.range(0, max);
        self.put(rng, v.to_string(), Param::Int8(v))
    }
}

/// A predicate on one column.
fn predicate(rng: &mut Rng, v: &mut Values, c: &Col) -> String {
    let e = c.expr;
    if c.nullable && rng.chance(40) {
        return format!("{e} IS {}NULL", if rng.chance(50) { "NOT " } else { "" });
    }
    match (c.ty, rng.below(10)) {
        (Ty::Text, 0) => {
            let s = v.raw_text(rng, c);
            let pat: String = s.chars().take(1 + rng.below(2)).collect::<String>() + "%";
            let pat = v.text(rng, pat);
            format!("{e} LIKE {pat}")
        }
        (Ty::Text, 1) => {
            let pat = rng.pick(&["%e%", "%ë%", "_o%", "%Martin", "%.example", "%'%"]);
            let pat = v.text(rng, pat.to_string());
            format!("{e} {} {pat}", rng.pick(&["LIKE", "NOT LIKE", "ILIKE"]))
        }
        (Ty::Text, 2) => format!("lower({e}) = lower({})", v.value(rng, c)),
        (_, 3) => {
            let n = 1 + rng.below(3);
            let list: Vec<String> = (0..n).map(|_| v.value(rng, c)).collect();
            format!(
                "{e} {}IN ({})",
                if rng.chance(20) { "NOT " } else { "" },
                list.join(", ")
            )
        }
        (_, 4) if c.ty != Ty::Text => {
            let a = v.value(rng, c);
            let b = v.value(rng, c);
            format!("{e} BETWEEN {a} AND {b}")
        }
        _ => {
            let op = rng.pick(&["=", "<>", "<", "<=", ">", ">="]);
            format!("{e} {op} {}", v.value(rng, c))
        }
    }
}

/// A WHERE clause (maybe empty) on `src`.
fn where_clause(rng: &mut Rng, v: &mut Values, src: &Source) -> String {
    let mut preds = Vec::new();
    // The key: one shard (=), a few (IN), or none.
    match rng.below(10) {
        0..=1 => {
            let k = v.value(rng, &src.key);
            preds.push(format!("{} = {k}", src.key.expr));
        }
        2 => {
            let n = 2 + rng.below(3);
            let ks: Vec<String> = (0..n).map(|_| v.value(rng, &src.key)).collect();
            preds.push(format!("{} IN ({})", src.key.expr, ks.join(", ")));
        }
        _ => {}
    }
    if !src.subqueries.is_empty() && rng.chance(12) {
        preds.push(rng.pick(&src.subqueries).to_string());
    }
    for _ in 0..rng.below(3) {
        let c = *rng.pick(&src.cols);
        let p = predicate(rng, v, &c);
        if !preds.is_empty() && rng.chance(20) {
            let last = preds.pop().unwrap_or_default();
            preds.push(format!("({last} OR {p})"));
        } else if rng.chance(10) {
            preds.push(format!("NOT ({p})"));
        } else {
            preds.push(p);
        }
    }
    if preds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", preds.join(" AND "))
    }
}

/// One sort key: `expr [ASC|DESC] [NULLS FIRST|LAST]`.
fn direction(rng: &mut Rng) -> String {
    let mut s = String::new();
    match rng.below(3) {
        0 => s.push_str(" ASC"),
        1 => s.push_str(" DESC"),
        _ => {}
    }
    match rng.below(4) {
        0 => s.push_str(" NULLS FIRST"),
        1 => s.push_str(" NULLS LAST"),
        _ => {}
    }
    s
}

/// LIMIT / OFFSET / FETCH FIRST (maybe none).
fn limit_clause(rng: &mut Rng, v: &mut Values) -> String {
    match rng.below(6) {
        0 => format!(" LIMIT {}", v.count(rng, 30)),
        1 => format!(" OFFSET {}", v.count(rng, 60)),
        2 => format!(" LIMIT {} OFFSET {}", v.count(rng, 25), v.count(rng, 40)),
        3 => format!(
            " OFFSET {} ROWS FETCH FIRST {} ROWS ONLY",
            rng.range(0, 20),
            rng.range(1, 20)
        ),
        4 => " LIMIT ALL".to_string(),
        _ => format!(" FETCH FIRST {} ROWS ONLY", rng.range(1, 15)),
    }
}

/// A select-list item: its SQL, the expression it stands for, and an alias.
#[derive(Debug, Clone)]
struct Item {
    sql: String,
    expr: String,
    alias: Option<String>,
}

/// How an ORDER BY refers to output item `i` (0-based) `it`.
fn sort_ref(rng: &mut Rng, i: usize, it: &Item) -> String {
    match (rng.below(3), &it.alias) {
        (0, _) => (i + 1).to_string(),
        (1, Some(a)) => a.clone(),
        _ => it.expr.clone(),
    }
}

fn plain_item(rng: &mut Rng, src: &Source, n: usize) -> Item {
    let (expr, alias) = if !src.exprs.is_empty() && rng.chance(20) {
        let (e, _, _) = *rng.pick(&src.exprs);
        (e.to_string(), Some(format!("x{n}")))
    } else {
        let c = rng.pick(&src.cols);
        let alias = rng.chance(15).then(|| format!("c{n}"));
        (c.expr.to_string(), alias)
    };
    let sql = match &alias {
        Some(a) => format!("{expr} AS {a}"),
        None => expr.clone(),
    };
    Item { sql, expr, alias }
}

fn select_query(rng: &mut Rng, v: &mut Values, src: &Source) -> (String, Compare) {
    let star = src.star && rng.chance(15);
    let items: Vec<Item> = if star {
        Vec::new()
    } else {
        (0..1 + rng.below(4))
            .map(|n| plain_item(rng, src, n))
            .collect()
    };
    let list = if star {
        "*".to_string()
    } else {
        items
            .iter()
            .map(|i| i.sql.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut sql = format!("SELECT {list} FROM {}", src.from);
    sql.push_str(&where_clause(rng, v, src));
    let mode = rng.below(10);
    let mut keys = Vec::new();
    // Some keys first (any column or item, maybe not selected).
    for _ in 0..rng.below(3) {
        if !items.is_empty() && rng.chance(50) {
            let i = rng.below(items.len());
            keys.push(sort_ref(rng, i, &items[i]) + &direction(rng));
        } else {
            let c = rng.pick(&src.cols);
            keys.push(c.expr.to_string() + &direction(rng));
        }
    }
    let total = mode < 7;
    if total {
        // Then a unique key: the order is total.
        for u in &src.unique {
            let pos = items.iter().position(|it| it.expr == *u);
            let r = match pos {
                Some(i) if rng.chance(50) => sort_ref(rng, i, &items[i]),
                _ => u.to_string(),
            };
            keys.push(r + &direction(rng));
        }
    } else if mode == 9 {
        keys.clear();
    }
    if !keys.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
    }
    if total && rng.chance(45) {
        sql.push_str(&limit_clause(rng, v));
        (sql, Compare::Ordered)
    } else if !total && rng.chance(8) {
        sql.push_str(&format!(" LIMIT {}", v.count(rng, 20)));
        (sql, Compare::RowCount)
    } else if total {
        (sql, Compare::Ordered)
    } else {
        (sql, Compare::Multiset)
    }
}

fn groupable_item(rng: &mut Rng, src: &Source, n: usize) -> Item {
    let groupable: Vec<&Col> = src.cols.iter().filter(|c| c.groupable).collect();
    if rng.chance(20) && !src.exprs.is_empty() {
        let (e, _, _) = *rng.pick(&src.exprs);
        let a = format!("g{n}");
        return Item {
            sql: format!("{e} AS {a}"),
            expr: e.to_string(),
            alias: Some(a),
        };
    }
    let c = rng.pick(&groupable);
    let alias = rng.chance(15).then(|| format!("g{n}"));
    Item {
        sql: match &alias {
            Some(a) => format!("{} AS {a}", c.expr),
            None => c.expr.to_string(),
        },
        expr: c.expr.to_string(),
        alias,
    }
}

/// Distinct group items (no expression twice).
fn group_items(rng: &mut Rng, src: &Source, n: usize) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    for k in 0..n {
        let it = groupable_item(rng, src, k);
        if !items.iter().any(|i| i.expr == it.expr) {
            items.push(it);
        }
    }
    items
}

fn distinct_query(rng: &mut Rng, v: &mut Values, src: &Source) -> (String, Compare) {
    if rng.chance(35) {
        return distinct_on_query(rng, v, src);
    }
    let items = {
        let n = 1 + rng.below(3);
        group_items(rng, src, n)
    };
    let list: Vec<&str> = items.iter().map(|i| i.sql.as_str()).collect();
    let mut sql = format!("SELECT DISTINCT {} FROM {}", list.join(", "), src.from);
    sql.push_str(&where_clause(rng, v, src));
    let mut order: Vec<usize> = (0..items.len()).collect();
    rng.shuffle(&mut order);
    match rng.below(10) {
        0..=5 => {
            let keys: Vec<String> = order
                .iter()
                .map(|&i| sort_ref(rng, i, &items[i]) + &direction(rng))
                .collect();
            sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
            if rng.chance(40) {
                sql.push_str(&limit_clause(rng, v));
            }
            (sql, Compare::Ordered)
        }
        6..=7 if items.len() > 1 => {
            let i = order[0];
            sql.push_str(&format!(" ORDER BY {}", sort_ref(rng, i, &items[i])));
            (sql, Compare::Multiset)
        }
        _ => (sql, Compare::Multiset),
    }
}

fn distinct_on_query(rng: &mut Rng, v: &mut Values, src: &Source) -> (String, Compare) {
    let on = {
        let n = 1 + rng.below(2);
        group_items(rng, src, n)
    };
    let on_exprs: Vec<&str> = on.iter().map(|i| i.expr.as_str()).collect();
    if rng.chance(25) {
        // Only the DISTINCT ON columns, in any order.
        let list: Vec<&str> = on.iter().map(|i| i.sql.as_str()).collect();
        let mut sql = format!(
            "SELECT DISTINCT ON ({}) {} FROM {}",
            on_exprs.join(", "),
            list.join(", "),
            src.from
        );
        sql.push_str(&where_clause(rng, v, src));
        return (sql, Compare::Multiset);
    }
    let mut items = on.clone();
    for n in 0..1 + rng.below(2) {
        items.push(plain_item(rng, src, n));
    }
    let list: Vec<&str> = items.iter().map(|i| i.sql.as_str()).collect();
    let mut sql = format!(
        "SELECT DISTINCT ON ({}) {} FROM {}",
        on_exprs.join(", "),
        list.join(", "),
        src.from
    );
    sql.push_str(&where_clause(rng, v, src));
    let mut keys: Vec<String> = on
        .iter()
        .enumerate()
        .map(|(i, it)| sort_ref(rng, i, it) + &direction(rng))
        .collect();
    // The first row of each group is fixed by a unique key.
    for u in &src.unique {
        keys.push(u.to_string() + &direction(rng));
    }
    sql.push_str(&format!(" ORDER BY {}", keys.join(", ")));
    if rng.chance(35) {
        sql.push_str(&limit_clause(rng, v));
    }
    (sql, Compare::Ordered)
}

/// An aggregate call over `src` and its result type.
fn aggregate(rng: &mut Rng, src: &Source) -> (String, Ty) {
    let numeric: Vec<&Col> = src
        .cols
        .iter()
        .filter(|c| matches!(c.ty, Ty::Int4 | Ty::Numeric))
        .collect();
    let c = rng.pick(&src.cols);
    match rng.below(13) {
        0 | 1 => ("count(*)".into(), Ty::Int8),
        2 => (format!("count({})", c.expr), Ty::Int8),
        3 if rng.chance(30) => (format!("count(DISTINCT {})", c.expr), Ty::Int8),
        4 | 5 if !numeric.is_empty() => {
            let n = rng.pick(&numeric);
            let ty = if n.ty == Ty::Int4 {
                Ty::Int8
            } else {
                Ty::Numeric
            };
            (format!("sum({})", n.expr), ty)
        }
        6 => (format!("min({})", c.expr), c.ty),
        7 => (format!("max({})", c.expr), c.ty),
        8 if !numeric.is_empty() => (format!("avg({})", rng.pick(&numeric).expr), Ty::Numeric),
        9 => (format!("bool_and({})", rng.pick(&src.bools)), Ty::Bool),
        10 => (format!("bool_or({})", rng.pick(&src.bools)), Ty::Bool),
        11 => {
            let numeric_exprs: Vec<&str> = src
                .exprs
                .iter()
                .filter(|(_, t, _)| *t == Ty::Numeric)
                .map(|(e, _, _)| *e)
                .collect();
            if numeric_exprs.is_empty() {
                ("count(*)".into(), Ty::Int8)
            } else {
                (format!("sum({})", rng.pick(&numeric_exprs)), Ty::Numeric)
            }
        }
        _ => (format!("max({})", c.expr), c.ty),
    }
}

fn aggregate_query(rng: &mut Rng, v: &mut Values, src: &Source) -> (String, Compare) {
    let mut list: Vec<String> = (0..1 + rng.below(4))
        .map(|_| aggregate(rng, src).0)
        .collect();
    if rng.chance(4) {
        list.push("1 AS one".into());
    }
    let mut sql = format!("SELECT {} FROM {}", list.join(", "), src.from);
    sql.push_str(&where_clause(rng, v, src));
    (sql, Compare::Ordered)
}

/// A HAVING condition.
fn having(rng: &mut Rng, v: &mut Values, src: &Source) -> String {
    match rng.below(4) {
        0 => format!("count(*) > {}", v.count(rng, 6)),
        1 => {
            let (agg, ty) = aggregate(rng, src);
            if ty == Ty::Int8 {
                format!("{agg} >= {}", v.count(rng, 10))
            } else {
                format!("count(*) >= {}", rng.range(1, 4))
            }
        }
        2 => format!("bool_or({})", rng.pick(&src.bools)),
        _ => {
            let money: Vec<&Col> = src.cols.iter().filter(|c| c.ty == Ty::Numeric).collect();
            if money.is_empty() {
                "count(*) < 100".into()
            } else {
                let c = *rng.pick(&money);
                format!("max({}) > {}", c.expr, v.value(rng, c))
            }
        }
    }
}

fn group_query(rng: &mut Rng, v: &mut Values, src: &Source) -> (String, Compare) {
    let keys = {
        let n = 1 + rng.below(2);
        group_items(rng, src, n)
    };
    let aggs: Vec<String> = (0..1 + rng.below(3))
        .map(|_| aggregate(rng, src).0)
        .collect();
    // Rarely a group key outside the select list.
    let hide_key = keys.len() > 1 && rng.chance(8);
    let shown: Vec<&Item> = if hide_key {
        keys.iter().skip(1).collect()
    } else {
        keys.iter().collect()
    };
    let aggs_first = rng.chance(15);
    let mut list: Vec<String> = shown.iter().map(|i| i.sql.clone()).collect();
    let agg_pos = if aggs_first {
        let mut l = aggs.clone();
        l.extend(list);
        list = l;
        1
    } else {
        list.extend(aggs.iter().cloned());
        shown.len() + 1
    };
    let key_pos = |k: usize| if aggs_first { aggs.len() + k } else { k };
    let mut sql = format!("SELECT {} FROM {}", list.join(", "), src.from);
    sql.push_str(&where_clause(rng, v, src));
    let group: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(k, it)| match (&it.alias, rng.below(3)) {
            (_, 0) if !hide_key => (key_pos(k) + 1).to_string(),
            (Some(a), 1) if !hide_key => a.clone(),
            _ => it.expr.clone(),
        })
        .collect();
    sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
    if rng.chance(25) {
        sql.push_str(&format!(" HAVING {}", having(rng, v, src)));
    }
    if hide_key {
        return (sql, Compare::Multiset);
    }
    let mut order: Vec<usize> = (0..keys.len()).collect();
    rng.shuffle(&mut order);
    let mut sort: Vec<String> = Vec::new();
    match rng.below(10) {
        0..=1 => {
            // An aggregate first (by position or expression), then the keys.
            if rng.chance(50) {
                sort.push(agg_pos.to_string() + &direction(rng));
            } else {
                sort.push(aggs[0].clone() + &direction(rng));
            }
        }
        2..=6 => {}
        _ => return (sql, Compare::Multiset),
    }
    for &k in &order {
        sort.push(sort_ref(rng, key_pos(k), &keys[k]) + &direction(rng));
    }
    sql.push_str(&format!(" ORDER BY {}", sort.join(", ")));
    if rng.chance(40) {
        sql.push_str(&limit_clause(rng, v));
    }
    (sql, Compare::Ordered)
}

/// Picks a source: the last two (joins that do not line up with the
/// shards) a third as often as the others.
fn pick_source(rng: &mut Rng, n: usize) -> usize {
    let aligned = n - 2;
    let i = rng.below(3 * aligned + 2);
    if i < 3 * aligned {
        i / 3
    } else {
        aligned + i - 3 * aligned
    }
}

/// The query of seed `seed` over `data`.
pub fn generate(seed: u64, data: &Data) -> Query {
    let mut rng = Rng::new(seed);
    let srcs = sources();
    let src = &srcs[pick_source(&mut rng, srcs.len())];
    let mut v = Values {
        data,
        use_params: rng.chance(35),
        params: Vec::new(),
    };
    let (kind, (sql, compare)) = match rng.below(20) {
        0..=7 => ("select", select_query(&mut rng, &mut v, src)),
        8..=10 => ("distinct", distinct_query(&mut rng, &mut v, src)),
        11..=13 => ("aggregate", aggregate_query(&mut rng, &mut v, src)),
        _ => ("group by", group_query(&mut rng, &mut v, src)),
    };
    let prepared = !v.params.is_empty() || rng.chance(10);
    Query {
        sql,
        params: v.params,
        prepared,
        compare,
        kind,
    }
}

/// The label of the FROM clause `seed` picks (for the summary).
pub fn source_label(seed: u64) -> &'static str {
    let mut rng = Rng::new(seed);
    let srcs = sources();
    srcs[pick_source(&mut rng, srcs.len())].label
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_query() {
        let data = Data::new();
        for i in 0..200 {
            let s = query_seed(42, i);
            let a = generate(s, &data);
            let b = generate(s, &data);
            assert_eq!(a.sql, b.sql);
            assert_eq!(a.params, b.params);
        }
        assert_ne!(generate(query_seed(1, 0), &data).sql, "");
    }

    #[test]
    fn rng_is_stable() {
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert!((0..1000).all(|_| (-3..=3).contains(&r.range(-3, 3))));
    }

    #[test]
    fn params_are_numbered_in_order() {
        let data = Data::new();
        let mut with_params = 0;
        for i in 0..2000 {
            let q = generate(query_seed(7, i), &data);
            for n in 1..=q.params.len() {
                assert!(q.sql.contains(&format!("${n}")), "{} lacks ${n}", q.sql);
            }
            assert!(!q.sql.contains(&format!("${}", q.params.len() + 1)));
            with_params += usize::from(!q.params.is_empty());
        }
        assert!(with_params > 300, "{with_params} queries with parameters");
    }

    #[test]
    fn the_generator_covers_the_list() {
        let data = Data::new();
        let all: Vec<String> = (0..3000)
            .map(|i| generate(query_seed(3, i), &data).sql)
            .collect();
        for needle in [
            "DISTINCT ON",
            "SELECT DISTINCT ",
            "GROUP BY",
            "HAVING",
            "ORDER BY",
            "NULLS FIRST",
            "NULLS LAST",
            " DESC",
            "LIMIT",
            "OFFSET",
            "FETCH FIRST",
            "count(*)",
            "avg(",
            "bool_and(",
            "bool_or(",
            "sum(",
            "min(",
            "max(",
            " IN (",
            " LIKE ",
            " IS NULL",
            "LEFT JOIN",
            "JOIN products p",
            "JOIN order_items i",
            "u.id = ",
            "o.user_id = ",
            "ORDER BY 1",
        ] {
            assert!(
                all.iter().any(|q| q.contains(needle)),
                "no query has {needle:?}"
            );
        }
    }

    #[test]
    fn data_is_consistent() {
        let d = Data::new();
        let mut ids = d.user_ids.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), USERS);
        let inserts = d.inserts();
        assert!(inserts.iter().any(|s| s.contains("'O''Brien")));
        let item_rows: usize = inserts
            .iter()
            .filter(|s| s.starts_with("INSERT INTO order_items"))
            .map(|s| s.matches("), (").count() + 1)
            .sum();
        assert!((ORDERS..=3 * ORDERS).contains(&item_rows), "{item_rows}");
        assert_eq!(quote("O'Brien"), "'O''Brien'");
    }
}
