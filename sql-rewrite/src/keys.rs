//! Sharding-key extraction: which values of a table's sharding key can
//! satisfy a WHERE clause (issue 3, route planning). Pure: works on the
//! parsed expression only.
//!
//! The answer is always a superset of the keys that can match: when the
//! analysis cannot tell, it says [`KeySet::All`] (every shard), never less.
//! Literal values are kept in the form they were written (casts stripped);
//! the caller converts them by the key column's type.

use std::fmt;

use sqlparser::ast::{
    BinaryOperator, Expr, FromTable, Ident, ObjectName, ObjectNamePart, SetExpr, Statement,
    TableFactor, TableWithJoins, UnaryOperator, UpdateTableFromKind, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// One value the sharding key is compared with, as written in the SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValueExpr {
    /// An integer literal (`42`, `-7`, `42::bigint`).
    Int(i64),
    /// A string literal (`'a'`, `'42'::int8`): a quoted number stays text,
    /// the caller converts it by the column type.
    Text(String),
    /// A `$n` parameter, 1-based (`$1`, `$1::int8`, `CAST($1 AS int8)`).
    Param(usize),
    /// `NULL`: never equal to any key (only seen while extracting; never
    /// part of a [`KeySet::Values`]).
    Null,
}

/// The sharding-key values that can satisfy a predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySet {
    /// Any key: the predicate does not restrict the key (or the analysis
    /// cannot tell).
    All,
    /// Exactly these values (deduplicated, in first-seen order); empty when
    /// no row can match (`key = NULL`).
    Values(Vec<KeyValueExpr>),
    /// The elements of the array bound to `$n` (`key = ANY($n)`).
    ArrayParam(usize),
    /// Any key in any of these sets (never `All`, never nested unions, at
    /// most one `Values`).
    Union(Vec<KeySet>),
    /// Only keys in every one of these sets: kept when the intersection
    /// depends on parameter values and can only be computed at Bind (never
    /// `All`, never nested intersections).
    Intersect(Vec<KeySet>),
}

impl KeySet {
    /// `true` when no key can match (`Values([])`).
    pub fn is_empty(&self) -> bool {
        matches!(self, KeySet::Values(values) if values.is_empty())
    }

    /// Keys in `a` or in `b`.
    pub fn union(a: KeySet, b: KeySet) -> KeySet {
        let mut values: Vec<KeyValueExpr> = Vec::new();
        let mut others: Vec<KeySet> = Vec::new();
        for part in [a, b] {
            let parts = match part {
                KeySet::All => return KeySet::All,
                KeySet::Union(parts) => parts,
                other => vec![other],
            };
            for part in parts {
                match part {
                    KeySet::All => return KeySet::All,
                    KeySet::Values(list) => {
                        for value in list {
                            push_unique(&mut values, value);
                        }
                    }
                    other => {
                        if !others.contains(&other) {
                            others.push(other);
                        }
                    }
                }
            }
        }
        if others.is_empty() {
            return KeySet::Values(values);
        }
        if !values.is_empty() {
            others.insert(0, KeySet::Values(values));
        }
        if others.len() == 1 {
            others.pop().unwrap_or(KeySet::All)
        } else {
            KeySet::Union(others)
        }
    }

    /// Keys in both `a` and `b`.
    pub fn intersect(a: KeySet, b: KeySet) -> KeySet {
        match (a, b) {
            (KeySet::All, other) | (other, KeySet::All) => other,
            (a, b) if a.is_empty() || b.is_empty() => KeySet::Values(Vec::new()),
            (KeySet::Values(a), KeySet::Values(b)) if same_literal_kind(&a, &b) => {
                KeySet::Values(a.into_iter().filter(|v| b.contains(v)).collect())
            }
            (a, b) if a == b => a,
            (a, b) => {
                let mut parts = Vec::new();
                for part in [a, b] {
                    let list = match part {
                        KeySet::Intersect(list) => list,
                        other => vec![other],
                    };
                    for part in list {
                        if !parts.contains(&part) {
                            parts.push(part);
                        }
                    }
                }
                KeySet::Intersect(parts)
            }
        }
    }
}

/// `true` when both lists hold only literals of one kind (all integers or
/// all strings), so that equality of the written forms is equality of keys.
fn same_literal_kind(a: &[KeyValueExpr], b: &[KeyValueExpr]) -> bool {
    let all_int = a.iter().chain(b).all(|v| matches!(v, KeyValueExpr::Int(_)));
    let all_text = a
        .iter()
        .chain(b)
        .all(|v| matches!(v, KeyValueExpr::Text(_)));
    all_int || all_text
}

fn push_unique(values: &mut Vec<KeyValueExpr>, value: KeyValueExpr) {
    if value != KeyValueExpr::Null && !values.contains(&value) {
        values.push(value);
    }
}

impl fmt::Display for KeyValueExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyValueExpr::Int(n) => write!(f, "{n}"),
            KeyValueExpr::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            KeyValueExpr::Param(n) => write!(f, "${n}"),
            KeyValueExpr::Null => f.write_str("null"),
        }
    }
}

/// `all`, `none`, `values 1, 'a', $2`, `any $1`,
/// `union(values 1 | any $2)`, `intersect(values $1 & any $2)`.
impl fmt::Display for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySet::All => f.write_str("all"),
            KeySet::Values(values) if values.is_empty() => f.write_str("none"),
            KeySet::Values(values) => {
                f.write_str("values ")?;
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{value}")?;
                }
                Ok(())
            }
            KeySet::ArrayParam(n) => write!(f, "any ${n}"),
            KeySet::Union(parts) | KeySet::Intersect(parts) => {
                let (name, sep) = if matches!(self, KeySet::Union(_)) {
                    ("union", " | ")
                } else {
                    ("intersect", " & ")
                };
                write!(f, "{name}(")?;
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    write!(f, "{part}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// The sharding-key values that can satisfy `expr`, a WHERE clause.
///
/// `key` is the key column's name and `table_names` the names that refer
/// to the sharded table (its name and alias), all as PostgreSQL stores
/// them (unquoted identifiers in the SQL fold to lower case before they are
/// compared; quoted ones keep their case). An unqualified column is the key
/// only when `unqualified_is_table` (the table is the only one in FROM).
///
/// AND intersects, OR unites; `=`, `IN (…)`, `= ANY($n)`, `= ANY(ARRAY[…])`
/// give values; NOT, IS NULL, `<>`, ranges and everything else give `All`
/// (and are absorbed by an AND with a restricting side).
pub fn key_set(expr: &Expr, key: &str, table_names: &[&str], unqualified_is_table: bool) -> KeySet {
    let ctx = Ctx {
        key,
        table_names,
        unqualified_is_table,
    };
    ctx.walk(expr)
}

struct Ctx<'a> {
    key: &'a str,
    table_names: &'a [&'a str],
    unqualified_is_table: bool,
}

/// An identifier as PostgreSQL stores it.
pub(crate) fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// Removes casts and parentheses.
pub(crate) fn strip(mut expr: &Expr) -> &Expr {
    loop {
        match expr {
            Expr::Cast { expr: inner, .. } | Expr::Nested(inner) => expr = inner,
            _ => return expr,
        }
    }
}

/// A literal or parameter, casts stripped; `None` for anything else.
pub(crate) fn value_of(expr: &Expr) -> Option<KeyValueExpr> {
    match strip(expr) {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.to_string().parse().ok().map(KeyValueExpr::Int),
            Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s) => {
                Some(KeyValueExpr::Text(s.clone()))
            }
            Value::DollarQuotedString(s) => Some(KeyValueExpr::Text(s.value.clone())),
            Value::Null => Some(KeyValueExpr::Null),
            Value::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0)
                .map(KeyValueExpr::Param),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match strip(inner) {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => format!("-{n}").parse().ok().map(KeyValueExpr::Int),
                _ => None,
            },
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr: inner,
        } => match value_of(inner) {
            Some(KeyValueExpr::Int(n)) => Some(KeyValueExpr::Int(n)),
            _ => None,
        },
        _ => None,
    }
}

/// A set of values from a list of expressions, or `All` if one of them is
/// not a literal or parameter.
fn values_of(list: &[Expr]) -> KeySet {
    let mut values = Vec::new();
    for expr in list {
        match value_of(expr) {
            Some(value) => push_unique(&mut values, value),
            None => return KeySet::All,
        }
    }
    KeySet::Values(values)
}

impl Ctx<'_> {
    fn is_key(&self, expr: &Expr) -> bool {
        match strip(expr) {
            Expr::Identifier(ident) => self.unqualified_is_table && folded(ident) == self.key,
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
                let (column, qualifier) = parts.split_last().expect("two parts");
                if folded(column) != self.key {
                    return false;
                }
                let table = folded(&qualifier[qualifier.len() - 1]);
                let full = qualifier.iter().map(folded).collect::<Vec<_>>().join(".");
                self.table_names.iter().any(|n| *n == table || *n == full)
            }
            _ => false,
        }
    }

    fn walk(&self, expr: &Expr) -> KeySet {
        match expr {
            Expr::Nested(inner) => self.walk(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And => KeySet::intersect(self.walk(left), self.walk(right)),
                BinaryOperator::Or => KeySet::union(self.walk(left), self.walk(right)),
                BinaryOperator::Eq => {
                    let value = if self.is_key(left) {
                        value_of(right)
                    } else if self.is_key(right) {
                        value_of(left)
                    } else {
                        None
                    };
                    match value {
                        Some(KeyValueExpr::Null) => KeySet::Values(Vec::new()),
                        Some(value) => KeySet::Values(vec![value]),
                        None => KeySet::All,
                    }
                }
                _ => KeySet::All,
            },
            Expr::InList {
                expr,
                list,
                negated: false,
            } if self.is_key(expr) => values_of(list),
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                right,
                ..
            } if self.is_key(left) => match strip(right) {
                Expr::Array(array) => values_of(&array.elem),
                other => match value_of(other) {
                    Some(KeyValueExpr::Param(n)) => KeySet::ArrayParam(n),
                    Some(KeyValueExpr::Null) => KeySet::Values(Vec::new()),
                    _ => KeySet::All,
                },
            },
            _ => KeySet::All,
        }
    }
}

/// The names a FROM item is known by: its (folded) name, its full dotted
/// name, and its alias.
fn names_of(relation: &TableFactor) -> Vec<String> {
    let mut names = Vec::new();
    if let TableFactor::Table { name, alias, .. } = relation {
        names.extend(object_names(name));
        if let Some(alias) = alias {
            names.push(folded(&alias.name));
        }
    }
    names
}

/// The names a table reference answers to (folded): its last part, and the
/// whole dotted name when it is qualified (`orders`, `shop.orders`).
pub(crate) fn object_names(name: &ObjectName) -> Vec<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(folded(ident)),
            _ => None,
        })
        .collect();
    let mut names = Vec::new();
    if let Some(last) = parts.last() {
        names.push(last.clone());
    }
    if parts.len() > 1 {
        names.push(parts.join("."));
    }
    names
}

fn relation_count(from: &[TableWithJoins]) -> usize {
    from.iter().map(|t| 1 + t.joins.len()).sum()
}

/// Parses one SELECT, UPDATE or DELETE and returns the key set of its
/// WHERE clause for the sharding key `key` of the first table it names
/// (unqualified columns count as that table's only when it is the only
/// relation in FROM / USING). A statement without WHERE gives `All`.
pub fn key_set_of_sql(sql: &str, key: &str) -> Result<KeySet, String> {
    let mut statements =
        Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())?;
    if statements.len() != 1 {
        return Err(format!("expected one statement, got {}", statements.len()));
    }
    let statement = statements.pop().expect("one statement");
    let (names, relations, selection) = match &statement {
        Statement::Query(query) => match query.body.as_ref() {
            SetExpr::Select(select) => {
                let first = select
                    .from
                    .first()
                    .ok_or("SELECT without FROM".to_string())?;
                (
                    names_of(&first.relation),
                    relation_count(&select.from),
                    select.selection.as_ref(),
                )
            }
            _ => return Err("not a plain SELECT".to_string()),
        },
        Statement::Update(update) => {
            let extra = match &update.from {
                Some(UpdateTableFromKind::BeforeSet(from))
                | Some(UpdateTableFromKind::AfterSet(from)) => relation_count(from),
                None => 0,
            };
            (
                names_of(&update.table.relation),
                relation_count(std::slice::from_ref(&update.table)) + extra,
                update.selection.as_ref(),
            )
        }
        Statement::Delete(delete) => {
            let from = match &delete.from {
                FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from) => from,
            };
            let first = from.first().ok_or("DELETE without a table".to_string())?;
            let using = delete.using.as_deref().map(relation_count).unwrap_or(0);
            (
                names_of(&first.relation),
                relation_count(from) + using,
                delete.selection.as_ref(),
            )
        }
        _ => return Err("not a SELECT, UPDATE or DELETE".to_string()),
    };
    let Some(selection) = selection else {
        return Ok(KeySet::All);
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    Ok(key_set(selection, key, &names, relations == 1))
}
