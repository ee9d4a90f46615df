//! Where one execution of a statement runs ([`Route`]): the target shards,
//! what each receives ([`ShardStatement`]), and how their answers combine.

use std::fmt;

use crate::merge::MergePlan;

/// Where one execution of a statement runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The shards, in shard order, each with what it receives.
    pub shards: Vec<ShardStatement>,
    /// Several shards answer and their results are concatenated.
    pub scatter: bool,
    /// Every target holds the same copy and runs the same statement (DDL,
    /// broadcast writes): the client gets one shard's answer, and an error
    /// from any.
    pub mirror: bool,
    /// How a scattered read's rows are merged (ordered, counted); `None`:
    /// concatenated as they come.
    pub merge: Option<MergePlan>,
}

/// What one shard receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatement {
    /// Shard index.
    pub shard: usize,
    /// The SQL it runs; `None`: the client's text unchanged.
    pub sql: Option<String>,
    /// The client's parameter indexes (0-based) it gets, in `$1…` order;
    /// `None`: all of them unchanged.
    pub params: Option<Vec<usize>>,
}

impl Route {
    /// The client's text unchanged on one shard.
    pub(super) fn one(shard: usize) -> Route {
        Route {
            shards: vec![ShardStatement {
                shard,
                sql: None,
                params: None,
            }],
            scatter: false,
            mirror: false,
            merge: None,
        }
    }

    /// The same statement on every shard in `shards`, one answer for the client.
    pub(super) fn mirror(shards: impl IntoIterator<Item = usize>) -> Route {
        let mut route = Route::every(shards);
        route.mirror = route.scatter;
        route.scatter = false;
        route
    }

    /// The same statement on every shard in `shards`, rows concatenated.
    fn every(shards: impl IntoIterator<Item = usize>) -> Route {
        let shards: Vec<ShardStatement> = shards
            .into_iter()
            .map(|shard| ShardStatement {
                shard,
                sql: None,
                params: None,
            })
            .collect();
        Route {
            scatter: shards.len() > 1,
            mirror: false,
            merge: None,
            shards,
        }
    }

    /// The single shard with the text unchanged, if that is the route.
    pub fn single_unchanged(&self) -> Option<usize> {
        match self.shards.as_slice() {
            [s] if s.sql.is_none() && s.params.is_none() => Some(s.shard),
            _ => None,
        }
    }
}

/// One line per target: `shard` and the SQL it receives (`(unchanged)` when
/// the client's text goes as it is), with the parameter mapping when the
/// parameters are rearranged.
impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.shards.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}", s.shard)?;
            if let Some(sql) = &s.sql {
                write!(f, ": {sql}")?;
            }
            if let Some(p) = &s.params {
                let list: Vec<String> = p.iter().map(|i| format!("${}", i + 1)).collect();
                write!(f, " [params {}]", list.join(", "))?;
            }
        }
        Ok(())
    }
}
