//! The subcommands of the `shardgate` binary.

pub mod check;
pub mod demo;
pub mod route;
pub mod serve;

use anyhow::Context as _;

/// Reads and validates a config file.
pub fn load_config(path: &str) -> anyhow::Result<shard_config::Config> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    shard_config::parse(&text, path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))
}
