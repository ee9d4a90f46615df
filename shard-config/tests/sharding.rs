//! `[tables.NAME]` validation (each error on its line) and the runtime shard map.

use shard_config::hash::{slot, KeyValue};
use shard_config::{parse, Config, ShardMap, TableRule};

const SHARDED: &str = include_str!("../examples/sharded.toml");

/// Users, backend and three shards s0..s2: what every table test builds on.
const BASE: &str = include_str!("data/three_shards.toml");

fn ok(text: &str) -> Config {
    parse(text, "gate.toml").unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

fn with(tables: &str) -> String {
    format!("{BASE}\n{tables}")
}

fn errors(text: &str) -> Vec<(usize, String)> {
    match parse(text, "gate.toml") {
        Ok(c) => panic!("expected errors, parsed {:#?}", c.tables),
        Err(e) => e.0.into_iter().map(|e| (e.line, e.message)).collect(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in test text"));
    text[..offset].matches('\n').count() + 1
}

/// Exactly one error, on the line of `at`, containing every one of `words`.
fn only_error(tables: &str, at: &str, words: &[&str]) {
    let text = with(tables);
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let (line, message) = &errors[0];
    assert_eq!(*line, line_of(&text, at), "wrong line for {message:?}");
    for w in words {
        assert!(message.contains(w), "{message:?} lacks {w:?}");
    }
}

#[test]
fn sample_sharded_config_parses_and_maps() {
    let c = ok(SHARDED);
    assert_eq!(c.shards.len(), 2);
    let map = ShardMap::new(&c);
    assert_eq!(map, c.shard_map());
    let Some(TableRule::Hash {
        key,
        slots,
        owner,
        group,
    }) = map.table("users")
    else {
        panic!("users should be hash: {:?}", map.table("users"));
    };
    assert_eq!(
        (key.as_str(), *slots, group.as_str()),
        ("id", 1024, "users")
    );
    assert_eq!(owner.len(), 1024);
    assert_eq!(
        map.table("users").unwrap().slot_ranges(),
        vec![(0, 0, 511), (1, 512, 1023)]
    );
    let Some(TableRule::Hash {
        key: orders_key,
        owner: orders_owner,
        group: orders_group,
        ..
    }) = map.table("orders")
    else {
        panic!("orders should be hash");
    };
    assert_eq!(orders_key, "user_id");
    assert_eq!(orders_group, "users");
    assert_eq!(orders_owner, owner);
    assert_eq!(map.table("products"), Some(&TableRule::Broadcast));
    assert_eq!(map.table("order_items"), None);
    assert_eq!(map.tables().count(), 3);
}

#[test]
fn shard_for_key_agrees_with_hash_slot() {
    let c = ok(SHARDED);
    let map = c.shard_map();
    // SELECT satisfies_hash_partition(..., 1024, 610, 42::int8) is true: slot 610 is s1's.
    assert_eq!(map.shard_for_key("users", &KeyValue::Int(42)), Some(1));
    for i in -500i64..500 {
        let k = KeyValue::Int(i);
        let expected = usize::from(slot(&k, 1024) >= 512);
        assert_eq!(map.shard_for_key("users", &k), Some(expected), "key {i}");
        assert_eq!(map.shard_for_key("orders", &k), Some(expected), "key {i}");
        assert_eq!(map.shard_for_slot("users", slot(&k, 1024)), Some(expected));
    }
    let text = KeyValue::Text(b"hello world!");
    assert_eq!(slot(&text, 1024), 220);
    assert_eq!(map.shard_for_key("users", &text), Some(0));
    assert_eq!(map.shard_for_key("products", &text), None);
    assert_eq!(map.shard_for_key("nope", &text), None);
    assert_eq!(map.shard_for_slot("users", 1024), None);
}

#[test]
fn default_even_split_over_three_shards() {
    let c = ok(&with("[tables.t]\nsharding_key = \"id\"\n"));
    let rule = c.shard_map().table("t").cloned().expect("t is sharded");
    assert_eq!(
        rule.slot_ranges(),
        vec![(0, 0, 341), (1, 342, 682), (2, 683, 1023)]
    );
    let c = ok(&with("[tables.t]\nsharding_key = \"id\"\nslots = 8\n"));
    let rule = c.shard_map().table("t").cloned().expect("t is sharded");
    assert_eq!(rule.slot_ranges(), vec![(0, 0, 2), (1, 3, 5), (2, 6, 7)]);
    for i in 0..100 {
        let k = KeyValue::Int(i);
        assert_eq!(rule.slot_for_key(&k), Some(slot(&k, 8)));
    }
}

#[test]
fn explicit_ranges_in_both_forms() {
    let c = ok(&with(
        r#"[tables.t]
sharding_key = "id"
slots = 16
slot_ranges = [
  { shard = "s2", from = 0, to = 3 },
  { shard = "s0", from = 10, to = 15 },
  { shard = "s1", from = 4, to = 9 },
]
"#,
    ));
    let rule = c.shard_map().table("t").cloned().unwrap();
    assert_eq!(rule.slot_ranges(), vec![(2, 0, 3), (1, 4, 9), (0, 10, 15)]);
    assert_eq!(rule.shard_for_slot(9), Some(1));
    assert_eq!(rule.shard_for_slot(10), Some(0));
    let c = ok(&with(
        "[tables.t]\nsharding_key = \"id\"\nslots = 4\n\
         [[tables.t.slot_ranges]]\nshard = \"s1\"\nfrom = 0\nto = 3\n",
    ));
    assert_eq!(
        c.shard_map().table("t").unwrap().slot_ranges(),
        vec![(1, 0, 3)]
    );
}

#[test]
fn colocation_chains_resolve_to_the_root() {
    let c = ok(&with(
        r#"[tables.c]
sharding_key = "b_id"
colocate_with = "b"

[tables.b]
sharding_key = "a_id"
colocate_with = "a"
algorithm = "hash"

[tables.a]
sharding_key = "id"
slots = 32
slot_ranges = [{ shard = "s1", from = 0, to = 15 }, { shard = "s0", from = 16, to = 31 }]

[tables.r]
sharding_key = "id"
algorithm = "range"

[tables.r2]
sharding_key = "r_id"
colocate_with = "r"
"#,
    ));
    let map = c.shard_map();
    let a = map.table("a").unwrap();
    for name in ["b", "c"] {
        let TableRule::Hash {
            slots,
            owner,
            group,
            ..
        } = map.table(name).unwrap()
        else {
            panic!("{name} should be hash");
        };
        assert_eq!(*slots, 32);
        assert_eq!(group, "a");
        assert_eq!(map.table(name).unwrap().slot_ranges(), a.slot_ranges());
        assert_eq!(owner.len(), 32);
    }
    assert_eq!(map.table("c").unwrap().key(), Some("b_id"));
    assert_eq!(
        map.table("r2"),
        Some(&TableRule::Other {
            algorithm: "range".into(),
            key: "r_id".into()
        })
    );
}

#[test]
fn time_tables_are_mapped_and_reserved_keys_are_kept() {
    let c = ok(&with(
        r#"[tables.events]
sharding_key = "created_at"
algorithm = "time"
interval = "month"
start = 2026-01-01
table_per_interval = true

[tables.ids]
sharding_key = "id"
generated = "snowflake"
node_id = 3

[tables.plain]
"#,
    ));
    let map = c.shard_map();
    assert!(matches!(
        map.table("events"),
        Some(TableRule::Time {
            table_per_interval: true,
            ..
        })
    ));
    assert!(matches!(map.table("ids"), Some(TableRule::Hash { .. })));
    assert_eq!(map.table("plain"), None);
}

#[test]
fn unknown_algorithm() {
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nalgorithm = \"modulo\"\n",
        "algorithm",
        &["tables.t.algorithm: unknown algorithm \"modulo\""],
    );
}

#[test]
fn missing_sharding_key() {
    only_error(
        "[tables.t]\nalgorithm = \"hash\"\n",
        "[tables.t]",
        &["table t: missing key \"sharding_key\""],
    );
    only_error(
        "[tables.u]\nsharding_key = \"id\"\n[tables.t]\ncolocate_with = \"u\"\n",
        "[tables.t]",
        &["table t: missing key \"sharding_key\""],
    );
    only_error(
        "[tables.t]\nsharding_key = \"\"\n",
        "sharding_key",
        &["tables.t.sharding_key must not be empty"],
    );
}

#[test]
fn broadcast_with_sharding_keys() {
    only_error(
        "[tables.t]\nbroadcast = true\nsharding_key = \"id\"\n",
        "sharding_key",
        &["table t is broadcast", "no sharding_key"],
    );
    only_error(
        "[tables.t]\nbroadcast = true\nalgorithm = \"hash\"\n",
        "algorithm",
        &["table t is broadcast", "no algorithm"],
    );
}

#[test]
fn unknown_shard_in_slot_ranges() {
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 2\n\
         [[tables.t.slot_ranges]]\nshard = \"s9\"\nfrom = 0\nto = 1\n",
        "shard = \"s9\"",
        &["unknown shard \"s9\" in tables.t.slot_ranges", "s0, s1, s2"],
    );
}

#[test]
fn overlapping_slot_ranges() {
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 1024\n\
         [[tables.t.slot_ranges]]\nshard = \"s0\"\nfrom = 0\nto = 600\n\
         [[tables.t.slot_ranges]]\nshard = \"s1\"\nfrom = 500\nto = 1023\n",
        "[[tables.t.slot_ranges]]\nshard = \"s1\"",
        &["slots 500..1023 (shard s1) overlap slots 0..600 (shard s0, line"],
    );
}

#[test]
fn uncovered_slots() {
    only_error(
        "[tables.users]\nsharding_key = \"id\"\n\
         [[tables.users.slot_ranges]]\nshard = \"s0\"\nfrom = 0\nto = 511\n",
        "[[tables.users.slot_ranges]]",
        &["slots 512..1023 of table users belong to no shard"],
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 4\n\
         slot_ranges = [{ shard = \"s0\", from = 0, to = 1 }, { shard = \"s1\", from = 3, to = 3 }]\n",
        "{ shard = \"s0\"",
        &["slot 2 of table t belongs to no shard"],
    );
}

#[test]
fn bad_slots_and_ranges() {
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 0\n",
        "slots",
        &["tables.t.slots must be between 1 and 65536 (got 0)"],
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 65537\n",
        "slots",
        &["between 1 and 65536"],
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 4\n\
         slot_ranges = [{ shard = \"s0\", from = 0, to = 4 }]\n",
        "slot_ranges",
        &["slot 4 is out of range (table t has slots 0..3)"],
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 4\n\
         [[tables.t.slot_ranges]]\nshard = \"s0\"\nfrom = 3\nto = 0\n",
        "from = 3",
        &["from 3 is after to 0"],
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nslots = 4\n\
         [[tables.t.slot_ranges]]\nshard = \"s0\"\nfrom = 0\nto = 3\nweight = 1\n",
        "weight",
        &["unknown key \"weight\" in [[tables.t.slot_ranges]]"],
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nalgorithm = \"range\"\n\
         slot_ranges = [{ shard = \"s0\", from = 0, to = 3 }]\n",
        "slot_ranges",
        &["slot_ranges applies only to algorithm \"hash\""],
    );
}

#[test]
fn colocate_with_unknown_or_broadcast_table() {
    only_error(
        "[tables.t]\nsharding_key = \"u_id\"\ncolocate_with = \"nope\"\n",
        "colocate_with",
        &["tables.t.colocate_with: unknown table \"nope\""],
    );
    only_error(
        "[tables.p]\nbroadcast = true\n[tables.t]\nsharding_key = \"p_id\"\ncolocate_with = \"p\"\n",
        "colocate_with",
        &["table t cannot be co-located with p: it is a broadcast table"],
    );
}

#[test]
fn colocated_table_adopts_the_targets_map() {
    only_error(
        "[tables.u]\nsharding_key = \"id\"\n\
         [tables.t]\nsharding_key = \"u_id\"\ncolocate_with = \"u\"\nslots = 64\n",
        "slots = 64",
        &["table t is co-located", "no slots"],
    );
    only_error(
        "[tables.u]\nsharding_key = \"id\"\n\
         [tables.t]\nsharding_key = \"u_id\"\ncolocate_with = \"u\"\n\
         slot_ranges = [{ shard = \"s0\", from = 0, to = 1023 }]\n",
        "slot_ranges",
        &["table t is co-located", "no slot_ranges"],
    );
    only_error(
        "[tables.u]\nsharding_key = \"id\"\n\
         [tables.t]\nsharding_key = \"u_id\"\ncolocate_with = \"u\"\nalgorithm = \"list\"\n",
        "algorithm = \"list\"",
        &["table t uses algorithm \"list\" but is co-located with u, which uses \"hash\""],
    );
}

#[test]
fn colocation_cycles_are_rejected() {
    only_error(
        "[tables.a]\nsharding_key = \"id\"\ncolocate_with = \"a\"\n",
        "colocate_with",
        &["co-location cycle: a -> a"],
    );
    let text = with(
        "[tables.a]\nsharding_key = \"id\"\ncolocate_with = \"b\"\n\
         [tables.b]\nsharding_key = \"id\"\ncolocate_with = \"a\"\n",
    );
    let errors = errors(&text);
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(
        errors[0],
        (
            line_of(&text, "colocate_with = \"b\""),
            "co-location cycle: a -> b -> a".to_string()
        )
    );
    assert_eq!(
        errors[1],
        (
            line_of(&text, "colocate_with = \"a\""),
            "co-location cycle: b -> a -> b".to_string()
        )
    );
}

#[test]
fn unknown_table_keys_are_errors_but_reserved_ones_are_not() {
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nshardkey = \"x\"\n",
        "shardkey",
        &["unknown key \"shardkey\" in [tables.t]"],
    );
}
