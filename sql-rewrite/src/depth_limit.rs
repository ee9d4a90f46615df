//! A cheap check on the token stream that refuses texts whose syntax tree
//! would be too deep to handle safely.
//!
//! sqlparser builds chains of infix operators (`1 + 1 + …`, `a AND b AND …`,
//! `x::t::t…`) and of set operations (`… UNION …`) as left-deep trees
//! without counting them against its recursion limit. The tree's derived
//! `Drop` and `Clone` recurse once per level: measured on a 2 MiB stack,
//! dropping overflows at about 21 000 chained operators (debug build) and
//! cloning at about 1 800 operators or 560 UNIONs (release). A stack
//! overflow aborts the whole proxy, so a client text above the limits here
//! is treated as unparseable instead.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

/// Most infix operators along any path of one expression: the operators
/// chained at each level of parentheses (a comma starts a new chain),
/// summed over the enclosing levels.
pub const MAX_OPERATOR_DEPTH: u32 = 1000;

/// Most set operations (UNION / INTERSECT / EXCEPT) in one statement.
pub const MAX_SET_OPERATIONS: u32 = 256;

/// Most nested parentheses and brackets (sqlparser's own recursion limit
/// refuses far fewer in expressions).
pub const MAX_PAREN_DEPTH: usize = 256;

/// Whether the tokens of a text stay within the nesting limits.
pub(crate) fn within_limits(tokens: &[TokenWithSpan]) -> bool {
    // Operators chained at each open parenthesis level; level 0 is the
    // statement itself.
    let mut chains = [0u32; MAX_PAREN_DEPTH + 1];
    let mut level = 0usize;
    let mut depth = 0u32; // sum of chains[..=level]
    let mut set_operations = 0u32;

    for token in tokens {
        match &token.token {
            Token::Whitespace(_) | Token::EOF => continue,
            Token::SemiColon => {
                chains = [0; MAX_PAREN_DEPTH + 1];
                level = 0;
                depth = 0;
                set_operations = 0;
                continue;
            }
            Token::Comma => {
                depth -= chains[level];
                chains[level] = 0;
                continue;
            }
            Token::LParen | Token::LBracket | Token::LBrace => {
                if matches!(token.token, Token::LBracket) {
                    // a subscript chains like an operator
                    chains[level] += 1;
                    depth += 1;
                }
                if level == MAX_PAREN_DEPTH {
                    return false;
                }
                level += 1;
                chains[level] = 0;
            }
            Token::RParen | Token::RBracket | Token::RBrace => {
                if level > 0 {
                    depth -= chains[level];
                    chains[level] = 0;
                    level -= 1;
                }
                continue;
            }
            Token::Word(word) => match word.keyword {
                Keyword::UNION | Keyword::INTERSECT | Keyword::EXCEPT | Keyword::MINUS => {
                    set_operations += 1;
                    if set_operations > MAX_SET_OPERATIONS {
                        return false;
                    }
                    continue;
                }
                Keyword::AND
                | Keyword::OR
                | Keyword::XOR
                | Keyword::NOT
                | Keyword::IS
                | Keyword::IN
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::AT
                | Keyword::COLLATE
                | Keyword::OVERLAPS
                | Keyword::DIV => {
                    chains[level] += 1;
                    depth += 1;
                }
                _ => continue,
            },
            Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Placeholder(_) => continue,
            // Every other token is an operator (or punctuation treated as
            // one, which only errs towards refusing).
            _ => {
                chains[level] += 1;
                depth += 1;
            }
        }
        if depth > MAX_OPERATOR_DEPTH {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::Tokenizer;

    fn ok(sql: &str) -> bool {
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize_with_location()
            .expect("test SQL tokenizes");
        within_limits(&tokens)
    }

    fn chain(n: usize, op: &str) -> String {
        vec!["1"; n + 1].join(op)
    }

    #[test]
    fn ordinary_sql_passes() {
        assert!(ok(
            "SELECT a + b * c FROM t WHERE x = $1 AND y IN (1, 2, 3)"
        ));
        assert!(ok(&format!(
            "SELECT {}",
            chain(MAX_OPERATOR_DEPTH as usize, " + ")
        )));
    }

    #[test]
    fn long_chains_are_refused() {
        let n = MAX_OPERATOR_DEPTH as usize + 1;
        assert!(!ok(&format!("SELECT {}", chain(n, " + "))));
        assert!(!ok(&format!("SELECT 1 WHERE {}", chain(n, " AND "))));
        assert!(!ok(&format!("SELECT 1{}", "::int".repeat(n))));
        assert!(!ok(&format!("SELECT a{}", "[1]".repeat(n))));
    }

    #[test]
    fn chains_add_up_through_parentheses() {
        let half = chain(MAX_OPERATOR_DEPTH as usize / 2 + 1, " + ");
        assert!(!ok(&format!("SELECT {half} + ({half})")));
        // siblings in a list do not add up
        assert!(ok(&format!("SELECT f({half}), ({half}), {half}")));
        // a parenthesized chain ends with its parenthesis
        assert!(ok(&format!("SELECT ({half}) + ({half})")));
    }

    #[test]
    fn flat_lists_pass() {
        let rows = vec!["(1, 'a', now() - interval '1 day')"; 20_000].join(", ");
        assert!(ok(&format!("INSERT INTO t VALUES {rows}")));
        let list = vec!["1"; 50_000].join(", ");
        assert!(ok(&format!("SELECT * FROM t WHERE id IN ({list})")));
    }

    #[test]
    fn set_operations_are_counted_per_statement() {
        let n = MAX_SET_OPERATIONS as usize;
        assert!(ok(&vec!["SELECT 1, 2"; n + 1].join(" UNION ALL ")));
        assert!(!ok(&vec!["SELECT 1, 2"; n + 2].join(" UNION ALL ")));
        let one = vec!["SELECT 1"; n + 1].join(" UNION ");
        assert!(ok(&format!("{one}; {one}")));
    }

    #[test]
    fn deep_parentheses_are_refused() {
        let n = MAX_PAREN_DEPTH + 1;
        assert!(!ok(&format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n))));
        assert!(ok(&format!(
            "SELECT {}1{}",
            "(".repeat(n - 1),
            ")".repeat(n - 1)
        )));
        // unbalanced closers are the parser's business
        assert!(ok("SELECT 1)))"));
    }
}
