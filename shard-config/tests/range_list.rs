//! `algorithm = "range"` and `algorithm = "list"`: lookups and validation errors with lines.

use shard_config::hash::KeyValue;
use shard_config::{parse, TableRule};
use shard_config::{Bound, ListValue};

mod common;
use common::{line_of, ok, with};

/// Exactly one error, on the line of the `nth` (0-based) occurrence of `at`, with every word.
fn only_error_nth(tables: &str, at: &str, nth: usize, words: &[&str]) {
    let text = with(tables);
    let errors: Vec<(usize, String)> = match parse(&text, "gate.toml") {
        Ok(c) => panic!("expected an error, parsed {:#?}", c.tables),
        Err(e) => e.0.into_iter().map(|e| (e.line, e.message)).collect(),
    };
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let (line, message) = &errors[0];
    let mut offset = 0;
    for _ in 0..nth {
        offset += text[offset..].find(at).expect("occurrence") + at.len();
    }
    let expected = line_of(&text[offset..], at) + text[..offset].matches('\n').count();
    assert_eq!(*line, expected, "wrong line for {message:?}");
    for w in words {
        assert!(message.contains(w), "{message:?} lacks {w:?}");
    }
}

fn only_error(tables: &str, at: &str, words: &[&str]) {
    only_error_nth(tables, at, 0, words);
}

const INT_RANGES: &str = r#"[tables.accounts]
sharding_key = "id"
algorithm = "range"

[[tables.accounts.ranges]]
shard = "s1"
from = 100
to = 200

[[tables.accounts.ranges]]
shard = "s0"
to = 100

[[tables.accounts.ranges]]
shard = "s2"
from = 200
"#;

#[test]
fn integer_ranges_boundaries_and_open_ends() {
    let map = ok(INT_RANGES).shard_map();
    let rule = map.table("accounts").unwrap();
    assert_eq!(
        rule,
        &TableRule::Range {
            key: "id".into(),
            ranges: vec![
                (Bound::Unbounded, Bound::Int(100), 0),
                (Bound::Int(100), Bound::Int(200), 1),
                (Bound::Int(200), Bound::Unbounded, 2),
            ],
            group: "accounts".into(),
        }
    );
    let at = |k: i64| map.shard_for_key("accounts", &KeyValue::Int(k));
    assert_eq!(at(i64::MIN), Some(0));
    assert_eq!(at(99), Some(0));
    assert_eq!(at(100), Some(1)); // from is inclusive
    assert_eq!(at(199), Some(1));
    assert_eq!(at(200), Some(2)); // to is exclusive
    assert_eq!(at(i64::MAX), Some(2));
    // A key of another type matches no range.
    assert_eq!(map.shard_for_key("accounts", &KeyValue::Text(b"150")), None);
    assert_eq!(rule.key(), Some("id"));
    assert_eq!(rule.group(), Some("accounts"));
}

#[test]
fn range_shards_for_between_and_comparisons() {
    let map = ok(INT_RANGES).shard_map();
    let int = KeyValue::Int;
    let (k50, k99, k100, k199, k200) = (int(50), int(99), int(100), int(199), int(200));
    let r = |from, to| map.range_shards("accounts", from, to);
    assert_eq!(r(None, None), vec![0, 1, 2]);
    assert_eq!(r(Some((&k50, true)), Some((&k99, true))), vec![0]);
    assert_eq!(r(Some((&k50, true)), Some((&k100, false))), vec![0]);
    assert_eq!(r(Some((&k50, true)), Some((&k100, true))), vec![0, 1]);
    assert_eq!(r(Some((&k99, false)), Some((&k199, true))), vec![1]);
    assert_eq!(r(Some((&k199, false)), None), vec![2]);
    assert_eq!(r(Some((&k199, true)), None), vec![1, 2]);
    assert_eq!(r(None, Some((&k200, false))), vec![0, 1]);
    assert_eq!(r(None, Some((&k100, false))), vec![0]);
    assert_eq!(
        r(Some((&k200, true)), Some((&k50, true))),
        Vec::<usize>::new()
    );
    let max = int(i64::MAX);
    assert_eq!(r(Some((&max, false)), None), Vec::<usize>::new());
    // A key of another type than the bounds: every range, never too few.
    let text = KeyValue::Text(b"x");
    assert_eq!(r(Some((&text, true)), Some((&k50, true))), vec![0]);
    assert!(map.range_shards("nope", None, None).is_empty());
    let text_map = ok(r#"[tables.names]
sharding_key = "name"
algorithm = "range"
[[tables.names.ranges]]
shard = "s0"
to = "m"
[[tables.names.ranges]]
shard = "s1"
from = "m"
"#)
    .shard_map();
    let (a, m, z) = (
        KeyValue::Text(b"a"),
        KeyValue::Text(b"m"),
        KeyValue::Text(b"z"),
    );
    let t = |from, to| text_map.range_shards("names", from, to);
    assert_eq!(t(Some((&a, true)), Some((&m, false))), vec![0]);
    assert_eq!(t(Some((&a, true)), Some((&m, true))), vec![0, 1]);
    assert_eq!(t(Some((&m, true)), Some((&z, true))), vec![1]);
}

#[test]
fn uncovered_ends_belong_to_no_shard() {
    let map = ok(r#"[tables.t]
sharding_key = "id"
algorithm = "range"
ranges = [{ shard = "s0", from = 0, to = 10 }, { shard = "s1", from = 10, to = 20 }]
"#)
    .shard_map();
    let at = |k: i64| map.shard_for_key("t", &KeyValue::Int(k));
    assert_eq!(at(-1), None);
    assert_eq!(at(0), Some(0));
    assert_eq!(at(19), Some(1));
    assert_eq!(at(20), None);
}

#[test]
fn text_and_uuid_bounds_compare_bytewise() {
    let map = ok(r#"[tables.names]
sharding_key = "name"
algorithm = "range"
[[tables.names.ranges]]
shard = "s0"
to = "m"
[[tables.names.ranges]]
shard = "s1"
from = "m"
to = "t"
[[tables.names.ranges]]
shard = "s2"
from = "t"

[tables.docs]
sharding_key = "id"
algorithm = "range"
[[tables.docs.ranges]]
shard = "s0"
to = "80000000-0000-0000-0000-000000000000"
[[tables.docs.ranges]]
shard = "s1"
from = "80000000-0000-0000-0000-000000000000"
"#)
    .shard_map();
    let at = |k: &str| map.shard_for_key("names", &KeyValue::Text(k.as_bytes()));
    assert_eq!(at(""), Some(0));
    assert_eq!(at("lzzz"), Some(0));
    assert_eq!(at("m"), Some(1));
    assert_eq!(at("szzz"), Some(1));
    assert_eq!(at("t"), Some(2));
    // C collation: uppercase sorts before lowercase.
    assert_eq!(at("Zed"), Some(0));
    assert_eq!(at("é"), Some(2));
    let uuid = |v: u128| map.shard_for_key("docs", &KeyValue::Uuid(v.to_be_bytes()));
    assert_eq!(uuid(0x7fff_ffff_ffff_ffff_ffff_ffff_ffff_ffff), Some(0));
    assert_eq!(uuid(0x8000_0000_0000_0000_0000_0000_0000_0000), Some(1));
    assert_eq!(uuid(0xa0ee_bc99_9c0b_4ef8_bb6d_6bb9_bd38_0a11), Some(1));
    assert_eq!(
        shard_config::uuid_text(&0xa0eebc99_9c0b_4ef8_bb6d_6bb9bd380a11_u128.to_be_bytes()),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    );
}

#[test]
fn colocated_table_adopts_the_ranges() {
    let c = ok(&format!(
        "{INT_RANGES}\n[tables.payments]\nsharding_key = \"account_id\"\ncolocate_with = \"accounts\"\n\
         [tables.refunds]\nsharding_key = \"account_id\"\nalgorithm = \"range\"\ncolocate_with = \"payments\"\n"
    ));
    let map = c.shard_map();
    let TableRule::Range { ranges: root, .. } = map.table("accounts").unwrap() else {
        panic!()
    };
    for name in ["payments", "refunds"] {
        let TableRule::Range { key, ranges, group } = map.table(name).unwrap() else {
            panic!("{name} should be range")
        };
        assert_eq!((key.as_str(), group.as_str()), ("account_id", "accounts"));
        assert_eq!(ranges, root);
        assert_eq!(map.shard_for_key(name, &KeyValue::Int(150)), Some(1));
    }
    only_error(
        &format!(
            "{INT_RANGES}\n[tables.payments]\nsharding_key = \"account_id\"\ncolocate_with = \"accounts\"\n\
             [[tables.payments.ranges]]\nshard = \"s0\"\n"
        ),
        "[[tables.payments.ranges]]",
        &["table payments is co-located", "no ranges"],
    );
    only_error(
        &format!(
            "{INT_RANGES}\n[tables.payments]\nsharding_key = \"account_id\"\ncolocate_with = \"accounts\"\nalgorithm = \"hash\"\n"
        ),
        "algorithm = \"hash\"",
        &["uses algorithm \"hash\" but is co-located with accounts, which uses \"range\""],
    );
}

#[test]
fn range_errors_with_lines() {
    const HEAD: &str = "[tables.t]\nsharding_key = \"id\"\nalgorithm = \"range\"\n";
    // Unknown shard.
    only_error(
        &format!("{HEAD}[[tables.t.ranges]]\nshard = \"s9\"\nfrom = 0\n"),
        "shard = \"s9\"",
        &["unknown shard \"s9\" in tables.t.ranges"],
    );
    // from >= to.
    only_error(
        &format!("{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nfrom = 10\nto = 10\n"),
        "from = 10",
        &["from 10 is not before to 10"],
    );
    only_error(
        &format!("{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nfrom = \"b\"\nto = \"a\"\n"),
        "from = \"b\"",
        &["from \"b\" is not before to \"a\""],
    );
    // Mixed bound types.
    only_error(
        &format!(
            "{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nto = 10\n\
             [[tables.t.ranges]]\nshard = \"s1\"\nfrom = \"10\"\n"
        ),
        "from = \"10\"",
        &["from is a string but earlier bounds of table t are integers"],
    );
    // A bound of another type.
    only_error(
        &format!("{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nto = 1.5\n"),
        "to = 1.5",
        &["tables.t.ranges.to: expected an integer or a string, found a float"],
    );
    // Overlaps: reported on the later range.
    only_error_nth(
        &format!(
            "{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nfrom = 0\nto = 100\n\
             [[tables.t.ranges]]\nshard = \"s1\"\nfrom = 50\nto = 200\n"
        ),
        "[[tables.t.ranges]]",
        1,
        &["keys 50..200 (shard s1) overlap keys 0..100 (shard s0, line"],
    );
    only_error_nth(
        &format!(
            "{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nto = 100\n\
             [[tables.t.ranges]]\nshard = \"s1\"\nto = 50\n"
        ),
        "[[tables.t.ranges]]",
        1,
        &["keys -inf..50 (shard s1) overlap keys -inf..100 (shard s0"],
    );
    only_error_nth(
        &format!(
            "{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nfrom = 100\n\
             [[tables.t.ranges]]\nshard = \"s1\"\nfrom = 500\nto = 600\n"
        ),
        "[[tables.t.ranges]]",
        1,
        &["keys 500..600 (shard s1) overlap keys 100..+inf (shard s0"],
    );
    // Gaps: reported on the range after the gap.
    only_error_nth(
        &format!(
            "{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nto = 100\n\
             [[tables.t.ranges]]\nshard = \"s2\"\nfrom = 300\n\
             [[tables.t.ranges]]\nshard = \"s1\"\nfrom = 200\nto = 300\n"
        ),
        "[[tables.t.ranges]]",
        2,
        &["keys 100..200 of table t belong to no shard"],
    );
    // Unknown key in a range, missing shard, empty ranges, default_shard on a range table.
    only_error(
        &format!("{HEAD}[[tables.t.ranges]]\nshard = \"s0\"\nweight = 2\n"),
        "weight",
        &["unknown key \"weight\" in [[tables.t.ranges]]"],
    );
    only_error(
        &format!("{HEAD}[[tables.t.ranges]]\nfrom = 1\n"),
        "[[tables.t.ranges]]",
        &["tables.t.ranges: missing key \"shard\""],
    );
    only_error(
        &format!("{HEAD}ranges = []\n"),
        "ranges = []",
        &["tables.t.ranges must not be empty"],
    );
    only_error(
        &format!("{HEAD}default_shard = \"s0\"\nranges = [{{ shard = \"s0\" }}]\n"),
        "default_shard",
        &["default_shard applies only to algorithm \"list\""],
    );
    only_error(
        &format!("{HEAD}ranges = [{{ shard = \"s0\" }}]\n[tables.t.values]\ns0 = [1]\n"),
        "[tables.t.values]",
        &["tables.t.values applies only to algorithm \"list\""],
    );
}

const LIST: &str = r#"[tables.stores]
sharding_key = "country"
algorithm = "list"
default_shard = "s2"

[tables.stores.values]
s0 = ["fr", "be"]
s1 = ["de",
      "at"]
"#;

#[test]
fn list_lookups_and_default() {
    let map = ok(LIST).shard_map();
    let Some(TableRule::List {
        key,
        values,
        default,
        group,
    }) = map.table("stores")
    else {
        panic!("{:?}", map.table("stores"));
    };
    assert_eq!(
        (key.as_str(), group.as_str(), *default),
        ("country", "stores", Some(2))
    );
    assert_eq!(values.get(&ListValue::Text("at".into())), Some(&1));
    let at = |k: &str| map.shard_for_key("stores", &KeyValue::Text(k.as_bytes()));
    assert_eq!(at("fr"), Some(0));
    assert_eq!(at("be"), Some(0));
    assert_eq!(at("at"), Some(1));
    assert_eq!(at("it"), Some(2));

    let map = ok(
        "[tables.t]\nsharding_key = \"id\"\nalgorithm = \"list\"\nvalues = { s0 = [1, 2], s1 = [3] }\n\
         [tables.c]\nsharding_key = \"t_id\"\ncolocate_with = \"t\"\n",
    )
    .shard_map();
    for name in ["t", "c"] {
        let at = |k: i64| map.shard_for_key(name, &KeyValue::Int(k));
        assert_eq!(
            (at(1), at(2), at(3), at(4)),
            (Some(0), Some(0), Some(1), None)
        );
    }
    assert_eq!(map.table("c").unwrap().group(), Some("t"));
}

#[test]
fn list_errors_with_lines() {
    const HEAD: &str = "[tables.t]\nsharding_key = \"id\"\nalgorithm = \"list\"\n";
    only_error(
        &format!("{HEAD}[tables.t.values]\ns0 = [1, 2]\ns1 = [3,\n  2]\n"),
        "  2]",
        &["value 2 of table t is listed for shard s1 and for shard s0 (line"],
    );
    only_error(
        &format!("{HEAD}[tables.t.values]\ns0 = [1]\ns9 = [2]\n"),
        "s9",
        &["unknown shard \"s9\" in tables.t.values"],
    );
    only_error(
        &format!("{HEAD}[tables.t.values]\ns0 = [1]\ns1 = [\"x\"]\n"),
        "[\"x\"]",
        &["a string among integers"],
    );
    only_error(
        &format!("{HEAD}[tables.t.values]\ns0 = [1]\ns1 = 2\n"),
        "s1 = 2",
        &["tables.t.values.s1: expected an array of integers or strings, found an integer"],
    );
    only_error(
        &format!("{HEAD}default_shard = \"s7\"\n[tables.t.values]\ns0 = [1]\n"),
        "default_shard",
        &["unknown shard \"s7\" in tables.t.default_shard"],
    );
    only_error(
        &format!("{HEAD}values = [1, 2]\n"),
        "values",
        &["tables.t.values: expected a table of shard = [values]"],
    );
    only_error(
        &format!("{HEAD}[tables.t.values]\ns0 = []\n"),
        "[tables.t.values]",
        &["tables.t.values must list at least one value"],
    );
    only_error(
        &format!(
            "{LIST}\n[tables.orders]\nsharding_key = \"country\"\ncolocate_with = \"stores\"\ndefault_shard = \"s0\"\n"
        ),
        "default_shard = \"s0\"",
        &["table orders is co-located", "no default_shard"],
    );
}
