//! The server side: raw connections to Postgres, their pools, and health.

pub mod catalog;
pub mod conn;
pub mod health;
pub mod pool;

pub use catalog::CatalogError;
pub use conn::{BackendError, Login, ServerConn};
pub use pool::{Pooled, Role, Server, Servers, Shard};
