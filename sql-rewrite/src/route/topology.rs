//! What the planner knows of the deployment ([`Topology`]): the shard map,
//! the shards, the default shard and the routing switches.

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
}
