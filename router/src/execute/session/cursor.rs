//! SQL cursors (`DECLARE … CURSOR FOR query`, `FETCH`, `MOVE`, `CLOSE`).
//! A cursor whose query reads one shard runs there and its FETCHes follow
//! it. A cursor over several shards is run by the proxy: the query is
//! gathered and merged once at DECLARE, the rows held (up to the held
//! limit), and FETCH/MOVE forward hand them out as one server would.

use bytes::BytesMut;
use sql_rewrite::{classify, CursorCommand};

use super::{End, Session};
use crate::execute::held::Held;
use crate::execute::request::query_frame;
use crate::execute::request::{Anchor, Group};
use crate::protocol::messages;
use crate::protocol::SqlState;

/// What a FETCH or MOVE asks for: `Some(n)` rows forward, `None` all;
/// `Err` for a direction the proxy cannot serve.
fn fetch_count(sql: &str) -> Result<Option<u64>, String> {
    let words: Vec<String> = sql
        .split_whitespace()
        .skip(1)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    let count = |w: Option<&String>| -> Option<Option<u64>> {
        match w.map(String::as_str) {
            Some("ALL") => Some(None),
            Some(c) => c.parse::<u64>().ok().map(Some),
            None => None,
        }
    };
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        "BACKWARD" | "PRIOR" | "FIRST" | "LAST" | "ABSOLUTE" | "RELATIVE" => Err(format!(
            "FETCH {first} of a cursor over several shards is not supported: only forward fetches are"
        )),
        "NEXT" | "FROM" | "IN" => Ok(Some(1)),
        "FORWARD" => Ok(count(words.get(1)).unwrap_or(Some(1))),
        _ => match count(words.first()) {
            Some(n) => Ok(n),
            None if first.starts_with('-') => Err("a backward FETCH of a cursor over several shards is not supported".into()),
            None => Ok(Some(1)), // FETCH name
        },
    }
}

impl Session {
    /// Runs DECLARE, FETCH, MOVE or CLOSE of a cursor.
    pub(super) async fn run_cursor(
        &mut self,
        g: Group,
        sql: &str,
        c: CursorCommand,
    ) -> Result<(), End> {
        if self.refuse_if_aborted() {
            return Ok(());
        }
        if let CursorCommand::Use { name: Some(n) } = &c {
            if self.merged_cursors.held.contains_key(n) {
                return self.use_merged_cursor(&g, sql, n.clone());
            }
        }
        if matches!(c, CursorCommand::Use { name: None }) {
            self.merged_cursors.held.clear(); // CLOSE ALL
        }
        let default = self
            .txn
            .first_shard()
            .unwrap_or(self.ctx.routing.default_shard());
        let wf = self.ctx.config.proxy.write_functions.clone();
        let shard = match &c {
            CursorCommand::Declare { name, query } => {
                let (plan, class) = self.ctx.routing.plan_uncached(query, &wf);
                if plan.is_default() {
                    default
                } else {
                    let route = self.ctx.routing.bind(&plan, &[]);
                    match route {
                        Ok(r) if r.shards.len() == 1 && !r.mirror && r.shards[0].sql.is_none() => {
                            r.shards[0].shard
                        }
                        Ok(r) => {
                            return self
                                .declare_merged(&g, sql, name.clone(), query, r, &class)
                                .await
                        }
                        Err(r) => {
                            self.refuse(&r);
                            return Ok(());
                        }
                    }
                }
            }
            CursorCommand::Use { name: Some(n) } => self.cursors.get(n).copied().unwrap_or(default),
            CursorCommand::Use { name: None } => default,
        };
        if let CursorCommand::Declare { name, .. } = &c {
            self.cursors.insert(name.clone(), shard);
        }
        let class = classify(sql, &wf);
        let target = self.effective(class.target);
        let Some(id) = self.place(shard, target, false).await else {
            return Ok(());
        };
        self.forward_any(id, g, class)
    }

    /// DECLARE of a cursor over several shards: its query gathered now.
    async fn declare_merged(
        &mut self,
        g: &Group,
        sql: &str,
        name: String,
        query: &str,
        route: sql_rewrite::route::Route,
        class: &sql_rewrite::Classification,
    ) -> Result<(), End> {
        let upper = sql.to_ascii_uppercase();
        let hold = upper.contains(" WITH HOLD ");
        if upper.contains(" BINARY ") {
            self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, &format!("cursor {name}: a BINARY cursor over several shards is not supported: declare it without BINARY"));
            return Ok(());
        }
        if !self.txn.open() && !hold {
            self.fail_request(
                SqlState::NO_ACTIVE_SQL_TRANSACTION,
                "DECLARE CURSOR can only be used in transaction blocks",
            );
            return Ok(());
        }
        let target = self.effective(class.target);
        let f = query_frame(query);
        self.scatter_as(&f, route, target, class, None).await?;
        if let Some(gather) = self.gather.as_mut() {
            gather.declare = Some((name, hold));
        }
        if g.anchor != Anchor::Query {
            let mut out = BytesMut::new();
            self.local_answers(g, "", &mut out)?;
            let cut = super::copy::answer_prefix(&out);
            self.cout.extend_from_slice(&out[..cut]);
        }
        Ok(())
    }

    /// The RowDescription of the merged cursor named like portal `name` (a
    /// SQL cursor is a portal: psycopg 3 describes it as one).
    pub(super) fn merged_cursor(&self, name: &[u8]) -> Option<Option<bytes::Bytes>> {
        let name = std::str::from_utf8(name).ok()?;
        self.merged_cursors
            .held
            .get(name)
            .map(|(h, _)| h.description.clone())
    }

    /// Describe of a merged cursor's portal (other messages are refused).
    pub(super) fn describe_merged_cursor(&mut self, g: &Group, name: &[u8]) -> Result<(), End> {
        let description = self.merged_cursor(name).flatten();
        for f in &g.frames {
            match f.tag {
                b'D' => match &description {
                    Some(t) => self.cout.extend_from_slice(t),
                    None => messages::raw(&mut self.cout, b'n', b""),
                },
                _ => {
                    self.fail_request(SqlState::FEATURE_NOT_SUPPORTED, "a cursor over several shards can be described as a portal but read only with FETCH");
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The gathered rows of a DECLAREd cursor are in: it is open.
    pub(super) fn cursor_declared(
        &mut self,
        name: String,
        hold: bool,
        rows: bytes::Bytes,
        description: Option<bytes::Bytes>,
    ) {
        let held = Held::from_frames(rows, description);
        self.merged_cursors.held.insert(name, (held, hold));
        messages::command_complete(&mut self.cout, "DECLARE CURSOR");
    }

    /// FETCH, MOVE or CLOSE of a cursor the proxy holds.
    fn use_merged_cursor(&mut self, g: &Group, sql: &str, name: String) -> Result<(), End> {
        let verb = sql
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if verb == "CLOSE" {
            self.merged_cursors.held.remove(&name);
            return self.answer_cursor(g, None, "CLOSE CURSOR");
        }
        let n = match fetch_count(sql) {
            Ok(n) => n,
            Err(why) => {
                self.fail_request(
                    SqlState::FEATURE_NOT_SUPPORTED,
                    &format!("cursor {name}: {why}"),
                );
                return Ok(());
            }
        };
        let Some((held, _)) = self.merged_cursors.held.get_mut(&name) else {
            return Ok(());
        };
        if verb == "MOVE" {
            let k = held.take(n, None);
            return self.answer_cursor(g, None, &format!("MOVE {k}"));
        }
        let description = held.description.clone();
        let mut rows = BytesMut::new();
        let k = held.take(n, Some(&mut rows));
        self.answer_cursor(g, Some((description, rows)), &format!("FETCH {k}"))
    }

    /// The answer to a cursor command, in the client's protocol.
    fn answer_cursor(
        &mut self,
        g: &Group,
        rows: Option<(Option<bytes::Bytes>, BytesMut)>,
        tag: &str,
    ) -> Result<(), End> {
        let (description, rows) = match rows {
            Some((d, r)) => (d, r),
            None => (None, BytesMut::new()),
        };
        if g.anchor == Anchor::Query {
            if let Some(t) = &description {
                self.cout.extend_from_slice(t);
            }
            self.cout.extend_from_slice(&rows);
            messages::command_complete(&mut self.cout, tag);
            return Ok(());
        }
        for f in &g.frames {
            match f.tag {
                b'P' => messages::raw(&mut self.cout, b'1', b""),
                b'B' => messages::raw(&mut self.cout, b'2', b""),
                b'D' => {
                    if messages::Target::read(f)?.kind == b'S' {
                        messages::raw(&mut self.cout, b't', &[0, 0]);
                    }
                    match &description {
                        Some(t) => self.cout.extend_from_slice(t),
                        None => messages::raw(&mut self.cout, b'n', b""),
                    }
                }
                b'E' => {
                    self.cout.extend_from_slice(&rows);
                    messages::command_complete(&mut self.cout, tag);
                }
                b'C' => messages::raw(&mut self.cout, b'3', b""),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_counts() {
        assert_eq!(fetch_count("FETCH FORWARD 10 FROM c"), Ok(Some(10)));
        assert_eq!(fetch_count("FETCH 5 IN c"), Ok(Some(5)));
        assert_eq!(fetch_count("FETCH c"), Ok(Some(1)));
        assert_eq!(fetch_count("FETCH FORWARD FROM c"), Ok(Some(1)));
        assert!(fetch_count("FETCH -2 FROM c").is_err());
        assert_eq!(fetch_count("FETCH NEXT FROM c"), Ok(Some(1)));
        assert_eq!(fetch_count("FETCH ALL FROM c"), Ok(None));
        assert_eq!(fetch_count("FETCH FORWARD ALL FROM c"), Ok(None));
        assert_eq!(fetch_count("MOVE 3 FROM c"), Ok(Some(3)));
        assert!(fetch_count("FETCH BACKWARD 2 FROM c").is_err());
        assert!(fetch_count("FETCH PRIOR FROM c").is_err());
    }
}
