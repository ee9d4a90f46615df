//! shardgate's configuration: the TOML model, its parsing and its validation.
//!
//! Pure library, no I/O: the caller reads the file and hands its text to [`parse`],
//! which returns a validated [`Config`] or every problem found, each as
//! `file:line: message`.
//!
//! ```
//! let text = r#"
//! [[users]]
//! name = "shop"
//! password = "shop"
//!
//! [backend]
//! user = "shop"
//! database = "shop"
//!
//! [[shards]]
//! name = "s0"
//! primary = "127.0.0.1:5432"
//! replicas = ["127.0.0.1:5433"]
//! "#;
//! let config = shard_config::parse(text, "shardgate.toml").expect("valid config");
//! assert_eq!(config.default_shard().name, "s0");
//! assert_eq!(config.proxy.listen.to_string(), "127.0.0.1:6432");
//!
//! let errors = shard_config::parse("[proxy]\npool_size = 0\n", "bad.toml").unwrap_err();
//! assert!(errors.to_string().contains("bad.toml:2: proxy.pool_size must be at least 1"));
//! ```
//!
//! [`Config::shard_map`] gives the runtime [`ShardMap`]: per sharded table its
//! [`TableRule`] (`hash`, `range`, `list`, `time`, broadcast), key type and
//! `generated_column`. The pure helpers behind it are public: [`hash`] (PostgreSQL's
//! hash partitioning), [`time`] (time keys as text or binary, intervals) and
//! [`snowflake`] (ids for generated columns, with `[proxy] node_id`).

#![warn(missing_docs)]

mod address;
mod diagnostics;
mod error;
mod fields;
pub mod hash;
mod key_type;
mod model;
mod parse;
mod raw;
mod scram;
mod shard_map;
pub mod snowflake;
mod tables;
pub mod time;
mod validate;

pub use address::{Address, AddressError};
pub use error::{ConfigError, ConfigErrors};
pub use key_type::KeyType;
pub use model::{
    AdminConfig, BackendConfig, Config, PoolMode, ProxyConfig, ReadFrom, RoutingConfig,
    ShardConfig, TableConfig, UserConfig,
};
pub use parse::parse;
pub use shard_map::range_list::{uuid_text, Bound, ListValue};
pub use shard_map::time_rule::{TimePlacement, TimeRange};
pub use shard_map::{even_split, ShardMap, TableRule};
pub use tables::{ALGORITHMS, DEFAULT_SLOTS, MAX_SLOTS, RESERVED_TABLE_KEYS};
pub use time::Interval;
