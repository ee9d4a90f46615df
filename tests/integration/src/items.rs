//! The `items` fixture of the differential merge tests: one table of 300
//! rows with NULLs, duplicates, negative and special values, mixed-case and
//! non-ASCII text, loaded both into a plain reference server and, through
//! shardgate, onto several shards.

use crate::reference::{self, Differential};

/// 300 rows with NULLs, duplicates, negative and special values.
pub fn data() -> String {
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

/// The table.
pub const SCHEMA: &str = "CREATE TABLE items (id bigint PRIMARY KEY, grp int, price numeric(10,2), score float8, name text, flag bool, at timestamptz, day date)";

/// The shards, the reference and the proxy of the `items` tests.
pub type Items = Differential;

/// Starts `n` shards (one replica each), a reference and a proxy (with
/// `extra` appended to its config), and loads the rows into both.
pub async fn start(n: usize, extra: &str) -> Items {
    let tables = format!("[tables.items]\nsharding_key = \"id\"\n{extra}");
    reference::start(n, 1, &tables, &[SCHEMA.to_string(), data()], ("items", 50)).await
}
