//! The merge plan's types: what each shard runs ([`MergePlan::shard_sql`])
//! and how the proxy combines the streams (order, limits, partial
//! aggregates, groups, HAVING, DISTINCT), and why a query cannot be merged
//! ([`MergeError`]).

/// Where a sort key's value is in a shard's result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortColumn {
    /// A column the client sees, 0-based.
    Visible(usize),
    /// The `n`th (0-based) hidden column appended for the merge: column
    /// `columns - hidden + n` of a row.
    Hidden(usize),
    /// The output column of this name (an alias after a `*`, whose position
    /// is known only from the RowDescription).
    Named(String),
}

/// One key of the merge order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// Its column.
    pub column: SortColumn,
    /// `DESC`.
    pub descending: bool,
    /// NULLs sort first (PostgreSQL's default: first for DESC, last for ASC).
    pub nulls_first: bool,
}

/// A row count from `LIMIT`, `OFFSET` or `FETCH`: a literal or a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A literal.
    Literal(u64),
    /// `$n`, 1-based, resolved at Bind.
    Param(usize),
}

/// How to merge the rows of several shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// The SQL each shard runs, when it differs from the client's.
    pub shard_sql: Option<String>,
    /// The client's parameters (0-based) `shard_sql` takes as `$1…`, when
    /// it does not use all of them (an OFFSET or LIMIT the proxy applies).
    pub shard_params: Option<Vec<usize>>,
    /// The merge order (empty: concatenate in any order).
    pub order: Vec<SortKey>,
    /// Hidden columns at the end of each row.
    pub hidden: usize,
    /// Rows to skip after merging.
    pub offset: Option<Count>,
    /// Rows to return after the offset (`None`: all).
    pub limit: Option<Count>,
    /// An aggregate-only query (no GROUP BY): each shard returns one row of
    /// partial aggregates, combined column by column.
    pub aggregates: Vec<Combine>,
    /// `DISTINCT` / `DISTINCT ON`: rows equal on these columns, adjacent in
    /// the merged order, are kept once (the first).
    pub distinct: Option<Dedupe>,
    /// `GROUP BY` (or aggregates with avg, HAVING, ORDER BY or LIMIT):
    /// each shard's groups, sorted by the group columns, are combined where
    /// keys meet.
    pub grouped: Option<Grouped>,
    /// The GROUP BY includes the sharding key of every sharded table: each
    /// group (its aggregates, HAVING) is complete on one shard, and the
    /// rows merge like any others.
    pub groups_per_shard: bool,
    /// Most rows the merge may hold at once (`proxy.merge_row_limit`, set
    /// by the route; unbounded in a plan of its own).
    pub row_limit: usize,
}

impl MergePlan {
    /// Rows concatenated as they come.
    pub(super) fn concatenate() -> MergePlan {
        MergePlan {
            shard_sql: None,
            shard_params: None,
            order: Vec::new(),
            hidden: 0,
            offset: None,
            limit: None,
            aggregates: Vec::new(),
            distinct: None,
            grouped: None,
            groups_per_shard: false,
            row_limit: usize::MAX,
        }
    }
}

/// A grouped query's merge: which columns are group keys, how the others
/// (aggregates) combine, which groups are kept and in what order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouped {
    /// The group key columns of a shard row (0-based; hidden columns follow
    /// the visible ones).
    pub keys: Vec<usize>,
    /// For each column of a shard row: how it combines, `None` for a key.
    pub combine: Vec<Option<Combine>>,
    /// HAVING, evaluated on combined groups.
    pub having: Option<Predicate>,
    /// The client's order when it is not the shards' (aggregates, keys out
    /// of order): combined groups are sorted in memory. Empty: as merged.
    pub order: Vec<SortKey>,
}

/// A HAVING condition the proxy evaluates (SQL's three-valued logic: a
/// group is kept when it is true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// Both.
    And(Box<Predicate>, Box<Predicate>),
    /// Either.
    Or(Box<Predicate>, Box<Predicate>),
    /// Negation (NOT NULL is NULL).
    Not(Box<Predicate>),
    /// A comparison; NULL when either side is.
    Compare(Operand, CompareOp, Operand),
    /// `IS NULL`, or `IS NOT NULL` when the flag is set.
    IsNull(Operand, bool),
    /// A boolean column or constant.
    Truth(Operand),
}

/// A value in a HAVING condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    /// A column of the shard row (a key or a combined aggregate).
    Column(usize),
    /// A constant as written (`t`/`f` for booleans), typed by the column it
    /// is compared with.
    Literal(String),
    /// `NULL`.
    Null,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `=`.
    Eq,
    /// `<>`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
}

/// Which columns make rows duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dedupe {
    /// Every visible column (`SELECT DISTINCT`).
    All,
    /// The `DISTINCT ON` columns.
    On(Vec<SortColumn>),
}

/// How one column of shards' partial aggregates combines into the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// `count` and `sum`: add (NULLs ignored; all NULL: NULL).
    Sum,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `bool_and` / `every`.
    And,
    /// `bool_or`.
    Or,
    /// `avg`: this column holds the shards' `sum`s, added; column `count`
    /// their `count`s; the proxy divides as PostgreSQL's numeric division.
    Avg {
        /// The (hidden) column of the counts.
        count: usize,
    },
}

/// Why a query cannot be merged (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A construct this merge does not handle.
    #[error("{0} across shards is not supported yet")]
    Unsupported(String),
    /// `count(DISTINCT …)` and the like when groups span shards.
    #[error("{0}(DISTINCT …) across shards is not supported unless the GROUP BY includes the sharding key: a value on several shards would be counted once per shard")]
    Distinct(String),
    /// A HAVING condition the proxy cannot evaluate.
    #[error("HAVING {0} across shards is not supported unless the GROUP BY includes the sharding key: the proxy evaluates only comparisons (=, <>, <, <=, >, >=) of aggregates, group keys and constants, AND, OR, NOT and IS [NOT] NULL")]
    Having(String),
}

impl SortColumn {
    /// The sort column of shard-row column `col` when the first `visible`
    /// columns are the client's.
    pub fn at(col: usize, visible: usize) -> SortColumn {
        if col < visible {
            SortColumn::Visible(col)
        } else {
            SortColumn::Hidden(col - visible)
        }
    }
}

/// [`MergeError::Unsupported`] of `what`.
pub(super) fn unsupported<T>(what: &str) -> Result<T, MergeError> {
    Err(MergeError::Unsupported(what.to_string()))
}

impl Count {
    /// The value, with `$n` taken from `params` (text, or a binary
    /// int2/int4/int8); `None`: NULL or unreadable, that is no limit.
    pub fn resolve(self, params: &[crate::params::Param<'_>]) -> Option<u64> {
        match self {
            Count::Literal(n) => Some(n),
            Count::Param(n) => {
                let p = params.get(n.checked_sub(1)?)?;
                let v = p.value?;
                if p.binary {
                    let n = match v.len() {
                        2 => i64::from(i16::from_be_bytes(v.try_into().ok()?)),
                        4 => i64::from(i32::from_be_bytes(v.try_into().ok()?)),
                        8 => i64::from_be_bytes(v.try_into().ok()?),
                        _ => return None,
                    };
                    return u64::try_from(n).ok();
                }
                std::str::from_utf8(v).ok()?.trim().parse().ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_resolve_from_literals_and_text_parameters() {
        let text = |value| crate::params::Param {
            value,
            binary: false,
        };
        let params = [
            text(Some(b"10")),
            text(None),
            text(Some(b"x")),
            crate::params::Param {
                value: Some(&5i64.to_be_bytes()),
                binary: true,
            },
        ];
        assert_eq!(Count::Literal(7).resolve(&params), Some(7));
        assert_eq!(Count::Param(1).resolve(&params), Some(10));
        assert_eq!(Count::Param(2).resolve(&params), None, "NULL: no limit");
        assert_eq!(Count::Param(3).resolve(&params), None);
        assert_eq!(Count::Param(4).resolve(&params), Some(5), "binary int8");
        assert_eq!(Count::Param(5).resolve(&params), None);
        assert_eq!(Count::Param(0).resolve(&params), None);
    }
}
