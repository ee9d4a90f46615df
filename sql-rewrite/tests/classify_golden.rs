//! Golden cases for `classify`: `tests/golden/classify.txt` holds SQL texts
//! with the expected target, reason and effects (its header explains the
//! format). Every failing case is printed with what `classify` returned.

use sql_rewrite::{classify, Classification, SessionEffect, Target, TxnEffect};

const GOLDEN: &str = include_str!("golden/classify.txt");

/// One case of the golden file.
struct Case {
    /// 1-based line of the case's first SQL line.
    line: usize,
    sql: String,
    write_functions: Vec<String>,
    expected: Vec<String>,
}

/// Splits the golden file into cases.
fn parse_golden(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let mut write_functions: Vec<String> = Vec::new();
    let mut sql_lines: Vec<&str> = Vec::new();
    let mut expected: Vec<String> = Vec::new();
    let mut start = 0;

    let mut finish = |sql_lines: &mut Vec<&str>,
                      expected: &mut Vec<String>,
                      start: usize,
                      write_functions: &[String]|
     -> Result<(), String> {
        if sql_lines.is_empty() && expected.is_empty() {
            return Ok(());
        }
        if expected.is_empty() {
            return Err(format!("line {start}: case without a `=>` line"));
        }
        let sql = if *sql_lines == ["<empty>"] {
            String::new()
        } else {
            sql_lines.join("\n")
        };
        cases.push(Case {
            line: start,
            sql,
            write_functions: write_functions.to_vec(),
            expected: std::mem::take(expected),
        });
        sql_lines.clear();
        Ok(())
    };

    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            finish(&mut sql_lines, &mut expected, start, &write_functions)?;
        } else if line.starts_with('#') {
            continue;
        } else if let Some(list) = line.strip_prefix("! write_functions:") {
            write_functions = list
                .split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| !f.is_empty())
                .collect();
        } else if line.starts_with("=>") || line.starts_with('+') {
            if sql_lines.is_empty() {
                return Err(format!("line {number}: expectation without SQL"));
            }
            expected.push(line.trim_end().to_string());
        } else {
            if !expected.is_empty() {
                return Err(format!("line {number}: SQL after the expectation"));
            }
            if sql_lines.is_empty() {
                start = number;
            }
            sql_lines.push(line);
        }
    }
    finish(&mut sql_lines, &mut expected, start, &write_functions)?;
    Ok(cases)
}

/// Renders a classification in the golden file's expectation format.
fn render(c: &Classification) -> Vec<String> {
    let target = match c.target {
        Target::Replica => "replica",
        Target::Primary => "primary",
    };
    let mut lines = vec![format!("=> {target} {}", c.reason)];
    if !c.parsed {
        lines.push("+ unparsed".to_string());
    }
    for effect in &c.session {
        lines.push(match effect {
            SessionEffect::Set { name, statement } => format!("+ set {name}: {statement}"),
            SessionEffect::Reset { name } => format!("+ reset {name}"),
            SessionEffect::ResetAll => "+ reset all".to_string(),
            SessionEffect::DiscardAll => "+ discard all".to_string(),
        });
    }
    if let Some(txn) = c.txn {
        lines.push(
            match txn {
                TxnEffect::Begin { read_only: false } => "+ begin",
                TxnEffect::Begin { read_only: true } => "+ begin read_only",
                TxnEffect::Commit => "+ commit",
                TxnEffect::Rollback => "+ rollback",
            }
            .to_string(),
        );
    }
    lines
}

#[test]
fn golden_classify_cases() {
    let cases = match parse_golden(GOLDEN) {
        Ok(cases) => cases,
        Err(e) => panic!("tests/golden/classify.txt: {e}"),
    };
    assert!(cases.len() >= 80, "only {} golden cases", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        let actual = render(&classify(&case.sql, &case.write_functions));
        if actual != case.expected {
            failures.push(format!(
                "line {}: {:?}\n  expected:\n    {}\n  actual:\n    {}",
                case.line,
                case.sql,
                case.expected.join("\n    "),
                actual.join("\n    "),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn golden_file_format_errors_are_reported() {
    assert!(parse_golden("SELECT 1\n\n").is_err());
    assert!(parse_golden("=> replica read\n").is_err());
    assert!(parse_golden("SELECT 1\n=> replica read\nSELECT 2\n").is_err());
    let cases = parse_golden("<empty>\n=> replica empty\n").unwrap_or_default();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].sql, "");
}
