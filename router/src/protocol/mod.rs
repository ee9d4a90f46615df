//! The Postgres wire protocol, as far as the proxy needs it: framing and a
//! few bounds-checked message readers and writers.

pub mod binary;
pub mod frame;
pub mod messages;

pub use frame::{Frame, FrameError};
