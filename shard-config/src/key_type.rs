//! The SQL type of a table's sharding key (`key_type`), which says how a key
//! written as text (a quoted literal, a text-format parameter) or sent in binary
//! becomes a [`KeyValue`](crate::hash::KeyValue).

use std::fmt;

/// The type of a sharding-key column, as far as placement cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `smallint`, `integer`, `bigint` (int2/int4/int8): hashed alike.
    Int,
    /// `text`, `varchar`, `char varying`: raw bytes.
    Text,
    /// `uuid`: 16 bytes.
    Uuid,
    /// `date`.
    Date,
    /// `timestamp` (without time zone).
    Timestamp,
    /// `timestamptz`.
    Timestamptz,
}

impl KeyType {
    /// Every spelling `key_type` accepts.
    pub const NAMES: &'static [&'static str] = &[
        "smallint",
        "int2",
        "integer",
        "int",
        "int4",
        "bigint",
        "int8",
        "text",
        "varchar",
        "uuid",
        "date",
        "timestamp",
        "timestamptz",
    ];

    /// Parses a `key_type` value (case-insensitive): see [`KeyType::NAMES`].
    pub fn parse(name: &str) -> Option<KeyType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "smallint" | "int2" | "integer" | "int" | "int4" | "bigint" | "int8" => KeyType::Int,
            "text" | "varchar" | "character varying" => KeyType::Text,
            "uuid" => KeyType::Uuid,
            "date" => KeyType::Date,
            "timestamp" | "timestamp without time zone" => KeyType::Timestamp,
            "timestamptz" | "timestamp with time zone" => KeyType::Timestamptz,
            _ => return None,
        })
    }

    /// The canonical name: `bigint`, `text`, `uuid`, `date`, `timestamp`, `timestamptz`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Int => "bigint",
            KeyType::Text => "text",
            KeyType::Uuid => "uuid",
            KeyType::Date => "date",
            KeyType::Timestamp => "timestamp",
            KeyType::Timestamptz => "timestamptz",
        }
    }

    /// `date`, `timestamp` or `timestamptz`.
    pub fn is_time(self) -> bool {
        matches!(
            self,
            KeyType::Date | KeyType::Timestamp | KeyType::Timestamptz
        )
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        for name in KeyType::NAMES {
            assert!(KeyType::parse(name).is_some(), "{name}");
        }
        assert_eq!(KeyType::parse("INT4"), Some(KeyType::Int));
        assert_eq!(KeyType::parse("numeric"), None);
        assert_eq!(KeyType::Int.to_string(), "bigint");
    }
}
