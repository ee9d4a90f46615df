//! shardgate: a Postgres-wire proxy that routes writes to primaries and
//! reads to replicas (sharding follows in later work).
//!
//! Modules follow the way a message travels: [`frontend`] (client side),
//! [`execute`] (routing and forwarding), [`backend`] (servers and pools),
//! with [`protocol`] framing underneath and [`cli`] on top.

pub mod backend;
pub mod cancel;
pub mod cli;
pub mod context;
pub mod execute;
pub mod frontend;
pub mod protocol;
