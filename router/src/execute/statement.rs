//! The client's prepared statements as the proxy keeps them: the Parse (or
//! SQL PREPARE) to replay on another server, and how the statement routes.

use std::sync::Arc;

use sql_rewrite::route::Plan;
use sql_rewrite::Classification;

use crate::protocol::Frame;

/// A statement the client prepared: its original Parse bytes (re-sent as
/// they are to other servers) and how it routes.
#[derive(Debug)]
pub struct Statement {
    /// The client's Parse message.
    pub parse: Frame,
    /// Its classification.
    pub class: Classification,
    /// Its route plan (`None` when no table is sharded).
    pub plan: Option<Arc<Plan>>,
}

/// A statement the client prepared with SQL `PREPARE`.
#[derive(Debug)]
pub struct SqlStatement {
    /// The client's PREPARE text, replayed on servers that lack it.
    pub prepare: String,
    /// How its body routes.
    pub plan: Arc<Plan>,
    /// Its body's classification.
    pub class: Classification,
}
