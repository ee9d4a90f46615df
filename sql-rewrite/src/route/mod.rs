//! Route planning: which shards run a statement, and the SQL each receives.
//!
//! [`plan`] parses a statement text once into a [`Plan`] (a template);
//! [`Plan::bind`] applies it to the `$n` values of one execution and gives a
//! [`Route`]. The rules (PRODUCT.md, "Routing rules"):
//!
//! - Texts that name no sharded or broadcast table go to the default shard
//!   unchanged, as in an unsharded proxy.
//! - Each occurrence of a sharded table is restricted by its scope's WHERE
//!   (`=`, `IN`, `= ANY($n)`, AND/OR; ranges for `range` and `time` keys). When
//!   every occurrence lands on one and the same shard, the statement runs
//!   there (whatever its joins and subqueries: all rows it can see live there).
//! - Otherwise the statement runs on several shards only when that is
//!   provably the same as one database: a read whose sharded tables are all at
//!   the top level, co-located and joined on their key, with no construct whose
//!   rows would need merging (results are concatenated); a broadcast write; a
//!   key-less UPDATE/DELETE when `allow_scatter_writes` is set; a multi-row
//!   INSERT split per shard. Everything else is refused (`0A000`) with a
//!   message naming what and why.
//!
//! Layout (each module depends only on those below it): [`plan`] (this
//! module's entry: [`Plan`], [`Plan::bind`]) uses `analyse` (one statement,
//! once) and `bind` (one execution); `bind` uses `insert`; the checks that
//! refuse are `per_shard`, `linked`, `scope_check` and `unparsed`; `lock` routes LOCK statements (read from
//! the text: the parser cannot); `scope`
//! walks the statement, `rewrite` holds key ranges and interval-table
//! renames, [`values`] key values and placement, `target` the [`Route`],
//! `topology` the [`Topology`], `refusal` the [`Refusal`]. `preview` renders
//! a route for people.

mod analyse;
mod bind;
mod insert;
mod linked;
mod lock;
mod per_shard;
mod plan;
mod preview;
mod refusal;
mod rewrite;
mod scope;
mod scope_check;
mod target;
mod topology;
mod unparsed;
pub mod values;

pub use crate::params::Param;
pub use plan::{plan, plan_classified, Plan};
pub use preview::{preview, PreviewRow};
pub use refusal::{Refusal, RefusalKind};
pub use target::{Route, ShardStatement};
pub use topology::{ColumnOrder, NoColumns, Topology};
