//! Running client statements on servers: routing, forwarding, session state.

pub mod copy_out;
pub mod copy_split;
mod gather;
pub mod held;
mod merge;
pub mod request;
pub mod routing;
pub mod session;
pub mod settings;
pub mod slot;
pub mod statement;
mod steps;
pub mod tracker;
pub mod transaction;

pub use session::Session;
