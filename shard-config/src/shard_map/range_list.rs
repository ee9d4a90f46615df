//! The `range` and `list` algorithms: their bounds and values, lookups and validation.
//!
//! # `range`
//!
//! ```toml
//! [tables.accounts]
//! sharding_key = "id"
//! algorithm = "range"
//! [[tables.accounts.ranges]]
//! shard = "s0"
//! to = 1000            # no `from`: from −∞
//! [[tables.accounts.ranges]]
//! shard = "s1"
//! from = 1000          # inclusive
//! to = 5000            # exclusive
//! [[tables.accounts.ranges]]
//! shard = "s2"
//! from = 5000          # no `to`: up to +∞
//! ```
//!
//! Bounds are all integers or all strings. Strings compare bytewise (PostgreSQL's
//! `C` collation), so a `text` key under another collation may order differently
//! from the server: use `COLLATE "C"` for range-sharded text columns. A `uuid` key is
//! compared as its canonical lowercase text (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`),
//! whose bytewise order is the order of its 16 bytes, that is PostgreSQL's uuid
//! order: write uuid bounds in that form (lowercase, with hyphens).
//!
//! Ranges must neither overlap nor leave gaps between them (`keys 100..200 of table t
//! belong to no shard`). The ends need not be covered: without a range open to −∞
//! (or +∞), keys below the lowest `from` (or from the highest `to` on) belong to no
//! shard, [`TableRule::shard_for_key`] gives `None` for them and the router refuses
//! such rows.
//!
//! # `list`
//!
//! ```toml
//! [tables.stores]
//! sharding_key = "country"
//! algorithm = "list"
//! default_shard = "s2"   # optional: values not listed
//! [tables.stores.values]
//! s0 = ["fr", "be"]
//! s1 = ["de", "at"]
//! ```
//!
//! `values` maps each shard name to the integers or strings (all of one kind) it
//! owns; a value listed for two shards is an error. A value not listed goes to
//! `default_shard`, or to no shard (`None`) without one. uuid keys match their
//! canonical lowercase text, as for `range`.
//!
//! A `range` table without `ranges` (or a `list` table without `values`) is accepted
//! but has no placement yet: it maps to [`TableRule::Other`], which routes no key.
//!
//! A table co-located (`colocate_with`) with a `range` or `list` table adopts its
//! ranges or values, as with `hash`: it takes no `ranges`, `values` or `default_shard`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use toml_edit::Value;

use crate::diagnostics::Diagnostics;
use crate::fields::{
    item_line, item_type, range_entry_shard, shard_known, shard_range_entries, value_type, Section,
};
use crate::hash::KeyValue;

/// One end of a `range` table's range.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bound {
    /// No bound: −∞ as a `from`, +∞ as a `to`.
    Unbounded,
    /// An integer bound (int2, int4, int8 keys).
    Int(i64),
    /// A string bound, compared bytewise (text keys; uuid keys as canonical lowercase text).
    Text(String),
}

/// One value of a `list` table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListValue {
    /// An integer value.
    Int(i64),
    /// A string value (text keys; uuid keys as canonical lowercase text).
    Text(String),
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Unbounded => f.write_str("unbounded"),
            Bound::Int(i) => write!(f, "{i}"),
            Bound::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl fmt::Display for ListValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListValue::Int(i) => write!(f, "{i}"),
            ListValue::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The canonical lowercase text of a uuid, `8-4-4-4-12` hex digits.
pub fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A key as range/list lookups compare it.
enum Probe<'a> {
    Int(i64),
    Bytes(std::borrow::Cow<'a, [u8]>),
}

fn probe<'a>(key: &KeyValue<'a>) -> Probe<'a> {
    match key {
        KeyValue::Int(i) => Probe::Int(*i),
        KeyValue::Text(b) => Probe::Bytes(std::borrow::Cow::Borrowed(b)),
        KeyValue::Uuid(u) => Probe::Bytes(std::borrow::Cow::Owned(uuid_text(u).into_bytes())),
    }
}

/// `key` compared with a bound; `None` when their types differ (or the bound is open).
fn cmp(key: &Probe<'_>, bound: &Bound) -> Option<Ordering> {
    match (key, bound) {
        (Probe::Int(k), Bound::Int(b)) => Some(k.cmp(b)),
        (Probe::Bytes(k), Bound::Text(b)) => Some(k.as_ref().cmp(b.as_bytes())),
        _ => None,
    }
}

/// The shard of the range holding `key`: `from <= key < to`.
pub(crate) fn range_shard(ranges: &[(Bound, Bound, usize)], key: &KeyValue) -> Option<usize> {
    let k = probe(key);
    ranges.iter().find_map(|(from, to, shard)| {
        let above = match from {
            Bound::Unbounded => true,
            b => cmp(&k, b)? != Ordering::Less,
        };
        let below = match to {
            Bound::Unbounded => true,
            b => cmp(&k, b)? == Ordering::Less,
        };
        (above && below).then_some(*shard)
    })
}

/// A query bound as a probe; an exclusive integer bound becomes the inclusive one
/// next to it (`step` away), as integer keys are whole. `None`: no such integer.
#[allow(clippy::type_complexity)]
fn tighten<'a>(
    side: Option<(&KeyValue<'a>, bool)>,
    step: i64,
) -> Option<Option<(Probe<'a>, bool)>> {
    let Some((key, inclusive)) = side else {
        return Some(None);
    };
    Some(Some(match (probe(key), inclusive) {
        (Probe::Int(i), false) => (Probe::Int(i.checked_add(step)?), true),
        (p, inclusive) => (p, inclusive),
    }))
}

/// The shards of the ranges meeting the keys from `from` to `to` (`(key, inclusive)`,
/// `None`: open), in key order without repeats. A bound whose type differs from the
/// ranges' meets every range (more shards, never fewer).
pub(crate) fn range_shards(
    ranges: &[(Bound, Bound, usize)],
    from: Option<(&KeyValue, bool)>,
    to: Option<(&KeyValue, bool)>,
) -> Vec<usize> {
    let (Some(lo), Some(hi)) = (tighten(from, 1), tighten(to, -1)) else {
        return Vec::new(); // past i64::MAX or before i64::MIN: no key at all
    };
    if let (Some((Probe::Int(a), _)), Some((Probe::Int(b), _))) = (&lo, &hi) {
        if a > b {
            return Vec::new();
        }
    }
    let mut out = Vec::new();
    for (start, end, shard) in ranges {
        // The range's end lies past the low bound ...
        let above = match (&lo, end) {
            (None, _) | (_, Bound::Unbounded) => true,
            (Some((k, _)), b) => cmp(k, b).is_none_or(|o| o == Ordering::Less),
        };
        // ... and its start not past the high bound.
        let below = match (&hi, start) {
            (None, _) | (_, Bound::Unbounded) => true,
            (Some((k, true)), b) => cmp(k, b).is_none_or(|o| o != Ordering::Less),
            (Some((k, false)), b) => cmp(k, b).is_none_or(|o| o == Ordering::Greater),
        };
        if above && below && !out.contains(shard) {
            out.push(*shard);
        }
    }
    out
}

/// The shard listing `key`, else `default` (when the key's type is a listed one).
pub(crate) fn list_shard(
    values: &BTreeMap<ListValue, usize>,
    default: Option<usize>,
    key: &KeyValue,
) -> Option<usize> {
    let v = match probe(key) {
        Probe::Int(i) => ListValue::Int(i),
        Probe::Bytes(b) => ListValue::Text(String::from_utf8(b.into_owned()).ok()?),
    };
    values.get(&v).copied().or(default)
}

/// Sort key of a range start: −∞ first.
fn from_order(a: &Bound, b: &Bound) -> Ordering {
    match (a, b) {
        (Bound::Unbounded, Bound::Unbounded) => Ordering::Equal,
        (Bound::Unbounded, _) => Ordering::Less,
        (_, Bound::Unbounded) => Ordering::Greater,
        (Bound::Int(x), Bound::Int(y)) => x.cmp(y),
        (Bound::Text(x), Bound::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bound::Int(_), Bound::Text(_)) => Ordering::Less,
        (Bound::Text(_), Bound::Int(_)) => Ordering::Greater,
    }
}

/// `to` of one range against `from` of the next (both bounded, same type).
fn to_vs_from(to: &Bound, from: &Bound) -> Ordering {
    match (to, from) {
        (Bound::Unbounded, _) => Ordering::Greater, // +∞ is past every start
        (_, Bound::Unbounded) => Ordering::Greater, // −∞ starts before every end
        _ => from_order(to, from),
    }
}

fn toml_bound(v: Option<&toml::Value>) -> Option<Bound> {
    match v {
        None => Some(Bound::Unbounded),
        Some(toml::Value::Integer(i)) => Some(Bound::Int(*i)),
        Some(toml::Value::String(s)) => Some(Bound::Text(s.clone())),
        Some(_) => None,
    }
}

fn toml_list_value(v: &toml::Value) -> Option<ListValue> {
    match v {
        toml::Value::Integer(i) => Some(ListValue::Int(*i)),
        toml::Value::String(s) => Some(ListValue::Text(s.clone())),
        _ => None,
    }
}

/// Where a `range` or `list` root table's keys live ([`build`]), for
/// [`crate::TableRule::Range`] and [`crate::TableRule::List`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placed {
    /// `(from, to, shard)` sorted by `from`.
    Ranges(Vec<(Bound, Bound, usize)>),
    /// Each listed value's shard, and the shard of values not listed.
    Values {
        /// Listed value → shard.
        values: BTreeMap<ListValue, usize>,
        /// `default_shard`.
        default: Option<usize>,
    },
}

/// The placement of a `range` or `list` root table, from its `extra` keys;
/// `None` when they are malformed (a hand-built, unvalidated config).
pub(crate) fn build(
    algorithm: &str,
    extra: &BTreeMap<String, toml::Value>,
    shards: &[&str],
) -> Option<Placed> {
    let index = |v: Option<&toml::Value>| -> Option<usize> {
        let name = v?.as_str()?;
        shards.iter().position(|s| *s == name)
    };
    match algorithm {
        "range" => {
            let mut ranges = Vec::new();
            for r in extra.get("ranges")?.as_array()? {
                let r = r.as_table()?;
                let shard = index(r.get("shard"))?;
                ranges.push((toml_bound(r.get("from"))?, toml_bound(r.get("to"))?, shard));
            }
            ranges.sort_by(|a, b| from_order(&a.0, &b.0));
            Some(Placed::Ranges(ranges))
        }
        "list" => {
            let mut values = BTreeMap::new();
            for (shard, list) in extra.get("values")?.as_table()? {
                let shard = shards.iter().position(|s| s == shard)?;
                for v in list.as_array()? {
                    if values.insert(toml_list_value(v)?, shard).is_some() {
                        return None;
                    }
                }
            }
            let default = match extra.get("default_shard") {
                Some(v) => Some(index(Some(v))?),
                None => None,
            };
            Some(Placed::Values { values, default })
        }
        _ => None,
    }
}

/// The kind of a bound or value, for the mixed-types check.
fn kind(v: &Value) -> Option<&'static str> {
    match v {
        Value::Integer(_) => Some("integer"),
        Value::String(_) => Some("string"),
        _ => None,
    }
}

/// Validates `ranges`/`values`/`default_shard` of table `name`; `algorithm` is the
/// table's own (`None` for a co-located table, which may take none of them).
pub(crate) fn check(
    name: &str,
    s: &Section<'_>,
    algorithm: Option<&str>,
    shards: &[String],
    d: &mut Diagnostics,
) {
    let Some(algorithm) = algorithm else {
        for k in ["ranges", "values", "default_shard"] {
            if s.has(k) {
                d.error(
                    s.key_line(k, d),
                    format!(
                        "table {name} is co-located and adopts the placement of the table it follows: it takes no {k}"
                    ),
                );
            }
        }
        return;
    };
    let own = match algorithm {
        "range" => "ranges",
        "list" => "values",
        _ => "",
    };
    for k in ["ranges", "values"] {
        if k != own && s.has(k) {
            d.error(
                s.key_line(k, d),
                format!(
                    "tables.{name}.{k} applies only to algorithm {:?}",
                    if k == "ranges" { "range" } else { "list" }
                ),
            );
        }
    }
    if s.has("default_shard") && algorithm != "list" {
        d.error(
            s.key_line("default_shard", d),
            format!("tables.{name}.default_shard applies only to algorithm \"list\""),
        );
    }
    match algorithm {
        "range" => check_ranges(name, s, shards, d),
        "list" => check_values(name, s, shards, d),
        _ => {}
    }
}

/// One validated range: bounds, shard name, element line.
struct Parsed {
    from: Bound,
    to: Bound,
    shard: String,
    line: usize,
}

fn check_ranges(name: &str, s: &Section<'_>, shards: &[String], d: &mut Diagnostics) {
    let path = format!("tables.{name}.ranges");
    // Without `ranges` the table is declared but not yet placed: TableRule::Other.
    let Some(entries) = shard_range_entries(s, "ranges", &path, d) else {
        return;
    };
    let mut first_kind: Option<&'static str> = None;
    let mut ranges: Vec<Parsed> = Vec::new();
    let mut all_ok = true;
    for e in entries {
        let (table, line) = (e.table(), e.line());
        let before = d.error_count();
        let shard = range_entry_shard(&e, &path, shards, d);
        let mut bounds = [Bound::Unbounded, Bound::Unbounded];
        let mut lines = [line, line];
        for (i, k) in ["from", "to"].into_iter().enumerate() {
            let Some((key, item)) = table.get_key_value(k) else {
                continue;
            };
            let l = item_line(Some(key), item, d).unwrap_or(line);
            lines[i] = l;
            let v = item.as_value();
            match v.and_then(|v| kind(v).map(|k| (v, k))) {
                Some((v, kd)) => {
                    match first_kind {
                        None => first_kind = Some(kd),
                        Some(fk) if fk != kd => {
                            d.error(
                                l,
                                format!(
                                    "{path}: {k} is {} but earlier bounds of table {name} are {fk}s: bounds must all be integers or all strings",
                                    if kd == "integer" { "an integer" } else { "a string" }
                                ),
                            );
                            continue;
                        }
                        _ => {}
                    }
                    bounds[i] = match v {
                        Value::Integer(n) => Bound::Int(*n.value()),
                        Value::String(t) => Bound::Text(t.value().clone()),
                        _ => Bound::Unbounded,
                    };
                }
                None => d.error(
                    l,
                    format!(
                        "{path}.{k}: expected an integer or a string, found {}",
                        v.map_or_else(|| item_type(item), value_type)
                    ),
                ),
            }
        }
        let [from, to] = bounds;
        if d.error_count() == before
            && from != Bound::Unbounded
            && to != Bound::Unbounded
            && from_order(&from, &to) != Ordering::Less
        {
            d.error(
                lines[0],
                format!(
                    "{path}: from {from} is not before to {to} (from is inclusive, to exclusive)"
                ),
            );
        }
        match shard {
            Some(sh) if d.error_count() == before => ranges.push(Parsed {
                from,
                to,
                shard: sh.value,
                line,
            }),
            _ => all_ok = false,
        }
    }
    if !all_ok {
        return;
    }
    ranges.sort_by(|a, b| from_order(&a.from, &b.from).then(a.line.cmp(&b.line)));
    let show = |b: &Bound, start: bool| match b {
        Bound::Unbounded if start => "-inf".to_string(),
        Bound::Unbounded => "+inf".to_string(),
        b => b.to_string(),
    };
    for pair in ranges.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let overlap = matches!((&a.from, &b.from), (Bound::Unbounded, Bound::Unbounded))
            || to_vs_from(&a.to, &b.from) == Ordering::Greater;
        if overlap {
            let (early, late) = if a.line <= b.line { (a, b) } else { (b, a) };
            d.error(
                late.line,
                format!(
                    "{path}: keys {}..{} (shard {}) overlap keys {}..{} (shard {}, line {})",
                    show(&late.from, true),
                    show(&late.to, false),
                    late.shard,
                    show(&early.from, true),
                    show(&early.to, false),
                    early.shard,
                    early.line
                ),
            );
        } else if to_vs_from(&a.to, &b.from) == Ordering::Less {
            d.error(
                b.line,
                format!(
                    "keys {}..{} of table {name} belong to no shard (a gap between the range of line {} and this one)",
                    a.to, b.from, a.line
                ),
            );
        }
    }
}

fn check_values(name: &str, s: &Section<'_>, shards: &[String], d: &mut Diagnostics) {
    let path = format!("tables.{name}.values");
    if let Some(def) = s.string("default_shard", d) {
        shard_known(
            &def.value,
            &format!("tables.{name}.default_shard"),
            def.line,
            shards,
            d,
        );
    }
    // Without `values` the table is declared but not yet placed: TableRule::Other.
    let Some((_, item)) = s.entries().find(|(k, _)| *k == "values") else {
        return;
    };
    let key_line = s.key_line("values", d);
    let Some(table) = item.as_table_like() else {
        d.error(
            key_line,
            format!(
                "{path}: expected a table of shard = [values] ([{path}]), found {}",
                item_type(item)
            ),
        );
        return;
    };
    let mut first_kind: Option<&'static str> = None;
    // value -> (shard, line)
    let mut seen: BTreeMap<ListValue, (String, usize)> = BTreeMap::new();
    let mut any = false;
    let before = d.error_count();
    for (shard, list) in table.iter() {
        let line = table
            .get_key_value(shard)
            .and_then(|(k, it)| item_line(Some(k), it, d))
            .unwrap_or(key_line);
        shard_known(shard, &path, line, shards, d);
        let Some(array) = list.as_value().and_then(Value::as_array) else {
            d.error(
                line,
                format!(
                    "{path}.{shard}: expected an array of integers or strings, found {}",
                    item_type(list)
                ),
            );
            continue;
        };
        for v in array.iter() {
            let l = d.line_of(v.span()).unwrap_or(line);
            let Some(kd) = kind(v) else {
                d.error(
                    l,
                    format!(
                        "{path}.{shard}: expected integers or strings, found {}",
                        value_type(v)
                    ),
                );
                continue;
            };
            match first_kind {
                None => first_kind = Some(kd),
                Some(fk) if fk != kd => {
                    d.error(
                        l,
                        format!("{path}.{shard}: a {kd} among {fk}s: values must all be integers or all strings"),
                    );
                    continue;
                }
                _ => {}
            }
            let value = match v {
                Value::Integer(n) => ListValue::Int(*n.value()),
                Value::String(t) => ListValue::Text(t.value().clone()),
                _ => continue,
            };
            any = true;
            if let Some((first, first_line)) = seen.get(&value) {
                d.error(
                    l,
                    format!(
                        "value {value} of table {name} is listed for shard {shard} and for shard {first} (line {first_line})"
                    ),
                );
            } else {
                seen.insert(value, (shard.to_string(), l));
            }
        }
    }
    if !any && d.error_count() == before {
        d.error(key_line, format!("{path} must list at least one value"));
    }
}
