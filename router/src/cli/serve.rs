//! `shardgate serve`: accept clients until SIGINT/SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::context::Context;

/// Runs the proxy with the config at `path`.
pub fn run(path: &str) -> anyhow::Result<()> {
    let config = super::load_config(path)?;
    let rt = runtime()?;
    rt.block_on(serve(config, shutdown_signal()))
}

/// The tokio runtime: `SHARDGATE_WORKER_THREADS` threads (default: one
/// per core).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("SHARDGATE_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        b.worker_threads(n);
    }
    b.enable_all().build().context("starting the runtime")
}

/// Serves until `stop` resolves.
pub async fn serve(
    config: shard_config::Config,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let listen = config.proxy.listen.to_string();
    let max_lag = config.routing.max_replica_lag_ms;
    let ctx = Arc::new(Context::new(config)?);
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    crate::backend::health::spawn(&ctx.servers, max_lag);
    tracing::info!("shardgate listening on {listen}");
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(crate::frontend::handle(ctx.clone(), tcp));
                }
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = &mut stop => {
                tracing::info!("shutting down");
                return Ok(());
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
