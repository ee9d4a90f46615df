//! Configs that parse: every value, defaults and accepted forms.

use shard_config::{parse, Address, Config, PoolMode, ReadFrom};

const PRODUCT: &str = include_str!("../examples/product.toml");
const SINGLE: &str = include_str!("../examples/single.toml");

/// The smallest valid config (one user, backend, one shard).
const MINIMAL: &str = include_str!("../examples/minimal.toml");

const VERIFIER: &str = "SCRAM-SHA-256$4096:c2hhcmRnYXRlLXNhbHQxNg==$\
    I00v7oMlyZCgFvAVJB83YyWugohCv+e3jtdd6UVtJ4g=:ql/XLpDcuADt1u8vRm52Li/VY3XBb9oceQtq5ony4I8=";

fn ok(text: &str) -> Config {
    match parse(text, "test.toml") {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}"),
    }
}

fn addr(s: &str) -> Address {
    s.parse().expect("test address")
}

#[test]
fn product_example_parses_with_all_values() {
    let c = ok(PRODUCT);
    assert_eq!(c.proxy.listen, addr("127.0.0.1:6432"));
    assert_eq!(c.proxy.pool_mode, PoolMode::Session);
    assert_eq!(c.proxy.pool_size, 10);
    assert_eq!(
        (c.admin.user.as_str(), c.admin.password.as_str()),
        ("admin", "admin")
    );
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.users[0].name, "shop");
    assert_eq!(c.users[0].password, "shop");
    assert!(!c.users[0].is_scram_verifier());
    assert_eq!(c.backend.user, "shop");
    assert_eq!(c.backend.password.as_deref(), Some("shop"));
    assert_eq!(c.backend.database, "shop");

    let names: Vec<&str> = c.shards.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s0", "s1"]);
    assert_eq!(c.shards[0].primary, addr("127.0.0.1:55410"));
    assert_eq!(c.shards[0].replicas, [addr("127.0.0.1:55411")]);
    assert_eq!(c.shards[1].primary, addr("127.0.0.1:55420"));
    assert_eq!(c.shards[1].replicas, [addr("127.0.0.1:55421")]);

    assert_eq!(c.routing.default_shard, "s0");
    assert_eq!(c.default_shard().name, "s0");
    assert_eq!(c.routing.read_from, ReadFrom::Replicas);
    assert_eq!(c.routing.max_replica_lag_ms, 1000);
    assert!(!c.routing.allow_scatter_writes);

    assert_eq!(c.tables.len(), 3);
    let users = &c.tables["users"];
    assert_eq!(users.sharding_key.as_deref(), Some("id"));
    assert_eq!(users.algorithm.as_deref(), Some("hash"));
    assert!(users.colocate_with.is_none() && !users.broadcast && users.extra.is_empty());
    let orders = &c.tables["orders"];
    assert_eq!(orders.sharding_key.as_deref(), Some("user_id"));
    assert_eq!(orders.colocate_with.as_deref(), Some("users"));
    assert!(orders.algorithm.is_none());
    let products = &c.tables["products"];
    assert!(products.broadcast);
    assert!(products.sharding_key.is_none());

    assert_eq!(c.shard("s1").map(|s| s.primary.port), Some(55420));
    assert!(c.shard("s2").is_none());
    assert_eq!(c.user("shop").map(|u| u.name.as_str()), Some("shop"));
    assert!(c.user("admin").is_none());
}

#[test]
fn single_shard_example_parses() {
    let c = ok(SINGLE);
    assert_eq!(c.shards.len(), 1);
    assert_eq!(c.shards[0].primary, addr("127.0.0.1:5432"));
    assert_eq!(c.shards[0].replicas, [addr("127.0.0.1:5433")]);
    assert_eq!(c.default_shard().name, "main");
    assert_eq!(c.proxy.pool_mode, PoolMode::Transaction);
    assert_eq!(c.proxy.pool_size, 20);
    assert_eq!(c.routing.max_replica_lag_ms, 500);
    assert!(c.tables.is_empty());
}

#[test]
fn minimal_config_gets_every_default() {
    let c = ok(MINIMAL);
    assert_eq!(c.proxy.listen, addr("127.0.0.1:6432"));
    assert_eq!(c.proxy.pool_mode, PoolMode::Session);
    assert_eq!(c.proxy.pool_size, 10);
    assert_eq!(c.proxy.tls_cert, None);
    assert_eq!(c.proxy.tls_key, None);
    assert_eq!(c.proxy.node_id, 0);
    assert_eq!(c.proxy.connect_timeout_ms, 2000);
    assert_eq!(c.proxy.max_message_bytes, 67_108_864);
    assert_eq!(c.proxy.startup_timeout_ms, 10_000);
    assert_eq!(c.proxy.merge_row_limit, 100_000);
    assert!(c.proxy.write_functions.is_empty());
    assert_eq!(c.admin.user, "admin");
    assert_eq!(c.admin.password, "admin");
    assert_eq!(c.backend.password, None);
    assert!(c.shards[0].replicas.is_empty());
    // No [routing]: the first shard is the default one.
    assert_eq!(c.routing.default_shard, "s0");
    assert_eq!(c.default_shard().name, "s0");
    assert_eq!(c.routing.read_from, ReadFrom::Replicas);
    assert_eq!(c.routing.max_replica_lag_ms, 1000);
    assert!(!c.routing.allow_scatter_writes);
    assert!(c.tables.is_empty());
}

#[test]
fn default_shard_defaults_to_the_first_of_several() {
    let text = format!("{MINIMAL}\n[[shards]]\nname = \"s1\"\nprimary = \"127.0.0.1:5433\"\n");
    let c = ok(&text);
    assert_eq!(c.default_shard().name, "s0");
    let text = format!("{text}\n[routing]\ndefault_shard = \"s1\"\n");
    assert_eq!(ok(&text).default_shard().name, "s1");
}

#[test]
fn every_proxy_and_routing_key_is_read() {
    let text = format!(
        r#"{MINIMAL}
[proxy]
listen = "[::1]:7000"
pool_mode = "transaction"
pool_size = 3
tls_cert = "/etc/shardgate/cert.pem"
tls_key = "/etc/shardgate/key.pem"
connect_timeout_ms = 500
max_message_bytes = 1024
startup_timeout_ms = 0x10
write_functions = ["audit_log", "bump"]
merge_row_limit = 50

[routing]
default_shard = "s0"
read_from = "primary"
max_replica_lag_ms = 0
allow_scatter_writes = true
"#
    );
    let c = ok(&text);
    assert_eq!(c.proxy.listen, Address::new("::1", 7000));
    assert_eq!(c.proxy.pool_mode, PoolMode::Transaction);
    assert_eq!(c.proxy.pool_size, 3);
    assert_eq!(c.proxy.tls_cert.as_deref(), Some("/etc/shardgate/cert.pem"));
    assert_eq!(c.proxy.tls_key.as_deref(), Some("/etc/shardgate/key.pem"));
    assert_eq!(c.proxy.connect_timeout_ms, 500);
    assert_eq!(c.proxy.max_message_bytes, 1024);
    assert_eq!(c.proxy.startup_timeout_ms, 16);
    assert_eq!(c.proxy.write_functions, ["audit_log", "bump"]);
    assert_eq!(c.proxy.merge_row_limit, 50);
    assert_eq!(c.routing.read_from, ReadFrom::Primary);
    assert_eq!(c.routing.max_replica_lag_ms, 0);
    assert!(c.routing.allow_scatter_writes);
}

#[test]
fn admin_section_overrides_the_default_login() {
    let text = format!("{MINIMAL}\n[admin]\nuser = \"ops\"\npassword = \"s3cret\"\n");
    let c = ok(&text);
    assert_eq!(
        (c.admin.user.as_str(), c.admin.password.as_str()),
        ("ops", "s3cret")
    );
}

#[test]
fn listen_port_zero_is_allowed() {
    let c = ok(&format!("{MINIMAL}\n[proxy]\nlisten = \"127.0.0.1:0\"\n"));
    assert_eq!(c.proxy.listen.port, 0);
}

#[test]
fn scram_verifier_passwords_are_accepted() {
    let text = format!("{MINIMAL}\n[[users]]\nname = \"app\"\npassword = \"{VERIFIER}\"\n");
    let c = ok(&text);
    let app = c.user("app").expect("user app");
    assert!(app.is_scram_verifier());
    assert!(!c.user("shop").expect("user shop").is_scram_verifier());
}

#[test]
fn inline_tables_and_dotted_keys_are_accepted() {
    let text = r#"
proxy.pool_size = 4
users = [{ name = "a", password = "x" }, { name = "b", password = "y" }]
backend = { user = "u", database = "db", password = "" }
shards = [
  { name = "s0", primary = "10.0.0.1:5432", replicas = ["10.0.0.2:5432", "10.0.0.3:5432"] },
  { name = "s1", primary = "db1.internal:5432" },
]
"#;
    let c = ok(text);
    assert_eq!(c.proxy.pool_size, 4);
    assert_eq!(c.users.len(), 2);
    assert_eq!(c.backend.password.as_deref(), Some(""));
    assert_eq!(c.shards[0].replicas.len(), 2);
    assert_eq!(c.shards[1].primary, Address::new("db1.internal", 5432));
}

#[test]
fn table_sections_keep_unknown_keys_in_extra() {
    let text = format!(
        r#"{MINIMAL}
[tables.events]
sharding_key = "created_at"
algorithm = "time"
interval = "month"
start = 2026-01-01
slots = 64
shards = ["s0"]

[tables.events.weights]
s0 = [1.5, 2.5]

[tables.accounts]
"#
    );
    let c = ok(&text);
    let events = &c.tables["events"];
    assert_eq!(events.algorithm.as_deref(), Some("time"));
    assert_eq!(
        events.extra.get("interval"),
        Some(&toml::Value::String("month".into()))
    );
    assert_eq!(events.extra.get("slots"), Some(&toml::Value::Integer(64)));
    match events.extra.get("start") {
        Some(toml::Value::Datetime(dt)) => assert_eq!(dt.to_string(), "2026-01-01"),
        other => panic!("start should be a date, got {other:?}"),
    }
    assert_eq!(
        events.extra.get("shards"),
        Some(&toml::Value::Array(vec![toml::Value::String("s0".into())]))
    );
    let weights = events
        .extra
        .get("weights")
        .and_then(toml::Value::as_table)
        .expect("nested table kept");
    assert!(weights.contains_key("s0"));
    assert!(!events.extra.contains_key("sharding_key"));
    let accounts = &c.tables["accounts"];
    assert!(accounts.sharding_key.is_none() && accounts.extra.is_empty());
}

#[test]
fn crlf_line_endings_parse() {
    let c = ok(&MINIMAL.replace('\n', "\r\n"));
    assert_eq!(c.shards[0].name, "s0");
}
