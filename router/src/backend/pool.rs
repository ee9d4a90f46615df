//! Pools of server connections, one per Postgres server, why a checkout
//! failed ([`CheckoutError`]), and the set of servers (a primary and its
//! replicas) a shard is made of.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shard_config::{Address, Config};

use super::conn::{BackendError, Login, ServerConn};

/// bb8 manager for raw protocol connections.
pub struct Manager {
    addr: Address,
    login: Login,
    timeout: Duration,
    params: Arc<Mutex<Vec<(String, String)>>>,
}

impl bb8::ManageConnection for Manager {
    type Connection = ServerConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<ServerConn, BackendError> {
        let conn = ServerConn::connect(&self.addr, &self.login, self.timeout).await?;
        if let Ok(mut p) = self.params.lock() {
            if p.is_empty() {
                *p = conn.params.clone();
            }
        }
        Ok(conn)
    }

    async fn is_valid(&self, _conn: &mut ServerConn) -> Result<(), BackendError> {
        Ok(())
    }

    fn has_broken(&self, conn: &mut ServerConn) -> bool {
        conn.broken
    }
}

/// A pooled connection checked out for one client.
pub type Pooled = bb8::PooledConnection<'static, Manager>;

/// Whether a server is a primary or a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes writes.
    Primary,
    /// A streaming replica: reads only.
    Replica,
}

/// One Postgres server: its address, pool and health.
pub struct Server {
    /// Where it listens.
    pub addr: Address,
    /// Its role.
    pub role: Role,
    /// Its connection pool.
    pub pool: bb8::Pool<Manager>,
    /// ParameterStatus values from its first connection.
    pub params: Arc<Mutex<Vec<(String, String)>>>,
    /// Milliseconds since `epoch` until which the server counts as down.
    down_until: AtomicU64,
    epoch: Instant,
    pub(super) login: Login,
    pub(super) timeout: Duration,
}

/// Why [`Server::acquire`] returned no connection.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// Every pooled connection stayed in use for the whole wait.
    #[error("server {addr}: no connection available in time")]
    Timeout {
        /// The server.
        addr: Address,
    },
    /// Opening a new connection failed.
    #[error(transparent)]
    Connect(#[from] BackendError),
}

impl CheckoutError {
    /// Whether the failure means the server is unreachable (so it should be
    /// skipped for a while): a connect error is, a full pool is not.
    pub fn server_down(&self) -> bool {
        matches!(self, CheckoutError::Connect(_))
    }
}

/// How long a client waits for a pooled connection when all are in use
/// (connecting itself is bounded by `connect_timeout_ms`).
const CHECKOUT_WAIT: Duration = Duration::from_secs(30);

/// How long a server that failed to connect is skipped.
const DOWN_FOR: Duration = Duration::from_secs(3);

impl Server {
    fn new(addr: Address, role: Role, login: &Login, size: u32, timeout: Duration) -> Arc<Self> {
        let params = Arc::new(Mutex::new(Vec::new()));
        let manager = Manager {
            addr: addr.clone(),
            login: login.clone(),
            timeout,
            params: params.clone(),
        };
        let pool = bb8::Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .retry_connection(false)
            .connection_timeout(CHECKOUT_WAIT.max(timeout))
            .build_unchecked(manager);
        Arc::new(Self {
            addr,
            role,
            pool,
            params,
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
            login: login.clone(),
            timeout,
        })
    }

    /// True unless the server failed recently.
    pub fn is_up(&self) -> bool {
        self.epoch.elapsed().as_millis() as u64 >= self.down_until.load(Ordering::Relaxed)
    }

    /// Marks the server as down for a while.
    pub fn mark_down(&self) {
        let until = self.epoch.elapsed() + DOWN_FOR;
        self.down_until
            .store(until.as_millis() as u64, Ordering::Relaxed);
    }

    /// Marks the server as up.
    pub fn mark_up(&self) {
        self.down_until.store(0, Ordering::Relaxed);
    }

    /// Checks out a connection; marks the server down when connecting failed
    /// (a full pool is not a dead server).
    pub async fn acquire(&self) -> Result<Pooled, CheckoutError> {
        let err = match self.pool.get_owned().await {
            Ok(c) => return Ok(c),
            Err(bb8::RunError::User(e)) => CheckoutError::Connect(e),
            Err(bb8::RunError::TimedOut) => CheckoutError::Timeout {
                addr: self.addr.clone(),
            },
        };
        if err.server_down() {
            self.mark_down();
        }
        Err(err)
    }

    /// Opens a fresh connection outside the pool (health checks).
    pub async fn probe(&self) -> Result<ServerConn, BackendError> {
        ServerConn::connect(&self.addr, &self.login, self.timeout).await
    }

    /// Cached ParameterStatus values, if any connection was made yet.
    pub fn cached_params(&self) -> Vec<(String, String)> {
        self.params.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// The servers of one shard.
pub struct Shard {
    /// Shard name.
    pub name: String,
    /// The primary.
    pub primary: Arc<Server>,
    /// Streaming replicas.
    pub replicas: Vec<Arc<Server>>,
}

/// Every server the proxy talks to.
pub struct Servers {
    /// Shards in config order.
    pub shards: Vec<Shard>,
    /// Index of the default shard.
    pub default: usize,
    /// Backend login details.
    pub login: Login,
}

impl Servers {
    /// Builds pools for every server in the config (no connection is made yet).
    pub fn new(cfg: &Config) -> Self {
        let login = Login {
            user: cfg.backend.user.clone(),
            password: cfg.backend.password.clone(),
            database: cfg.backend.database.clone(),
        };
        let timeout = Duration::from_millis(cfg.proxy.connect_timeout_ms.max(1));
        let size = cfg.proxy.pool_size.max(1);
        let shards: Vec<Shard> = cfg
            .shards
            .iter()
            .map(|s| Shard {
                name: s.name.clone(),
                primary: Server::new(s.primary.clone(), Role::Primary, &login, size, timeout),
                replicas: s
                    .replicas
                    .iter()
                    .map(|r| Server::new(r.clone(), Role::Replica, &login, size, timeout))
                    .collect(),
            })
            .collect();
        let default = cfg
            .shards
            .iter()
            .position(|s| s.name == cfg.routing.default_shard)
            .unwrap_or(0);
        Self {
            shards,
            default,
            login,
        }
    }

    /// The default shard.
    pub fn default_shard(&self) -> &Shard {
        &self.shards[self.default]
    }

    /// Every server.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Server>> {
        self.shards
            .iter()
            .flat_map(|s| std::iter::once(&s.primary).chain(s.replicas.iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_errors_keep_their_text_and_say_whether_the_server_is_down() {
        let addr = Address {
            host: "127.0.0.1".into(),
            port: 5433,
        };
        let full = CheckoutError::Timeout { addr };
        assert_eq!(
            full.to_string(),
            "server 127.0.0.1:5433: no connection available in time"
        );
        assert!(!full.server_down());
        let refused = CheckoutError::from(BackendError::Timeout("127.0.0.1:5433".into()));
        assert_eq!(
            refused.to_string(),
            "server 127.0.0.1:5433: connection timed out"
        );
        assert!(refused.server_down());
    }
}
