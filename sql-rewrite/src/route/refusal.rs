//! Why a statement cannot be routed: [`Refusal`], answered with SQLSTATE
//! `0A000`, and its [`RefusalKind`], one per distinct reason.
//!
//! A leaf of the route planner: the checks that refuse use it.

use std::fmt;

/// A statement shardgate will not run: answered with SQLSTATE `0A000`
/// (feature_not_supported) and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// Which reason, for counting and tests (the client sees the message).
    pub kind: RefusalKind,
    /// What is unsupported and why.
    pub message: String,
}

impl Refusal {
    /// The SQLSTATE of every refusal.
    pub const SQLSTATE: &'static str = "0A000";

    /// A refusal of `kind` saying `message`.
    pub fn new(kind: RefusalKind, message: String) -> Refusal {
        Refusal { kind, message }
    }
}

/// `Some` refusal of `kind` saying `message`: for the checks that answer
/// "why not, if not".
pub(super) fn refuse(kind: RefusalKind, message: String) -> Option<Refusal> {
    Some(Refusal::new(kind, message))
}

/// Why a statement is refused: one variant per distinct reason, each with a
/// stable snake_case name ([`RefusalKind::as_str`], also its Display).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RefusalKind {
    /// An unparseable statement that names a sharded table.
    Unparseable,
    /// A CTE named like a mapped table.
    CteHidesTable,
    /// A data-modifying CTE (`WITH … AS (INSERT/UPDATE/DELETE …)`) naming mapped tables.
    ModifyingCte,
    /// COPY of a sharded table.
    CopySharded,
    /// COPY into a broadcast table.
    CopyIntoBroadcast,
    /// A query string of several statements that go to different shards or need rewriting.
    MultiStatement,
    /// A write to a broadcast table that reads sharded or unsharded tables.
    BroadcastWriteReadsOthers,
    /// A key no shard owns (the shard map leaves it out).
    KeyNotMapped,
    /// Keys or a key range of one table in several interval tables on one shard.
    SeveralIntervals,
    /// A statement on a table-per-interval time table without a bounded key.
    TimeTableUnbounded,
    /// ORDER BY or LIMIT over interval tables on several shards.
    MergeOverIntervals,
    /// A window function across shards.
    WindowFunction,
    /// UNION (without ALL), INTERSECT or EXCEPT across shards.
    SetOperation,
    /// Another construct across shards that the merge does not handle (yet).
    MergeUnsupported,
    /// `count(DISTINCT …)` and the like when groups span shards.
    AggregateDistinct,
    /// A HAVING the proxy cannot evaluate on combined groups (parameters, functions, …).
    HavingNotEvaluable,
    /// A subquery, CTE or derived table reading a sharded table across shards.
    SubqueryAcrossShards,
    /// A subquery not tied to the outer rows by the sharding keys of co-located tables.
    SubqueryNotTiedByKey,
    /// `NOT IN (subquery)` of a sharded table across shards.
    NotInSubquery,
    /// A CTE or derived table that does not carry its sharded rows by their key.
    DerivedTableNotKeyed,
    /// An unsharded table read beside a sharded table read on several shards.
    UnshardedBesideSharded,
    /// An interval table read beside a sharded table read on several shards.
    IntervalBesideSharded,
    /// A FROM item next to a sharded table that cannot be checked (a function, CROSS or NATURAL join, …).
    UncheckedFromItem,
    /// An outer join keeping every row of a broadcast table while matching a sharded table across shards.
    BroadcastOuterJoin,
    /// A cross-shard join of sharded tables that are not co-located.
    JoinNotColocated,
    /// A cross-shard join of co-located tables not on their sharding keys.
    JoinNotOnKey,
    /// EXPLAIN of a statement that runs on several shards.
    ExplainAcrossShards,
    /// An UPDATE or DELETE without the sharding key (without `routing.allow_scatter_writes`).
    ScatterWrite,
    /// An UPDATE that changes the sharding key (the row could have to move).
    KeyChange,
    /// An INSERT omitting the generated column without a column list and VALUES.
    InsertGeneratedColumn,
    /// An INSERT into a sharded table without a column list.
    InsertWithoutColumns,
    /// An INSERT into a sharded table that does not give its sharding key.
    InsertWithoutKey,
    /// An INSERT row whose sharding key is neither a literal nor a parameter.
    InsertKeyNotLiteral,
    /// An INSERT row whose sharding key is NULL.
    InsertNullKey,
    /// INSERT … SELECT into a sharded table whose rows do not stay on one shard.
    InsertSelect,
    /// An INSERT reading tables on other shards than its rows.
    InsertReadsOtherShards,
    /// An inconsistency inside the planner (a bug).
    Internal,
}

impl RefusalKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [RefusalKind] = &[
        RefusalKind::Unparseable,
        RefusalKind::CteHidesTable,
        RefusalKind::ModifyingCte,
        RefusalKind::CopySharded,
        RefusalKind::CopyIntoBroadcast,
        RefusalKind::MultiStatement,
        RefusalKind::BroadcastWriteReadsOthers,
        RefusalKind::KeyNotMapped,
        RefusalKind::SeveralIntervals,
        RefusalKind::TimeTableUnbounded,
        RefusalKind::MergeOverIntervals,
        RefusalKind::WindowFunction,
        RefusalKind::SetOperation,
        RefusalKind::MergeUnsupported,
        RefusalKind::AggregateDistinct,
        RefusalKind::HavingNotEvaluable,
        RefusalKind::SubqueryAcrossShards,
        RefusalKind::SubqueryNotTiedByKey,
        RefusalKind::NotInSubquery,
        RefusalKind::DerivedTableNotKeyed,
        RefusalKind::UnshardedBesideSharded,
        RefusalKind::IntervalBesideSharded,
        RefusalKind::UncheckedFromItem,
        RefusalKind::BroadcastOuterJoin,
        RefusalKind::JoinNotColocated,
        RefusalKind::JoinNotOnKey,
        RefusalKind::ExplainAcrossShards,
        RefusalKind::ScatterWrite,
        RefusalKind::KeyChange,
        RefusalKind::InsertGeneratedColumn,
        RefusalKind::InsertWithoutColumns,
        RefusalKind::InsertWithoutKey,
        RefusalKind::InsertKeyNotLiteral,
        RefusalKind::InsertNullKey,
        RefusalKind::InsertSelect,
        RefusalKind::InsertReadsOtherShards,
        RefusalKind::Internal,
    ];

    /// The stable snake_case name (`join_not_colocated`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Unparseable => "unparseable",
            RefusalKind::CteHidesTable => "cte_hides_table",
            RefusalKind::ModifyingCte => "modifying_cte",
            RefusalKind::CopySharded => "copy_sharded",
            RefusalKind::CopyIntoBroadcast => "copy_into_broadcast",
            RefusalKind::MultiStatement => "multi_statement",
            RefusalKind::BroadcastWriteReadsOthers => "broadcast_write_reads_others",
            RefusalKind::KeyNotMapped => "key_not_mapped",
            RefusalKind::SeveralIntervals => "several_intervals",
            RefusalKind::TimeTableUnbounded => "time_table_unbounded",
            RefusalKind::MergeOverIntervals => "merge_over_intervals",
            RefusalKind::WindowFunction => "window_function",
            RefusalKind::SetOperation => "set_operation",
            RefusalKind::MergeUnsupported => "merge_unsupported",
            RefusalKind::AggregateDistinct => "aggregate_distinct",
            RefusalKind::HavingNotEvaluable => "having_not_evaluable",
            RefusalKind::SubqueryAcrossShards => "subquery_across_shards",
            RefusalKind::SubqueryNotTiedByKey => "subquery_not_tied_by_key",
            RefusalKind::NotInSubquery => "not_in_subquery",
            RefusalKind::DerivedTableNotKeyed => "derived_table_not_keyed",
            RefusalKind::UnshardedBesideSharded => "unsharded_beside_sharded",
            RefusalKind::IntervalBesideSharded => "interval_beside_sharded",
            RefusalKind::UncheckedFromItem => "unchecked_from_item",
            RefusalKind::BroadcastOuterJoin => "broadcast_outer_join",
            RefusalKind::JoinNotColocated => "join_not_colocated",
            RefusalKind::JoinNotOnKey => "join_not_on_key",
            RefusalKind::ExplainAcrossShards => "explain_across_shards",
            RefusalKind::ScatterWrite => "scatter_write",
            RefusalKind::KeyChange => "key_change",
            RefusalKind::InsertGeneratedColumn => "insert_generated_column",
            RefusalKind::InsertWithoutColumns => "insert_without_columns",
            RefusalKind::InsertWithoutKey => "insert_without_key",
            RefusalKind::InsertKeyNotLiteral => "insert_key_not_literal",
            RefusalKind::InsertNullKey => "insert_null_key",
            RefusalKind::InsertSelect => "insert_select",
            RefusalKind::InsertReadsOtherShards => "insert_reads_other_shards",
            RefusalKind::Internal => "internal",
        }
    }
}

impl fmt::Display for RefusalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_distinct_snake_case() {
        let names: std::collections::BTreeSet<&str> =
            RefusalKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), RefusalKind::ALL.len());
        for n in names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
        assert_eq!(RefusalKind::KeyChange.to_string(), "key_change");
    }
}
