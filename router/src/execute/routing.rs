//! What the proxy needs to route statements across shards: the shard map,
//! a cache of route plans by statement text, and the snowflake generator for
//! generated key columns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use shard_config::snowflake::{Layout, Snowflake};
use shard_config::{Config, ShardMap};
use sql_rewrite::route::{plan, plan_classified, Plan, Topology};
use sql_rewrite::Classification;

/// Plans kept before the cache is cleared (a bound on memory, not an LRU).
const PLAN_CACHE_LIMIT: usize = 4096;

/// Routing state shared by every session.
pub struct Routing {
    map: ShardMap,
    /// Shard names, leaked once per config so that building a [`Topology`]
    /// per statement allocates nothing.
    names: Vec<&'static str>,
    default_shard: usize,
    allow_scatter_writes: bool,
    merge_row_limit: usize,
    /// `true` when the config shards or broadcasts any table.
    pub sharded: bool,
    plans: Mutex<HashMap<String, Arc<Plan>>>,
    ids: Mutex<Snowflake>,
}

impl Routing {
    /// Routing for a validated config.
    pub fn new(config: &Config) -> Result<Self, shard_config::snowflake::SnowflakeError> {
        let map = config.shard_map();
        let names: Vec<&'static str> = config
            .shards
            .iter()
            .map(|s| &*Box::leak(s.name.clone().into_boxed_str()))
            .collect();
        let default_shard = names
            .iter()
            .position(|n| *n == config.routing.default_shard)
            .unwrap_or(0);
        let sharded = map.tables().next().is_some();
        Ok(Self {
            sharded,
            map,
            names,
            default_shard,
            allow_scatter_writes: config.routing.allow_scatter_writes,
            merge_row_limit: config.proxy.merge_row_limit,
            plans: Mutex::new(HashMap::new()),
            ids: Mutex::new(Snowflake::new(config.proxy.node_id, Layout::default())?),
        })
    }

    /// Calls `f` with the planner's view of the deployment.
    pub fn with_topology<R>(&self, f: impl FnOnce(&Topology<'_>) -> R) -> R {
        f(&Topology {
            map: &self.map,
            shards: &self.names,
            default_shard: self.default_shard,
            allow_scatter_writes: self.allow_scatter_writes,
            merge_row_limit: self.merge_row_limit,
        })
    }

    /// The shard map.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// The plan of a statement text, parsed once per distinct text.
    pub fn plan(&self, sql: &str) -> Arc<Plan> {
        if let Some(p) = self.plans.lock().ok().and_then(|c| c.get(sql).cloned()) {
            return p;
        }
        let p = Arc::new(self.with_topology(|t| plan(sql, t)));
        if let Ok(mut cache) = self.plans.lock() {
            if cache.len() >= PLAN_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(sql.to_string(), p.clone());
        }
        p
    }

    /// The plan and classification of a simple-protocol text, parsed once
    /// and not cached (such texts usually carry their keys as literals).
    pub fn plan_uncached(&self, sql: &str, write_functions: &[String]) -> (Plan, Classification) {
        self.with_topology(|t| plan_classified(sql, t, write_functions))
    }

    /// A fresh snowflake id.
    pub fn next_id(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
            .max(shard_config::snowflake::EPOCH_MS);
        let mut g = match self.ids.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // Fails only when the time no longer fits the layout (in 2093).
        g.next_id(now).unwrap_or_else(|e| {
            tracing::error!("snowflake: {e}");
            i64::MAX
        })
    }

    /// Shard name by index.
    pub fn shard_name(&self, i: usize) -> &str {
        self.names.get(i).copied().unwrap_or("?")
    }

    /// Index of the default shard.
    pub fn default_shard(&self) -> usize {
        self.default_shard
    }
}
