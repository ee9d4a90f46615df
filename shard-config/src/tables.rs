//! `[tables.NAME]`: reading and validating per-table sharding with lines.
//!
//! Checks the `hash` algorithm's `slots` and `slot_ranges`, broadcast tables,
//! `key_type`, `generated_column` and co-location (chains resolved, cycles rejected,
//! key types agreeing). `range` tables' `ranges` and `list` tables' `values` and
//! `default_shard` are checked by `shard_map::range_list`, `time` tables' keys by
//! `shard_map::time_rule`; the reserved keys ([`RESERVED_TABLE_KEYS`]) are accepted
//! unchecked.

use std::collections::BTreeMap;

use crate::diagnostics::Diagnostics;
use crate::fields::{range_entry_shard, shard_range_entries, to_toml, Located, Section};
use crate::key_type::KeyType;
use crate::shard_map::time_rule::{self, PLACEMENT_KEYS};

/// Keys of `[tables.NAME]` that shardgate reads today.
pub(crate) const TABLE_KEYS: &[&str] = &[
    "sharding_key",
    "algorithm",
    "colocate_with",
    "broadcast",
    "slots",
    "slot_ranges",
    "default_shard",
    "ranges",
    "values",
    "key_type",
    "generated_column",
    "interval",
    "start",
    "shards",
    "intervals",
    "table_per_interval",
];

/// Keys of `[tables.NAME]` kept for later work: accepted silently, kept in
/// [`crate::TableConfig::extra`].
pub const RESERVED_TABLE_KEYS: &[&str] = &["generated", "node_id", "weights", "time_zone"];

/// The sharding algorithms a table may name.
pub const ALGORITHMS: &[&str] = &["hash", "range", "list", "time"];

/// Default `slots` of a `hash` table.
pub const DEFAULT_SLOTS: u64 = 1024;
/// Largest `slots` of a `hash` table.
pub const MAX_SLOTS: u64 = 65536;

/// What validation learnt about one table, for the cross-table checks.
struct Info {
    /// Line of the table's header.
    line: usize,
    broadcast: bool,
    algorithm: Option<Located<String>>,
    colocate: Option<Located<String>>,
    /// `key_type` as written (when valid).
    key_type: Option<Located<KeyType>>,
    /// The key type by the table's own algorithm (`None` for co-located tables).
    default_type: Option<KeyType>,
    /// Line of `table_per_interval`, if written.
    per_interval: Option<usize>,
}

/// Validates every `[tables.NAME]` section; `shards` are the shard names in file order.
pub(crate) fn check_tables(
    tables: &[(String, Section<'_>)],
    shards: &[String],
    d: &mut Diagnostics,
) {
    let mut infos: BTreeMap<&str, Info> = BTreeMap::new();
    for (name, s) in tables {
        if let Some(info) = check_table(name, s, shards, d) {
            infos.insert(name, info);
        }
    }
    check_colocation(&infos, d);
}

fn check_table(
    name: &str,
    s: &Section<'_>,
    shards: &[String],
    d: &mut Diagnostics,
) -> Option<Info> {
    let allowed: Vec<&str> = TABLE_KEYS
        .iter()
        .chain(RESERVED_TABLE_KEYS)
        .copied()
        .collect();
    s.check_keys(&allowed, d);
    // Type errors were reported while reading; re-reading them here would repeat them.
    let mut quiet = d.fresh();
    let key = s.string("sharding_key", &mut quiet);
    let algorithm = s.string("algorithm", &mut quiet);
    let colocate = s.string("colocate_with", &mut quiet);
    let broadcast = s.boolean("broadcast", &mut quiet);
    let bad = quiet.has_errors();
    let line = s.line();
    let broadcast_on = broadcast.as_ref().is_some_and(|b| b.value);
    // `[tables.X]` with nothing in it (or only `broadcast = false`) declares an unsharded table.
    let empty = s.entries().all(|(k, _)| k == "broadcast") && !broadcast_on;

    if let Some(a) = &algorithm {
        if !ALGORITHMS.contains(&a.value.as_str()) {
            d.error(
                a.line,
                format!(
                    "tables.{name}.algorithm: unknown algorithm {:?}; expected one of: {}",
                    a.value,
                    ALGORITHMS.join(", ")
                ),
            );
        }
    }
    if let Some(k) = &key {
        if k.value.is_empty() {
            d.error(
                k.line,
                format!("tables.{name}.sharding_key must not be empty"),
            );
        }
    }
    check_generated(name, s, d);
    if broadcast_on {
        for k in [
            "sharding_key",
            "algorithm",
            "colocate_with",
            "slots",
            "slot_ranges",
            "key_type",
            "interval",
            "start",
            "shards",
            "intervals",
            "table_per_interval",
        ] {
            if s.has(k) {
                d.error(
                    s.key_line(k, d),
                    format!(
                        "table {name} is broadcast (a full copy on every shard): it takes no {k}"
                    ),
                );
            }
        }
        return Some(Info {
            line,
            broadcast: true,
            algorithm: None,
            colocate: None,
            key_type: None,
            default_type: None,
            per_interval: None,
        });
    }
    if empty {
        return None;
    }
    let key_type = check_key_type(name, s, d);
    let per_interval = s
        .has("table_per_interval")
        .then(|| s.key_line("table_per_interval", d));
    if bad {
        // Its own checks would only repeat the type error; others may still follow it.
        return Some(Info {
            line,
            broadcast: false,
            algorithm,
            colocate,
            key_type,
            default_type: None,
            per_interval,
        });
    }
    if !s.has("sharding_key") {
        d.error(
            line,
            format!("table {name}: missing key \"sharding_key\" (every table that is not broadcast needs one)"),
        );
    }
    let own = match (&colocate, &algorithm) {
        (Some(_), _) => None,
        (None, Some(a)) => Some(a.value.as_str()),
        (None, None) => Some("hash"),
    };
    crate::shard_map::range_list::check(name, s, own, shards, d);
    check_time_keys(name, s, own, key_type.as_ref(), shards, d);
    if colocate.is_some() {
        for k in ["slots", "slot_ranges"] {
            if s.has(k) {
                d.error(
                    s.key_line(k, d),
                    format!(
                        "table {name} is co-located and adopts the slot map of the table it follows: it takes no {k}"
                    ),
                );
            }
        }
    } else {
        let hash = algorithm.as_ref().is_none_or(|a| a.value == "hash");
        if hash {
            check_slots(name, s, shards, d);
        } else if s.has("slot_ranges") {
            d.error(
                s.key_line("slot_ranges", d),
                format!("tables.{name}.slot_ranges applies only to algorithm \"hash\""),
            );
        }
    }
    let default_type = own.and_then(|a| default_key_type(a, s));
    Some(Info {
        line,
        broadcast: false,
        algorithm,
        colocate,
        key_type,
        default_type,
        per_interval,
    })
}

/// `generated_column`: a non-empty string.
fn check_generated(name: &str, s: &Section<'_>, d: &mut Diagnostics) {
    if let Some(c) = s.string("generated_column", d) {
        if c.value.is_empty() {
            d.error(
                c.line,
                format!("tables.{name}.generated_column must not be empty"),
            );
        }
    }
}

/// `key_type`: a known type.
fn check_key_type(name: &str, s: &Section<'_>, d: &mut Diagnostics) -> Option<Located<KeyType>> {
    let written = s.string("key_type", d)?;
    match KeyType::parse(&written.value) {
        Some(t) => Some(written.map(|_| t)),
        None => {
            d.error(
                written.line,
                format!(
                    "tables.{name}.key_type: unknown type {:?}; expected one of: {}",
                    written.value,
                    KeyType::NAMES.join(", ")
                ),
            );
            None
        }
    }
}

/// The `time` keys of a table whose own algorithm is `own` (`None`: co-located), and
/// whether its `key_type` fits the algorithm.
fn check_time_keys(
    name: &str,
    s: &Section<'_>,
    own: Option<&str>,
    key_type: Option<&Located<KeyType>>,
    shards: &[String],
    d: &mut Diagnostics,
) {
    match own {
        Some("time") => {
            time_rule::check(name, s, shards, d);
            if let Some(t) = key_type.filter(|t| !t.value.is_time()) {
                d.error(
                    t.line,
                    format!(
                        "tables.{name}.key_type: a time table's key must be date, timestamp or timestamptz (got {})",
                        t.value
                    ),
                );
            }
        }
        Some(algorithm) => {
            for k in PLACEMENT_KEYS.iter().chain(&["table_per_interval"]) {
                if s.has(k) {
                    d.error(
                        s.key_line(k, d),
                        format!("tables.{name}.{k} applies only to algorithm \"time\""),
                    );
                }
            }
            if let Some(t) = key_type.filter(|t| t.value.is_time()) {
                d.error(
                    t.line,
                    format!(
                        "tables.{name}.key_type: {} is a time type, for algorithm \"time\" (table {name} uses {algorithm:?})",
                        t.value
                    ),
                );
            }
        }
        None => {
            s.boolean("table_per_interval", d);
            for k in PLACEMENT_KEYS {
                if s.has(k) {
                    d.error(
                        s.key_line(k, d),
                        format!(
                            "table {name} is co-located and adopts the placement of the table it follows: it takes no {k}"
                        ),
                    );
                }
            }
        }
    }
}

/// The key type a table of its own `algorithm` has without `key_type`: `bigint` for
/// `hash`, `timestamptz` for `time`, `text` for `range`/`list` with string bounds or
/// values (else `bigint`).
fn default_key_type(algorithm: &str, s: &Section<'_>) -> Option<KeyType> {
    let strings = |key: &str| {
        s.entries()
            .find(|(k, _)| *k == key)
            .and_then(|(_, item)| to_toml(item))
            .is_some_and(|v| has_string(&v))
    };
    match algorithm {
        "hash" => Some(KeyType::Int),
        "time" => Some(KeyType::Timestamptz),
        "range" if strings("ranges") => Some(KeyType::Text),
        "list" if strings("values") => Some(KeyType::Text),
        "range" | "list" => Some(KeyType::Int),
        _ => None,
    }
}

/// Whether a bound or value of `ranges`/`values` is a string (`shard` names aside).
fn has_string(v: &toml::Value) -> bool {
    match v {
        toml::Value::String(_) => true,
        toml::Value::Array(a) => a.iter().any(has_string),
        toml::Value::Table(t) => t.iter().any(|(k, v)| k != "shard" && has_string(v)),
        _ => false,
    }
}

/// `slots` and `slot_ranges` of a `hash` table.
fn check_slots(name: &str, s: &Section<'_>, shards: &[String], d: &mut Diagnostics) {
    let slots = match s.unsigned::<u64>("slots", d) {
        Some(n) if (1..=MAX_SLOTS).contains(&n.value) => n.value,
        Some(n) => {
            d.error(
                n.line,
                format!(
                    "tables.{name}.slots must be between 1 and {MAX_SLOTS} (got {})",
                    n.value
                ),
            );
            return;
        }
        None if s.has("slots") => return,
        None => DEFAULT_SLOTS,
    };
    let path = format!("tables.{name}.slot_ranges");
    let Some(entries) = shard_range_entries(s, "slot_ranges", &path, d) else {
        return;
    };
    let first_line = entries.first().map_or(s.line(), Section::line);
    // (from, to, shard name, line), valid ranges only.
    let mut ranges: Vec<(u64, u64, String, usize)> = Vec::new();
    let mut all_ok = true;
    for e in entries {
        let line = e.line();
        let before = d_errors(d);
        let shard = range_entry_shard(&e, &path, shards, d);
        let from = e.unsigned::<u64>("from", d);
        let to = e.unsigned::<u64>("to", d);
        let from = e.require(from, "from", &path, d);
        let to = e.require(to, "to", &path, d);
        if let (Some(f), Some(t)) = (&from, &to) {
            if f.value > t.value {
                d.error(
                    f.line,
                    format!("{path}: from {} is after to {}", f.value, t.value),
                );
            }
        }
        for v in [&from, &to].into_iter().flatten() {
            if v.value >= slots {
                d.error(
                    v.line,
                    format!(
                        "{path}: slot {} is out of range (table {name} has slots 0..{})",
                        v.value,
                        slots - 1
                    ),
                );
            }
        }
        match (shard, from, to) {
            (Some(sh), Some(f), Some(t)) if d_errors(d) == before => {
                ranges.push((f.value, t.value, sh.value, line));
            }
            _ => all_ok = false,
        }
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| (r.0, r.3));
    for pair in sorted.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.0 <= a.1 {
            // Report at whichever of the two comes later in the file.
            let (early, late) = if a.3 <= b.3 { (a, b) } else { (b, a) };
            d.error(
                late.3,
                format!(
                    "{path}: slots {}..{} (shard {}) overlap slots {}..{} (shard {}, line {})",
                    late.0, late.1, late.2, early.0, early.1, early.2, early.3
                ),
            );
        }
    }
    if !all_ok {
        return;
    }
    let mut next = 0u64;
    let mut gaps = Vec::new();
    for r in &sorted {
        if r.0 > next {
            gaps.push((next, r.0 - 1));
        }
        next = next.max(r.1 + 1);
    }
    if next < slots {
        gaps.push((next, slots - 1));
    }
    for (a, b) in gaps {
        let what = if a == b {
            format!("slot {a} of table {name} belongs to no shard")
        } else {
            format!("slots {a}..{b} of table {name} belong to no shard")
        };
        d.error(first_line, what);
    }
}

fn d_errors(d: &Diagnostics) -> usize {
    d.error_count()
}

/// The key type of `name`: its `key_type`, else that of the table it is co-located
/// with, else its algorithm's default.
fn resolved_type(name: &str, infos: &BTreeMap<&str, Info>) -> Option<KeyType> {
    let mut current = name;
    for _ in 0..=infos.len() {
        let info = infos.get(current)?;
        if let Some(t) = &info.key_type {
            return Some(t.value);
        }
        match &info.colocate {
            Some(next) => current = next.value.as_str(),
            None => return info.default_type,
        }
    }
    None
}

/// `colocate_with`: the target exists, is not broadcast, the chain ends, the algorithms agree.
fn check_colocation(infos: &BTreeMap<&str, Info>, d: &mut Diagnostics) {
    for (name, info) in infos {
        let Some(target) = &info.colocate else {
            continue;
        };
        let Some(t) = infos.get(target.value.as_str()) else {
            d.error(
                target.line,
                format!(
                    "tables.{name}.colocate_with: unknown table {:?} (no [tables.{}] section that shards it)",
                    target.value, target.value
                ),
            );
            continue;
        };
        if t.broadcast {
            d.error(
                target.line,
                format!(
                    "table {name} cannot be co-located with {}: it is a broadcast table (line {})",
                    target.value, t.line
                ),
            );
            continue;
        }
        // Follow the chain to its root.
        let mut chain: Vec<&str> = vec![name];
        let mut current = target.value.as_str();
        let root = loop {
            if chain.contains(&current) {
                chain.push(current);
                d.error(
                    target.line,
                    format!("co-location cycle: {}", chain.join(" -> ")),
                );
                break None;
            }
            chain.push(current);
            let Some(c) = infos.get(current) else {
                break None; // an unknown table, reported for the table naming it
            };
            match &c.colocate {
                Some(next) => current = next.value.as_str(),
                None => break Some((current, c)),
            }
        };
        let Some((root_name, root)) = root else {
            continue;
        };
        if root.broadcast {
            continue; // reported for the table that names the broadcast table
        }
        let root_algorithm = root.algorithm.as_ref().map_or("hash", |a| a.value.as_str());
        if let Some(l) = info.per_interval {
            if root_algorithm != "time" {
                d.error(
                    l,
                    format!(
                        "tables.{name}.table_per_interval applies only to algorithm \"time\" (table {name} is co-located with {root_name}, which uses {root_algorithm:?})"
                    ),
                );
            }
        }
        if let (Some(own), Some(theirs)) = (&info.key_type, resolved_type(&target.value, infos)) {
            if own.value != theirs {
                d.error(
                    own.line,
                    format!(
                        "table {name} has key_type {} but is co-located with {} (key_type {theirs})",
                        own.value, target.value
                    ),
                );
            }
        }
        if let Some(a) = &info.algorithm {
            if a.value != root_algorithm && ALGORITHMS.contains(&a.value.as_str()) {
                d.error(
                    a.line,
                    format!(
                        "table {name} uses algorithm {:?} but is co-located with {root_name}, which uses {root_algorithm:?}: a co-located table adopts its placement",
                        a.value
                    ),
                );
            }
        }
    }
}
