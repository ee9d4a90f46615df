//! shardgate.toml, appended to a two-shard header, is a valid config whose
//! table rules are the shop's.

use shard_config::{Interval, KeyType, TableRule, TimePlacement};

const HEADER: &str = r#"[[users]]
name = "shop"
password = "shop"

[backend]
user = "shop"
password = "shop"
database = "shop"

[[shards]]
name = "s0"
primary = "127.0.0.1:55410"
replicas = ["127.0.0.1:55411"]

[[shards]]
name = "s1"
primary = "127.0.0.1:55420"
replicas = ["127.0.0.1:55421"]

[routing]
default_shard = "s0"
"#;

#[test]
fn tables_parse_into_the_shops_rules() {
    let text = format!("{HEADER}\n{}", shop_schema::TABLES);
    let config = shard_config::parse(&text, "shop.toml")
        .unwrap_or_else(|e| panic!("shop config invalid:\n{e}"));
    let map = config.shard_map();

    let group = |t: &str| map.table(t).and_then(TableRule::group).map(str::to_string);
    let key = |t: &str| map.table(t).and_then(TableRule::key).map(str::to_string);
    for (table, k) in [
        ("users", "id"),
        ("orders", "user_id"),
        ("order_items", "user_id"),
    ] {
        assert!(
            matches!(map.table(table), Some(TableRule::Hash { .. })),
            "{table}"
        );
        assert_eq!(key(table).as_deref(), Some(k), "{table}");
        assert_eq!(
            group(table).as_deref(),
            Some("users"),
            "{table} co-located with users"
        );
    }
    assert!(matches!(
        map.table("inventory"),
        Some(TableRule::Hash { .. })
    ));
    assert_eq!(key("inventory").as_deref(), Some("product_id"));
    assert_eq!(group("inventory").as_deref(), Some("inventory"));
    assert_eq!(map.table("products"), Some(&TableRule::Broadcast));
    assert_eq!(map.generated_column("users"), Some("id"));
    assert_eq!(map.generated_column("products"), Some("id"));

    match map.table("orders_archive") {
        Some(TableRule::Time {
            key,
            key_type,
            interval,
            placement: TimePlacement::RoundRobin { shards, .. },
            table_per_interval,
            ..
        }) => {
            assert_eq!(key, "created_at");
            assert_eq!(*key_type, KeyType::Date);
            assert_eq!(*interval, Interval::Month);
            assert_eq!(shards, &[0, 1]);
            assert!(table_per_interval);
        }
        other => panic!("orders_archive: {other:?}"),
    }
    // January on s0, February on s1, …
    let jan = shard_config::time::parse_time_text("2026-01-15", KeyType::Date).expect("date");
    let feb = shard_config::time::parse_time_text("2026-02-15", KeyType::Date).expect("date");
    assert_eq!(
        map.time_target("orders_archive", jan),
        Some((0, Some("2026_01".to_string())))
    );
    assert_eq!(
        map.time_target("orders_archive", feb),
        Some((1, Some("2026_02".to_string())))
    );
}
