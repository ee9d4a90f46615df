//! shardgate: a Postgres-wire proxy in front of several shards, each a
//! Postgres primary with streaming replicas: a statement goes to the shards
//! its sharding keys name (writes to primaries, reads to replicas), and the
//! answers of several shards are merged into one.
//!
//! Modules follow the way a message travels: [`frontend`] (client side),
//! [`execute`] (routing, forwarding, merging), [`backend`] (servers and
//! pools), with [`protocol`] underneath and [`cli`] on top; [`context`]
//! holds what every connection shares, [`cancel`] the cancel keys.

pub mod backend;
pub mod cancel;
pub mod cli;
pub mod context;
pub mod execute;
pub mod frontend;
pub mod protocol;
