//! The `/* shardgate: primary */` routing hint, read from the raw statement
//! text (sqlparser drops comments).
//!
//! The hint is a plain byte scan and knows nothing of SQL lexing: the same
//! characters inside a string literal or a quoted identifier count too. That
//! errs towards the primary, which is always correct, and keeps the scan
//! free of allocation and independent of whether the text parses.

/// The word every hint contains; texts without it are rejected quickly.
const NEEDLE: &[u8] = b"shardgate";

/// The hint's value word.
const PRIMARY: &[u8] = b"primary";

/// Boyer–Moore–Horspool shifts for [`NEEDLE`], ASCII case-folded: how far
/// the window may move when its last byte is the index byte.
const SHIFTS: [u8; 256] = build_shifts();

const fn build_shifts() -> [u8; 256] {
    let len = NEEDLE.len();
    let mut table = [len as u8; 256];
    let mut i = 0;
    while i + 1 < len {
        let shift = (len - 1 - i) as u8;
        let lower = NEEDLE[i];
        table[lower as usize] = shift;
        table[lower.to_ascii_uppercase() as usize] = shift;
        i += 1;
    }
    table
}

/// Whether `sql` carries a primary hint anywhere: a block comment
/// `/* shardgate: primary */` or a line comment `-- shardgate: primary`,
/// ASCII case-insensitive, with any whitespace (or none) between the comment
/// marker, `shardgate`, `:`, `primary` and the end of the comment (a line
/// comment's whitespace must stay on its line).
///
/// Cost: a case-insensitive Horspool search for `shardgate` (it looks at
/// about one byte in nine of a text without the word), no allocation.
pub fn has_primary_hint(sql: &str) -> bool {
    let text = sql.as_bytes();
    let n = NEEDLE.len();
    let mut pos = 0;
    while let Some(window) = text.get(pos..pos + n) {
        if window.eq_ignore_ascii_case(NEEDLE) && is_hint_at(text, pos) {
            return true;
        }
        let last = window[n - 1];
        pos += usize::from(SHIFTS[usize::from(last)]);
    }
    false
}

/// Whether the `shardgate` found at `at` is the body of a hint comment.
fn is_hint_at(text: &[u8], at: usize) -> bool {
    let before = &text[..at];
    let after = &text[at + NEEDLE.len()..];
    // Block comment: any whitespace, including line breaks.
    if before.trim_ascii_end().ends_with(b"/*") {
        return match hint_value_end(after, u8::is_ascii_whitespace) {
            Some(rest) => rest.starts_with(b"*/"),
            None => false,
        };
    }
    // Line comment: whitespace on the same line only.
    let line_before = trim_end_by(before, is_inline_space);
    if line_before.ends_with(b"--") {
        return match hint_value_end(after, is_inline_space) {
            Some(rest) => rest.is_empty() || rest[0] == b'\n' || rest[0] == b'\r',
            None => false,
        };
    }
    false
}

/// Parses `<ws>:<ws>primary<ws>` (whitespace as told by `space`) at the start
/// of `rest`, returning what follows it.
fn hint_value_end(rest: &[u8], space: fn(&u8) -> bool) -> Option<&[u8]> {
    let rest = trim_start_by(rest, space);
    let rest = rest.strip_prefix(b":")?;
    let rest = trim_start_by(rest, space);
    let word = rest.get(..PRIMARY.len())?;
    if !word.eq_ignore_ascii_case(PRIMARY) {
        return None;
    }
    Some(trim_start_by(&rest[PRIMARY.len()..], space))
}

fn is_inline_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

fn trim_start_by(bytes: &[u8], space: fn(&u8) -> bool) -> &[u8] {
    let skip = bytes.iter().take_while(|b| space(b)).count();
    &bytes[skip..]
}

fn trim_end_by(bytes: &[u8], space: fn(&u8) -> bool) -> &[u8] {
    let keep = bytes.len() - bytes.iter().rev().take_while(|b| space(b)).count();
    &bytes[..keep]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_comment_hints() {
        assert!(has_primary_hint("/* shardgate: primary */ SELECT 1"));
        assert!(has_primary_hint("SELECT 1 /*shardgate:primary*/"));
        assert!(has_primary_hint("SELECT /*  ShardGate :\n\tPRIMARY  */ 1"));
        assert!(has_primary_hint("/*\nshardgate: primary\n*/SELECT 1"));
    }

    #[test]
    fn line_comment_hints() {
        assert!(has_primary_hint("-- shardgate: primary\nSELECT 1"));
        assert!(has_primary_hint("SELECT 1 --SHARDGATE:Primary"));
        assert!(has_primary_hint("SELECT 1 --\tshardgate :  primary \r\n"));
        assert!(!has_primary_hint("SELECT 1 --\nshardgate: primary"));
        assert!(!has_primary_hint("-- shardgate:\nprimary\nSELECT 1"));
    }

    #[test]
    fn non_hints() {
        assert!(!has_primary_hint(""));
        assert!(!has_primary_hint("SELECT 1"));
        assert!(!has_primary_hint("SELECT shardgate FROM t"));
        assert!(!has_primary_hint("/* shardgate: replica */ SELECT 1"));
        assert!(!has_primary_hint("/* shardgate: primary"));
        assert!(!has_primary_hint("/* shardgate: primary, please */"));
        assert!(!has_primary_hint("/* hint shardgate: primary */"));
        assert!(!has_primary_hint("/* shardgate primary */"));
        assert!(!has_primary_hint("/* shardgate: primaryx */"));
        assert!(!has_primary_hint("-- shardgate: primary key"));
        assert!(!has_primary_hint("shardgate"));
        assert!(!has_primary_hint("shardgat"));
    }

    #[test]
    fn second_occurrence_counts() {
        assert!(has_primary_hint(
            "SELECT 'shardgate' /* shardgate: primary */"
        ));
        assert!(has_primary_hint("/* shardgate */ /* shardgate: primary */"));
    }

    #[test]
    fn inside_string_literal_counts() {
        assert!(has_primary_hint("SELECT '/* shardgate: primary */'"));
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert!(!has_primary_hint("SELECT 'ßhardgäte ✓ 日本語'"));
        assert!(has_primary_hint("SELECT 'ä' /* shardgate: primary */ -- ✓"));
        for cut in 0..12 {
            let s = "/* shardgate: primary */";
            assert_eq!(has_primary_hint(&s[..s.len() - cut]), cut == 0);
        }
    }

    /// Not a benchmark: a long text without the needle is scanned fully and
    /// correctly, and one with it found at the very end.
    #[test]
    fn long_text_scan() {
        let mut text = "SELECT a, b, c FROM shard_table WHERE x = 'gates' AND ".repeat(2_000);
        assert!(!has_primary_hint(&text));
        text.push_str("/* SHARDGATE: PRIMARY */");
        assert!(has_primary_hint(&text));
    }
}
