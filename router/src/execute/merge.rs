//! The ordered merge of several shards' rows (simple protocol, text
//! format): a k-way merge by the plan's sort keys that holds at most a few
//! rows per shard, then OFFSET and LIMIT, with the hidden sort columns
//! dropped before the client sees a row. Grouped queries combine groups
//! that meet, finish `avg`s, apply HAVING, and when the client's order is
//! not the keys' sort the combined groups in memory: at most the plan's
//! `row_limit` rows (`proxy.merge_row_limit`), else the statement fails
//! with SQLSTATE 54000. Deep OFFSETs of streamed merges hold nothing.
//!
//! Values are compared as PostgreSQL orders them for the common types:
//! integers, floats and numeric by value (NaN above everything), booleans,
//! dates and timestamps by time, and text, varchar, char, name and uuid
//! bytewise, that is in the `C` collation: shards whose text columns use
//! another collation order differently from this merge (see README).

use std::cmp::Ordering;
use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use shard_config::KeyType;
use sql_rewrite::merge::{Combine, CompareOp, Dedupe, MergePlan, Operand, Predicate, SortColumn};

use super::aggregate::{combinable, combine_values, not_combinable, numeric_avg};

use crate::protocol::frame::Frame;
use crate::protocol::messages::{Malformed, Reader};

/// Rows queued per shard before the proxy stops reading that shard.
pub const QUEUE_LIMIT: usize = 32;

/// How values of a sort column compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Int,
    Float,
    Numeric,
    Bool,
    Bytes,
    Time(KeyType),
}

impl Compare {
    fn of(oid: u32) -> Option<Compare> {
        Some(match oid {
            20 | 21 | 23 | 26 => Compare::Int,
            700 | 701 => Compare::Float,
            1700 => Compare::Numeric,
            16 => Compare::Bool,
            25 | 1043 | 1042 | 19 | 18 | 2950 => Compare::Bytes,
            1082 => Compare::Time(KeyType::Date),
            1114 => Compare::Time(KeyType::Timestamp),
            1184 => Compare::Time(KeyType::Timestamptz),
            _ => return None,
        })
    }
}

/// One shard's queued rows.
#[derive(Debug, Default)]
struct Source {
    rows: VecDeque<Bytes>,
    done: bool,
}

/// A merge in progress.
#[derive(Debug)]
pub struct RowMerge {
    plan: MergePlan,
    offset: u64,
    limit: Option<u64>,
    /// Gathered slot index and its queue, in route order.
    sources: Vec<(usize, Source)>,
    /// (column, comparison, descending, nulls first), set by the first RowDescription.
    keys: Vec<(usize, Compare, bool, bool)>,
    /// Columns of a shard row (hidden ones included).
    columns: usize,
    skipped: u64,
    /// Rows sent to the client.
    pub emitted: u64,
    /// DISTINCT: the columns compared, and the last row kept.
    dedupe: Vec<(usize, Compare)>,
    last: Option<Bytes>,
    /// GROUP BY: key columns, each column's combination and type.
    group_keys: Vec<(usize, Compare)>,
    group_combine: Vec<Option<(Combine, u32)>>,
    /// The group being combined.
    current: Option<Vec<Option<Vec<u8>>>>,
    /// Combining failed (a bigint sum out of range): the statement's error.
    pub failed: Option<String>,
    /// Each column's type as the client sees it (an avg: numeric).
    types: Vec<u32>,
    /// The in-memory sort of combined groups (as `keys`).
    final_keys: Vec<SortSpec>,
    /// Combined groups waiting for that sort.
    held: Vec<Vec<Option<Vec<u8>>>>,
    /// The held groups were sorted and sent.
    flushed: bool,
    /// The merge needed more rows than `row_limit`.
    overflow: Option<String>,
}

/// A sort key: column, comparison, descending, NULLs first.
type SortSpec = (usize, Compare, bool, bool);

impl RowMerge {
    /// A merge of the rows of `slots` by `plan`, with OFFSET/LIMIT resolved.
    pub fn new(plan: MergePlan, slots: &[usize], offset: u64, limit: Option<u64>) -> Self {
        Self {
            plan,
            offset,
            limit,
            sources: slots.iter().map(|&s| (s, Source::default())).collect(),
            keys: Vec::new(),
            columns: 0,
            skipped: 0,
            emitted: 0,
            dedupe: Vec::new(),
            last: None,
            group_keys: Vec::new(),
            group_combine: Vec::new(),
            current: None,
            failed: None,
            types: Vec::new(),
            final_keys: Vec::new(),
            held: Vec::new(),
            flushed: false,
            overflow: None,
        }
    }

    /// Why the merge failed for holding too many rows (SQLSTATE 54000).
    pub fn overflow(&self) -> Option<&str> {
        self.overflow.as_deref()
    }

    /// Reads the first RowDescription: resolves the sort columns and returns
    /// it without the hidden columns, or the reason the merge cannot order
    /// these columns.
    pub fn describe(&mut self, f: &Frame) -> Result<Result<Bytes, String>, Malformed> {
        let fields = row_description(f)?;
        self.columns = fields.len();
        let visible = self.columns.saturating_sub(self.plan.hidden);
        for k in &self.plan.order {
            let column = match &k.column {
                SortColumn::Visible(i) => Some(*i),
                SortColumn::Hidden(i) => Some(visible + i),
                SortColumn::Named(n) => fields[..visible]
                    .iter()
                    .position(|(name, _, _)| name.as_slice() == n.as_bytes()),
            };
            let Some(column) = column.filter(|c| *c < self.columns) else {
                return Ok(Err(
                    "ORDER BY names a column the shards did not return".into()
                ));
            };
            let (_, oid, _) = &fields[column];
            let Some(cmp) = Compare::of(*oid) else {
                return Ok(Err(format!(
                    "ORDER BY a column of type oid {oid} across shards is not supported yet"
                )));
            };
            self.keys.push((column, cmp, k.descending, k.nulls_first));
        }
        let dedupe: Vec<usize> = match &self.plan.distinct {
            None => Vec::new(),
            Some(Dedupe::All) => (0..visible).collect(),
            Some(Dedupe::On(cols)) => cols
                .iter()
                .filter_map(|c| match c {
                    SortColumn::Visible(i) => Some(*i),
                    _ => None,
                })
                .collect(),
        };
        for column in dedupe {
            let Some((_, oid, _)) = fields.get(column) else {
                return Ok(Err(
                    "DISTINCT names a column the shards did not return".into()
                ));
            };
            let Some(cmp) = Compare::of(*oid) else {
                return Ok(Err(format!(
                    "DISTINCT on a column of type oid {oid} across shards is not supported yet"
                )));
            };
            self.dedupe.push((column, cmp));
        }
        self.types = fields.iter().map(|(_, oid, _)| *oid).collect();
        if let Some(g) = &self.plan.grouped {
            if g.combine.len() != fields.len() {
                return Ok(Err("the shards returned other columns than expected".into()));
            }
            for (i, c) in g.combine.iter().enumerate() {
                let oid = self.types[i];
                match c {
                    None => match Compare::of(oid) {
                        Some(cmp) if g.keys.contains(&i) => self.group_keys.push((i, cmp)),
                        Some(_) => {}
                        None => {
                            return Ok(Err(format!(
                                "GROUP BY a column of type oid {oid} across shards is not supported yet"
                            )))
                        }
                    },
                    Some(c) if !combinable(*c, oid) => return Ok(Err(not_combinable(*c, oid))),
                    Some(Combine::Avg { .. }) => self.types[i] = NUMERIC,
                    Some(_) => {}
                }
                self.group_combine.push(c.map(|c| (c, oid)));
            }
            for k in &g.order {
                let column = match &k.column {
                    SortColumn::Visible(i) => *i,
                    SortColumn::Hidden(i) => visible + i,
                    SortColumn::Named(_) => usize::MAX,
                };
                let Some(cmp) = self.types.get(column).and_then(|&oid| Compare::of(oid)) else {
                    return Ok(Err(
                        "ORDER BY a column of this type across shards is not supported yet".into(),
                    ));
                };
                self.final_keys
                    .push((column, cmp, k.descending, k.nulls_first));
            }
            if let Some(h) = &g.having {
                if let Err(why) = check_having(h, &self.types) {
                    return Ok(Err(why));
                }
            }
        }
        let mut out = BytesMut::new();
        out.put_u8(b'T');
        let at = out.len();
        out.put_i32(0);
        out.put_i16(i16::try_from(visible).unwrap_or(i16::MAX));
        for (i, (_, _, raw)) in fields[..visible].iter().enumerate() {
            let at = out.len();
            out.put_slice(raw);
            // an avg: numeric, as one server describes it (the shards said sum's type)
            if let (Some(Some((Combine::Avg { .. }, _))), Some(end)) =
                (self.group_combine.get(i), out.len().checked_sub(2))
            {
                if end >= at + 10 {
                    out[end - 10..end - 6].copy_from_slice(&NUMERIC.to_be_bytes());
                    out[end - 6..end - 4].copy_from_slice(&(-1i16).to_be_bytes());
                    out[end - 4..end].copy_from_slice(&(-1i32).to_be_bytes());
                }
            }
        }
        let len = i32::try_from(out.len() - at).unwrap_or(i32::MAX);
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(Ok(out.freeze()))
    }

    /// Queues a DataRow of gathered slot `slot`; `true` when that shard's
    /// queue is full and its reading should pause.
    pub fn push(&mut self, slot: usize, row: Bytes) -> bool {
        match self.sources.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, src)) => {
                src.rows.push_back(row);
                src.rows.len() >= QUEUE_LIMIT
            }
            None => false,
        }
    }

    /// Marks slot `slot`'s rows complete.
    pub fn finish_source(&mut self, slot: usize) {
        if let Some((_, src)) = self.sources.iter_mut().find(|(s, _)| *s == slot) {
            src.done = true;
        }
    }

    /// Whether slot `slot` may be read again (its queue has room).
    pub fn has_room(&self, slot: usize) -> bool {
        self.sources
            .iter()
            .find(|(s, _)| *s == slot)
            .is_none_or(|(_, src)| src.rows.len() < QUEUE_LIMIT)
    }

    /// Emits every row whose place in the merged order is known.
    pub fn drain(&mut self, out: &mut BytesMut) -> Result<(), Malformed> {
        loop {
            if self.limit.is_some_and(|l| self.emitted >= l) {
                for (_, src) in &mut self.sources {
                    src.rows.clear();
                }
                return Ok(());
            }
            // Every shard still sending must have a row queued to compare.
            if self
                .sources
                .iter()
                .any(|(_, src)| src.rows.is_empty() && !src.done)
            {
                return Ok(());
            }
            let mut best: Option<usize> = None;
            for i in 0..self.sources.len() {
                if self.sources[i].1.rows.is_empty() {
                    continue;
                }
                best = Some(match best {
                    None => i,
                    Some(b) => {
                        let (x, y) = (&self.sources[i].1.rows[0], &self.sources[b].1.rows[0]);
                        if self.compare(x, y)? == Ordering::Less {
                            i
                        } else {
                            b
                        }
                    }
                });
            }
            let Some(b) = best else {
                // every shard is done: the last group is complete
                if let Some(group) = self.current.take() {
                    self.emit_group(group, out);
                }
                if !self.final_keys.is_empty() && !self.flushed {
                    self.flushed = true;
                    self.flush(out);
                }
                return Ok(());
            };
            let Some(row) = self.sources[b].1.rows.pop_front() else {
                return Ok(());
            };
            if !self.group_combine.is_empty() {
                let vals: Vec<Option<Vec<u8>>> = data_row(&row)?
                    .into_iter()
                    .map(|v| v.map(<[u8]>::to_vec))
                    .collect();
                match self.current.take() {
                    Some(cur) if self.same_group(&cur, &vals) => {
                        self.current = Some(self.combine_group(cur, vals)?);
                    }
                    Some(cur) => {
                        self.emit_group(cur, out);
                        self.current = Some(vals);
                    }
                    None => self.current = Some(vals),
                }
                continue;
            }
            if !self.dedupe.is_empty() {
                if let Some(last) = &self.last {
                    if self.same(last, &row)? {
                        continue;
                    }
                }
                self.last = Some(row.clone());
            }
            if self.skipped < self.offset {
                self.skipped += 1;
                continue;
            }
            self.emitted += 1;
            if self.plan.hidden == 0 {
                out.extend_from_slice(&row);
            } else {
                without_hidden(&row, self.columns - self.plan.hidden, out)?;
            }
        }
    }

    fn same_group(&self, a: &[Option<Vec<u8>>], b: &[Option<Vec<u8>>]) -> bool {
        self.group_keys.iter().all(|&(col, cmp)| {
            match (a.get(col).cloned().flatten(), b.get(col).cloned().flatten()) {
                (None, None) => true,
                (Some(x), Some(y)) => compare_values(cmp, &x, &y) == Ordering::Equal,
                _ => false,
            }
        })
    }

    /// Adds the aggregates of `row` (same group) into `cur`.
    fn combine_group(
        &mut self,
        mut cur: Vec<Option<Vec<u8>>>,
        row: Vec<Option<Vec<u8>>>,
    ) -> Result<Vec<Option<Vec<u8>>>, Malformed> {
        for (i, v) in row.into_iter().enumerate() {
            let (Some(Some((c, oid))), Some(v)) = (self.group_combine.get(i), v) else {
                continue;
            };
            let Some(slot) = cur.get_mut(i) else { continue };
            *slot = Some(match slot.take() {
                None => v,
                Some(a) => match combine_values(*c, *oid, a.clone(), v) {
                    Ok(x) => x,
                    Err(why) => {
                        self.failed.get_or_insert(why);
                        a
                    }
                },
            });
        }
        Ok(cur)
    }

    /// A finished group: its averages divided, then dropped by HAVING,
    /// held for the final sort, or sent (after OFFSET, within LIMIT).
    fn emit_group(&mut self, mut group: Vec<Option<Vec<u8>>>, out: &mut BytesMut) {
        for (i, c) in self.group_combine.iter().enumerate() {
            let Some((Combine::Avg { count }, _)) = c else {
                continue;
            };
            let n = group.get(*count).cloned().flatten();
            let Some(slot) = group.get_mut(i) else {
                continue;
            };
            *slot = match (slot.take(), n) {
                (Some(sum), Some(n)) => {
                    let (sum, n) = (String::from_utf8_lossy(&sum), String::from_utf8_lossy(&n));
                    match numeric_avg(&sum, &n) {
                        Some(v) => Some(v.into_bytes()),
                        None => {
                            self.failed
                                .get_or_insert_with(|| format!("cannot divide {sum} by {n}"));
                            None
                        }
                    }
                }
                _ => None,
            };
        }
        if let Some(h) = self.plan.grouped.as_ref().and_then(|g| g.having.as_ref()) {
            if eval(h, &group, &self.types) != Some(true) {
                return;
            }
        }
        if self.final_keys.is_empty() {
            self.send(&group, out);
            return;
        }
        if self.overflow.is_some() {
            return;
        }
        self.held.push(group);
        if self.held.len() > self.plan.row_limit {
            // With a LIMIT only the first offset + limit groups matter.
            let keep = self.limit.map(|l| l.saturating_add(self.offset));
            match keep.and_then(|k| usize::try_from(k).ok()) {
                Some(k) if k < self.plan.row_limit => {
                    self.sort_held();
                    self.held.truncate(k);
                }
                _ => {
                    self.held = Vec::new();
                    self.overflow = Some(format!(
                        "this cross-shard query must sort more than {n} combined groups in the proxy, more than proxy.merge_row_limit = {n} allows: add a LIMIT, narrow the query, or raise merge_row_limit",
                        n = self.plan.row_limit
                    ));
                }
            }
        }
    }

    /// Sorts the held groups by the client's order.
    fn sort_held(&mut self) {
        let keys = &self.final_keys;
        self.held.sort_by(|a, b| {
            let ra: Vec<Option<&[u8]>> = a.iter().map(Option::as_deref).collect();
            let rb: Vec<Option<&[u8]>> = b.iter().map(Option::as_deref).collect();
            compare_rows(keys, &ra, &rb)
        });
    }

    /// Sends the held groups in the client's order.
    fn flush(&mut self, out: &mut BytesMut) {
        if self.overflow.is_some() {
            return;
        }
        self.sort_held();
        for group in std::mem::take(&mut self.held) {
            self.send(&group, out);
        }
    }

    /// Sends a group's visible columns (after OFFSET, within LIMIT).
    fn send(&mut self, group: &[Option<Vec<u8>>], out: &mut BytesMut) {
        if self.limit.is_some_and(|l| self.emitted >= l) {
            return;
        }
        if self.skipped < self.offset {
            self.skipped += 1;
            return;
        }
        self.emitted += 1;
        let visible = group.len().saturating_sub(self.plan.hidden);
        let values: Vec<Option<&[u8]>> = group[..visible].iter().map(Option::as_deref).collect();
        crate::protocol::messages::data_row_bytes(out, &values);
    }

    /// DISTINCT equality: equal on every dedupe column, NULL equal to NULL.
    fn same(&self, a: &Bytes, b: &Bytes) -> Result<bool, Malformed> {
        let (ra, rb) = (data_row(a)?, data_row(b)?);
        for &(col, cmp) in &self.dedupe {
            let equal = match (
                ra.get(col).copied().flatten(),
                rb.get(col).copied().flatten(),
            ) {
                (None, None) => true,
                (Some(x), Some(y)) => compare_values(cmp, x, y) == Ordering::Equal,
                _ => false,
            };
            if !equal {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn compare(&self, a: &Bytes, b: &Bytes) -> Result<Ordering, Malformed> {
        Ok(compare_rows(&self.keys, &data_row(a)?, &data_row(b)?))
    }
}

/// The numeric type oid.
const NUMERIC: u32 = 1700;

/// Two rows' order by `keys`.
fn compare_rows(keys: &[SortSpec], ra: &[Option<&[u8]>], rb: &[Option<&[u8]>]) -> Ordering {
    for &(col, cmp, desc, nulls_first) in keys {
        let (x, y) = (
            ra.get(col).copied().flatten(),
            rb.get(col).copied().flatten(),
        );
        let ord = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => {
                if nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(_), None) => {
                if nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Some(x), Some(y)) => {
                let o = compare_values(cmp, x, y);
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// A HAVING operand's type (`None`: a constant) and value (`None`: NULL).
fn operand<'a>(
    o: &'a Operand,
    row: &'a [Option<Vec<u8>>],
    types: &[u32],
) -> (Option<u32>, Option<&'a [u8]>) {
    match o {
        Operand::Column(c) => (
            types.get(*c).copied(),
            row.get(*c).and_then(|v| v.as_deref()),
        ),
        Operand::Literal(v) => (None, Some(v.as_bytes())),
        Operand::Null => (None, None),
    }
}

/// A HAVING condition on a combined group: `None` is SQL's unknown.
fn eval(p: &Predicate, row: &[Option<Vec<u8>>], types: &[u32]) -> Option<bool> {
    match p {
        Predicate::And(a, b) => match (eval(a, row, types), eval(b, row, types)) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Predicate::Or(a, b) => match (eval(a, row, types), eval(b, row, types)) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Predicate::Not(a) => eval(a, row, types).map(|v| !v),
        Predicate::IsNull(o, negated) => Some(operand(o, row, types).1.is_none() != *negated),
        Predicate::Truth(o) => operand(o, row, types).1.map(|v| v == b"t"),
        Predicate::Compare(l, op, r) => {
            let (tl, vl) = operand(l, row, types);
            let (tr, vr) = operand(r, row, types);
            let ord = compare_having(tl, vl?, tr, vr?)?;
            Some(match op {
                CompareOp::Eq => ord == Ordering::Equal,
                CompareOp::NotEq => ord != Ordering::Equal,
                CompareOp::Lt => ord == Ordering::Less,
                CompareOp::LtEq => ord != Ordering::Greater,
                CompareOp::Gt => ord == Ordering::Greater,
                CompareOp::GtEq => ord != Ordering::Less,
            })
        }
    }
}

/// How two HAVING operands of these types (`None`: a constant) compare:
/// numbers of any integer or numeric type by value, float with numbers as
/// float8, other types with their own kind only.
fn having_kind(a: Option<u32>, b: Option<u32>) -> Option<Compare> {
    let numeric = |c: Compare| matches!(c, Compare::Int | Compare::Numeric);
    match (a.map(Compare::of), b.map(Compare::of)) {
        (Some(Some(x)), None) | (None, Some(Some(x))) => Some(if x == Compare::Int {
            Compare::Numeric
        } else {
            x
        }),
        (Some(Some(x)), Some(Some(y))) if x == y => Some(if x == Compare::Int {
            Compare::Numeric
        } else {
            x
        }),
        (Some(Some(x)), Some(Some(y))) if numeric(x) && numeric(y) => Some(Compare::Numeric),
        (Some(Some(x)), Some(Some(y)))
            if (x == Compare::Float && numeric(y)) || (y == Compare::Float && numeric(x)) =>
        {
            Some(Compare::Float)
        }
        _ => None,
    }
}

/// Two non-NULL HAVING values in PostgreSQL's order.
fn compare_having(ta: Option<u32>, a: &[u8], tb: Option<u32>, b: &[u8]) -> Option<Ordering> {
    let kind = having_kind(ta, tb)?;
    if kind == Compare::Bool {
        return Some(bool_text(a)?.cmp(bool_text(b)?));
    }
    Some(compare_values(kind, a, b))
}

/// A boolean's text as PostgreSQL reads it: `t` or `f`.
fn bool_text(v: &[u8]) -> Option<&'static [u8]> {
    let v = std::str::from_utf8(v).ok()?.trim().to_ascii_lowercase();
    match v.as_str() {
        "t" | "true" | "yes" | "on" | "1" | "y" => Some(b"t"),
        "f" | "false" | "no" | "off" | "0" | "n" => Some(b"f"),
        _ => None,
    }
}

/// Checks that every HAVING comparison can be made exactly with these
/// column types: the reason when one cannot.
fn check_having(p: &Predicate, types: &[u32]) -> Result<(), String> {
    let ty = |o: &Operand| match o {
        Operand::Column(c) => types.get(*c).copied(),
        _ => None,
    };
    match p {
        Predicate::And(a, b) | Predicate::Or(a, b) => {
            check_having(a, types)?;
            check_having(b, types)
        }
        Predicate::Not(a) => check_having(a, types),
        Predicate::IsNull(..) => Ok(()),
        Predicate::Truth(o) => match (o, ty(o)) {
            (Operand::Column(_), Some(16)) | (Operand::Literal(_), _) => Ok(()),
            (_, t) => Err(format!(
                "HAVING uses a column of type oid {} as a condition",
                t.unwrap_or(0)
            )),
        },
        Predicate::Compare(l, _, r) => {
            let Some(kind) = having_kind(ty(l), ty(r)) else {
                return Err(format!(
                    "HAVING compares values of type oids {} and {} across shards, which is not supported yet",
                    ty(l).unwrap_or(0),
                    ty(r).unwrap_or(0)
                ));
            };
            for o in [l, r] {
                if let Operand::Literal(v) = o {
                    if !literal_fits(kind, v) {
                        return Err(format!(
                            "HAVING compares with the constant '{v}', which the proxy cannot compare exactly with that column across shards"
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// Whether constant `v` reads as a value of `kind` the way the server
/// would read it.
fn literal_fits(kind: Compare, v: &str) -> bool {
    let decimal = |v: &str| {
        let v = v.strip_prefix('-').unwrap_or(v);
        let (i, f) = v.split_once('.').unwrap_or((v, ""));
        !(i.is_empty() && f.is_empty()) && i.bytes().chain(f.bytes()).all(|c| c.is_ascii_digit())
    };
    match kind {
        Compare::Int | Compare::Numeric => {
            decimal(v) || matches!(v, "NaN" | "Infinity" | "-Infinity")
        }
        Compare::Float => decimal(v) || matches!(v, "NaN" | "Infinity" | "-Infinity"),
        Compare::Bool => bool_text(v.as_bytes()).is_some(),
        Compare::Bytes => true,
        Compare::Time(ty) => {
            // a timestamptz without an offset would be read in the session's time zone
            let zoned = ty != KeyType::Timestamptz
                || v.get(10..)
                    .is_some_and(|t| t.contains(['+', '-', 'Z', 'z']) || t.ends_with("UTC"));
            zoned && shard_config::time::parse_time_text(v, ty).is_some()
        }
    }
}

/// Two non-NULL text-format values of type `oid` in PostgreSQL's order;
/// `None` for a type the merge cannot order.
pub fn compare_typed(oid: u32, x: &[u8], y: &[u8]) -> Option<Ordering> {
    Compare::of(oid).map(|c| compare_values(c, x, y))
}

/// The type oids of a RowDescription's columns.
pub fn row_description_types(f: &Frame) -> Result<Vec<u32>, Malformed> {
    Ok(row_description(f)?
        .into_iter()
        .map(|(_, oid, _)| oid)
        .collect())
}

/// Two non-NULL text-format values of one type.
fn compare_values(cmp: Compare, x: &[u8], y: &[u8]) -> Ordering {
    let s = |b: &[u8]| std::str::from_utf8(b).unwrap_or("").trim().to_string();
    match cmp {
        Compare::Bytes | Compare::Bool => x.cmp(y),
        Compare::Int => match (s(x).parse::<i64>(), s(y).parse::<i64>()) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => x.cmp(y),
        },
        Compare::Float => {
            let f = |b: &[u8]| s(b).parse::<f64>().unwrap_or(f64::NAN);
            let (a, b) = (f(x), f(y));
            // PostgreSQL: NaN equals NaN and sorts above every other value.
            match (a.is_nan(), b.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
            }
        }
        Compare::Numeric => compare_numeric(&s(x), &s(y)),
        Compare::Time(ty) => {
            let t = |v: &str| match v {
                "infinity" => Some(i64::MAX),
                "-infinity" => Some(i64::MIN),
                _ => shard_config::time::parse_time_text(v, ty),
            };
            match (t(&s(x)), t(&s(y))) {
                (Some(a), Some(b)) => a.cmp(&b),
                _ => x.cmp(y),
            }
        }
    }
}

/// PostgreSQL numeric order of two text values: NaN above Infinity above
/// every number, -Infinity below.
pub fn compare_numeric(a: &str, b: &str) -> Ordering {
    fn rank(v: &str) -> u8 {
        match v {
            "-Infinity" => 0,
            "Infinity" => 2,
            "NaN" => 3,
            _ => 1,
        }
    }
    let (ra, rb) = (rank(a), rank(b));
    if ra != 1 || rb != 1 {
        return ra.cmp(&rb);
    }
    let split = |v: &str| -> (bool, String, String) {
        let (neg, v) = match v.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, v),
        };
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        let int = int.trim_start_matches('0').to_string();
        let frac = frac.trim_end_matches('0').to_string();
        let zero = int.is_empty() && frac.is_empty();
        (neg && !zero, int, frac)
    };
    let (na, ia, fa) = split(a);
    let (nb, ib, fb) = split(b);
    let magnitude = ia
        .len()
        .cmp(&ib.len())
        .then_with(|| ia.cmp(&ib))
        .then_with(|| fa.cmp(&fb));
    match (na, nb) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    }
}

/// One RowDescription field: name, type oid, and its raw bytes.
type Field = (Vec<u8>, u32, Vec<u8>);

/// The fields of a RowDescription.
fn row_description(f: &Frame) -> Result<Vec<Field>, Malformed> {
    let body = f.body();
    let mut r = Reader::new(body, "RowDescription");
    let n = r.i16()?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for _ in 0..n {
        let start = body.len() - r.rest().len();
        let name = r.cstr()?.to_vec();
        r.i32()?; // table oid
        r.i16()?; // column number
        let oid = r.i32()? as u32;
        r.i16()?; // size
        r.i32()?; // modifier
        r.i16()?; // format
        let end = body.len() - r.rest().len();
        out.push((name, oid, body[start..end].to_vec()));
    }
    Ok(out)
}

/// The columns of a DataRow frame (whole frame bytes).
fn data_row(frame: &[u8]) -> Result<Vec<Option<&[u8]>>, Malformed> {
    let body = frame
        .get(5..)
        .ok_or_else(|| Reader::new(frame, "DataRow").err())?;
    let mut r = Reader::new(body, "DataRow");
    let n = r.i16()?;
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for _ in 0..n {
        let len = r.i32()?;
        out.push(if len < 0 {
            None
        } else {
            Some(r.take(len as usize)?)
        });
    }
    Ok(out)
}

/// Appends `row` (a DataRow frame) with only its first `visible` columns.
fn without_hidden(row: &[u8], visible: usize, out: &mut BytesMut) -> Result<(), Malformed> {
    let cols = data_row(row)?;
    out.put_u8(b'D');
    let at = out.len();
    out.put_i32(0);
    out.put_i16(i16::try_from(visible).unwrap_or(i16::MAX));
    for c in cols.iter().take(visible) {
        match c {
            Some(v) => {
                out.put_i32(i32::try_from(v.len()).unwrap_or(i32::MAX));
                out.put_slice(v);
            }
            None => out.put_i32(-1),
        }
    }
    let len = i32::try_from(out.len() - at).unwrap_or(i32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order() {
        let mut v = vec![
            "NaN",
            "1.50",
            "-2",
            "0",
            "-0.001",
            "10",
            "Infinity",
            "-Infinity",
            "1.5",
            "0.00",
            "9.999",
        ];
        v.sort_by(|a, b| compare_numeric(a, b));
        assert_eq!(
            v,
            [
                "-Infinity",
                "-2",
                "-0.001",
                "0",
                "0.00",
                "1.50",
                "1.5",
                "9.999",
                "10",
                "Infinity",
                "NaN"
            ]
        );
    }

    #[test]
    fn floats_put_nan_last_and_times_compare_by_instant() {
        assert_eq!(
            compare_values(Compare::Float, b"NaN", b"Infinity"),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(Compare::Float, b"-1.5", b"1e-3"),
            Ordering::Less
        );
        assert_eq!(
            compare_values(
                Compare::Time(KeyType::Timestamptz),
                b"2026-01-01 10:00:00+02",
                b"2026-01-01 09:00:00+00"
            ),
            Ordering::Less
        );
        assert_eq!(
            compare_values(Compare::Time(KeyType::Date), b"infinity", b"2026-01-01"),
            Ordering::Greater
        );
        assert_eq!(compare_values(Compare::Int, b"-10", b"9"), Ordering::Less);
    }
}
