//! What the planner knows of the deployment ([`Topology`]): the shard map,
//! the shards, the default shard, the routing switches, and the column
//! order of mapped tables ([`ColumnOrder`]) as far as it is known.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use shard_config::ShardMap;

/// What the planner knows of the deployment.
#[derive(Debug, Clone, Copy)]
pub struct Topology<'a> {
    /// The shard map.
    pub map: &'a ShardMap,
    /// Shard names, by index.
    pub shards: &'a [&'a str],
    /// Index of the default shard.
    pub default_shard: usize,
    /// `routing.allow_scatter_writes`.
    pub allow_scatter_writes: bool,
    /// `proxy.merge_row_limit`: most rows a cross-shard merge may hold.
    pub merge_row_limit: usize,
    /// The column order of mapped tables, for an INSERT without a column
    /// list ([`NoColumns`] when unknown).
    pub columns: &'a dyn ColumnOrder,
}

/// The columns of tables in their order (`attnum`), as the planner may
/// know them: an INSERT without a column list gives its values in this
/// order, so the sharding key is the value at the key's position.
pub trait ColumnOrder {
    /// `table`'s column names in order, when known.
    fn columns(&self, table: &str) -> Option<Arc<[String]>>;

    /// Told that a statement needed `table`'s columns and they were unknown
    /// or did not fit it (the table may have changed): a chance to (re)load
    /// them. Does nothing by default.
    fn missed(&self, table: &str) {
        let _ = table;
    }
}

impl fmt::Debug for dyn ColumnOrder + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ColumnOrder")
    }
}

/// No column order known: an INSERT into a sharded table without a column
/// list is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoColumns;

impl ColumnOrder for NoColumns {
    fn columns(&self, _table: &str) -> Option<Arc<[String]>> {
        None
    }
}

/// A fixed map of table name to column order.
impl ColumnOrder for BTreeMap<String, Arc<[String]>> {
    fn columns(&self, table: &str) -> Option<Arc<[String]>> {
        self.get(table).cloned()
    }
}

/// A fixed map of table name to column order.
impl ColumnOrder for HashMap<String, Arc<[String]>> {
    fn columns(&self, table: &str) -> Option<Arc<[String]>> {
        self.get(table).cloned()
    }
}
