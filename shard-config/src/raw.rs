//! The config as read from the file, before defaults: every value keeps its line
//! so validation can point at it. `None` means absent (or already reported as invalid).

use std::collections::BTreeMap;

use crate::address::Address;
use crate::fields::Located;
use crate::model::{
    AdminConfig, BackendConfig, Config, PoolMode, ProxyConfig, ReadFrom, RoutingConfig,
    ShardConfig, TableConfig, UserConfig,
};

/// The whole file.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub(crate) proxy: RawProxy,
    pub(crate) admin: Option<RawAdmin>,
    pub(crate) users: Vec<RawUser>,
    pub(crate) backend: Option<RawBackend>,
    pub(crate) shards: Vec<RawShard>,
    pub(crate) routing: RawRouting,
    pub(crate) tables: BTreeMap<String, TableConfig>,
}

/// `[proxy]`.
#[derive(Debug, Default)]
pub(crate) struct RawProxy {
    pub(crate) listen: Option<Located<Address>>,
    pub(crate) pool_mode: Option<Located<PoolMode>>,
    pub(crate) pool_size: Option<Located<u32>>,
    pub(crate) tls_cert: Option<Located<String>>,
    pub(crate) tls_key: Option<Located<String>>,
    pub(crate) connect_timeout_ms: Option<Located<u64>>,
    pub(crate) max_message_bytes: Option<Located<usize>>,
    pub(crate) startup_timeout_ms: Option<Located<u64>>,
    pub(crate) write_functions: Option<Vec<Located<String>>>,
    pub(crate) node_id: Option<Located<i64>>,
    pub(crate) merge_row_limit: Option<Located<usize>>,
}

/// `[admin]`.
#[derive(Debug)]
pub(crate) struct RawAdmin {
    pub(crate) user: Option<Located<String>>,
    pub(crate) password: Option<Located<String>>,
}

/// One `[[users]]`.
#[derive(Debug)]
pub(crate) struct RawUser {
    pub(crate) name: Option<Located<String>>,
    pub(crate) password: Option<Located<String>>,
}

/// `[backend]`.
#[derive(Debug)]
pub(crate) struct RawBackend {
    pub(crate) user: Option<Located<String>>,
    pub(crate) password: Option<Located<String>>,
    pub(crate) database: Option<Located<String>>,
}

/// One `[[shards]]`.
#[derive(Debug)]
pub(crate) struct RawShard {
    pub(crate) name: Option<Located<String>>,
    pub(crate) primary: Option<Located<Address>>,
    pub(crate) replicas: Vec<Located<Address>>,
}

/// `[routing]`.
#[derive(Debug, Default)]
pub(crate) struct RawRouting {
    pub(crate) default_shard: Option<Located<String>>,
    pub(crate) read_from: Option<Located<ReadFrom>>,
    pub(crate) max_replica_lag_ms: Option<Located<u64>>,
    pub(crate) allow_scatter_writes: Option<Located<bool>>,
}

fn value<T>(v: Option<Located<T>>) -> Option<T> {
    v.map(|l| l.value)
}

fn or_empty(v: Option<Located<String>>) -> String {
    value(v).unwrap_or_default()
}

impl RawConfig {
    /// The public config with defaults filled in.
    ///
    /// Meant for a file that validated cleanly; it never panics, but on an invalid
    /// file absent required values would come out empty.
    pub(crate) fn into_config(self) -> Config {
        let defaults = ProxyConfig::default();
        let p = self.proxy;
        let proxy = ProxyConfig {
            listen: value(p.listen).unwrap_or(defaults.listen),
            pool_mode: value(p.pool_mode).unwrap_or(defaults.pool_mode),
            pool_size: value(p.pool_size).unwrap_or(defaults.pool_size),
            tls_cert: value(p.tls_cert),
            tls_key: value(p.tls_key),
            connect_timeout_ms: value(p.connect_timeout_ms).unwrap_or(defaults.connect_timeout_ms),
            max_message_bytes: value(p.max_message_bytes).unwrap_or(defaults.max_message_bytes),
            startup_timeout_ms: value(p.startup_timeout_ms).unwrap_or(defaults.startup_timeout_ms),
            write_functions: p
                .write_functions
                .map(|fs| fs.into_iter().map(|f| f.value).collect())
                .unwrap_or(defaults.write_functions),
            node_id: value(p.node_id)
                .and_then(|n| u16::try_from(n).ok())
                .unwrap_or(defaults.node_id),
            merge_row_limit: value(p.merge_row_limit).unwrap_or(defaults.merge_row_limit),
        };
        let admin = match self.admin {
            Some(a) => {
                let defaults = AdminConfig::default();
                AdminConfig {
                    user: value(a.user).unwrap_or(defaults.user),
                    password: value(a.password).unwrap_or(defaults.password),
                }
            }
            None => AdminConfig::default(),
        };
        let users = self
            .users
            .into_iter()
            .map(|u| UserConfig {
                name: or_empty(u.name),
                password: or_empty(u.password),
            })
            .collect();
        let backend = self.backend.map_or_else(
            || BackendConfig {
                user: String::new(),
                password: None,
                database: String::new(),
            },
            |b| BackendConfig {
                user: or_empty(b.user),
                password: value(b.password),
                database: or_empty(b.database),
            },
        );
        let shards: Vec<ShardConfig> = self
            .shards
            .into_iter()
            .map(|s| ShardConfig {
                name: or_empty(s.name),
                primary: value(s.primary).unwrap_or_else(|| Address::new("", 0)),
                replicas: s.replicas.into_iter().map(|r| r.value).collect(),
            })
            .collect();
        let r = self.routing;
        let default_shard = value(r.default_shard)
            .or_else(|| shards.first().map(|s| s.name.clone()))
            .unwrap_or_default();
        let routing = RoutingConfig {
            default_shard,
            read_from: value(r.read_from).unwrap_or_default(),
            max_replica_lag_ms: value(r.max_replica_lag_ms)
                .unwrap_or(RoutingConfig::DEFAULT_MAX_REPLICA_LAG_MS),
            allow_scatter_writes: value(r.allow_scatter_writes).unwrap_or(false),
        };
        Config {
            proxy,
            admin,
            users,
            backend,
            shards,
            routing,
            tables: self.tables,
        }
    }
}
