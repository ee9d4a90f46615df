//! GROUP BY across shards: each shard sends its groups sorted by the group
//! keys, so in the merged order the partial groups of one key are
//! adjacent; they are combined column by column ([`combine_values`]) into
//! one group, released when the next key begins, with its averages then
//! divided ([`numeric_avg`]).

use sql_rewrite::merge::{Combine, Grouped};

use super::combine::{combinable, combine_values, not_combinable};
use super::decimal::numeric_avg;
use super::values::{same_value, Compare, NUMERIC};
use super::wire::Values;

/// The grouping step of a merge (inactive without GROUP BY).
#[derive(Debug, Default)]
pub struct Groups {
    /// The group key columns and their comparison.
    keys: Vec<(usize, Compare)>,
    /// Each column's combination and type (`None`: a key or plain column).
    combine: Vec<Option<(Combine, u32)>>,
    /// The group being combined.
    current: Option<Values>,
}

impl Groups {
    /// Resolves the plan's grouping against the shards' column `types`,
    /// retyping averages as numeric (what the client sees); the reason
    /// when a column cannot be grouped or combined exactly.
    pub fn describe(&mut self, g: &Grouped, types: &mut [u32]) -> Result<(), String> {
        if g.combine.len() != types.len() {
            return Err("the shards returned other columns than expected".into());
        }
        for (i, c) in g.combine.iter().enumerate() {
            let oid = types[i];
            match c {
                None => match Compare::of(oid) {
                    Some(cmp) if g.keys.contains(&i) => self.keys.push((i, cmp)),
                    Some(_) => {}
                    None => {
                        return Err(format!(
                            "GROUP BY a column of type oid {oid} across shards is not supported yet"
                        ))
                    }
                },
                Some(c) if !combinable(*c, oid) => return Err(not_combinable(*c, oid)),
                Some(Combine::Avg { .. }) => types[i] = NUMERIC,
                Some(_) => {}
            }
            self.combine.push(c.map(|c| (c, oid)));
        }
        Ok(())
    }

    /// Whether the merge groups rows.
    pub fn active(&self) -> bool {
        !self.combine.is_empty()
    }

    /// Each column's combination and its shards' type (`None`: not an
    /// aggregate).
    pub fn combine(&self) -> &[Option<(Combine, u32)>] {
        &self.combine
    }

    /// Adds the next merged row: combined into the current group when its
    /// keys match, else it starts a group and the finished one is returned.
    /// A combination that fails (a bigint sum out of range) is recorded in
    /// `failed`.
    pub fn add(&mut self, row: Values, failed: &mut Option<String>) -> Option<Values> {
        match self.current.take() {
            Some(cur) if self.same_group(&cur, &row) => {
                self.current = Some(self.combine_group(cur, row, failed));
                None
            }
            Some(cur) => {
                self.current = Some(row);
                Some(cur)
            }
            None => {
                self.current = Some(row);
                None
            }
        }
    }

    /// The group still being combined, once every row was added.
    pub fn take(&mut self) -> Option<Values> {
        self.current.take()
    }

    /// Divides a finished group's averages (the combined sum by the
    /// combined count); a division that fails is recorded in `failed`.
    pub fn finish_avgs(&self, group: &mut Values, failed: &mut Option<String>) {
        for (i, c) in self.combine.iter().enumerate() {
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
                            failed.get_or_insert_with(|| format!("cannot divide {sum} by {n}"));
                            None
                        }
                    }
                }
                _ => None,
            };
        }
    }

    /// Whether two rows have equal group keys (NULL equal to NULL).
    fn same_group(&self, a: &Values, b: &Values) -> bool {
        self.keys.iter().all(|&(col, cmp)| {
            same_value(
                cmp,
                a.get(col).and_then(|v| v.as_deref()),
                b.get(col).and_then(|v| v.as_deref()),
            )
        })
    }

    /// Adds the aggregates of `row` (same group) into `cur`.
    fn combine_group(&self, mut cur: Values, row: Values, failed: &mut Option<String>) -> Values {
        for (i, v) in row.into_iter().enumerate() {
            let (Some(Some((c, oid))), Some(v)) = (self.combine.get(i), v) else {
                continue;
            };
            let Some(slot) = cur.get_mut(i) else { continue };
            *slot = Some(match slot.take() {
                None => v,
                Some(a) => match combine_values(*c, *oid, a.clone(), v) {
                    Ok(x) => x,
                    Err(why) => {
                        failed.get_or_insert(why);
                        a
                    }
                },
            });
        }
        cur
    }
}
