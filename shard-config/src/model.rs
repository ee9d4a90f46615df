//! The validated configuration, as the router uses it.

use std::collections::BTreeMap;
use std::fmt;

use crate::address::Address;
use crate::scram;

/// A whole, validated shardgate config. Build one with [`crate::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[proxy]`: the listener and pools.
    pub proxy: ProxyConfig,
    /// `[admin]`: the admin console's login.
    pub admin: AdminConfig,
    /// `[[users]]`: who may log in to the proxy (at least one).
    pub users: Vec<UserConfig>,
    /// `[backend]`: how the proxy logs in to every Postgres server.
    pub backend: BackendConfig,
    /// `[[shards]]`: the Postgres clusters, in file order (at least one).
    pub shards: Vec<ShardConfig>,
    /// `[routing]`: where statements go.
    pub routing: RoutingConfig,
    /// `[tables.NAME]`: per-table sharding, by table name.
    pub tables: BTreeMap<String, TableConfig>,
}

impl Config {
    /// The shard called `name`.
    pub fn shard(&self, name: &str) -> Option<&ShardConfig> {
        self.shards.iter().find(|s| s.name == name)
    }

    /// The shard named by `routing.default_shard` (the first shard when the file names none).
    ///
    /// # Panics
    ///
    /// Only for a hand-built `Config` without shards; [`crate::parse`] guarantees one.
    pub fn default_shard(&self) -> &ShardConfig {
        self.shard(&self.routing.default_shard)
            .or_else(|| self.shards.first())
            .expect("a validated config has at least one shard")
    }

    /// The proxy user called `name`.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// `[proxy]`: the client-facing listener, pooling and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Where clients connect (`listen`, default `127.0.0.1:6432`).
    pub listen: Address,
    /// When a server connection returns to the pool (`pool_mode`, default session).
    pub pool_mode: PoolMode,
    /// Server connections per Postgres server (`pool_size`, default 10, at least 1).
    pub pool_size: u32,
    /// Path of a PEM certificate chain for client TLS (`tls_cert`; set with `tls_key`).
    pub tls_cert: Option<String>,
    /// Path of the PEM private key for `tls_cert` (`tls_key`).
    pub tls_key: Option<String>,
    /// How long to wait for a backend connection, in ms (default 2000).
    pub connect_timeout_ms: u64,
    /// Largest protocol frame accepted, in bytes (default 64 MiB, at least 1024).
    pub max_message_bytes: usize,
    /// How long a client may take to finish startup and login, in ms (default 10000).
    pub startup_timeout_ms: u64,
    /// Function names that write, besides the built-in list (default none).
    pub write_functions: Vec<String>,
    /// This proxy's snowflake node id for `generated_column`s (`node_id`, default 0,
    /// at most [`ProxyConfig::MAX_NODE_ID`]): give every proxy of one database its own.
    pub node_id: u16,
    /// Most rows a cross-shard merge may hold in memory at once
    /// (`merge_row_limit`, default 100 000, at least 1): a merge that would
    /// need more (a re-sort of many groups) fails with SQLSTATE 54000.
    pub merge_row_limit: usize,
}

impl ProxyConfig {
    /// Default `listen`.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:6432";
    /// Default `pool_size`.
    pub const DEFAULT_POOL_SIZE: u32 = 10;
    /// Default `connect_timeout_ms`.
    pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2000;
    /// Default `max_message_bytes` (64 MiB).
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
    /// Smallest allowed `max_message_bytes`.
    pub const MIN_MAX_MESSAGE_BYTES: usize = 1024;
    /// Default `startup_timeout_ms`.
    pub const DEFAULT_STARTUP_TIMEOUT_MS: u64 = 10_000;
    /// Largest `node_id`: what the default snowflake [`Layout`](crate::snowflake::Layout)'s
    /// 10 node bits hold.
    pub const MAX_NODE_ID: u16 = 1023;
    /// Default `merge_row_limit`.
    pub const DEFAULT_MERGE_ROW_LIMIT: usize = 100_000;
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: Address::new("127.0.0.1", 6432),
            pool_mode: PoolMode::default(),
            pool_size: Self::DEFAULT_POOL_SIZE,
            tls_cert: None,
            tls_key: None,
            connect_timeout_ms: Self::DEFAULT_CONNECT_TIMEOUT_MS,
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            startup_timeout_ms: Self::DEFAULT_STARTUP_TIMEOUT_MS,
            write_functions: Vec::new(),
            node_id: 0,
            merge_row_limit: Self::DEFAULT_MERGE_ROW_LIMIT,
        }
    }
}

/// When a server connection goes back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PoolMode {
    /// When the client disconnects (`"session"`, the default).
    #[default]
    Session,
    /// At the end of each transaction (`"transaction"`).
    Transaction,
}

impl PoolMode {
    /// The value as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        }
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[admin]`: the admin console's login (database `shardgate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Admin user name (default `admin`).
    pub user: String,
    /// Admin password, plain text (default `admin`).
    pub password: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            user: "admin".to_string(),
            password: "admin".to_string(),
        }
    }
}

/// `[[users]]`: one login clients may use with the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConfig {
    /// User name.
    pub name: String,
    /// Plain-text password or a SCRAM-SHA-256 verifier (see [`UserConfig::is_scram_verifier`]).
    pub password: String,
}

impl UserConfig {
    /// Whether `password` is a well-formed SCRAM-SHA-256 verifier,
    /// `SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>`, rather than plain text.
    pub fn is_scram_verifier(&self) -> bool {
        scram::check_verifier(&self.password).is_ok()
    }
}

/// `[backend]`: the login the proxy uses on every Postgres server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// Postgres user.
    pub user: String,
    /// Postgres password; `None` for trust authentication.
    pub password: Option<String>,
    /// Database on every server; also the database name clients connect to.
    pub database: String,
}

/// `[[shards]]`: one Postgres cluster, a primary and its streaming replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    /// Unique shard name.
    pub name: String,
    /// The primary's address.
    pub primary: Address,
    /// The replicas' addresses (may be empty).
    pub replicas: Vec<Address>,
}

/// `[routing]`: where statements go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Home of unsharded tables and catalog queries; always names an existing shard.
    pub default_shard: String,
    /// Where reads go (default replicas).
    pub read_from: ReadFrom,
    /// A replica lagging more than this many ms gets no reads (default 1000).
    pub max_replica_lag_ms: u64,
    /// Whether UPDATE/DELETE without the sharding key may go to every shard (default false).
    pub allow_scatter_writes: bool,
}

impl RoutingConfig {
    /// Default `max_replica_lag_ms`.
    pub const DEFAULT_MAX_REPLICA_LAG_MS: u64 = 1000;
}

/// Where reads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReadFrom {
    /// A healthy replica of the target shard (`"replicas"`, the default).
    #[default]
    Replicas,
    /// Always the primary (`"primary"`).
    Primary,
}

impl ReadFrom {
    /// The value as written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadFrom::Replicas => "replicas",
            ReadFrom::Primary => "primary",
        }
    }
}

impl fmt::Display for ReadFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[tables.NAME]`: how one table is sharded, as written.
///
/// [`crate::parse`] validates the `hash` (`slots`, `slot_ranges`), `range` (`ranges`),
/// `list` (`values`, `default_shard`) and `time` (`interval`, `start`, `shards`,
/// `intervals`, `table_per_interval`) algorithms, `key_type`, `generated_column`,
/// broadcast tables and co-location; those keys and the reserved ones (see
/// [`crate::RESERVED_TABLE_KEYS`]) are kept in `extra`. [`crate::ShardMap`] is the
/// resolved, runtime form.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
pub struct TableConfig {
    /// Column whose value picks the shard.
    #[serde(default)]
    pub sharding_key: Option<String>,
    /// Sharding algorithm name (`hash`, `range`, `list`, `time`).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// Table whose shard placement this one follows.
    #[serde(default)]
    pub colocate_with: Option<String>,
    /// A full copy on every shard (default false).
    #[serde(default)]
    pub broadcast: bool,
    /// Every other key of the table, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(name: &str, port: u16) -> ShardConfig {
        ShardConfig {
            name: name.into(),
            primary: Address::new("127.0.0.1", port),
            replicas: vec![],
        }
    }

    fn config(default_shard: &str) -> Config {
        Config {
            proxy: ProxyConfig::default(),
            admin: AdminConfig::default(),
            users: vec![UserConfig {
                name: "shop".into(),
                password: "shop".into(),
            }],
            backend: BackendConfig {
                user: "shop".into(),
                password: None,
                database: "shop".into(),
            },
            shards: vec![shard("s0", 1), shard("s1", 2)],
            routing: RoutingConfig {
                default_shard: default_shard.into(),
                read_from: ReadFrom::default(),
                max_replica_lag_ms: RoutingConfig::DEFAULT_MAX_REPLICA_LAG_MS,
                allow_scatter_writes: false,
            },
            tables: BTreeMap::new(),
        }
    }

    #[test]
    fn lookups_by_name() {
        let c = config("s1");
        assert_eq!(c.shard("s0").map(|s| s.primary.port), Some(1));
        assert!(c.shard("s9").is_none());
        assert_eq!(c.default_shard().name, "s1");
        assert_eq!(c.user("shop").map(|u| u.password.as_str()), Some("shop"));
        assert!(c.user("nobody").is_none());
    }

    #[test]
    fn default_shard_falls_back_to_the_first() {
        assert_eq!(config("").default_shard().name, "s0");
    }

    #[test]
    fn defaults() {
        let p = ProxyConfig::default();
        assert_eq!(p.listen.to_string(), ProxyConfig::DEFAULT_LISTEN);
        assert_eq!(p.pool_mode, PoolMode::Session);
        assert_eq!(p.pool_size, 10);
        assert_eq!(p.connect_timeout_ms, 2000);
        assert_eq!(p.max_message_bytes, 67_108_864);
        assert_eq!(p.startup_timeout_ms, 10_000);
        assert_eq!(p.node_id, 0);
        assert_eq!(p.merge_row_limit, 100_000);
        assert_eq!(
            u32::from(ProxyConfig::MAX_NODE_ID),
            (1u32 << crate::snowflake::Layout::default().node_bits) - 1
        );
        assert!(p.tls_cert.is_none() && p.tls_key.is_none() && p.write_functions.is_empty());
        let a = AdminConfig::default();
        assert_eq!((a.user.as_str(), a.password.as_str()), ("admin", "admin"));
        assert_eq!(ReadFrom::default(), ReadFrom::Replicas);
    }

    #[test]
    fn enums_display_as_written() {
        assert_eq!(PoolMode::Session.to_string(), "session");
        assert_eq!(PoolMode::Transaction.to_string(), "transaction");
        assert_eq!(ReadFrom::Replicas.to_string(), "replicas");
        assert_eq!(ReadFrom::Primary.to_string(), "primary");
    }

    #[test]
    fn scram_verifier_detection() {
        let user = |password: &str| UserConfig {
            name: "u".into(),
            password: password.into(),
        };
        assert!(user(scram::tests::GOOD).is_scram_verifier());
        assert!(!user("shop").is_scram_verifier());
        assert!(!user("SCRAM-SHA-256$4096:c2FsdA==").is_scram_verifier());
        assert!(!user("").is_scram_verifier());
    }

    #[test]
    fn table_config_deserializes_with_extra_keys() {
        let t: TableConfig = toml::from_str(
            "sharding_key = \"id\"\nslots = 64\nstart = 2026-01-01\n[ranges]\ns0 = [0, 10]",
        )
        .expect("valid table");
        assert_eq!(t.sharding_key.as_deref(), Some("id"));
        assert!(!t.broadcast);
        assert_eq!(t.extra.get("slots"), Some(&toml::Value::Integer(64)));
        assert!(matches!(
            t.extra.get("start"),
            Some(toml::Value::Datetime(_))
        ));
        assert!(matches!(t.extra.get("ranges"), Some(toml::Value::Table(_))));
    }
}
