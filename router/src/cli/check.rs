//! `shardgate check`: validate a config file.

use std::process::ExitCode;

/// Prints `file:line: message` for every problem; exit 1 if there are any.
pub fn run(path: &str) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match shard_config::parse(&text, path) {
        Ok(cfg) => {
            println!(
                "{path}: ok ({} shard(s), {} user(s))",
                cfg.shards.len(),
                cfg.users.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}
