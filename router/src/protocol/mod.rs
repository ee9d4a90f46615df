//! The Postgres wire protocol, as far as the proxy needs it: framing, a few
//! bounds-checked message readers and writers, and the binary format of
//! values (for merged results a client asked for in binary).

pub mod binary;
pub mod frame;
pub mod messages;
pub mod sqlstate;

pub use frame::{Frame, FrameError};
pub use sqlstate::{SqlState, TxStatus};
