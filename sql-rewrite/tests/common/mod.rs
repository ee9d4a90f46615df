//! The golden-file runner the `*_golden` tests share.
//!
//! A file is comment lines (`#`), blank lines, and cases: an optional
//! `? a, 'b, c', null` line of `$n` values (text format), one line of SQL,
//! then one `=> …` line per expected output line. [`run`] computes every
//! case, fails with all differences, and with `BLESS=1` rewrites the file
//! with what the code says now (review the diff!).

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

/// One case: its parameters, SQL and expected `=>` lines.
pub struct Case {
    /// The `?` line, as written.
    pub params: Option<String>,
    /// The SQL line.
    pub sql: String,
    /// The expected lines (without `=> `).
    pub expected: Vec<String>,
}

impl Case {
    /// The `?` line's values: quotes keep commas; unquoted `null` is NULL.
    pub fn param_values(&self) -> Vec<Option<String>> {
        let Some(line) = &self.params else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut cur = String::new();
        let (mut quoted, mut was_quoted) = (false, false);
        for c in line.chars() {
            match c {
                '\'' => {
                    quoted = !quoted;
                    was_quoted = true;
                }
                ',' if !quoted => {
                    out.push(finish(&cur, was_quoted));
                    cur.clear();
                    was_quoted = false;
                }
                c => cur.push(c),
            }
        }
        out.push(finish(&cur, was_quoted));
        out
    }
}

fn finish(p: &str, quoted: bool) -> Option<String> {
    (quoted || !p.trim().eq_ignore_ascii_case("null")).then(|| p.trim().to_string())
}

/// Runs every case of `file` (relative to the crate) through `actual`;
/// returns the number of cases.
pub fn run(file: &str, actual: impl Fn(&Case) -> Vec<String>) -> usize {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect("read golden file");
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let mut rewritten = String::new();
    let mut count = 0;
    let mut params = None;
    let mut cases: Vec<Result<Case, String>> = Vec::new();
    for line in text.lines() {
        if let Some(exp) = line.strip_prefix("=> ") {
            match cases.last_mut() {
                Some(Ok(case)) => case.expected.push(exp.to_string()),
                _ => panic!("{file}: expectation without a case: {line}"),
            }
        } else if line.starts_with('#') || line.trim().is_empty() {
            cases.push(Err(line.to_string()));
        } else if let Some(p) = line.strip_prefix("? ") {
            params = Some(p.to_string());
        } else {
            cases.push(Ok(Case {
                params: params.take(),
                sql: line.to_string(),
                expected: Vec::new(),
            }));
        }
    }
    for entry in &cases {
        match entry {
            Err(line) => {
                rewritten.push_str(line);
                rewritten.push('\n');
            }
            Ok(case) => {
                count += 1;
                let got = actual(case);
                if got != case.expected {
                    failures.push(format!(
                        "{}\n  expected: {:?}\n  got:      {:?}",
                        case.sql, case.expected, got
                    ));
                }
                if let Some(p) = &case.params {
                    rewritten.push_str(&format!("? {p}\n"));
                }
                rewritten.push_str(&case.sql);
                rewritten.push('\n');
                for g in &got {
                    rewritten.push_str(&format!("=> {g}\n"));
                }
            }
        }
    }
    if bless {
        std::fs::write(&path, rewritten).expect("write golden file");
        return count;
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases in {file} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}
