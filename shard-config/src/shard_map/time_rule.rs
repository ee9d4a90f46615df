//! The `time` algorithm: intervals of a date/timestamp key placed on shards,
//! optionally one physical table per interval; lookups and validation.
//!
//! ```toml
//! [tables.orders_archive]
//! sharding_key = "created_at"
//! algorithm = "time"
//! key_type = "timestamptz"   # date | timestamp | timestamptz (the default)
//! interval = "month"         # day | month | year (required)
//! table_per_interval = true  # rows of 2026-11 live in orders_archive_2026_11
//! start = "2026-01-01"       # round robin: the interval holding start -> shards[0], ...
//! shards = ["s0", "s1"]      # default: every shard in file order
//! ```
//!
//! Round robin continues backwards before `start` (default 1970-01-01): interval
//! `i` (counted from the one holding `start`) goes to `shards[i mod n]`. Instead of
//! `start`/`shards`, intervals may be listed:
//!
//! ```toml
//! [[tables.orders_archive.intervals]]
//! shard = "s0"
//! from = "2026-01-01"        # inclusive, an interval boundary; none: from −∞
//! to = "2026-07-01"          # exclusive, an interval boundary; none: up to +∞
//! ```
//!
//! Listed intervals must neither overlap nor leave gaps between them; keys before
//! the first or after the last (ends left open) belong to no shard. Dates are
//! strings or TOML dates. Keys are microseconds since 1970-01-01 UTC (see
//! [`crate::time`]), so `timestamptz` intervals are cut at UTC midnight.
//!
//! A table co-located with a `time` table adopts its interval and placement; it
//! may set its own `table_per_interval`.

use std::collections::BTreeMap;

use toml_edit::Value;

use crate::diagnostics::Diagnostics;
use crate::fields::{
    item_type, range_entry_shard, shard_range_entries, value_type, Located, Section,
};
use crate::key_type::KeyType;
use crate::time::{format_date, parse_time_text, Interval};

/// Which shard each interval of a `time` table lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimePlacement {
    /// `start`/`shards`: the interval holding `start` on `shards[0]`, the next on
    /// `shards[1]`, and so on, cycling (also backwards, before `start`).
    RoundRobin {
        /// `start`, in microseconds since the Unix epoch (default 0, 1970-01-01).
        start: i64,
        /// Shard indexes in turn (never empty in a validated config).
        shards: Vec<usize>,
    },
    /// `[[intervals]]`: sorted by `from`, without overlaps or gaps.
    Listed(Vec<TimeRange>),
}

/// One listed span of a `time` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeRange {
    /// First microsecond (inclusive); `None`: −∞.
    pub from: Option<i64>,
    /// End (exclusive); `None`: +∞.
    pub to: Option<i64>,
    /// The owning shard's index.
    pub shard: usize,
}

impl TimePlacement {
    /// The shard of the interval holding `micros` (`None`: outside every listed span).
    pub fn shard(&self, interval: Interval, micros: i64) -> Option<usize> {
        match self {
            TimePlacement::RoundRobin { start, shards } => {
                let n = i64::try_from(shards.len()).ok().filter(|n| *n > 0)?;
                let turn = interval
                    .index(micros)
                    .checked_sub(interval.index(*start))?
                    .rem_euclid(n);
                shards.get(usize::try_from(turn).ok()?).copied()
            }
            TimePlacement::Listed(ranges) => ranges
                .iter()
                .find(|r| r.from.is_none_or(|f| f <= micros) && r.to.is_none_or(|t| micros < t))
                .map(|r| r.shard),
        }
    }
}

/// `(shard, table suffix)` of the interval holding `micros`.
pub(crate) fn target(
    interval: Interval,
    placement: &TimePlacement,
    per_interval: bool,
    micros: i64,
) -> Option<(usize, Option<String>)> {
    let shard = placement.shard(interval, micros)?;
    Some((
        shard,
        per_interval.then(|| interval.suffix(interval.index(micros))),
    ))
}

/// Every `(shard, suffix)` of the intervals meeting `from..to`, in time order, without
/// repeats; `None` if a side is open or more than `max` intervals are met.
pub(crate) fn targets(
    interval: Interval,
    placement: &TimePlacement,
    per_interval: bool,
    from: Option<(i64, bool)>,
    to: Option<(i64, bool)>,
    max: usize,
) -> Option<Vec<(usize, Option<String>)>> {
    let (lo, lo_inclusive) = from?;
    let (hi, hi_inclusive) = to?;
    // Keys are whole microseconds: an exclusive bound is the inclusive one next to it.
    let lo = if lo_inclusive {
        Some(lo)
    } else {
        lo.checked_add(1)
    };
    let hi = if hi_inclusive {
        Some(hi)
    } else {
        hi.checked_sub(1)
    };
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return Some(Vec::new());
    };
    if lo > hi {
        return Some(Vec::new());
    }
    let (first, last) = (interval.index(lo), interval.index(hi));
    let count = last.checked_sub(first)?.checked_add(1)?;
    if usize::try_from(count).ok()? > max {
        return None;
    }
    let mut out: Vec<(usize, Option<String>)> = Vec::new();
    for i in first..=last {
        // The interval's own start may lie before `lo`; any instant of it will do.
        let at = interval.start(i).map_or(lo, |s| s.max(lo));
        if let Some(t) = target(interval, placement, per_interval, at) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    Some(out)
}

/// A date from a config value: a string (see [`parse_time_text`]) or a TOML date
/// or datetime, read as a `timestamptz` (no offset: UTC).
fn toml_time(v: &toml::Value) -> Option<i64> {
    match v {
        toml::Value::String(s) => parse_time_text(s, KeyType::Timestamptz),
        toml::Value::Datetime(dt) => parse_time_text(&dt.to_string(), KeyType::Timestamptz),
        _ => None,
    }
}

/// A time table's interval and placement ([`build`]), for [`crate::TableRule::Time`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimeParts {
    /// The length of one piece.
    pub(crate) interval: Interval,
    /// Which shard each interval lives on.
    pub(crate) placement: TimePlacement,
    /// The table's own `table_per_interval`.
    pub(crate) table_per_interval: bool,
}

/// The interval and placement of a table whose placement comes from the
/// `time` table with keys `root` (itself or the end of its `colocate_with`
/// chain), with its `own` keys; `None` when the config is malformed.
pub(crate) fn build(
    own: &BTreeMap<String, toml::Value>,
    root: &BTreeMap<String, toml::Value>,
    shards: &[&str],
) -> Option<TimeParts> {
    let interval = Interval::parse(root.get("interval")?.as_str()?)?;
    let index = |v: Option<&toml::Value>| -> Option<usize> {
        let name = v?.as_str()?;
        shards.iter().position(|s| *s == name)
    };
    let placement = match root.get("intervals") {
        Some(list) => {
            let mut ranges = Vec::new();
            for r in list.as_array()? {
                let r = r.as_table()?;
                let bound = |k: &str| match r.get(k) {
                    None => Some(None),
                    Some(v) => toml_time(v).map(Some),
                };
                ranges.push(TimeRange {
                    from: bound("from")?,
                    to: bound("to")?,
                    shard: index(r.get("shard"))?,
                });
            }
            ranges.sort_by_key(|r| r.from.map_or((0, 0), |f| (1, f)));
            TimePlacement::Listed(ranges)
        }
        None => {
            let start = match root.get("start") {
                Some(v) => toml_time(v)?,
                None => 0,
            };
            let shards: Vec<usize> = match root.get("shards") {
                Some(list) => list
                    .as_array()?
                    .iter()
                    .map(|s| index(Some(s)))
                    .collect::<Option<_>>()?,
                None => (0..shards.len()).collect(),
            };
            if shards.is_empty() {
                return None;
            }
            TimePlacement::RoundRobin { start, shards }
        }
    };
    Some(TimeParts {
        interval,
        placement,
        table_per_interval: own
            .get("table_per_interval")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false),
    })
}

/// Keys only a `time` table takes (besides `table_per_interval`, which a table
/// co-located with one may set too).
pub(crate) const PLACEMENT_KEYS: &[&str] = &["interval", "start", "shards", "intervals"];

/// A date at `key` of a config table: a string or a TOML date; errors name `path.key`.
fn located_time(
    s: &Section<'_>,
    key: &str,
    path: &str,
    d: &mut Diagnostics,
) -> Option<Located<i64>> {
    let (_, item) = s.entries().find(|(k, _)| *k == key)?;
    let line = s.key_line(key, d);
    let (text, shown) = match item.as_value() {
        Some(Value::String(t)) => (t.value().clone(), format!("{:?}", t.value())),
        Some(Value::Datetime(dt)) => (dt.value().to_string(), dt.value().to_string()),
        Some(v) => {
            d.error(
                line,
                format!(
                    "{path}.{key}: expected a date (\"2026-01-01\"), found {}",
                    value_type(v)
                ),
            );
            return None;
        }
        None => {
            d.error(
                line,
                format!(
                    "{path}.{key}: expected a date (\"2026-01-01\"), found {}",
                    item_type(item)
                ),
            );
            return None;
        }
    };
    match parse_time_text(&text, KeyType::Timestamptz) {
        Some(value) => Some(Located { value, line }),
        None => {
            d.error(
                line,
                format!("{path}.{key}: bad date {shown} (expected YYYY-MM-DD)"),
            );
            None
        }
    }
}

/// Validates the keys of a table whose own `algorithm` is `time`.
pub(crate) fn check(name: &str, s: &Section<'_>, shards: &[String], d: &mut Diagnostics) {
    let path = format!("tables.{name}");
    let interval = match s.string("interval", d) {
        Some(v) => match Interval::parse(&v.value) {
            Some(i) => Some(i),
            None => {
                d.error(
                    v.line,
                    format!(
                        "{path}.interval: unknown interval {:?}; expected one of: {}",
                        v.value,
                        Interval::NAMES.join(", ")
                    ),
                );
                None
            }
        },
        None => {
            if !s.has("interval") {
                d.error(
                    s.line(),
                    format!(
                        "table {name}: missing key \"interval\" (algorithm \"time\" needs one of: {})",
                        Interval::NAMES.join(", ")
                    ),
                );
            }
            None
        }
    };
    s.boolean("table_per_interval", d);
    if s.has("intervals") {
        for k in ["start", "shards"] {
            if s.has(k) {
                d.error(
                    s.key_line(k, d),
                    format!(
                        "table {name}: give either start/shards (round robin) or intervals, not both"
                    ),
                );
            }
        }
        if let Some(interval) = interval {
            check_intervals(name, s, interval, shards, d);
        }
        return;
    }
    located_time(s, "start", &path, d);
    if let Some(list) = s.strings("shards", d) {
        if list.is_empty() {
            d.error(
                s.key_line("shards", d),
                format!("{path}.shards must not be empty"),
            );
        }
        for sh in list {
            if !shards.contains(&sh.value) {
                d.error(
                    sh.line,
                    format!(
                        "unknown shard {:?} in {path}.shards; known shards: {}",
                        sh.value,
                        shards.join(", ")
                    ),
                );
            }
        }
    }
}

/// One valid listed interval: bounds, shard name, element line.
struct Listed {
    from: Option<i64>,
    to: Option<i64>,
    shard: String,
    line: usize,
}

fn show(bound: Option<i64>, start: bool) -> String {
    match bound {
        Some(b) => format_date(b),
        None if start => "-inf".to_string(),
        None => "+inf".to_string(),
    }
}

fn check_intervals(
    name: &str,
    s: &Section<'_>,
    interval: Interval,
    shards: &[String],
    d: &mut Diagnostics,
) {
    let path = format!("tables.{name}.intervals");
    let Some(entries) = shard_range_entries(s, "intervals", &path, d) else {
        return;
    };
    let mut listed: Vec<Listed> = Vec::new();
    let mut all_ok = true;
    for e in entries {
        let line = e.line();
        let before = d.error_count();
        let shard = range_entry_shard(&e, &path, shards, d);
        let from = located_time(&e, "from", &path, d);
        let to = located_time(&e, "to", &path, d);
        for (k, v) in [("from", &from), ("to", &to)] {
            if let Some(v) = v {
                if !interval.is_boundary(v.value) {
                    d.error(
                        v.line,
                        format!(
                            "{path}: {k} {} is not the start of a {interval} (intervals are whole {interval}s)",
                            show_instant(v.value)
                        ),
                    );
                }
            }
        }
        if let (Some(f), Some(t)) = (&from, &to) {
            if d.error_count() == before && f.value >= t.value {
                d.error(
                    f.line,
                    format!(
                        "{path}: from {} is not before to {} (from is inclusive, to exclusive)",
                        format_date(f.value),
                        format_date(t.value)
                    ),
                );
            }
        }
        match shard {
            Some(sh) if d.error_count() == before => listed.push(Listed {
                from: from.map(|f| f.value),
                to: to.map(|t| t.value),
                shard: sh.value,
                line,
            }),
            _ => all_ok = false,
        }
    }
    if !all_ok {
        return;
    }
    listed.sort_by_key(|l| (l.from.map_or((0, 0), |f| (1, f)), l.line));
    for pair in listed.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let overlap = match (a.to, b.from) {
            (None, _) | (_, None) => true,
            (Some(t), Some(f)) => t > f,
        };
        if overlap {
            let (early, late) = if a.line <= b.line { (a, b) } else { (b, a) };
            d.error(
                late.line,
                format!(
                    "{path}: {}..{} (shard {}) overlaps {}..{} (shard {}, line {})",
                    show(late.from, true),
                    show(late.to, false),
                    late.shard,
                    show(early.from, true),
                    show(early.to, false),
                    early.shard,
                    early.line
                ),
            );
        } else if let (Some(t), Some(f)) = (a.to, b.from) {
            if t < f {
                d.error(
                    b.line,
                    format!(
                        "time intervals {}..{} of table {name} belong to no shard",
                        format_date(t),
                        format_date(f)
                    ),
                );
            }
        }
    }
}

/// A date, or a date and time when not at midnight.
fn show_instant(micros: i64) -> String {
    let day = micros.rem_euclid(crate::time::MICROS_PER_DAY);
    if day == 0 {
        return format_date(micros);
    }
    let secs = day / 1_000_000;
    format!(
        "{} {:02}:{:02}:{:02}",
        format_date(micros),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        parse_time_text(text, KeyType::Timestamptz).unwrap()
    }

    #[test]
    fn round_robin_cycles_both_ways() {
        let p = TimePlacement::RoundRobin {
            start: at("2026-01-15"),
            shards: vec![0, 1, 2],
        };
        let m = Interval::Month;
        assert_eq!(p.shard(m, at("2026-01-01")), Some(0));
        assert_eq!(p.shard(m, at("2026-02-28 23:59:59")), Some(1));
        assert_eq!(p.shard(m, at("2026-03-01")), Some(2));
        assert_eq!(p.shard(m, at("2026-04-01")), Some(0));
        assert_eq!(p.shard(m, at("2025-12-31")), Some(2));
        assert_eq!(p.shard(m, at("2025-11-30")), Some(1));
        assert_eq!(p.shard(m, at("1969-12-31")), Some(2)); // 673 months before: -673 mod 3 = 2
        let empty = TimePlacement::RoundRobin {
            start: 0,
            shards: vec![],
        };
        assert_eq!(empty.shard(m, 0), None);
    }

    #[test]
    fn listed_spans() {
        let p = TimePlacement::Listed(vec![
            TimeRange {
                from: None,
                to: Some(at("2026-01-01")),
                shard: 1,
            },
            TimeRange {
                from: Some(at("2026-01-01")),
                to: Some(at("2026-07-01")),
                shard: 0,
            },
        ]);
        let m = Interval::Month;
        assert_eq!(p.shard(m, at("1960-05-01")), Some(1));
        assert_eq!(p.shard(m, at("2025-12-31 23:59:59.999999")), Some(1));
        assert_eq!(p.shard(m, at("2026-01-01")), Some(0));
        assert_eq!(p.shard(m, at("2026-06-30")), Some(0));
        assert_eq!(p.shard(m, at("2026-07-01")), None);
    }

    #[test]
    fn targets_of_ranges() {
        let p = TimePlacement::RoundRobin {
            start: at("2026-01-01"),
            shards: vec![0, 1],
        };
        let m = Interval::Month;
        let t = |from, to, per, max| targets(m, &p, per, from, to, max);
        let jan = at("2026-01-01");
        let apr = at("2026-04-01");
        assert_eq!(
            t(Some((jan, true)), Some((apr, false)), true, 12),
            Some(vec![
                (0, Some("2026_01".to_string())),
                (1, Some("2026_02".to_string())),
                (0, Some("2026_03".to_string())),
            ])
        );
        assert_eq!(
            t(Some((jan, true)), Some((apr, true)), true, 12).map(|v| v.len()),
            Some(4)
        );
        assert_eq!(
            t(Some((jan, true)), Some((apr, false)), false, 12),
            Some(vec![(0, None), (1, None)])
        );
        assert_eq!(t(Some((jan, true)), Some((apr, false)), true, 2), None);
        assert_eq!(t(None, Some((apr, false)), true, 12), None);
        assert_eq!(t(Some((jan, true)), None, true, 12), None);
        assert_eq!(
            t(Some((apr, true)), Some((jan, true)), true, 12),
            Some(vec![])
        );
        assert_eq!(
            t(Some((jan, false)), Some((jan, true)), true, 12),
            Some(vec![])
        );
        assert_eq!(
            t(Some((i64::MIN, true)), Some((i64::MAX, true)), true, 12),
            None
        );
    }
}
