//! Typed, located reads of keys from a parsed TOML document.
//!
//! Every read either returns the value with its line or records an error naming
//! the key and the line, so one pass over a file reports every problem in it.

use std::collections::BTreeMap;

use toml_edit::{Item, Key, TableLike, Value};

use crate::diagnostics::Diagnostics;

/// A value together with the 1-based line it was written on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located<T> {
    pub(crate) value: T,
    pub(crate) line: usize,
}

impl<T> Located<T> {
    /// Applies `f` to the value, keeping the line.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Located<U> {
        Located {
            value: f(self.value),
            line: self.line,
        }
    }
}

/// One TOML table (a `[section]`, one `[[array]]` element or an inline table) being read.
pub(crate) struct Section<'a> {
    table: &'a dyn TableLike,
    /// Dotted path of the table in messages about its values, e.g. `proxy`, `shards`.
    path: String,
    /// How the table is written in messages about its keys, e.g. `[proxy]`, `[[shards]]`.
    label: String,
    /// Line of the table's header (or first key).
    line: usize,
}

impl<'a> Section<'a> {
    /// Wraps `table`, whose header is on `line`.
    pub(crate) fn new(
        table: &'a dyn TableLike,
        path: impl Into<String>,
        label: impl Into<String>,
        line: usize,
    ) -> Self {
        Section {
            table,
            path: path.into(),
            label: label.into(),
            line,
        }
    }

    /// The wrapped table.
    pub(crate) fn table(&self) -> &'a dyn TableLike {
        self.table
    }

    /// Line of the table's header (or first key).
    pub(crate) fn line(&self) -> usize {
        self.line
    }

    /// Dotted path of the table, e.g. `proxy`.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Whether `key` is present (with any value).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Every key with its item, in file order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'a str, &'a Item)> + 'a {
        self.table.iter()
    }

    /// Records an error for every key not in `expected`.
    pub(crate) fn check_keys(&self, expected: &[&str], d: &mut Diagnostics) {
        for (key, _) in self.table.iter() {
            if !expected.contains(&key) {
                d.error(
                    self.key_line(key, d),
                    format!(
                        "unknown key {key:?} in {}; expected one of: {}",
                        self.label,
                        expected.join(", ")
                    ),
                );
            }
        }
    }

    /// Line of `key` (the header line when the key is absent or has no position).
    pub(crate) fn key_line(&self, key: &str, d: &Diagnostics) -> usize {
        match self.table.get_key_value(key) {
            Some((k, item)) => item_line(Some(k), item, d).unwrap_or(self.line),
            None => self.line,
        }
    }

    /// Records `{owner}: missing key "{key}"` at the header line when `key` is absent.
    pub(crate) fn require<T>(
        &self,
        value: Option<Located<T>>,
        key: &str,
        owner: &str,
        d: &mut Diagnostics,
    ) -> Option<Located<T>> {
        if !self.has(key) {
            d.error(self.line, format!("{owner}: missing key {key:?}"));
        }
        value
    }

    /// The plain value at `key`; a table there is a type error.
    fn value(&self, key: &str, expected: &str, d: &mut Diagnostics) -> Option<(&'a Value, usize)> {
        let (k, item) = self.table.get_key_value(key)?;
        let line = item_line(Some(k), item, d).unwrap_or(self.line);
        match item.as_value() {
            Some(v) => Some((v, line)),
            None => {
                d.error(line, self.type_error(key, expected, item_type(item)));
                None
            }
        }
    }

    fn type_error(&self, key: &str, expected: &str, found: &str) -> String {
        format!("{}.{key}: expected {expected}, found {found}", self.path)
    }

    /// The string at `key`, if present and a string.
    pub(crate) fn string(&self, key: &str, d: &mut Diagnostics) -> Option<Located<String>> {
        let (value, line) = self.value(key, "a string", d)?;
        match value.as_str() {
            Some(s) => Some(Located {
                value: s.to_string(),
                line,
            }),
            None => {
                d.error(line, self.type_error(key, "a string", value_type(value)));
                None
            }
        }
    }

    /// The boolean at `key`, if present and a boolean.
    pub(crate) fn boolean(&self, key: &str, d: &mut Diagnostics) -> Option<Located<bool>> {
        let (value, line) = self.value(key, "a boolean", d)?;
        match value.as_bool() {
            Some(b) => Some(Located { value: b, line }),
            None => {
                d.error(line, self.type_error(key, "a boolean", value_type(value)));
                None
            }
        }
    }

    /// The integer at `key`, if present and an integer.
    pub(crate) fn integer(&self, key: &str, d: &mut Diagnostics) -> Option<Located<i64>> {
        let (value, line) = self.value(key, "an integer", d)?;
        match value.as_integer() {
            Some(n) => Some(Located { value: n, line }),
            None => {
                d.error(line, self.type_error(key, "an integer", value_type(value)));
                None
            }
        }
    }

    /// The non-negative integer at `key`, if present and it fits in `T`.
    pub(crate) fn unsigned<T>(&self, key: &str, d: &mut Diagnostics) -> Option<Located<T>>
    where
        T: TryFrom<i64> + Bounded,
    {
        let (value, line) = self.value(key, "an integer", d)?;
        let Some(n) = value.as_integer() else {
            d.error(line, self.type_error(key, "an integer", value_type(value)));
            return None;
        };
        match T::try_from(n) {
            Ok(v) => Some(Located { value: v, line }),
            Err(_) => {
                d.error(
                    line,
                    format!(
                        "{}.{key}: {n} is out of range (0 to {})",
                        self.path,
                        T::MAX_TEXT
                    ),
                );
                None
            }
        }
    }

    /// The array of strings at `key`, each with its line, if present and well-typed.
    pub(crate) fn strings(&self, key: &str, d: &mut Diagnostics) -> Option<Vec<Located<String>>> {
        let (value, line) = self.value(key, "an array of strings", d)?;
        let Some(array) = value.as_array() else {
            d.error(
                line,
                self.type_error(key, "an array of strings", value_type(value)),
            );
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, element) in array.iter().enumerate() {
            let element_line = d.line_of(element.span()).unwrap_or(line);
            match element.as_str() {
                Some(s) => out.push(Located {
                    value: s.to_string(),
                    line: element_line,
                }),
                None => {
                    ok = false;
                    d.error(
                        element_line,
                        format!(
                            "{}.{key}[{i}]: expected a string, found {}",
                            self.path,
                            value_type(element)
                        ),
                    );
                }
            }
        }
        ok.then_some(out)
    }
}

/// Integer types [`Section::unsigned`] reads, with their maximum for messages.
pub(crate) trait Bounded {
    /// The type's maximum, as text.
    const MAX_TEXT: &'static str;
}

impl Bounded for u32 {
    const MAX_TEXT: &'static str = "4294967295";
}

impl Bounded for u64 {
    // Values come from TOML's i64, so this is the largest one can write.
    const MAX_TEXT: &'static str = "9223372036854775807";
}

impl Bounded for usize {
    // Values come from TOML's i64; on 32-bit targets a too-large value is still caught by try_from.
    const MAX_TEXT: &'static str = if usize::BITS >= 64 {
        "9223372036854775807"
    } else {
        "4294967295"
    };
}

/// The line an item starts on: its key's position, else its own.
pub(crate) fn item_line(key: Option<&Key>, item: &Item, d: &Diagnostics) -> Option<usize> {
    key.and_then(|k| d.line_of(k.span()))
        .or_else(|| d.line_of(item.span()))
}

/// The line a table-valued item starts on: its header, else its key, else its first entry.
pub(crate) fn table_line(key: Option<&Key>, item: &Item, d: &Diagnostics) -> Option<usize> {
    d.line_of(item.span())
        .or_else(|| key.and_then(|k| d.line_of(k.span())))
        .or_else(|| {
            item.as_table_like()?
                .iter()
                .find_map(|(_, child)| d.line_of(child.span()))
        })
}

/// "a string", "an integer", ... for messages.
pub(crate) fn value_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "a table",
    }
}

/// Like [`value_type`], for any item.
pub(crate) fn item_type(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => value_type(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

/// Like [`table_array`], for a key that must hold a non-empty array of
/// tables: wrong shapes and empty arrays are reported on `key_line`.
fn nonempty_table_array<'a>(
    item: &'a Item,
    path: &str,
    key_line: usize,
    d: &mut Diagnostics,
) -> Option<Vec<(&'a dyn TableLike, usize)>> {
    let Some(elements) = table_array(item, path, key_line, d) else {
        d.error(
            key_line,
            format!(
                "{path}: expected an array of tables ([[{path}]]), found {}",
                item_type(item)
            ),
        );
        return None;
    };
    if elements.is_empty() {
        d.error(key_line, format!("{path} must not be empty"));
        return None;
    }
    Some(elements)
}

/// The tables under `key` of `s` that each give a `shard` with `from` and
/// `to` (slot ranges, key ranges, time intervals), as sections named
/// `[[path]]`; `None` when `key` is absent, or not a non-empty array of
/// tables (reported).
pub(crate) fn shard_range_entries<'a>(
    s: &Section<'a>,
    key: &str,
    path: &str,
    d: &mut Diagnostics,
) -> Option<Vec<Section<'a>>> {
    let (_, item) = s.entries().find(|(k, _)| *k == key)?;
    let key_line = s.key_line(key, d);
    let elements = nonempty_table_array(item, path, key_line, d)?;
    Some(
        elements
            .into_iter()
            .map(|(table, line)| Section::new(table, path, format!("[[{path}]]"), line))
            .collect(),
    )
}

/// The `shard` of one [`shard_range_entries`] table, after checking that
/// table's keys: required and known.
pub(crate) fn range_entry_shard(
    e: &Section<'_>,
    path: &str,
    shards: &[String],
    d: &mut Diagnostics,
) -> Option<Located<String>> {
    e.check_keys(&["shard", "from", "to"], d);
    let shard = e.string("shard", d);
    let shard = e.require(shard, "shard", path, d)?;
    shard_known(&shard.value, path, shard.line, shards, d);
    Some(shard)
}

/// `true` if `name` is a shard; otherwise reports it at `line` and says `false`.
pub(crate) fn shard_known(
    name: &str,
    path: &str,
    line: usize,
    shards: &[String],
    d: &mut Diagnostics,
) -> bool {
    if shards.iter().any(|s| s == name) {
        return true;
    }
    d.error(
        line,
        format!(
            "unknown shard {name:?} in {path}; known shards: {}",
            shards.join(", ")
        ),
    );
    false
}

/// The tables of an array, each with its line: `[[name]]` headers or an array of inline tables.
///
/// Elements that are not tables are reported and skipped; `None` if `item` is no array at all.
pub(crate) fn table_array<'a>(
    item: &'a Item,
    path: &str,
    fallback_line: usize,
    d: &mut Diagnostics,
) -> Option<Vec<(&'a dyn TableLike, usize)>> {
    match item {
        Item::ArrayOfTables(array) => Some(
            array
                .iter()
                .map(|t| {
                    let line = d.line_of(t.span()).unwrap_or(fallback_line);
                    (t as &dyn TableLike, line)
                })
                .collect(),
        ),
        Item::Value(Value::Array(array)) => {
            let mut out = Vec::with_capacity(array.len());
            for (i, element) in array.iter().enumerate() {
                let line = d.line_of(element.span()).unwrap_or(fallback_line);
                match element.as_inline_table() {
                    Some(t) => out.push((t as &dyn TableLike, line)),
                    None => d.error(
                        line,
                        format!(
                            "{path}[{i}]: expected a table, found {}",
                            value_type(element)
                        ),
                    ),
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// Converts a parsed item to a plain [`toml::Value`] (`None` for an empty item).
pub(crate) fn to_toml(item: &Item) -> Option<toml::Value> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value_to_toml(v)),
        Item::Table(t) => Some(toml::Value::Table(table_to_toml(t))),
        Item::ArrayOfTables(a) => Some(toml::Value::Array(
            a.iter()
                .map(|t| toml::Value::Table(table_to_toml(t)))
                .collect(),
        )),
    }
}

fn table_to_toml(table: &dyn TableLike) -> toml::Table {
    table
        .iter()
        .filter_map(|(k, item)| Some((k.to_string(), to_toml(item)?)))
        .collect()
}

fn value_to_toml(value: &Value) -> toml::Value {
    match value {
        Value::String(s) => toml::Value::String(s.value().clone()),
        Value::Integer(i) => toml::Value::Integer(*i.value()),
        Value::Float(f) => toml::Value::Float(*f.value()),
        Value::Boolean(b) => toml::Value::Boolean(*b.value()),
        Value::Datetime(dt) => toml::Value::Datetime(*dt.value()),
        Value::Array(a) => toml::Value::Array(a.iter().map(value_to_toml).collect()),
        Value::InlineTable(t) => toml::Value::Table(table_to_toml(t)),
    }
}

/// Converts the entries of a table, except `skip`, to plain values.
pub(crate) fn extra_entries(section: &Section<'_>, skip: &[&str]) -> BTreeMap<String, toml::Value> {
    section
        .entries()
        .filter(|(k, _)| !skip.contains(k))
        .filter_map(|(k, item)| Some((k.to_string(), to_toml(item)?)))
        .collect()
}
