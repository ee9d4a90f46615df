//! The proxy's merge of several shards' results into the one answer a
//! single server would give, as a pipeline of small steps (Vitess's engine
//! primitives are the model), one module each:
//!
//! - [`sort`]: the k-way merge of the shards' streams by the sort keys;
//! - [`group`]: GROUP BY, partial groups of one key combined
//!   ([`combine`], [`decimal`]);
//! - [`having`]: HAVING on the combined groups;
//! - [`bounded`]: the in-memory sort of combined groups, bounded by
//!   `proxy.merge_row_limit`;
//! - [`distinct`]: DISTINCT and DISTINCT ON;
//! - [`limit`]: OFFSET and LIMIT;
//! - [`project`]: the hidden columns dropped, averages typed numeric;
//! - [`rows`]: [`RowMerge`], the pipeline of these steps;
//! - [`aggregate`]: [`AggMerge`], an aggregate-only query's one row.
//!
//! Under them the leaves: [`values`], typed comparison of text values, and
//! [`wire`], reading RowDescription and DataRow frames.

mod aggregate;
mod bounded;
mod combine;
mod decimal;
mod distinct;
mod group;
mod having;
mod limit;
mod project;
mod rows;
mod sort;
mod values;
mod wire;

pub use aggregate::AggMerge;
pub use rows::RowMerge;
pub use wire::row_description_types;
