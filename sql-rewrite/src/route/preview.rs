//! A route as people read it: one row per target shard with the role that
//! runs it and the SQL it receives (`shardgate route`, `SHOW ROUTE`, the
//! golden route tests).

use std::fmt;

use super::plan::plan_classified;
use super::refusal::Refusal;
use super::topology::Topology;
use crate::classify::Target;
use crate::params::Param;

/// One target of a previewed route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRow {
    /// Shard name.
    pub shard: String,
    /// `replica` or `primary`.
    pub role: &'static str,
    /// The SQL the shard receives.
    pub sql: String,
    /// The client's parameters it gets, as `$n`, when they are rearranged.
    pub params: Option<String>,
    /// How the shards' rows are merged, when they are ordered or counted:
    /// one step per line.
    pub merge: Option<String>,
}

/// Plans and binds `sql` with text-format `params` and says where it goes.
/// Generated ids come from `next_id`; `read_from_primary` sends reads to
/// primaries as `routing.read_from = "primary"` does.
pub fn preview(
    sql: &str,
    topo: &Topology<'_>,
    write_functions: &[String],
    params: &[Option<String>],
    read_from_primary: bool,
    next_id: &mut dyn FnMut() -> i64,
) -> Result<Vec<PreviewRow>, Refusal> {
    let bound: Vec<Param<'_>> = params
        .iter()
        .map(|p| Param {
            value: p.as_deref().map(str::as_bytes),
            binary: false,
        })
        .collect();
    let (plan, class) = plan_classified(sql, topo, write_functions);
    let route = plan.bind(topo, &bound, next_id)?;
    let role = if class.target == Target::Primary || read_from_primary {
        "primary"
    } else {
        "replica"
    };
    Ok(route
        .shards
        .iter()
        .map(|s| PreviewRow {
            shard: topo.shards.get(s.shard).copied().unwrap_or("?").to_string(),
            role,
            sql: s.sql.clone().unwrap_or_else(|| sql.to_string()),
            merge: route.merge.as_ref().map(|m| {
                let mut m = m.clone();
                m.shard_sql = None;
                m.shard_params = None;
                m.to_string()
            }),
            params: s.params.as_ref().map(|p| {
                p.iter()
                    .map(|i| format!("${}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        })
        .collect())
}

/// `role shard: sql [params $1, $3]`.
impl fmt::Display for PreviewRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.role, self.shard, self.sql)?;
        if let Some(p) = &self.params {
            write!(f, " [params {p}]")?;
        }
        Ok(())
    }
}
