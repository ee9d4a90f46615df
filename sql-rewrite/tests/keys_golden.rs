//! Golden cases for `keys::key_set_of_sql`: `tests/golden/keys.txt` holds
//! SQL texts with the expected key set (its header explains the format).
//! Every failing case is printed with what `key_set_of_sql` returned.

use sql_rewrite::keys::key_set_of_sql;

const GOLDEN: &str = include_str!("golden/keys.txt");

/// One case: the line of its SQL, the sharding key, the SQL, the expected
/// rendering of the key set (or `error`).
struct Case {
    line: usize,
    key: String,
    sql: String,
    expected: String,
}

fn parse_golden(text: &str) -> Result<Vec<Case>, String> {
    let mut cases = Vec::new();
    let mut key = "id".to_string();
    let mut pending: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix("! key:") {
            key = name.trim().to_string();
        } else if let Some(expected) = trimmed.strip_prefix("=>") {
            let (line, sql) = pending
                .take()
                .ok_or(format!("line {number}: `=>` without SQL"))?;
            cases.push(Case {
                line,
                key: key.clone(),
                sql,
                expected: expected.trim().to_string(),
            });
        } else if pending.is_some() {
            return Err(format!("line {number}: SQL without a `=>` line before it"));
        } else {
            pending = Some((number, trimmed.to_string()));
        }
    }
    if let Some((line, _)) = pending {
        return Err(format!("line {line}: case without a `=>` line"));
    }
    Ok(cases)
}

#[test]
fn golden_keys() {
    let cases = parse_golden(GOLDEN).expect("golden file parses");
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let got = match key_set_of_sql(&case.sql, &case.key) {
            Ok(set) => set.to_string(),
            Err(_) => "error".to_string(),
        };
        if got != case.expected {
            failures.push(format!(
                "line {}: {}\n  key:      {}\n  expected: {}\n  got:      {}",
                case.line, case.sql, case.key, case.expected, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
