//! Reads a TOML config into the located [`RawConfig`]: syntax, structure, key names,
//! value types and value formats. Cross-field checks live in [`crate::validate`].

use toml_edit::{ImDocument, Item, TableLike, Value};

use crate::address::Address;
use crate::diagnostics::Diagnostics;
use crate::error::ConfigErrors;
use crate::fields::{extra_entries, item_type, table_array, table_line, Located, Section};
use crate::model::{Config, PoolMode, ReadFrom, TableConfig};
use crate::raw::{RawAdmin, RawBackend, RawConfig, RawProxy, RawRouting, RawShard, RawUser};
use crate::tables::check_tables;
use crate::validate::validate;

const TOP_KEYS: &[&str] = &[
    "proxy", "admin", "users", "backend", "shards", "routing", "tables",
];
const PROXY_KEYS: &[&str] = &[
    "listen",
    "pool_mode",
    "pool_size",
    "tls_cert",
    "tls_key",
    "connect_timeout_ms",
    "max_message_bytes",
    "startup_timeout_ms",
    "write_functions",
    "node_id",
    "merge_row_limit",
];
const ADMIN_KEYS: &[&str] = &["user", "password"];
const USER_KEYS: &[&str] = &["name", "password"];
const BACKEND_KEYS: &[&str] = &["user", "password", "database"];
const SHARD_KEYS: &[&str] = &["name", "primary", "replicas"];
const ROUTING_KEYS: &[&str] = &[
    "default_shard",
    "read_from",
    "max_replica_lag_ms",
    "allow_scatter_writes",
];
/// Keys read into the named fields of [`TableConfig`]; the rest go to `extra`.
const TABLE_KEYS: &[&str] = &["sharding_key", "algorithm", "colocate_with", "broadcast"];

/// Parses and validates a config file's text; `file` names it in error messages.
///
/// On failure, returns every problem found, each with its 1-based line.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut d = Diagnostics::new(text, file);
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map_or(1, |span| d.line_at(span.start));
            d.error(
                line,
                format!("TOML syntax error: {}", one_line(e.message())),
            );
            return Err(d.into_errors());
        }
    };
    let raw = read(doc.as_table(), &mut d);
    validate(&raw, &mut d);
    if d.has_errors() {
        return Err(d.into_errors());
    }
    Ok(raw.into_config())
}

/// The toml parser's message, which may span lines, on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads every section of the document root.
fn read(root: &dyn TableLike, d: &mut Diagnostics) -> RawConfig {
    let root = Section::new(root, "", "the top level", 1);
    root.check_keys(TOP_KEYS, d);
    let mut raw = RawConfig::default();
    if let Some(s) = section(&root, "proxy", d) {
        raw.proxy = read_proxy(&s, d);
    }
    if let Some(s) = section(&root, "admin", d) {
        raw.admin = Some(read_admin(&s, d));
    }
    if let Some(list) = section_array(&root, "users", "user", d) {
        raw.users = list
            .iter()
            .enumerate()
            .map(|(i, s)| read_user(s, i, d))
            .collect();
    }
    match section(&root, "backend", d) {
        Some(s) => raw.backend = Some(read_backend(&s, d)),
        None if !root.has("backend") => d.error(1, "missing section [backend]"),
        None => {}
    }
    if let Some(list) = section_array(&root, "shards", "shard", d) {
        raw.shards = list
            .iter()
            .enumerate()
            .map(|(i, s)| read_shard(s, i, d))
            .collect();
    }
    if let Some(s) = section(&root, "routing", d) {
        raw.routing = read_routing(&s, d);
    }
    if let Some(s) = section(&root, "tables", d) {
        read_tables(&s, &mut raw, d);
    }
    raw
}

/// The table at `key` of `parent` as a section (`None` if absent or not a table, which is reported).
fn section<'a>(parent: &Section<'a>, key: &str, d: &mut Diagnostics) -> Option<Section<'a>> {
    let (k, item) = parent.entries().find(|(k, _)| *k == key)?;
    let path = join_path(parent.path(), k);
    let line = table_line(None, item, d).unwrap_or_else(|| parent.key_line(key, d));
    match item.as_table_like() {
        Some(table) => Some(Section::new(table, path.clone(), format!("[{path}]"), line)),
        None => {
            d.error(
                parent.key_line(key, d),
                format!(
                    "{path}: expected a table ([{path}]), found {}",
                    item_type(item)
                ),
            );
            None
        }
    }
}

/// The array of tables at top-level `key`, which must hold at least one `what`.
fn section_array<'a>(
    root: &Section<'a>,
    key: &str,
    what: &str,
    d: &mut Diagnostics,
) -> Option<Vec<Section<'a>>> {
    let Some((_, item)) = root.entries().find(|(k, _)| *k == key) else {
        d.error(
            1,
            format!("missing [[{key}]]: at least one {what} is required"),
        );
        return None;
    };
    let line = root.key_line(key, d);
    let Some(tables) = table_array(item, key, line, d) else {
        d.error(
            line,
            format!(
                "{key}: expected an array of tables ([[{key}]]), found {}",
                item_type(item)
            ),
        );
        return None;
    };
    // An array whose elements are all invalid was reported element by element.
    let written = match item {
        Item::ArrayOfTables(a) => a.len(),
        Item::Value(Value::Array(a)) => a.len(),
        _ => tables.len(),
    };
    if written == 0 {
        d.error(line, format!("{key}: at least one {what} is required"));
    }
    Some(
        tables
            .into_iter()
            .map(|(table, line)| Section::new(table, key, format!("[[{key}]]"), line))
            .collect(),
    )
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn read_proxy(s: &Section<'_>, d: &mut Diagnostics) -> RawProxy {
    s.check_keys(PROXY_KEYS, d);
    RawProxy {
        listen: address(s, "listen", d),
        pool_mode: choice(
            s,
            "pool_mode",
            &[
                ("session", PoolMode::Session),
                ("transaction", PoolMode::Transaction),
            ],
            d,
        ),
        pool_size: s.unsigned("pool_size", d),
        tls_cert: s.string("tls_cert", d),
        tls_key: s.string("tls_key", d),
        connect_timeout_ms: s.unsigned("connect_timeout_ms", d),
        max_message_bytes: s.unsigned("max_message_bytes", d),
        startup_timeout_ms: s.unsigned("startup_timeout_ms", d),
        write_functions: s.strings("write_functions", d),
        node_id: s.integer("node_id", d),
        merge_row_limit: s.unsigned("merge_row_limit", d),
    }
}

fn read_admin(s: &Section<'_>, d: &mut Diagnostics) -> RawAdmin {
    s.check_keys(ADMIN_KEYS, d);
    let user = s.string("user", d);
    let password = s.string("password", d);
    RawAdmin {
        user: s.require(user, "user", "[admin]", d),
        password: s.require(password, "password", "[admin]", d),
    }
}

fn read_user(s: &Section<'_>, index: usize, d: &mut Diagnostics) -> RawUser {
    s.check_keys(USER_KEYS, d);
    let name = s.string("name", d);
    let owner = owner("user", &name, index);
    let password = s.string("password", d);
    RawUser {
        name: s.require(name, "name", &owner, d),
        password: s.require(password, "password", &owner, d),
    }
}

fn read_backend(s: &Section<'_>, d: &mut Diagnostics) -> RawBackend {
    s.check_keys(BACKEND_KEYS, d);
    let user = s.string("user", d);
    let database = s.string("database", d);
    RawBackend {
        user: s.require(user, "user", "[backend]", d),
        password: s.string("password", d),
        database: s.require(database, "database", "[backend]", d),
    }
}

fn read_shard(s: &Section<'_>, index: usize, d: &mut Diagnostics) -> RawShard {
    s.check_keys(SHARD_KEYS, d);
    let name = s.string("name", d);
    let owner = owner("shard", &name, index);
    let primary = address(s, "primary", d);
    let replicas = s
        .strings("replicas", d)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| parse_address(r, "shards.replicas", d))
        .collect();
    RawShard {
        name: s.require(name, "name", &owner, d),
        primary: s.require(primary, "primary", &owner, d),
        replicas,
    }
}

fn read_routing(s: &Section<'_>, d: &mut Diagnostics) -> RawRouting {
    s.check_keys(ROUTING_KEYS, d);
    RawRouting {
        default_shard: s.string("default_shard", d),
        read_from: choice(
            s,
            "read_from",
            &[
                ("replicas", ReadFrom::Replicas),
                ("primary", ReadFrom::Primary),
            ],
            d,
        ),
        max_replica_lag_ms: s.unsigned("max_replica_lag_ms", d),
        allow_scatter_writes: s.boolean("allow_scatter_writes", d),
    }
}

/// `[tables.NAME]`: known keys are type-checked, all others kept in `extra`.
fn read_tables(tables: &Section<'_>, raw: &mut RawConfig, d: &mut Diagnostics) {
    let names: Vec<&str> = tables.entries().map(|(name, _)| name).collect();
    let mut sections = Vec::new();
    for name in names {
        let Some(s) = section(tables, name, d) else {
            continue;
        };
        let table = TableConfig {
            sharding_key: value(s.string("sharding_key", d)),
            algorithm: value(s.string("algorithm", d)),
            colocate_with: value(s.string("colocate_with", d)),
            broadcast: value(s.boolean("broadcast", d)).unwrap_or(false),
            extra: extra_entries(&s, TABLE_KEYS),
        };
        raw.tables.insert(name.to_string(), table);
        sections.push((name.to_string(), s));
    }
    let shards: Vec<String> = raw
        .shards
        .iter()
        .filter_map(|s| s.name.as_ref().map(|n| n.value.clone()))
        .collect();
    check_tables(&sections, &shards, d);
}

fn value<T>(v: Option<Located<T>>) -> Option<T> {
    v.map(|l| l.value)
}

/// `shard "s1"`, or `shard #2` (1-based position) when the name is missing.
fn owner(what: &str, name: &Option<Located<String>>, index: usize) -> String {
    match name {
        Some(n) => format!("{what} {:?}", n.value),
        None => format!("{what} #{}", index + 1),
    }
}

/// The address at `key`.
fn address(s: &Section<'_>, key: &str, d: &mut Diagnostics) -> Option<Located<Address>> {
    let path = join_path(s.path(), key);
    parse_address(s.string(key, d)?, &path, d)
}

fn parse_address(
    text: Located<String>,
    path: &str,
    d: &mut Diagnostics,
) -> Option<Located<Address>> {
    match text.value.parse::<Address>() {
        Ok(address) => Some(Located {
            value: address,
            line: text.line,
        }),
        Err(e) => {
            d.error(
                text.line,
                format!("bad address {:?} in {path}: {e}", text.value),
            );
            None
        }
    }
}

/// One of a fixed set of string values at `key`.
fn choice<T: Copy>(
    s: &Section<'_>,
    key: &str,
    options: &[(&str, T)],
    d: &mut Diagnostics,
) -> Option<Located<T>> {
    let text = s.string(key, d)?;
    match options.iter().find(|(name, _)| *name == text.value) {
        Some((_, v)) => Some(text.map(|_| *v)),
        None => {
            let expected: Vec<String> = options
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            d.error(
                text.line,
                format!(
                    "bad value {:?} in {}.{key}: expected {}",
                    text.value,
                    s.path(),
                    expected.join(" or ")
                ),
            );
            None
        }
    }
}
