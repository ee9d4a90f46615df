//! Golden route cases: tests/golden/route.cases planned against
//! tests/golden/route.toml. Each case's expectation is the exact route (or
//! refusal); `BLESS=1` rewrites the file with what the planner says now.

use sql_rewrite::route::{preview, Topology};

const CASES: &str = "tests/golden/route.cases";
const CONFIG: &str = include_str!("golden/route.toml");

/// One case: its parameter line, SQL, and expected `=>` lines.
struct Case {
    params: Option<String>,
    sql: String,
    expected: Vec<String>,
}

/// Parses `? a, 'b, c', null` into text parameters (quotes keep commas).
fn params(line: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
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

fn finish(p: &str, quoted: bool) -> Option<String> {
    let p = if quoted { p } else { p.trim() };
    (quoted || !p.eq_ignore_ascii_case("null")).then(|| p.trim().to_string())
}

/// The file as comment/blank lines (kept verbatim) and cases.
fn read(text: &str) -> Vec<Result<Case, String>> {
    let mut out: Vec<Result<Case, String>> = Vec::new();
    let mut pending_params = None;
    for line in text.lines() {
        if let Some(exp) = line.strip_prefix("=> ") {
            match out.last_mut() {
                Some(Ok(case)) => case.expected.push(exp.to_string()),
                _ => panic!("expectation without a case: {line}"),
            }
        } else if line.starts_with('#') || line.trim().is_empty() {
            out.push(Err(line.to_string()));
        } else if let Some(p) = line.strip_prefix("? ") {
            pending_params = Some(p.to_string());
        } else {
            out.push(Ok(Case {
                params: pending_params.take(),
                sql: line.to_string(),
                expected: Vec::new(),
            }));
        }
    }
    out
}

fn actual(case: &Case, topo: &Topology<'_>) -> Vec<String> {
    let mut next = 9000i64;
    let mut next_id = || {
        next += 1;
        next - 1
    };
    let params = case.params.as_deref().map(params).unwrap_or_default();
    match preview(&case.sql, topo, &[], &params, false, &mut next_id) {
        Err(r) => vec![format!("refused: {}", r.message)],
        Ok(rows) => rows
            .iter()
            .map(|r| {
                let mut s = format!("{} {}", r.role, r.shard);
                if r.sql != case.sql {
                    s.push_str(&format!(": {}", r.sql));
                }
                if let Some(p) = &r.params {
                    s.push_str(&format!(" [params {p}]"));
                }
                s
            })
            .collect(),
    }
}

#[test]
fn golden_routes() {
    let config = shard_config::parse(CONFIG, "route.toml").expect("golden config is valid");
    let map = config.shard_map();
    let names: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let default_shard = names
        .iter()
        .position(|n| *n == config.routing.default_shard)
        .expect("default shard");
    let topo = Topology {
        map: &map,
        shards: &names,
        default_shard,
        allow_scatter_writes: false,
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CASES);
    let text = std::fs::read_to_string(&path).expect("read cases");
    let entries = read(&text);
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let mut rewritten = String::new();
    let mut count = 0;
    for e in &entries {
        match e {
            Err(line) => {
                rewritten.push_str(line);
                rewritten.push('\n');
            }
            Ok(case) => {
                count += 1;
                let got = actual(case, &topo);
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
        std::fs::write(&path, rewritten).expect("write cases");
        return;
    }
    assert!(count >= 150, "only {count} golden route cases");
    assert!(
        failures.is_empty(),
        "{} of {count} route cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Scatter writes are refused by default and allowed by the config switch.
#[test]
fn allow_scatter_writes_switch() {
    let config = shard_config::parse(CONFIG, "route.toml").expect("golden config is valid");
    let map = config.shard_map();
    let names: Vec<&str> = config.shards.iter().map(|s| s.name.as_str()).collect();
    let mut topo = Topology {
        map: &map,
        shards: &names,
        default_shard: 0,
        allow_scatter_writes: false,
    };
    let mut id = || 1;
    let sql = "UPDATE users SET name = 'x' WHERE name = 'y'";
    let refused = preview(sql, &topo, &[], &[], false, &mut id).unwrap_err();
    assert!(
        refused.message.contains("allow_scatter_writes"),
        "{refused}"
    );
    topo.allow_scatter_writes = true;
    let rows = preview(sql, &topo, &[], &[], false, &mut id).expect("allowed");
    let shards: Vec<&str> = rows.iter().map(|r| r.shard.as_str()).collect();
    assert_eq!(shards, ["s0", "s1", "s2"]);
    assert!(rows.iter().all(|r| r.role == "primary" && r.sql == sql));
}
