//! What the proxy needs to route statements across shards: the shard map,
//! a cache of route plans by statement text, the column order of mapped
//! tables, and the snowflake generator for generated key columns.
//!
//! Column orders (for `INSERT INTO t VALUES (…)` without a column list) are
//! read from the default shard's primary catalog in the background: at
//! start (every mapped table that exists), when the planner misses a table
//! or finds its known columns do not fit an INSERT, and after DDL
//! ([`Routing::ddl_done`]). Planning never waits for I/O: an INSERT that
//! needs columns not known yet is refused once (`0A000`, "retry") while
//! they load.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use shard_config::snowflake::{Layout, Snowflake};
use shard_config::{Config, ShardMap};
use sql_rewrite::route::{plan, plan_classified, ColumnOrder, Plan, Topology};
use sql_rewrite::Classification;

use crate::backend::Server;

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
    plans: Arc<Mutex<HashMap<String, Arc<Plan>>>>,
    columns: Columns,
    ids: Mutex<Snowflake>,
}

/// The column order of mapped tables, filled in the background.
struct Columns {
    state: Arc<ColumnState>,
    /// The mapped tables (logical names).
    tables: Vec<String>,
    /// Where the columns are read: the default shard's primary, once attached.
    source: OnceLock<Arc<Server>>,
}

/// What the background loads share with the planner.
struct ColumnState {
    known: RwLock<HashMap<String, Arc<[String]>>>,
    /// Tables being loaded now.
    loading: Mutex<HashSet<String>>,
    /// Bumped whenever what is known changes (a load, DDL).
    generation: AtomicU64,
    /// The plan cache, cleared when columns change (plans embed them).
    plans: Arc<Mutex<HashMap<String, Arc<Plan>>>>,
}

impl ColumnState {
    /// Forgets `tables`' columns (all of them when `None`) and every plan.
    fn forget(&self, tables: Option<&[String]>) {
        if let Ok(mut k) = self.known.write() {
            match tables {
                Some(t) => t.iter().for_each(|t| {
                    k.remove(t);
                }),
                None => k.clear(),
            }
        }
        self.changed();
    }

    /// Records a change: plans made with the old columns are dropped.
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut p) = self.plans.lock() {
            p.clear();
        }
    }
}

impl Columns {
    /// Starts a background load of `tables` (those not loading already),
    /// when a source is attached and a Tokio runtime runs.
    fn load(&self, tables: Vec<String>) {
        let Some(server) = self.source.get().cloned() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let tables: Vec<String> = match self.state.loading.lock() {
            Ok(mut l) => tables.into_iter().filter(|t| l.insert(t.clone())).collect(),
            Err(_) => return,
        };
        if tables.is_empty() {
            return;
        }
        let state = self.state.clone();
        rt.spawn(async move {
            let result = server.table_columns(&tables).await;
            if let Ok(mut l) = state.loading.lock() {
                tables.iter().for_each(|t| {
                    l.remove(t);
                });
            }
            match result {
                Ok(found) => {
                    tracing::debug!(
                        "column order loaded for {} of {} tables",
                        found.len(),
                        tables.len()
                    );
                    if let Ok(mut k) = state.known.write() {
                        for t in &tables {
                            match found.get(t) {
                                Some(cols) => k.insert(t.clone(), cols.clone().into()),
                                None => k.remove(t),
                            };
                        }
                    }
                    state.changed();
                }
                Err(e) => tracing::warn!("column order of {}: {e}", tables.join(", ")),
            }
        });
    }
}

impl ColumnOrder for Columns {
    fn columns(&self, table: &str) -> Option<Arc<[String]>> {
        self.state.known.read().ok()?.get(table).cloned()
    }

    fn missed(&self, table: &str) {
        self.load(vec![table.to_string()]);
    }
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
        let plans = Arc::new(Mutex::new(HashMap::new()));
        let columns = Columns {
            state: Arc::new(ColumnState {
                known: RwLock::new(HashMap::new()),
                loading: Mutex::new(HashSet::new()),
                generation: AtomicU64::new(0),
                plans: plans.clone(),
            }),
            tables: map.tables().map(|(n, _)| n.to_string()).collect(),
            source: OnceLock::new(),
        };
        Ok(Self {
            sharded,
            map,
            names,
            default_shard,
            allow_scatter_writes: config.routing.allow_scatter_writes,
            merge_row_limit: config.proxy.merge_row_limit,
            plans,
            columns,
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
            columns: &self.columns,
        })
    }

    /// The shard map.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// Reads column orders from `server` (the default shard's primary)
    /// from now on, starting with every mapped table, in the background
    /// (when called inside a Tokio runtime; tables that do not exist yet are
    /// read when first needed). Only the first call counts.
    pub fn attach_catalog(&self, server: Arc<Server>) {
        if self.columns.source.set(server).is_ok() && self.sharded {
            self.columns.load(self.columns.tables.clone());
        }
    }

    /// To call when DDL completed through the proxy (a statement outside a
    /// transaction, or the COMMIT or ROLLBACK of a transaction that ran
    /// DDL): forgets every column order and cached plan and reloads the
    /// column orders in the background. Until they are back, an INSERT
    /// without a column list is refused once with "retry".
    pub fn ddl_done(&self) {
        if !self.sharded {
            return;
        }
        self.columns.state.forget(None);
        self.columns.load(self.columns.tables.clone());
    }

    /// Bumped whenever column orders change (loads, [`Routing::ddl_done`]):
    /// a plan held elsewhere (a prepared statement's) made under an older
    /// generation should be made again.
    pub fn generation(&self) -> u64 {
        self.columns.state.generation.load(Ordering::Relaxed)
    }

    /// `table`'s column order as known now (`None`: not known, a load is
    /// started).
    pub fn columns(&self, table: &str) -> Option<Arc<[String]>> {
        let c = self.columns.columns(table);
        if c.is_none() {
            self.columns.missed(table);
        }
        c
    }

    /// Before a DDL text runs: forgets what it may change (column orders,
    /// plans). Not enough alone: a load may run before the DDL commits,
    /// hence [`Routing::ddl_done`]; the planner also checks that the values
    /// fit the known columns.
    fn before_ddl(&self, sql: &str) {
        if self.sharded && changes_columns(sql) {
            self.columns.state.forget(None);
        }
    }

    /// The plan of a statement text, parsed once per distinct text.
    pub fn plan(&self, sql: &str) -> Arc<Plan> {
        self.before_ddl(sql);
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
        self.before_ddl(sql);
        self.with_topology(|t| plan_classified(sql, t, write_functions))
    }

    /// Binds `plan` to one execution's parameters (none for a simple-protocol
    /// text): the shards and what each runs, or the refusal.
    pub fn bind(
        &self,
        plan: &Plan,
        params: &[sql_rewrite::route::Param<'_>],
    ) -> Result<sql_rewrite::route::Route, sql_rewrite::route::Refusal> {
        self.with_topology(|t| plan.bind(t, params, &mut || self.next_id()))
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

/// Whether `sql` starts (after blanks and comments) with `ALTER`, `DROP` or
/// `CREATE`: DDL that may change a table's columns.
fn changes_columns(sql: &str) -> bool {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    let word: String = rest
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(word.as_str(), "alter" | "drop" | "create")
}

#[cfg(test)]
mod tests {
    use super::changes_columns;

    #[test]
    fn ddl_texts_are_recognised() {
        assert!(changes_columns("ALTER TABLE users ADD COLUMN x int"));
        assert!(changes_columns(" /* c */ -- d\n drop table users"));
        assert!(changes_columns("Create table t (a int)"));
        assert!(!changes_columns("SELECT 'alter'"));
        assert!(!changes_columns("INSERT INTO users VALUES (1)"));
        assert!(!changes_columns("altered"));
    }
}
