//! shardgate's SQL analysis: pure functions from statement text to routing
//! facts, with no I/O and no clock.
//!
//! - [`classify`]: whether a statement text may run on a replica or needs
//!   the primary, and what it does to session and transaction state.
//! - [`route::plan`]: which shards run a statement and the SQL each gets.
//! - [`has_primary_hint`]: the `/* shardgate: primary */` comment, found by a
//!   cheap scan of the raw text.

#![warn(missing_docs)]

mod classify;
mod copy;
mod depth_limit;
mod fast_read;
mod hint;
pub mod keys;
pub mod merge;
mod params;
mod query_shape;
mod query_writes;
pub mod route;
mod session;
mod split;
mod sql_prepare;
mod transaction;
mod write_functions;

pub use classify::{classify, Classification, Target};
pub use copy::{copy_in, copy_out, CopyFormat, CopyIn, CopyOut};
pub use depth_limit::{MAX_OPERATOR_DEPTH, MAX_PAREN_DEPTH, MAX_SET_OPERATIONS};
pub use hint::has_primary_hint;
pub use session::SessionEffect;
pub use split::split_statements;
pub use sql_prepare::{cursor_command, sql_prepare, CursorCommand, SqlPrepare};
pub use transaction::TxnEffect;
pub use write_functions::{is_write_function, BUILTIN_WRITE_FUNCTIONS};
