//! What every connection shares: the config, the servers, TLS, login
//! verifiers, cancel keys and the routing (shard map, route plans, ids).

use std::collections::HashMap;

use shard_config::Config;
use tokio_rustls::TlsAcceptor;

use crate::backend::Servers;
use crate::cancel;
use crate::execute::routing::Routing;
use crate::frontend::scram::Verifier;

/// Shared state of a running proxy.
pub struct Context {
    /// The validated config.
    pub config: Config,
    /// Pools for every server.
    pub servers: Servers,
    /// TLS, when a certificate is configured.
    pub tls: Option<TlsAcceptor>,
    /// SCRAM verifiers of the users who may log in.
    pub users: HashMap<String, Verifier>,
    /// Verifier used to fake a login for unknown users.
    pub dummy_verifier: Verifier,
    /// Cancel keys of connected clients.
    pub cancels: cancel::Registry,
    /// Shard map, route plans and id generation.
    pub routing: Routing,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The TLS files are unusable.
    #[error("tls: {0}")]
    Tls(#[from] crate::frontend::tls::TlsError),
    /// A stored verifier does not parse.
    #[error("user {0}: password looks like a SCRAM verifier but does not parse")]
    Verifier(String),
    /// The snowflake generator cannot be built from `proxy.node_id`.
    #[error("proxy.node_id: {0}")]
    NodeId(#[from] shard_config::snowflake::SnowflakeError),
}

impl Context {
    /// Prepares pools, TLS and verifiers; inside a Tokio runtime, starts
    /// reading the mapped tables' column order from the default shard's
    /// primary in the background (nothing else contacts a server yet).
    pub fn new(config: Config) -> Result<Self, ContextError> {
        let tls = match (&config.proxy.tls_cert, &config.proxy.tls_key) {
            (Some(c), Some(k)) => Some(crate::frontend::tls::acceptor(c, k)?),
            _ => None,
        };
        let mut users = HashMap::new();
        for u in &config.users {
            let v = if u.is_scram_verifier() {
                Verifier::parse(&u.password)
                    .ok_or_else(|| ContextError::Verifier(u.name.clone()))?
            } else {
                Verifier::from_password(&u.password)
            };
            users.insert(u.name.clone(), v);
        }
        let routing = Routing::new(&config)?;
        let servers = Servers::new(&config);
        // column orders for INSERTs without a column list, read in the background
        routing.attach_catalog(servers.default_shard().primary.clone());
        Ok(Self {
            routing,
            servers,
            config,
            tls,
            users,
            dummy_verifier: Verifier::from_password(&rand::random::<u64>().to_string()),
            cancels: cancel::Registry::default(),
        })
    }

    /// The server's ParameterStatus values to show clients at login: cached
    /// from the default shard, connecting once if nothing is cached yet.
    pub async fn server_params(&self) -> Result<Vec<(String, String)>, String> {
        let shard = self.servers.default_shard();
        let servers = || std::iter::once(&shard.primary).chain(shard.replicas.iter());
        for s in servers() {
            let p = s.cached_params();
            if !p.is_empty() {
                return Ok(with_primary_view(p));
            }
        }
        let mut last = String::from("no servers configured");
        for s in servers() {
            match s.acquire().await {
                Ok(conn) => return Ok(with_primary_view(conn.params.clone())),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

/// A client of the proxy sees a writable database.
fn with_primary_view(mut p: Vec<(String, String)>) -> Vec<(String, String)> {
    for (k, v) in p.iter_mut() {
        if k == "in_hot_standby" || k == "default_transaction_read_only" {
            *v = "off".into();
        }
        if k == "application_name" {
            v.clear();
        }
    }
    p
}
