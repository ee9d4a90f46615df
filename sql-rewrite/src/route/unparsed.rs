//! Texts the parser cannot read: whether they name a mapped table (then
//! they are refused) or only interval tables of one shard (then they run
//! there), found by a word scan.

use shard_config::ShardMap;

/// The identifier-like words of a (lower-cased) text.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A mapped table whose name appears as a word in `sql` (for texts the
/// parser cannot read).
pub fn named_sharded_table(sql: &str, map: &ShardMap) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let words = words(&lower);
    map.tables()
        .map(|(name, _)| name)
        .find(|name| words.contains(&name.to_ascii_lowercase().as_str()))
        .map(str::to_string)
        .or_else(|| {
            words
                .iter()
                .find(|w| map.physical_table(w).is_some())
                .map(|w| w.to_string())
        })
}

/// For a text the parser cannot read: the one shard it belongs to when it
/// names interval tables of one shard and no other mapped table than their
/// logical tables (`CREATE TABLE orders_2026_11 (LIKE orders INCLUDING ALL)`).
pub fn unparsed_home(sql: &str, map: &ShardMap) -> Option<usize> {
    let lower = sql.to_ascii_lowercase();
    let words = words(&lower);
    let mut home = None;
    let mut logical = Vec::new();
    for w in &words {
        if let Some((l, shard)) = map.physical_table(w) {
            if home.is_some_and(|h| h != shard) {
                return None;
            }
            home = Some(shard);
            logical.push(l.to_ascii_lowercase());
        }
    }
    let others = map
        .tables()
        .map(|(name, _)| name.to_ascii_lowercase())
        .any(|name| words.contains(&name.as_str()) && !logical.contains(&name));
    if others {
        return None;
    }
    home
}
