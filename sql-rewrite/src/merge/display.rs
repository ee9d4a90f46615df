//! How a merge plan reads: one step per line ([`MergePlan::steps`]), for
//! `shardgate route`, the golden tests and debugging.

use std::fmt;

use super::types::{
    Combine, CompareOp, Count, Dedupe, Grouped, MergePlan, Operand, Predicate, SortColumn, SortKey,
};

/// `cN` for a visible column, `hidden N` for an appended one.
fn column_name(c: &SortColumn) -> String {
    match c {
        SortColumn::Visible(i) => format!("c{}", i + 1),
        SortColumn::Hidden(i) => format!("hidden {i}"),
        SortColumn::Named(n) => format!("column {n:?}"),
    }
}

/// `c1 DESC NULLS FIRST, hidden 0 ASC NULLS LAST`.
fn sort_keys(keys: &[SortKey]) -> String {
    keys.iter()
        .map(|k| {
            format!(
                "{} {} NULLS {}",
                column_name(&k.column),
                if k.descending { "DESC" } else { "ASC" },
                if k.nulls_first { "FIRST" } else { "LAST" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Combine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Combine::Sum => f.write_str("sum"),
            Combine::Min => f.write_str("min"),
            Combine::Max => f.write_str("max"),
            Combine::And => f.write_str("and"),
            Combine::Or => f.write_str("or"),
            Combine::Avg { count } => write!(f, "avg (counts in column {})", count + 1),
        }
    }
}

impl Predicate {
    /// Writes the condition with column names relative to `visible`.
    fn show(&self, visible: usize) -> String {
        let op = |o: &Operand| match o {
            Operand::Column(c) => column_name(&SortColumn::at(*c, visible)),
            Operand::Literal(v) => format!("'{}'", v.replace('\'', "''")),
            Operand::Null => "NULL".to_string(),
        };
        match self {
            Predicate::And(a, b) => format!("({} AND {})", a.show(visible), b.show(visible)),
            Predicate::Or(a, b) => format!("({} OR {})", a.show(visible), b.show(visible)),
            Predicate::Not(a) => format!("NOT {}", a.show(visible)),
            Predicate::Compare(l, c, r) => {
                let c = match c {
                    CompareOp::Eq => "=",
                    CompareOp::NotEq => "<>",
                    CompareOp::Lt => "<",
                    CompareOp::LtEq => "<=",
                    CompareOp::Gt => ">",
                    CompareOp::GtEq => ">=",
                };
                format!("{} {c} {}", op(l), op(r))
            }
            Predicate::IsNull(o, false) => format!("{} IS NULL", op(o)),
            Predicate::IsNull(o, true) => format!("{} IS NOT NULL", op(o)),
            Predicate::Truth(o) => op(o),
        }
    }
}

impl MergePlan {
    /// The plan as steps, in the order the proxy applies them: `order c1
    /// DESC NULLS LAST, hidden 0 ASC NULLS LAST`, `offset 5`, `limit $1`,
    /// `combine sum, max`, `group by c1`, `having …`, `distinct`, … (or
    /// `concatenate`), then `shards run: SQL` when the shards get other SQL.
    pub fn steps(&self) -> Vec<String> {
        let mut steps = Vec::new();
        if !self.order.is_empty() {
            steps.push(format!("order {}", sort_keys(&self.order)));
        }
        let count = |c: &Count| match c {
            Count::Literal(n) => n.to_string(),
            Count::Param(n) => format!("${n}"),
        };
        if let Some(o) = &self.offset {
            steps.push(format!("offset {}", count(o)));
        }
        if let Some(l) = &self.limit {
            steps.push(format!("limit {}", count(l)));
        }
        if !self.aggregates.is_empty() {
            let names: Vec<String> = self.aggregates.iter().map(Combine::to_string).collect();
            steps.push(format!("combine {}", names.join(", ")));
        }
        if self.groups_per_shard {
            steps.push("groups complete on each shard".into());
        }
        if let Some(g) = &self.grouped {
            g.steps(self.hidden, &mut steps);
        }
        match &self.distinct {
            Some(Dedupe::All) => steps.push("distinct".into()),
            Some(Dedupe::On(cols)) => {
                let cols: Vec<String> = cols.iter().map(column_name).collect();
                steps.push(format!("distinct on {}", cols.join(", ")));
            }
            None => {}
        }
        if steps.is_empty() {
            steps.push("concatenate".into());
        }
        if let Some(sql) = &self.shard_sql {
            let mut step = format!("shards run: {sql}");
            if let Some(p) = &self.shard_params {
                let given: Vec<String> = p.iter().map(|i| format!("${}", i + 1)).collect();
                if given.is_empty() {
                    step.push_str(" with no parameters");
                } else {
                    step.push_str(&format!(" with {}", given.join(", ")));
                }
            }
            steps.push(step);
        }
        steps
    }
}

impl Grouped {
    /// The grouped merge's steps: `group by c1` (or `one group`), how avg
    /// columns divide, `having …`, `then sort …`.
    fn steps(&self, hidden: usize, steps: &mut Vec<String>) {
        let visible = self.combine.len().saturating_sub(hidden);
        let name = |i: usize| column_name(&SortColumn::at(i, visible));
        if self.keys.is_empty() {
            steps.push("one group".into());
        } else {
            let keys: Vec<String> = self.keys.iter().map(|&i| name(i)).collect();
            steps.push(format!("group by {}", keys.join(", ")));
        }
        for (i, c) in self.combine.iter().enumerate() {
            if let Some(Combine::Avg { count }) = c {
                steps.push(format!(
                    "{} = avg of sums / counts in {}",
                    name(i),
                    name(*count)
                ));
            }
        }
        if let Some(h) = &self.having {
            steps.push(format!("having {}", h.show(visible)));
        }
        if !self.order.is_empty() {
            steps.push(format!("then sort {}", sort_keys(&self.order)));
        }
    }
}

/// One step per line ([`MergePlan::steps`]), no trailing newline.
impl fmt::Display for MergePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.steps().join("\n"))
    }
}
