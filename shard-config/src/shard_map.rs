//! The runtime shard map: which shard owns each key of each sharded table.
//!
//! Built from a validated [`Config`] with [`ShardMap::new`] or [`Config::shard_map`].
//! `hash`, `range`, `list` and `time` tables have a map (see [`range_list`] for the
//! `range` and `list` config forms and their key comparison, [`time_rule`] for `time`
//! tables and their physical per-interval tables). A `range` table without `ranges`
//! or a `list` table without `values` comes out as [`TableRule::Other`].
//!
//! ```
//! use shard_config::hash::{slot, KeyValue};
//! use shard_config::TableRule;
//!
//! let text = r#"
//! [[users]]
//! name = "shop"
//! password = "shop"
//! [backend]
//! user = "shop"
//! database = "shop"
//! [[shards]]
//! name = "s0"
//! primary = "127.0.0.1:5432"
//! [[shards]]
//! name = "s1"
//! primary = "127.0.0.1:5433"
//! [tables.users]
//! sharding_key = "id"
//! "#;
//! let config = shard_config::parse(text, "gate.toml").unwrap();
//! let map = config.shard_map();
//! // Even split: s0 owns slots 0..=511, s1 owns 512..=1023.
//! assert!(matches!(map.table("users"), Some(TableRule::Hash { slots: 1024, .. })));
//! let key = KeyValue::Int(42);
//! assert_eq!(slot(&key, 1024), 610);
//! assert_eq!(map.shard_for_key("users", &key), Some(1));
//! assert_eq!(map.table("unsharded"), None);
//! ```

use std::collections::BTreeMap;

pub mod range_list;
pub mod time_rule;

use range_list::Placed;
pub use range_list::{Bound, ListValue};
pub use time_rule::TimePlacement;

use crate::hash::{slot, KeyValue};
use crate::key_type::KeyType;
use crate::model::{Config, TableConfig};
use crate::tables::{DEFAULT_SLOTS, MAX_SLOTS};
use crate::time::Interval;

/// How one table is placed on the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableRule {
    /// `algorithm = "hash"`, or a table co-located (directly or through a chain) with one:
    /// a co-located table adopts the slot map of the table at the end of its chain.
    Hash {
        /// The table's own sharding-key column.
        key: String,
        /// The modulus of PostgreSQL's hash partitioning (`slots`).
        slots: u64,
        /// `owner[slot]` is the index into [`Config::shards`] of the shard owning `slot`.
        owner: Vec<u16>,
        /// The table whose slot map this is: the table itself, or the end of its
        /// `colocate_with` chain. Tables with the same group keep equal keys on one shard.
        group: String,
    },
    /// `algorithm = "range"`, or a table co-located with one (it adopts the ranges).
    Range {
        /// The table's own sharding-key column.
        key: String,
        /// `(from inclusive, to exclusive, shard index)` sorted by `from`, without
        /// overlaps or gaps; [`Bound::Unbounded`] is −∞ as `from` and +∞ as `to`.
        /// Keys outside every range (ends left open) belong to no shard.
        ranges: Vec<(Bound, Bound, usize)>,
        /// The table whose ranges these are (the end of the `colocate_with` chain).
        group: String,
    },
    /// `algorithm = "list"`, or a table co-located with one (it adopts the values).
    List {
        /// The table's own sharding-key column.
        key: String,
        /// Each listed value with the index of its shard.
        values: BTreeMap<ListValue, usize>,
        /// `default_shard`: the shard of values not listed (`None`: no shard).
        default: Option<usize>,
        /// The table whose values these are (the end of the `colocate_with` chain).
        group: String,
    },
    /// `algorithm = "time"`, or a table co-located with one (it adopts the interval
    /// and placement): intervals of a date/timestamp key placed on shards.
    Time {
        /// The table's own sharding-key column.
        key: String,
        /// `date`, `timestamp` or `timestamptz`.
        key_type: KeyType,
        /// The length of one piece.
        interval: Interval,
        /// Which shard each interval lives on.
        placement: TimePlacement,
        /// Whether the rows of each interval live in their own table,
        /// `{table}_{suffix}` (see [`Interval::suffix`]); the table's own setting.
        table_per_interval: bool,
        /// The table whose placement this is (the end of the `colocate_with` chain).
        group: String,
    },
    /// `broadcast = true`: a full copy on every shard.
    Broadcast,
    /// A `range` table without `ranges` or a `list` table without `values` (or, in a
    /// hand-built, unvalidated config, a malformed `time` table): declared, not yet
    /// placed; it routes no key.
    Other {
        /// The algorithm as written (or adopted through co-location).
        algorithm: String,
        /// The table's own sharding-key column.
        key: String,
    },
}

impl TableRule {
    /// The shard index owning `slot` (`None` unless a hash rule and `slot < slots`).
    pub fn shard_for_slot(&self, slot: u64) -> Option<usize> {
        match self {
            TableRule::Hash { owner, .. } => usize::try_from(slot)
                .ok()
                .and_then(|s| owner.get(s))
                .map(|&i| usize::from(i)),
            _ => None,
        }
    }

    /// The slot of `key` (`None` unless a hash rule).
    pub fn slot_for_key(&self, key: &KeyValue) -> Option<u64> {
        match self {
            TableRule::Hash { slots, .. } => Some(slot(key, *slots)),
            _ => None,
        }
    }

    /// The shard index owning `key`: by slot for a hash rule, by range or listed value
    /// (else `default_shard`) for a range or list rule. `None` for other rules, for a
    /// key outside every range, an unlisted value without a default, or a key whose
    /// type does not match the bounds (an integer key against string bounds).
    pub fn shard_for_key(&self, key: &KeyValue) -> Option<usize> {
        match self {
            TableRule::Range { ranges, .. } => range_list::range_shard(ranges, key),
            TableRule::List {
                values, default, ..
            } => range_list::list_shard(values, *default, key),
            _ => self.shard_for_slot(self.slot_for_key(key)?),
        }
    }

    /// The co-location group (the table at the end of the `colocate_with` chain) of a
    /// hash, range, list or time rule.
    pub fn group(&self) -> Option<&str> {
        match self {
            TableRule::Hash { group, .. }
            | TableRule::Range { group, .. }
            | TableRule::List { group, .. }
            | TableRule::Time { group, .. } => Some(group),
            _ => None,
        }
    }

    /// The sharding-key column, if the table has one.
    pub fn key(&self) -> Option<&str> {
        match self {
            TableRule::Hash { key, .. }
            | TableRule::Range { key, .. }
            | TableRule::List { key, .. }
            | TableRule::Time { key, .. }
            | TableRule::Other { key, .. } => Some(key),
            TableRule::Broadcast => None,
        }
    }

    /// A time rule's target for the key `micros` (see [`crate::time`]): the shard
    /// index and, with `table_per_interval`, the interval's table suffix (`2026_11`);
    /// the physical table is `{table}_{suffix}`. `None` for other rules and for a key
    /// outside every listed interval.
    pub fn time_target(&self, micros: i64) -> Option<(usize, Option<String>)> {
        let (interval, placement, per_interval) = self.time_parts()?;
        time_rule::target(interval, placement, per_interval, micros)
    }

    /// A time rule's targets for keys between `from` and `to` (each `(micros,
    /// inclusive)`): every `(shard, suffix)` whose interval meets the range, in time
    /// order, without repeats (intervals of no shard are skipped). `None` for other
    /// rules, a range open on a side, or one meeting more than `max` intervals.
    pub fn time_targets(
        &self,
        from: Option<(i64, bool)>,
        to: Option<(i64, bool)>,
        max: usize,
    ) -> Option<Vec<(usize, Option<String>)>> {
        let (interval, placement, per_interval) = self.time_parts()?;
        time_rule::targets(interval, placement, per_interval, from, to, max)
    }

    /// A time rule's interval, placement and `table_per_interval`.
    fn time_parts(&self) -> Option<(Interval, &TimePlacement, bool)> {
        match self {
            TableRule::Time {
                interval,
                placement,
                table_per_interval,
                ..
            } => Some((*interval, placement, *table_per_interval)),
            _ => None,
        }
    }

    /// A range rule's shards whose ranges meet the keys between `from` and `to` (each
    /// `(key, inclusive)`; `None`: open), without repeats, in key order. Errs on the
    /// side of more shards (a key of another type than the bounds meets every range).
    /// Empty for other rules.
    pub fn range_shards(
        &self,
        from: Option<(&KeyValue, bool)>,
        to: Option<(&KeyValue, bool)>,
    ) -> Vec<usize> {
        match self {
            TableRule::Range { ranges, .. } => range_list::range_shards(ranges, from, to),
            _ => Vec::new(),
        }
    }

    /// A hash rule's slot ranges, `(shard index, first slot, last slot)` in slot order.
    pub fn slot_ranges(&self) -> Vec<(usize, u64, u64)> {
        let TableRule::Hash { owner, .. } = self else {
            return Vec::new();
        };
        let mut out: Vec<(usize, u64, u64)> = Vec::new();
        for (slot, &shard) in (0u64..).zip(owner) {
            match out.last_mut() {
                Some(last) if last.0 == usize::from(shard) && last.2 + 1 == slot => last.2 = slot,
                _ => out.push((usize::from(shard), slot, slot)),
            }
        }
        out
    }
}

/// Every sharded table's rule. Tables not in it are unsharded (on the default shard).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShardMap {
    tables: BTreeMap<String, TableRule>,
    key_types: BTreeMap<String, KeyType>,
    generated: BTreeMap<String, String>,
}

impl Config {
    /// The runtime shard map of this config (see [`ShardMap::new`]).
    pub fn shard_map(&self) -> ShardMap {
        ShardMap::new(self)
    }
}

impl ShardMap {
    /// Builds the map of a config validated by [`crate::parse`].
    ///
    /// Never panics: on a hand-built, invalid config, a table whose placement
    /// cannot be resolved (a co-location cycle or unknown target, or a broadcast
    /// target) is left out, that is unsharded, and malformed `slots`/`slot_ranges`
    /// fall back to the default and the even split.
    pub fn new(config: &Config) -> ShardMap {
        let shards: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
        let mut tables = BTreeMap::new();
        let mut key_types = BTreeMap::new();
        let mut generated = BTreeMap::new();
        for (name, table) in &config.tables {
            if let Some(rule) = resolve(name, table, &config.tables, &shards) {
                if let Some(column) = table
                    .extra
                    .get("generated_column")
                    .and_then(toml::Value::as_str)
                {
                    generated.insert(name.clone(), column.to_string());
                }
                if let Some(t) = key_type_of(name, &rule, &config.tables) {
                    key_types.insert(name.clone(), t);
                }
                tables.insert(name.clone(), rule);
            }
        }
        ShardMap {
            tables,
            key_types,
            generated,
        }
    }

    /// The rule of table `name`; `None` for an unsharded table.
    pub fn table(&self, name: &str) -> Option<&TableRule> {
        self.tables.get(name)
    }

    /// Every sharded or broadcast table with its rule, by name.
    pub fn tables(&self) -> impl Iterator<Item = (&str, &TableRule)> {
        self.tables.iter().map(|(n, r)| (n.as_str(), r))
    }

    /// The type of `table`'s sharding key: its own `key_type`, else that of the table at
    /// the end of its `colocate_with` chain, else by algorithm: `bigint` for `hash`,
    /// `text` for `range`/`list` with string bounds (else `bigint`), `timestamptz` for
    /// `time`. `None` for unsharded and broadcast tables.
    pub fn key_type(&self, table: &str) -> Option<KeyType> {
        self.key_types.get(table).copied()
    }

    /// The column of `table` the proxy fills with a snowflake id
    /// ([`crate::snowflake`]) when an INSERT leaves it out (`generated_column`).
    pub fn generated_column(&self, table: &str) -> Option<&str> {
        self.generated.get(table).map(String::as_str)
    }

    /// [`TableRule::time_target`] of time table `table`.
    pub fn time_target(&self, table: &str, micros: i64) -> Option<(usize, Option<String>)> {
        self.table(table)?.time_target(micros)
    }

    /// [`TableRule::time_targets`] of time table `table`.
    pub fn time_targets(
        &self,
        table: &str,
        from: Option<(i64, bool)>,
        to: Option<(i64, bool)>,
        max: usize,
    ) -> Option<Vec<(usize, Option<String>)>> {
        self.table(table)?.time_targets(from, to, max)
    }

    /// [`TableRule::range_shards`] of range table `table` (empty for other tables).
    pub fn range_shards(
        &self,
        table: &str,
        from: Option<(&KeyValue, bool)>,
        to: Option<(&KeyValue, bool)>,
    ) -> Vec<usize> {
        self.table(table)
            .map_or_else(Vec::new, |r| r.range_shards(from, to))
    }

    /// The logical table and owning shard of a physical interval table such as
    /// `orders_archive_2026_11` of a `table_per_interval` time table (`_YYYY_MM_DD`,
    /// `_YYYY_MM` or `_YYYY` after the name, as its interval says). The longest
    /// matching logical name wins; `None` for other names and for intervals of no shard.
    pub fn physical_table(&self, name: &str) -> Option<(&str, usize)> {
        self.tables
            .iter()
            .filter_map(|(logical, rule)| {
                let TableRule::Time {
                    interval,
                    placement,
                    table_per_interval: true,
                    ..
                } = rule
                else {
                    return None;
                };
                let suffix = name.strip_prefix(logical.as_str())?.strip_prefix('_')?;
                let start = interval.start(interval.parse_suffix(suffix)?)?;
                Some((logical.as_str(), placement.shard(*interval, start)?))
            })
            .max_by_key(|(logical, _)| logical.len())
    }

    /// The index into [`Config::shards`] of the shard owning `slot` of hash table `table`.
    pub fn shard_for_slot(&self, table: &str, slot: u64) -> Option<usize> {
        self.table(table)?.shard_for_slot(slot)
    }

    /// The index into [`Config::shards`] of the shard owning `key` of hash table `table`:
    /// the owner of [`crate::hash::slot`]`(key, slots)`. `None` for a table that is
    /// unsharded, broadcast or not (yet) mapped.
    pub fn shard_for_key(&self, table: &str, key: &KeyValue) -> Option<usize> {
        self.table(table)?.shard_for_key(key)
    }
}

/// The even split of `slots` over `shards` shards in order: shard `i` gets one
/// contiguous range, and the first `slots % shards` shards one slot more.
pub fn even_split(slots: u64, shards: usize) -> Vec<u16> {
    let shards = u64::try_from(shards.max(1)).unwrap_or(u64::MAX);
    let base = slots / shards;
    let extra = slots % shards;
    let mut owner = Vec::with_capacity(usize::try_from(slots).unwrap_or(0));
    for i in 0..shards {
        let n = base + u64::from(i < extra);
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        owner.extend(std::iter::repeat_n(index, usize::try_from(n).unwrap_or(0)));
    }
    owner
}

fn resolve(
    name: &str,
    table: &TableConfig,
    all: &BTreeMap<String, TableConfig>,
    shards: &[&str],
) -> Option<TableRule> {
    if table.broadcast {
        return Some(TableRule::Broadcast);
    }
    let key = table.sharding_key.clone()?;
    // Follow colocate_with to the root, giving up on cycles and unknown tables.
    let mut root_name = name;
    let mut root = table;
    let mut steps = 0;
    while let Some(next) = &root.colocate_with {
        steps += 1;
        if steps > all.len() {
            return None;
        }
        root_name = next.as_str();
        root = all.get(next)?;
    }
    if root.broadcast {
        return None;
    }
    let algorithm = root.algorithm.as_deref().unwrap_or("hash");
    let group = root_name.to_string();
    if algorithm == "range" || algorithm == "list" {
        return Some(match range_list::build(algorithm, &root.extra, shards) {
            Some(Placed::Ranges(ranges)) => TableRule::Range { key, ranges, group },
            Some(Placed::Values { values, default }) => TableRule::List {
                key,
                values,
                default,
                group,
            },
            None => TableRule::Other {
                algorithm: algorithm.to_string(),
                key,
            },
        });
    }
    if algorithm == "time" {
        let key_type = explicit_key_type(name, all)
            .filter(|t| t.is_time())
            .unwrap_or(KeyType::Timestamptz);
        return Some(match time_rule::build(&table.extra, &root.extra, shards) {
            Some(t) => TableRule::Time {
                key,
                key_type,
                interval: t.interval,
                placement: t.placement,
                table_per_interval: t.table_per_interval,
                group,
            },
            None => TableRule::Other {
                algorithm: algorithm.to_string(),
                key,
            },
        });
    }
    if algorithm != "hash" {
        return Some(TableRule::Other {
            algorithm: algorithm.to_string(),
            key,
        });
    }
    let slots = root
        .extra
        .get("slots")
        .and_then(toml::Value::as_integer)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| (1..=MAX_SLOTS).contains(n))
        .unwrap_or(DEFAULT_SLOTS);
    let owner = root
        .extra
        .get("slot_ranges")
        .and_then(|r| listed_ranges(r, slots, shards))
        .unwrap_or_else(|| even_split(slots, shards.len()));
    Some(TableRule::Hash {
        key,
        slots,
        owner,
        group: root_name.to_string(),
    })
}

/// The key type of a resolved table: its own or its chain's `key_type`, else by rule.
fn key_type_of(
    name: &str,
    rule: &TableRule,
    all: &BTreeMap<String, TableConfig>,
) -> Option<KeyType> {
    if let TableRule::Time { key_type, .. } = rule {
        return Some(*key_type);
    }
    if let Some(t) = explicit_key_type(name, all) {
        return Some(t);
    }
    match rule {
        TableRule::Broadcast => None,
        TableRule::Range { ranges, .. } => Some(
            if ranges
                .iter()
                .any(|(a, b, _)| matches!(a, Bound::Text(_)) || matches!(b, Bound::Text(_)))
            {
                KeyType::Text
            } else {
                KeyType::Int
            },
        ),
        TableRule::List { values, .. } => {
            Some(if values.keys().any(|v| matches!(v, ListValue::Text(_))) {
                KeyType::Text
            } else {
                KeyType::Int
            })
        }
        _ => Some(KeyType::Int),
    }
}

/// The first `key_type` written on `name` or along its `colocate_with` chain.
fn explicit_key_type(name: &str, all: &BTreeMap<String, TableConfig>) -> Option<KeyType> {
    let mut current = all.get(name);
    let mut steps = 0;
    while let Some(table) = current {
        if let Some(t) = table
            .extra
            .get("key_type")
            .and_then(toml::Value::as_str)
            .and_then(KeyType::parse)
        {
            return Some(t);
        }
        steps += 1;
        if steps > all.len() {
            break;
        }
        current = table.colocate_with.as_ref().and_then(|n| all.get(n));
    }
    None
}

/// The owner table of `slot_ranges`, or `None` when they are malformed or incomplete.
fn listed_ranges(ranges: &toml::Value, slots: u64, shards: &[&str]) -> Option<Vec<u16>> {
    let n = usize::try_from(slots).ok()?;
    let mut owner: Vec<Option<u16>> = vec![None; n];
    for r in ranges.as_array()? {
        let r = r.as_table()?;
        let shard = r.get("shard")?.as_str()?;
        let index = u16::try_from(shards.iter().position(|s| *s == shard)?).ok()?;
        let from = usize::try_from(r.get("from")?.as_integer()?).ok()?;
        let to = usize::try_from(r.get("to")?.as_integer()?).ok()?;
        for o in owner.get_mut(from..=to)? {
            if o.replace(index).is_some() {
                return None;
            }
        }
    }
    owner.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_1024_over_2() {
        let owner = even_split(1024, 2);
        assert_eq!(owner.len(), 1024);
        assert!(owner[..512].iter().all(|&s| s == 0));
        assert!(owner[512..].iter().all(|&s| s == 1));
        let rule = TableRule::Hash {
            key: "id".into(),
            slots: 1024,
            owner,
            group: "t".into(),
        };
        assert_eq!(rule.slot_ranges(), vec![(0, 0, 511), (1, 512, 1023)]);
    }

    #[test]
    fn even_split_1024_over_3_gives_the_remainder_to_the_first() {
        let rule = TableRule::Hash {
            key: "id".into(),
            slots: 1024,
            owner: even_split(1024, 3),
            group: "t".into(),
        };
        // 1024 = 3 * 341 + 1: s0 gets 342 slots, s1 and s2 get 341.
        assert_eq!(
            rule.slot_ranges(),
            vec![(0, 0, 341), (1, 342, 682), (2, 683, 1023)]
        );
        assert_eq!(rule.shard_for_slot(341), Some(0));
        assert_eq!(rule.shard_for_slot(342), Some(1));
        assert_eq!(rule.shard_for_slot(682), Some(1));
        assert_eq!(rule.shard_for_slot(683), Some(2));
        assert_eq!(rule.shard_for_slot(1024), None);
    }

    #[test]
    fn even_split_edge_cases() {
        assert_eq!(even_split(5, 3), vec![0, 0, 1, 1, 2]);
        assert_eq!(even_split(1, 2), vec![0]);
        assert_eq!(even_split(3, 1), vec![0, 0, 0]);
        assert_eq!(even_split(2, 0), vec![0, 0]);
    }

    #[test]
    fn non_hash_rules_have_no_shard() {
        let other = TableRule::Other {
            algorithm: "range".into(),
            key: "id".into(),
        };
        assert_eq!(other.shard_for_key(&KeyValue::Int(1)), None);
        assert_eq!(other.key(), Some("id"));
        assert_eq!(TableRule::Broadcast.shard_for_slot(0), None);
        assert_eq!(TableRule::Broadcast.key(), None);
        assert!(TableRule::Broadcast.slot_ranges().is_empty());
    }
}
