//! Running client statements on servers: routing, forwarding, session state.

pub mod session;
pub mod settings;
pub mod slot;

pub use session::Session;
