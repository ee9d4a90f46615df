//! `algorithm = "time"`, `key_type`, `generated_column`: lookups and validation
//! errors with their exact `file:line: message`.

use shard_config::time::parse_time_text;
use shard_config::{parse, Interval, KeyType, TableRule, TimePlacement};

mod common;
use common::{line_of, ok, with};

/// Exactly one error: `gate.toml:LINE: message`, LINE that of the first `at`.
fn only_error(tables: &str, at: &str, message: &str) {
    let text = with(tables);
    let errors = match parse(&text, "gate.toml") {
        Ok(c) => panic!("expected an error, parsed {:#?}", c.tables),
        Err(e) => e.to_string(),
    };
    let expected = format!("gate.toml:{}: {message}", line_of(&text, at));
    assert_eq!(errors, expected);
}

fn at(text: &str) -> i64 {
    parse_time_text(text, KeyType::Timestamptz).expect("a time")
}

fn target(shard: usize, suffix: &str) -> Option<(usize, Option<String>)> {
    Some((shard, Some(suffix.to_string())))
}

const ROUND_ROBIN: &str = r#"[tables.orders_archive]
sharding_key = "created_at"
algorithm = "time"
interval = "month"
table_per_interval = true
start = "2026-01-01"
shards = ["s0", "s1"]
"#;

#[test]
fn round_robin_months_with_tables_per_interval() {
    let map = ok(ROUND_ROBIN).shard_map();
    let rule = map.table("orders_archive").unwrap();
    assert_eq!(
        rule,
        &TableRule::Time {
            key: "created_at".into(),
            key_type: KeyType::Timestamptz,
            interval: Interval::Month,
            placement: TimePlacement::RoundRobin {
                start: at("2026-01-01"),
                shards: vec![0, 1],
            },
            table_per_interval: true,
            group: "orders_archive".into(),
        }
    );
    assert_eq!(rule.key(), Some("created_at"));
    assert_eq!(rule.group(), Some("orders_archive"));
    assert_eq!(map.key_type("orders_archive"), Some(KeyType::Timestamptz));
    let t = |s: &str| map.time_target("orders_archive", at(s));
    assert_eq!(t("2026-01-01"), target(0, "2026_01"));
    assert_eq!(t("2026-01-31 23:59:59.999999"), target(0, "2026_01"));
    assert_eq!(t("2026-02-01"), target(1, "2026_02"));
    assert_eq!(t("2026-11-05 10:00:00"), target(0, "2026_11"));
    // Before start the turn continues backwards.
    assert_eq!(t("2025-12-31"), target(1, "2025_12"));
    assert_eq!(t("2025-11-15"), target(0, "2025_11"));
    assert_eq!(t("1969-12-31"), target(1, "1969_12"));
    assert_eq!(
        map.time_targets(
            "orders_archive",
            Some((at("2026-10-15"), true)),
            Some((at("2027-01-01"), false)),
            10
        ),
        Some(vec![
            (1, Some("2026_10".to_string())),
            (0, Some("2026_11".to_string())),
            (1, Some("2026_12".to_string())),
        ])
    );
    assert_eq!(
        map.time_targets("orders_archive", None, Some((0, true)), 10),
        None
    );
    // Keys of other tables.
    assert_eq!(map.time_target("nope", 0), None);
}

#[test]
fn day_and_year_intervals_default_to_every_shard() {
    let map = ok(r#"[tables.clicks]
sharding_key = "day"
algorithm = "time"
key_type = "date"
interval = "day"
table_per_interval = true

[tables.ledger]
sharding_key = "at"
algorithm = "time"
key_type = "timestamp"
interval = "year"
start = 2020-06-01
"#)
    .shard_map();
    assert_eq!(map.key_type("clicks"), Some(KeyType::Date));
    assert_eq!(map.key_type("ledger"), Some(KeyType::Timestamp));
    // Days since 1970-01-01 over s0, s1, s2: 2026-11-05 is day 20762, 20762 % 3 = 2.
    assert_eq!(
        map.time_target("clicks", at("2026-11-05")),
        target(2, "2026_11_05")
    );
    assert_eq!(
        map.time_target("clicks", at("2026-11-06 12:00")),
        target(0, "2026_11_06")
    );
    assert_eq!(
        map.time_target("clicks", at("1970-01-01")),
        target(0, "1970_01_01")
    );
    // Years from 2020 (the year holding start): 2020 -> s0, 2021 -> s1, 2019 -> s2.
    let y = |s: &str| map.time_target("ledger", at(s));
    assert_eq!(y("2020-01-01"), Some((0, None)));
    assert_eq!(y("2021-12-31"), Some((1, None)));
    assert_eq!(y("2019-03-01"), Some((2, None)));
    assert_eq!(y("2023-03-01"), Some((0, None)));
    assert_eq!(
        map.time_targets(
            "ledger",
            Some((at("2020-01-01"), true)),
            Some((at("2026-01-01"), false)),
            6
        ),
        Some(vec![(0, None), (1, None), (2, None)])
    );
    assert_eq!(
        map.time_targets(
            "ledger",
            Some((at("2020-01-01"), true)),
            Some((at("2026-01-01"), true)),
            6
        ),
        None
    );
}

const LISTED: &str = r#"[tables.events]
sharding_key = "created_at"
algorithm = "time"
interval = "month"
table_per_interval = true

[[tables.events.intervals]]
shard = "s1"
from = "2026-01-01"
to = "2026-07-01"

[[tables.events.intervals]]
shard = "s0"
to = "2026-01-01"

[[tables.events.intervals]]
shard = "s2"
from = 2026-07-01
to = 2027-01-01
"#;

#[test]
fn listed_intervals() {
    let map = ok(LISTED).shard_map();
    let t = |s: &str| map.time_target("events", at(s));
    assert_eq!(t("1950-05-05"), target(0, "1950_05"));
    assert_eq!(t("2025-12-31 23:59:59"), target(0, "2025_12"));
    assert_eq!(t("2026-01-01"), target(1, "2026_01"));
    assert_eq!(t("2026-06-30"), target(1, "2026_06"));
    assert_eq!(t("2026-07-01"), target(2, "2026_07"));
    assert_eq!(t("2027-01-01"), None);
    assert_eq!(
        map.time_targets(
            "events",
            Some((at("2026-06-10"), true)),
            Some((at("2027-02-01"), false)),
            12
        ),
        Some(vec![
            (1, Some("2026_06".to_string())),
            (2, Some("2026_07".to_string())),
            (2, Some("2026_08".to_string())),
            (2, Some("2026_09".to_string())),
            (2, Some("2026_10".to_string())),
            (2, Some("2026_11".to_string())),
            (2, Some("2026_12".to_string())),
        ])
    );
}

#[test]
fn physical_interval_tables() {
    let map = ok(&format!(
        r#"{ROUND_ROBIN}
[tables.t]
sharding_key = "at"
algorithm = "time"
interval = "year"
table_per_interval = true

[tables.t_2]
sharding_key = "at"
algorithm = "time"
interval = "month"
table_per_interval = true
shards = ["s2"]

[tables.plain]
sharding_key = "at"
algorithm = "time"
interval = "month"
"#
    ))
    .shard_map();
    assert_eq!(
        map.physical_table("orders_archive_2026_11"),
        Some(("orders_archive", 0))
    );
    assert_eq!(
        map.physical_table("orders_archive_2026_02"),
        Some(("orders_archive", 1))
    );
    assert_eq!(map.physical_table("t_2_2026_11"), Some(("t_2", 2)));
    // Years since 1970 over s0, s1, s2: 2026 is year 56, 56 % 3 = 2.
    assert_eq!(map.physical_table("t_2026"), Some(("t", 2)));
    assert_eq!(map.physical_table("t_2027"), Some(("t", 0)));
    for name in [
        "orders_archive",
        "orders_archive_2026",
        "orders_archive_2026_13",
        "orders_archive_2026_11_05",
        "orders_archive2026_11",
        "t_2_2026",
        "plain_2026_11",
        "t_26",
        "users_2026_11",
    ] {
        assert_eq!(map.physical_table(name), None, "{name}");
    }
}

#[test]
fn colocated_tables_adopt_the_placement_with_their_own_tables() {
    let map = ok(&format!(
        r#"{ROUND_ROBIN}
[tables.archive_items]
sharding_key = "order_created_at"
colocate_with = "orders_archive"

[tables.archive_notes]
sharding_key = "created_at"
colocate_with = "archive_items"
table_per_interval = false
key_type = "timestamptz"
"#
    ))
    .shard_map();
    let items = map.table("archive_items").unwrap();
    assert_eq!(items.group(), Some("orders_archive"));
    assert_eq!(items.key(), Some("order_created_at"));
    assert_eq!(
        map.time_target("archive_items", at("2026-02-03")),
        Some((1, None))
    );
    assert_eq!(
        map.time_target("archive_notes", at("2026-03-03")),
        Some((0, None))
    );
    assert_eq!(map.key_type("archive_notes"), Some(KeyType::Timestamptz));
    assert_eq!(map.physical_table("archive_items_2026_02"), None);
}

#[test]
fn generated_columns_and_node_id() {
    let c = parse(
        &format!(
            "[proxy]\nnode_id = 1023\n{}",
            with(
                r#"[tables.users]
sharding_key = "id"
generated_column = "id"

[tables.products]
broadcast = true
generated_column = "product_id"

[tables.orders]
sharding_key = "user_id"
"#
            )
        ),
        "gate.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.proxy.node_id, 1023);
    let map = c.shard_map();
    assert_eq!(map.generated_column("users"), Some("id"));
    assert_eq!(map.generated_column("products"), Some("product_id"));
    assert_eq!(map.generated_column("orders"), None);
    assert_eq!(map.generated_column("nope"), None);
}

#[test]
fn time_table_errors() {
    let head = "[tables.t]\nsharding_key = \"at\"\nalgorithm = \"time\"\n";
    let case = |body: &str, at: &str, message: &str| {
        only_error(&format!("{head}{body}"), at, message);
    };
    case(
        "",
        "[tables.t]",
        "table t: missing key \"interval\" (algorithm \"time\" needs one of: day, month, year)",
    );
    case(
        "interval = \"week\"\n",
        "interval",
        "tables.t.interval: unknown interval \"week\"; expected one of: day, month, year",
    );
    case(
        "interval = \"month\"\nstart = \"2026-13-01\"\n",
        "start",
        "tables.t.start: bad date \"2026-13-01\" (expected YYYY-MM-DD)",
    );
    case(
        "interval = \"month\"\nstart = 20260101\n",
        "start",
        "tables.t.start: expected a date (\"2026-01-01\"), found an integer",
    );
    case(
        "interval = \"month\"\nshards = [\"s0\", \"s9\"]\n",
        "shards = [",
        "unknown shard \"s9\" in tables.t.shards; known shards: s0, s1, s2",
    );
    case(
        "interval = \"month\"\nshards = []\n",
        "shards = [",
        "tables.t.shards must not be empty",
    );
    case(
        "interval = \"month\"\ntable_per_interval = \"yes\"\n",
        "table_per_interval",
        "tables.t.table_per_interval: expected a boolean, found a string",
    );
    case(
        "interval = \"month\"\nkey_type = \"bigint\"\n",
        "key_type",
        "tables.t.key_type: a time table's key must be date, timestamp or timestamptz (got bigint)",
    );
    case(
        "interval = \"month\"\nstart = \"2026-01-01\"\n[[tables.t.intervals]]\nshard = \"s0\"\n",
        "start",
        "table t: give either start/shards (round robin) or intervals, not both",
    );
}

#[test]
fn listed_interval_errors() {
    let head = "[tables.t]\nsharding_key = \"at\"\nalgorithm = \"time\"\ninterval = \"month\"\n";
    let case = |body: &str, at: &str, message: &str| {
        only_error(&format!("{head}{body}"), at, message);
    };
    case(
        "[[tables.t.intervals]]\nshard = \"s0\"\nfrom = \"2026-01-15\"\n",
        "from",
        "tables.t.intervals: from 2026-01-15 is not the start of a month (intervals are whole months)",
    );
    case(
        "[[tables.t.intervals]]\nshard = \"s0\"\nto = \"2026-02-01 10:00\"\n",
        "to =",
        "tables.t.intervals: to 2026-02-01 10:00:00 is not the start of a month (intervals are whole months)",
    );
    case(
        "[[tables.t.intervals]]\nshard = \"s0\"\nfrom = \"2026-02-30\"\n",
        "from",
        "tables.t.intervals.from: bad date \"2026-02-30\" (expected YYYY-MM-DD)",
    );
    case(
        "[[tables.t.intervals]]\nshard = \"s7\"\n",
        "s7",
        "unknown shard \"s7\" in tables.t.intervals; known shards: s0, s1, s2",
    );
    case(
        "[[tables.t.intervals]]\nfrom = \"2026-01-01\"\n",
        "[[tables.t.intervals]]",
        "tables.t.intervals: missing key \"shard\"",
    );
    case(
        "[[tables.t.intervals]]\nshard = \"s0\"\nfrom = \"2026-03-01\"\nto = \"2026-03-01\"\n",
        "from",
        "tables.t.intervals: from 2026-03-01 is not before to 2026-03-01 (from is inclusive, to exclusive)",
    );
    case(
        "[[tables.t.intervals]]\nshard = \"s0\"\nto = \"2026-07-01\"\n\n[[tables.t.intervals]]\nshard = \"s1\"\nfrom = \"2026-09-01\"\n",
        "[[tables.t.intervals]]\nshard = \"s1\"",
        "time intervals 2026-07-01..2026-09-01 of table t belong to no shard",
    );
    let text = with(&format!(
        "{head}[[tables.t.intervals]]\nshard = \"s0\"\nfrom = \"2026-01-01\"\nto = \"2026-07-01\"\n\n[[tables.t.intervals]]\nshard = \"s1\"\nfrom = \"2026-03-01\"\nto = \"2026-09-01\"\n"
    ));
    let first = line_of(&text, "[[tables.t.intervals]]");
    only_error(
        &format!("{head}[[tables.t.intervals]]\nshard = \"s0\"\nfrom = \"2026-01-01\"\nto = \"2026-07-01\"\n\n[[tables.t.intervals]]\nshard = \"s1\"\nfrom = \"2026-03-01\"\nto = \"2026-09-01\"\n"),
        "[[tables.t.intervals]]\nshard = \"s1\"",
        &format!("tables.t.intervals: 2026-03-01..2026-09-01 (shard s1) overlaps 2026-01-01..2026-07-01 (shard s0, line {first})"),
    );
    case(
        "intervals = []\n",
        "intervals",
        "tables.t.intervals must not be empty",
    );
}

#[test]
fn time_keys_on_other_tables() {
    only_error(
        "[tables.t]\nsharding_key = \"id\"\ninterval = \"month\"\n",
        "interval",
        "tables.t.interval applies only to algorithm \"time\"",
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nalgorithm = \"list\"\ntable_per_interval = true\n",
        "table_per_interval",
        "tables.t.table_per_interval applies only to algorithm \"time\"",
    );
    only_error(
        "[tables.u]\nsharding_key = \"id\"\n[tables.t]\nsharding_key = \"id\"\ncolocate_with = \"u\"\ntable_per_interval = true\n",
        "table_per_interval",
        "tables.t.table_per_interval applies only to algorithm \"time\" (table t is co-located with u, which uses \"hash\")",
    );
    only_error(
        &format!("{ROUND_ROBIN}[tables.t]\nsharding_key = \"at\"\ncolocate_with = \"orders_archive\"\nstart = \"2025-01-01\"\n"),
        "2025-01-01",
        "table t is co-located and adopts the placement of the table it follows: it takes no start",
    );
    only_error(
        &format!("{ROUND_ROBIN}[tables.t]\nsharding_key = \"at\"\ncolocate_with = \"orders_archive\"\ntable_per_interval = 1\n"),
        "table_per_interval = 1",
        "tables.t.table_per_interval: expected a boolean, found an integer",
    );
    only_error(
        "[tables.t]\nsharding_key = \"at\"\nalgorithm = \"time\"\ninterval = \"day\"\nvalues = { s0 = [1] }\n",
        "values",
        "tables.t.values applies only to algorithm \"list\"",
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nranges = [{ shard = \"s0\" }]\n",
        "ranges",
        "tables.t.ranges applies only to algorithm \"range\"",
    );
    only_error(
        "[tables.t]\nbroadcast = true\ninterval = \"day\"\n",
        "interval",
        "table t is broadcast (a full copy on every shard): it takes no interval",
    );
}

#[test]
fn key_type_errors() {
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nkey_type = \"numeric\"\n",
        "key_type",
        "tables.t.key_type: unknown type \"numeric\"; expected one of: smallint, int2, integer, int, int4, bigint, int8, text, varchar, uuid, date, timestamp, timestamptz",
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\nalgorithm = \"range\"\nkey_type = \"date\"\n",
        "key_type",
        "tables.t.key_type: date is a time type, for algorithm \"time\" (table t uses \"range\")",
    );
    only_error(
        "[tables.users]\nsharding_key = \"id\"\n\n[tables.orders]\nsharding_key = \"user_id\"\ncolocate_with = \"users\"\nkey_type = \"text\"\n",
        "key_type",
        "table orders has key_type text but is co-located with users (key_type bigint)",
    );
    only_error(
        "[tables.users]\nsharding_key = \"id\"\nalgorithm = \"list\"\n[tables.users.values]\ns0 = [\"fr\"]\n\n[tables.orders]\nsharding_key = \"country\"\ncolocate_with = \"users\"\nkey_type = \"int\"\n",
        "key_type",
        "table orders has key_type bigint but is co-located with users (key_type text)",
    );
    only_error(
        &format!("{ROUND_ROBIN}[tables.t]\nsharding_key = \"d\"\ncolocate_with = \"orders_archive\"\nkey_type = \"date\"\n"),
        "key_type",
        "table t has key_type date but is co-located with orders_archive (key_type timestamptz)",
    );
    only_error(
        "[tables.t]\nsharding_key = \"id\"\ngenerated_column = \"\"\n",
        "generated_column",
        "tables.t.generated_column must not be empty",
    );
    only_error(
        "[tables.t]\nbroadcast = true\ngenerated_column = \"\"\n",
        "generated_column",
        "tables.t.generated_column must not be empty",
    );
    // Agreeing types, explicit or by default, are fine.
    let map = ok("[tables.users]\nsharding_key = \"id\"\nkey_type = \"uuid\"\n\n[tables.orders]\nsharding_key = \"user_id\"\ncolocate_with = \"users\"\nkey_type = \"uuid\"\n\n[tables.a]\nsharding_key = \"id\"\n[tables.b]\nsharding_key = \"id\"\ncolocate_with = \"a\"\nkey_type = \"int4\"\n").shard_map();
    assert_eq!(map.key_type("orders"), Some(KeyType::Uuid));
    assert_eq!(map.key_type("b"), Some(KeyType::Int));
}
