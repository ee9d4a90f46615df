//! The per-client registry of session settings (`SET`, startup parameters),
//! replayed on whichever server connection runs the client's next statement.

use sql_rewrite::SessionEffect;

/// Startup parameters that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "options", "replication"];

/// A client's session settings, versioned so each server connection knows
/// whether it is up to date.
#[derive(Debug, Default)]
pub struct Settings {
    /// The client's startup parameters as `SET` statements.
    startup: Vec<(String, String)>,
    /// Settings made with `SET` since, by lowercase name.
    set: Vec<(String, String)>,
    /// Bumped on every change; 0 means "the pool's defaults".
    pub version: u64,
}

/// Quotes a value as a SQL string literal.
fn literal(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// Parses `options` (`-c name=value` / `--name=value`) into settings.
fn options(opts: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = opts.split_whitespace();
    while let Some(w) = words.next() {
        let kv = if w == "-c" {
            words.next()
        } else if let Some(rest) = w.strip_prefix("--") {
            Some(rest)
        } else {
            w.strip_prefix("-c")
        };
        if let Some((k, v)) = kv.and_then(|kv| kv.split_once('=')) {
            out.push((k.replace('-', "_"), v.to_string()));
        }
    }
    out
}

impl Settings {
    /// Builds the registry from the client's startup parameters.
    pub fn from_startup(params: &[(String, String)]) -> Self {
        let mut startup = Vec::new();
        for (k, v) in params {
            if k == "options" {
                startup.extend(options(v));
            } else if !NOT_SETTINGS.contains(&k.as_str()) {
                startup.push((k.clone(), v.clone()));
            }
        }
        let version = u64::from(!startup.is_empty());
        Self {
            startup,
            set: Vec::new(),
            version,
        }
    }

    /// The startup parameter `name`, if the client gave one.
    pub fn startup_value(&self, name: &str) -> Option<&str> {
        self.startup
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Records a completed session effect.
    pub fn apply(&mut self, effect: &SessionEffect) {
        match effect {
            SessionEffect::Set { name, statement } => {
                self.set.retain(|(n, _)| n != name);
                self.set.push((name.clone(), statement.clone()));
            }
            SessionEffect::Reset { name } => self.set.retain(|(n, _)| n != name),
            SessionEffect::ResetAll | SessionEffect::DiscardAll => self.set.clear(),
        }
        self.version += 1;
    }

    /// The SQL that brings a pool-fresh connection to this state.
    pub fn replay_sql(&self) -> String {
        let mut sql = String::from("RESET ALL;");
        for (k, v) in &self.startup {
            if self.set.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
                continue;
            }
            sql.push_str(&format!(" SET {} = {};", quote_ident(k), literal(v)));
        }
        for (_, stmt) in &self.set {
            sql.push(' ');
            sql.push_str(stmt.trim_end_matches(';'));
            sql.push(';');
        }
        sql
    }
}

/// Quotes a setting name when it is not a plain identifier.
fn quote_ident(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn startup_parameters_become_settings() {
        let s = Settings::from_startup(&[
            p("user", "shop"),
            p("database", "shop"),
            p("application_name", "it's"),
            p(
                "options",
                "-c search_path=a -csearch_path=b --work-mem=64kB",
            ),
        ]);
        assert_eq!(s.version, 1);
        assert_eq!(
            s.replay_sql(),
            "RESET ALL; SET application_name = 'it''s'; SET search_path = 'a'; SET search_path = 'b'; SET work_mem = '64kB';"
        );
    }

    #[test]
    fn set_overrides_startup_and_reset_all_clears() {
        let mut s = Settings::from_startup(&[p("application_name", "a")]);
        s.apply(&SessionEffect::Set {
            name: "application_name".into(),
            statement: "SET application_name = 'x'".into(),
        });
        assert_eq!(s.replay_sql(), "RESET ALL; SET application_name = 'x';");
        s.apply(&SessionEffect::ResetAll);
        assert_eq!(s.replay_sql(), "RESET ALL; SET application_name = 'a';");
        assert_eq!(s.version, 3);
        assert_eq!(Settings::from_startup(&[]).version, 0);
    }
}
