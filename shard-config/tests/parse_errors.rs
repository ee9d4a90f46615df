//! Configs that fail: each error names the right line and the problem.

use shard_config::parse;

/// The smallest valid config (one user, backend, one shard).
const MINIMAL: &str = include_str!("../examples/minimal.toml");

/// Every error of `text` as (line, message).
fn errors(text: &str) -> Vec<(usize, String)> {
    match parse(text, "gate.toml") {
        Ok(config) => panic!("expected errors, parsed {config:#?}"),
        Err(errors) => {
            for e in &errors.0 {
                assert_eq!(e.file, "gate.toml");
            }
            errors.0.into_iter().map(|e| (e.line, e.message)).collect()
        }
    }
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in test text"));
    text[..offset].matches('\n').count() + 1
}

/// 1-based line of the `n`th (0-based) occurrence of `needle`.
fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
    let (offset, _) = text
        .match_indices(needle)
        .nth(n)
        .unwrap_or_else(|| panic!("{needle:?} #{n} not in test text"));
    text[..offset].matches('\n').count() + 1
}

/// Asserts exactly one error, on `line`, whose message contains every word of `words`.
fn only_error(text: &str, line: usize, words: &[&str]) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    assert_error(&errors, line, words);
}

/// Asserts some error is on `line` and contains every word of `words`.
fn assert_error(errors: &[(usize, String)], line: usize, words: &[&str]) {
    let found = errors
        .iter()
        .any(|(l, m)| *l == line && words.iter().all(|w| m.contains(w)));
    assert!(
        found,
        "no error on line {line} containing {words:?} in {errors:#?}"
    );
}

fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn toml_syntax_errors_report_their_line() {
    let text = with("\n[proxy\nlisten = \"127.0.0.1:1\"\n");
    only_error(&text, line_of(&text, "[proxy"), &["TOML syntax error"]);
    let text = with("\n[routing]\nread_from = \n");
    only_error(&text, line_of(&text, "read_from"), &["TOML syntax error"]);
    let text = with("\n[proxy]\npool_size = 1\npool_size = 2\n");
    only_error(
        &text,
        nth_line_of(&text, "pool_size", 1),
        &["TOML syntax error"],
    );
    let only = errors("x = \"unterminated\n");
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].0, 1);
    assert!(
        !only[0].1.contains('\n'),
        "message is one line: {:?}",
        only[0].1
    );
}

#[test]
fn unknown_key_in_shards_names_key_and_expected_keys() {
    let text = with("\n[[shards]]\nname = \"s1\"\nprimry = \"127.0.0.1:5433\"\n");
    let errors = errors(&text);
    assert_error(
        &errors,
        line_of(&text, "primry"),
        &[
            "unknown key \"primry\" in [[shards]]",
            "expected one of: name, primary, replicas",
        ],
    );
    // And the shard lacks its primary.
    assert_error(
        &errors,
        nth_line_of(&text, "[[shards]]", 1),
        &["shard \"s1\": missing key \"primary\""],
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
}

#[test]
fn unknown_keys_in_every_section_are_errors() {
    let cases = [
        ("[proxy]\nlistn = \"127.0.0.1:1\"\n", "listn", "[proxy]"),
        (
            "[admin]\nuser = \"a\"\npassword = \"b\"\nrole = \"x\"\n",
            "role",
            "[admin]",
        ),
        (
            "[routing]\nread_form = \"primary\"\n",
            "read_form",
            "[routing]",
        ),
        ("[proxy.tls]\ncert = \"x\"\n", "tls", "[proxy]"),
        ("[monitoring]\nport = 1\n", "monitoring", "top level"),
    ];
    for (extra, key, section) in cases {
        let text = with(&format!("\n{extra}"));
        let needle = if section == "[proxy]" && key == "tls" {
            "[proxy.tls]"
        } else {
            key
        };
        only_error(
            &text,
            line_of(&text, needle),
            &[&format!("unknown key {key:?}"), section, "expected one of"],
        );
    }
    // Top-level keys must come before the first table header.
    let text = format!("pool_size = 3\n{MINIMAL}");
    only_error(
        &text,
        1,
        &[
            "unknown key \"pool_size\" in the top level",
            "expected one of: proxy, admin",
        ],
    );
    let text = MINIMAL.replace("user = \"shop\"", "user = \"shop\"\nhost = \"x\"");
    only_error(
        &text,
        line_of(&text, "host"),
        &["unknown key \"host\" in [backend]"],
    );
    let text = MINIMAL.replace("password = \"shop\"", "password = \"shop\"\nrole = \"r\"");
    only_error(
        &text,
        line_of(&text, "role"),
        &["unknown key \"role\" in [[users]]"],
    );
}

#[test]
fn missing_required_keys_point_at_the_table() {
    let text = with("\n[[shards]]\nname = \"s1\"\nreplicas = [\"127.0.0.1:6000\"]\n");
    only_error(
        &text,
        nth_line_of(&text, "[[shards]]", 1),
        &["shard \"s1\": missing key \"primary\""],
    );
    let text = with("\n[[shards]]\nprimary = \"127.0.0.1:6000\"\n");
    only_error(
        &text,
        nth_line_of(&text, "[[shards]]", 1),
        &["shard #2: missing key \"name\""],
    );
    let text = MINIMAL.replace("database = \"shop\"\n", "");
    only_error(
        &text,
        line_of(&text, "[backend]"),
        &["[backend]: missing key \"database\""],
    );
    let text = MINIMAL.replace("[backend]\nuser = \"shop\"\n", "[backend]\n");
    only_error(
        &text,
        line_of(&text, "[backend]"),
        &["[backend]: missing key \"user\""],
    );
    let text = MINIMAL.replacen("password = \"shop\"\n", "", 1);
    only_error(&text, 1, &["user \"shop\": missing key \"password\""]);
    let text = with("\n[admin]\nuser = \"ops\"\n");
    only_error(
        &text,
        line_of(&text, "[admin]"),
        &["[admin]: missing key \"password\""],
    );
}

#[test]
fn missing_sections_are_errors_on_line_one() {
    let errors = errors("");
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(&errors, 1, &["missing section [backend]"]);
    assert_error(&errors, 1, &["missing [[shards]]", "at least one shard"]);
    assert_error(&errors, 1, &["missing [[users]]", "at least one user"]);

    let text = MINIMAL.replace("[[users]]\nname = \"shop\"\npassword = \"shop\"\n", "");
    only_error(&text, 1, &["missing [[users]]"]);
}

#[test]
fn empty_arrays_and_wrong_shapes_are_errors() {
    let text = "users = []\nshards = []\n[backend]\nuser = \"u\"\ndatabase = \"d\"\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(&errors, 1, &["users: at least one user is required"]);
    assert_error(&errors, 2, &["shards: at least one shard is required"]);

    let text = MINIMAL.replace("[[shards]]", "[shards]");
    only_error(
        &text,
        line_of(&text, "[shards]"),
        &["shards: expected an array of tables ([[shards]]), found a table"],
    );
    let text = format!("proxy = 5\n{MINIMAL}");
    only_error(
        &text,
        1,
        &["proxy: expected a table ([proxy]), found an integer"],
    );
    let text = format!(
        "shards = [\"s0\"]\n{}",
        MINIMAL.replace(
            "[[shards]]\nname = \"s0\"\nprimary = \"127.0.0.1:5432\"\n",
            ""
        )
    );
    only_error(&text, 1, &["shards[0]: expected a table, found a string"]);
    let text = format!("tables = 1\n{MINIMAL}");
    only_error(
        &text,
        1,
        &["tables: expected a table ([tables]), found an integer"],
    );
    let text = with("\n[tables]\nusers = \"id\"\n");
    only_error(
        &text,
        line_of(&text, "users = \"id\""),
        &["tables.users: expected a table ([tables.users]), found a string"],
    );
}

#[test]
fn duplicate_shard_name_points_at_the_second() {
    let text = with("\n[[shards]]\nname = \"s0\"\nprimary = \"127.0.0.1:5433\"\n");
    only_error(
        &text,
        nth_line_of(&text, "name = \"s0\"", 1),
        &[
            "duplicate shard name \"s0\"",
            &format!("line {}", line_of(&text, "name = \"s0\"")),
        ],
    );
}

#[test]
fn duplicate_user_name_points_at_the_second() {
    let text = with("\n[[users]]\nname = \"shop\"\npassword = \"other\"\n");
    only_error(
        &text,
        nth_line_of(&text, "name = \"shop\"", 1),
        &["duplicate user name \"shop\"", "first defined on line 2"],
    );
}

#[test]
fn bad_addresses_point_at_their_value() {
    let text = MINIMAL.replace("127.0.0.1:5432", "127.0.0.1");
    only_error(
        &text,
        line_of(&text, "primary"),
        &["bad address \"127.0.0.1\" in shards.primary: expected host:port"],
    );
    let text = with("replicas = [\n  \"127.0.0.1:5433\",\n  \"127.0.0.1:99999\",\n]\n");
    only_error(
        &text,
        line_of(&text, "99999"),
        &[
            "bad address \"127.0.0.1:99999\" in shards.replicas",
            "invalid port",
        ],
    );
    let text = with("\n[proxy]\nlisten = \":6432\"\n");
    only_error(
        &text,
        line_of(&text, "listen"),
        &["bad address \":6432\" in proxy.listen", "empty host"],
    );
    let text = MINIMAL.replace("127.0.0.1:5432", "::1:5432");
    only_error(&text, line_of(&text, "primary"), &["in brackets"]);
    let text = MINIMAL.replace("127.0.0.1:5432", "127.0.0.1:0");
    only_error(
        &text,
        line_of(&text, "primary"),
        &["bad address \"127.0.0.1:0\"", "port 0"],
    );
}

#[test]
fn a_server_in_two_places_is_an_error() {
    let text = with("replicas = [\"127.0.0.1:5432\"]\n");
    only_error(
        &text,
        line_of(&text, "replicas"),
        &["shard \"s0\": server 127.0.0.1:5432 is already used by shard \"s0\""],
    );
    let text = with("\n[[shards]]\nname = \"s1\"\nprimary = \"127.0.0.1:5432\"\n");
    only_error(
        &text,
        nth_line_of(&text, "primary", 1),
        &["shard \"s1\"", "already used by shard \"s0\" (line 11)"],
    );
}

#[test]
fn unknown_default_shard_lists_known_shards() {
    let text = with("\n[[shards]]\nname = \"s1\"\nprimary = \"127.0.0.1:5433\"\n\n[routing]\ndefault_shard = \"s9\"\n");
    only_error(
        &text,
        line_of(&text, "default_shard"),
        &["unknown default_shard \"s9\"", "known shards: s0, s1"],
    );
}

#[test]
fn empty_names_are_errors() {
    let text = MINIMAL.replace("name = \"s0\"", "name = \"\"");
    only_error(
        &text,
        line_of(&text, "name = \"\""),
        &["shard #1: name must not be empty"],
    );
    let text = MINIMAL.replace("name = \"shop\"", "name = \"\"");
    only_error(
        &text,
        line_of(&text, "name = \"\""),
        &["user #1: name must not be empty"],
    );
    let text = MINIMAL.replace("user = \"shop\"", "user = \"\"");
    only_error(
        &text,
        line_of(&text, "user = \"\""),
        &["backend.user must not be empty"],
    );
    let text = MINIMAL.replace("database = \"shop\"", "database = \"\"");
    only_error(
        &text,
        line_of(&text, "database"),
        &["backend.database must not be empty"],
    );
    let text = with("\n[admin]\nuser = \"\"\npassword = \"x\"\n");
    only_error(
        &text,
        line_of(&text, "user = \"\""),
        &["admin.user must not be empty"],
    );
    let text = MINIMAL.replacen("password = \"shop\"", "password = \"\"", 1);
    only_error(&text, 3, &["user \"shop\": password must not be empty"]);
}

#[test]
fn pool_size_zero_and_other_ranges() {
    let text = with("\n[proxy]\npool_size = 0\n");
    only_error(
        &text,
        line_of(&text, "pool_size"),
        &["proxy.pool_size must be at least 1"],
    );
    let text = with("\n[proxy]\npool_size = -3\n");
    only_error(
        &text,
        line_of(&text, "pool_size"),
        &["proxy.pool_size: -3 is out of range"],
    );
    let text = with("\n[proxy]\npool_size = 4294967296\n");
    only_error(
        &text,
        line_of(&text, "pool_size"),
        &["out of range (0 to 4294967295)"],
    );
    let text = with("\n[proxy]\nmax_message_bytes = 1023\n");
    only_error(
        &text,
        line_of(&text, "max_message_bytes"),
        &["proxy.max_message_bytes must be at least 1024"],
    );
    let text = with("\n[proxy]\nmerge_row_limit = 0\n");
    only_error(
        &text,
        line_of(&text, "merge_row_limit"),
        &["proxy.merge_row_limit must be at least 1"],
    );
    let text = with("\n[proxy]\nconnect_timeout_ms = 0\nstartup_timeout_ms = 0\n");
    let errors = errors(&text);
    assert_eq!(errors.len(), 2);
    assert_error(
        &errors,
        line_of(&text, "connect_timeout_ms"),
        &["proxy.connect_timeout_ms must be at least 1"],
    );
    assert_error(
        &errors,
        line_of(&text, "startup_timeout_ms"),
        &["proxy.startup_timeout_ms must be at least 1"],
    );
    for bad in ["1024", "-1"] {
        let text = with(&format!("\n[proxy]\nnode_id = {bad}\n"));
        only_error(
            &text,
            line_of(&text, "node_id"),
            &[&format!(
                "proxy.node_id must be between 0 and 1023 (the snowflake node bits), got {bad}"
            )],
        );
    }
    let text = with("\n[proxy]\nnode_id = \"7\"\n");
    only_error(
        &text,
        line_of(&text, "node_id"),
        &["proxy.node_id: expected an integer, found a string"],
    );
    let text = with("\n[routing]\nmax_replica_lag_ms = -1\n");
    only_error(
        &text,
        line_of(&text, "max_replica_lag_ms"),
        &["routing.max_replica_lag_ms: -1 is out of range"],
    );
}

#[test]
fn bad_enum_values_point_at_the_value() {
    let text = with("\n[proxy]\npool_mode = \"statement\"\n");
    only_error(
        &text,
        line_of(&text, "pool_mode"),
        &[
            "bad value \"statement\" in proxy.pool_mode",
            "\"session\" or \"transaction\"",
        ],
    );
    let text = with("\n[routing]\nread_from = \"replica\"\n");
    only_error(
        &text,
        line_of(&text, "read_from"),
        &[
            "bad value \"replica\" in routing.read_from",
            "\"replicas\" or \"primary\"",
        ],
    );
    let text = with("\n[proxy]\npool_mode = \"Session\"\n");
    only_error(&text, line_of(&text, "pool_mode"), &["pool_mode"]);
}

#[test]
fn tls_cert_and_key_come_together() {
    let text = with("\n[proxy]\ntls_cert = \"cert.pem\"\n");
    only_error(
        &text,
        line_of(&text, "tls_cert"),
        &["tls_cert is set but proxy.tls_key is not"],
    );
    let text = with("\n[proxy]\ntls_key = \"key.pem\"\n");
    only_error(
        &text,
        line_of(&text, "tls_key"),
        &["tls_key is set but proxy.tls_cert is not"],
    );
    let text = with("\n[proxy]\ntls_cert = \"\"\ntls_key = \"k.pem\"\n");
    only_error(
        &text,
        line_of(&text, "tls_cert"),
        &["proxy.tls_cert must not be empty"],
    );
}

#[test]
fn wrong_value_types_name_expected_and_found() {
    let cases = [
        (
            "[proxy]\npool_size = \"ten\"\n",
            "pool_size",
            "proxy.pool_size: expected an integer, found a string",
        ),
        (
            "[proxy]\nlisten = 6432\n",
            "listen",
            "proxy.listen: expected a string, found an integer",
        ),
        (
            "[proxy]\nwrite_functions = \"f\"\n",
            "write_functions",
            "proxy.write_functions: expected an array of strings, found a string",
        ),
        (
            "[proxy]\nwrite_functions = [\"f\", 2]\n",
            "write_functions",
            "proxy.write_functions[1]: expected a string, found an integer",
        ),
        (
            "[routing]\nallow_scatter_writes = \"yes\"\n",
            "allow_scatter_writes",
            "routing.allow_scatter_writes: expected a boolean, found a string",
        ),
        (
            "[routing]\ndefault_shard = 0\n",
            "default_shard",
            "routing.default_shard: expected a string, found an integer",
        ),
        (
            "[tables.t]\nbroadcast = \"yes\"\n",
            "broadcast",
            "tables.t.broadcast: expected a boolean, found a string",
        ),
        (
            "[tables.t]\nsharding_key = [\"a\"]\n",
            "sharding_key",
            "tables.t.sharding_key: expected a string, found an array",
        ),
        (
            "[proxy]\npool_size = 1.5\n",
            "pool_size",
            "expected an integer, found a float",
        ),
        (
            "[proxy]\nlisten = 2026-01-01\n",
            "listen",
            "expected a string, found a datetime",
        ),
        (
            "[proxy.listen]\nhost = \"x\"\n",
            "[proxy.listen]",
            "proxy.listen: expected a string, found a table",
        ),
    ];
    for (extra, needle, message) in cases {
        let text = with(&format!("\n{extra}"));
        only_error(&text, line_of(&text, needle), &[message]);
    }
    let text = MINIMAL.replace(
        "primary = \"127.0.0.1:5432\"",
        "primary = \"127.0.0.1:5432\"\nreplicas = \"127.0.0.1:5433\"",
    );
    only_error(
        &text,
        line_of(&text, "replicas"),
        &["shards.replicas: expected an array of strings"],
    );
    let text = MINIMAL.replace("name = \"shop\"", "name = 7");
    let errors = errors(&text);
    assert_error(
        &errors,
        2,
        &["users.name: expected a string, found an integer"],
    );
}

#[test]
fn malformed_scram_verifier_is_an_error() {
    let text = MINIMAL.replacen(
        "password = \"shop\"",
        "password = \"SCRAM-SHA-256$4096:c2FsdA==\"",
        1,
    );
    only_error(
        &text,
        3,
        &["user \"shop\": malformed SCRAM-SHA-256 verifier"],
    );
    let text = MINIMAL.replacen(
        "password = \"shop\"",
        "password = \"SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA\"",
        1,
    );
    only_error(
        &text,
        3,
        &["malformed SCRAM-SHA-256 verifier", "iteration count"],
    );
}

#[test]
fn many_errors_are_collected_and_sorted_by_line() {
    let text = r#"[proxy]
pool_size = 0
pool_mode = "fast"
tls_cert = "c.pem"

[[users]]
name = "a"
password = "x"

[[users]]
name = "a"
password = "y"

[backend]
user = "u"
database = "d"
extra = 1

[[shards]]
name = "s0"
primry = "127.0.0.1:1"

[[shards]]
name = "s0"
primary = "localhost"

[routing]
default_shard = "nope"
read_from = "everywhere"
"#;
    let errors = errors(text);
    let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lines,
        [2, 3, 4, 11, 17, 19, 21, 24, 25, 28, 29],
        "{errors:#?}"
    );
    assert_error(&errors, 19, &["shard \"s0\": missing key \"primary\""]);
    assert_error(&errors, 24, &["duplicate shard name \"s0\""]);
    assert_error(
        &errors,
        28,
        &["unknown default_shard \"nope\"", "known shards: s0"],
    );

    let rendered = parse(text, "gate.toml").expect_err("invalid").to_string();
    let first = rendered.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "gate.toml:2: proxy.pool_size must be at least 1 (got 0)"
    );
    assert_eq!(rendered.lines().count(), 11);
}

#[test]
fn crlf_files_report_the_same_lines() {
    let text = with("\n[proxy]\npool_size = 0\n");
    let line = line_of(&text, "pool_size");
    only_error(&text.replace('\n', "\r\n"), line, &["pool_size"]);
}
