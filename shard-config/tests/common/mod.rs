//! What the table tests share: the base config (users, backend, three shards
//! s0..s2), building a config from `[tables.*]` text, and finding lines.

use shard_config::{parse, Config};

/// Users, backend and three shards s0..s2: what every table test builds on.
pub const BASE: &str = include_str!("../data/three_shards.toml");

/// The base config followed by `tables`.
pub fn with(tables: &str) -> String {
    format!("{BASE}\n{tables}")
}

/// The parsed config of `with(tables)`; panics with the errors if invalid.
pub fn ok(tables: &str) -> Config {
    parse(&with(tables), "gate.toml").unwrap_or_else(|e| panic!("expected a valid config:\n{e}"))
}

/// The 1-based line of the first occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> usize {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} missing"));
    text[..offset].matches('\n').count() + 1
}
