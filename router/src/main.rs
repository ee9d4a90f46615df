//! The `shardgate` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// shardgate: a Postgres-wire proxy with read/write splitting.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        /// The TOML config file.
        #[arg(long)]
        config: String,
    },
    /// Validate a config file; prints `file:line: message` errors, exit 1.
    Check {
        /// The TOML config file.
        #[arg(long)]
        config: String,
    },
    /// Print the route of one statement, offline: one line per target shard.
    Route {
        /// The TOML config file.
        #[arg(long)]
        config: String,
        /// The statement.
        sql: String,
        /// A `$n` value (text format), in order; `null` for NULL.
        #[arg(long = "param")]
        params: Vec<String>,
    },
    /// Start a local primary + replica and the proxy on 127.0.0.1:6432.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:6432")]
        listen: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => router::cli::serve::run(&config),
        Command::Check { config } => return router::cli::check::run(&config),
        Command::Route {
            config,
            sql,
            params,
        } => return router::cli::route::run(&config, &sql, &params),
        Command::Demo { listen } => router::cli::demo::run(&listen),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shardgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
