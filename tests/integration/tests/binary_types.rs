//! The proxy's text-to-binary re-encoding (`router::protocol::binary`, used
//! for merged cross-shard rows a client wants in binary) against a real
//! server: for each SQL expression below, the server's text form (simple
//! query) run through `encode` must give exactly the server's own binary
//! form (extended query, binary results), byte for byte.
//!
//! The expressions are compared under the settings the proxy assumes
//! (`DateStyle=ISO`, `IntervalStyle=postgres`) with several time zones,
//! date orders and both `bytea_output`s; under other `IntervalStyle`s and
//! `DateStyle`s every value must be either refused (`None`) or still exact.

use std::collections::BTreeSet;

use integration::{Cluster, ClusterOptions};
use router::protocol::binary::{encode, supported};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// Any value's binary form, as the server sent it.
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Scalar expressions of every supported type, edge values included.
const SCALARS: &[&str] = &[
    "32767::int2",
    "(-32768)::int2",
    "(-2147483648)::int4",
    "9223372036854775807::int8",
    "4294967295::oid",
    "'12345'::xid",
    "'4294967295'::xid",
    "'18446744073709551615'::xid8",
    "'7'::cid",
    "true",
    "0.1::float4",
    "'-0'::float4",
    "3.4028235e38::float4",
    "'NaN'::float8",
    "'-Infinity'::float8",
    "1e-300::float8",
    "(1/3.0)::float8",
    "0::numeric",
    "'-12345.678'::numeric",
    "'0.000100'::numeric",
    "'NaN'::numeric",
    "'Infinity'::numeric",
    "'-Infinity'::numeric",
    "'héllo, wörld'::text",
    "'ab'::char(4)",
    "'x'::varchar(3)",
    "'pg_catalog'::name",
    "'a'::\"char\"",
    "''::\"char\"",
    "'\\'::\"char\"",
    "'\\351'::\"char\"",
    "'\\x'::bytea",
    "'\\xdeadbeef00'::bytea",
    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
    "'{\"a\": [1, 2.50, null], \"b\": \"x\"}'::json",
    "'{\"b\": 1, \"a\": {\"c\": [true]}}'::jsonb",
    "'2000-01-01'::date",
    "'2024-02-29'::date",
    "'0001-01-01 BC'::date",
    "'4714-11-24 BC'::date",
    "'5874897-12-31'::date",
    "'infinity'::date",
    "'-infinity'::date",
    "'1999-12-31 23:59:59.5'::timestamp",
    "'294276-12-31 23:59:59.999999'::timestamp",
    "'4713-01-01 00:00:00 BC'::timestamp",
    "'-infinity'::timestamp",
    "'2024-06-01 12:00:00+00'::timestamptz",
    "'2024-01-15 08:30:00.123456-03:30'::timestamptz",
    "'1900-01-01 00:00:00+00'::timestamptz",
    "'0044-03-15 12:00:00+00 BC'::timestamptz",
    "'infinity'::timestamptz",
    "'00:00:00'::time",
    "'23:59:59.999999'::time",
    "'24:00:00'::time",
    "'12:34:56.5'::time",
    "'12:34:56+05:30'::timetz",
    "'00:00:00-15:59:59'::timetz",
    "'23:59:59.999999+15:59'::timetz",
    "'01:02:03+00'::timetz",
    "'1 year 2 mons 3 days 04:05:06.789'::interval",
    "'-1 days +02:00:00'::interval",
    "'0'::interval",
    "'-1 year -2 mons +3 days -04:05:06'::interval",
    "'1 mon -1 day'::interval",
    "'-178000000 years'::interval",
    "'2562047788 hours 54.775807 seconds'::interval",
    "'-2562047788 hours -54.775808 seconds'::interval",
    "'1.5 months'::interval",
    "'-00:00:00.000001'::interval",
    "'1 day 25:00:00'::interval",
    "'1 year'::interval",
    "'192.168.0.1'::inet",
    "'192.168.0.1/24'::inet",
    "'0.0.0.0/0'::inet",
    "'::1'::inet",
    "'::'::inet",
    "'::ffff:1.2.3.4'::inet",
    "'2001:db8::1/64'::inet",
    "'fe80::1:2:3:4'::inet",
    "'1:2:3:4:5:6:7:8'::inet",
    "'1::8'::inet",
    "'1:0:0:2::3'::inet",
    "'10.0.0.0/8'::cidr",
    "'1.2.3.4'::cidr",
    "'2001:db8::/32'::cidr",
    "'::ffff:1.2.3.0/120'::cidr",
    "'0.0.0.0/0'::cidr",
    "'$1,234.56'::money",
    "'-0.01'::money",
    "'92233720368547758.07'::money",
    "'-92233720368547758.08'::money",
    "'0'::money",
    "B'101'::bit(3)",
    "B'11111111'::bit(8)",
    "B'10100000111'::varbit",
    "B''::varbit",
    "'08:00:2b:01:02:03'::macaddr",
    "'08:00:2b:01:02:03:04:05'::macaddr8",
    "'(1,2)'::point",
    "'(-1.5e-300,Infinity)'::point",
    "'(NaN,-0)'::point",
    "'[(1,2),(3,4.5)]'::lseg",
    "'(3,4),(1,2)'::box",
    "'{1,2,3}'::line",
    "'<(1,2),3>'::circle",
    "'[(0,0),(1,1),(2,0)]'::path",
    "'((0,0),(1,1))'::path",
    "'((0,0),(1,1),(1,0))'::polygon",
];

/// Array expressions: every supported element type, quoting, NULLs,
/// nesting and lower bounds.
const ARRAYS: &[&str] = &[
    "ARRAY[1,NULL,3]::int4[]",
    "'{}'::int4[]",
    "'{{1,2},{3,4}}'::int2[]",
    "'[2:3]={7,8}'::int8[]",
    "'[0:1][-2:-1]={{1,2},{3,4}}'::int4[]",
    "'{{{1},{2}},{{3},{4}}}'::int8[]",
    "'{{{{{{1,2}}}}}}'::int4[]",
    "'{{NULL,NULL},{NULL,NULL}}'::int4[]",
    "array_fill(7, ARRAY[2,3], ARRAY[0,5])",
    "'{{\"a,b\",\"c\\\"d\"},{NULL,\"NULL\"}}'::text[]",
    "ARRAY['', ' lead', 'trail ', 'back\\slash', '{brace}', 'null', 'NULL', 'ü', E'tab\\tx', 'q\"q']",
    "'{\"\\\\\\\\\",  \"\\\"\"}'::text[]",
    "ARRAY['x'::varchar, NULL]",
    "ARRAY['ab'::char(4), 'a,b']",
    "ARRAY['pg_class'::name]",
    "ARRAY['a'::\"char\", '\\', ''::\"char\", '\\351', '\"', ',']",
    "ARRAY[1.5, '-0', 'NaN', 'Infinity', '-Infinity', 1e-300]::float8[]",
    "ARRAY[0.1, 3.4e38]::float4[]",
    "ARRAY[true,false,NULL]::bool[]",
    "ARRAY[0, 1.50, -12345.678, 'NaN']::numeric[]",
    "ARRAY['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, NULL]",
    "ARRAY['2000-01-01'::date, 'infinity', '0044-03-15 BC']",
    "ARRAY['2024-02-29 12:34:56.789'::timestamp, '-infinity']",
    "ARRAY['2024-02-29 12:34:56.789+02'::timestamptz, NULL]",
    "ARRAY['\\x00ff'::bytea, '\\x', NULL, '\\x5c22']",
    "ARRAY['{\"a\":[1,2]}'::json, 'null', '\"s\"']",
    "ARRAY['{\"b\":1,\"a\":\"x,y\"}'::jsonb, '[]']",
    "ARRAY[1,4294967295]::oid[]",
    "ARRAY['1'::xid, '4294967295']",
    "ARRAY['18446744073709551615'::xid8]",
    "ARRAY['3'::cid]",
    "ARRAY['1 day'::interval, '-1 mons +00:00:01', '00:00:00']",
    "ARRAY['192.168.0.1/24'::inet, '::1', '::ffff:1.2.3.4']",
    "ARRAY['10.0.0.0/8'::cidr, '2001:db8::/32']",
    "ARRAY['24:00:00'::time, '12:00:00.5']",
    "ARRAY['12:00:00+05:30'::timetz, '00:00:00-01']",
    "ARRAY[B'101', B'']::varbit[]",
    "ARRAY[B'1', B'0']::bit[]",
    "ARRAY['08:00:2b:01:02:03'::macaddr]",
    "ARRAY['08:00:2b:01:02:03:04:05'::macaddr8]",
    "ARRAY['$1.00'::money, '-1,234.56']",
    "ARRAY['(1,2)'::point, '(3,-4.5)']",
    "ARRAY['[(1,2),(3,4)]'::lseg]",
    "ARRAY['[(0,0),(1,1)]'::path, '((0,0),(1,1),(2,2))']",
    "ARRAY['((0,0),(1,1),(1,0))'::polygon]",
    "ARRAY['{1,-1,0}'::line]",
    "ARRAY['<(1,2),3>'::circle]",
    "(ARRAY[[1,2],[3,4]])[2:2]",
];

/// Settings under which every value must come out exact.
const EXACT: &[&str] = &[
    "SET TimeZone = 'UTC'",
    "SET TimeZone = 'Asia/Kolkata'",
    "SET TimeZone = 'America/St_Johns'",
    "SET TimeZone = 'Europe/Amsterdam'",
    "SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'ISO, DMY'",
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET bytea_output = 'escape'",
];

/// Settings whose text the proxy does not read, with the types they
/// restyle: each value must be refused or exact, a value of a restyled type
/// accepted only where its text is the one the assumed settings give too
/// (`12:00:00` is the same interval in `sql_standard`), and some refused.
const OTHER_STYLES: &[(&str, &[u32])] = &[
    (
        "SET bytea_output = hex; SET DateStyle = ISO; SET IntervalStyle = sql_standard",
        &[1186, 1187],
    ),
    ("SET IntervalStyle = iso_8601", &[1186, 1187]),
    ("SET IntervalStyle = postgres_verbose", &[1186, 1187]),
    (
        "SET IntervalStyle = postgres; SET DateStyle = 'SQL, DMY'",
        &[1082, 1114, 1184, 1182, 1115, 1185],
    ),
    (
        "SET DateStyle = 'Postgres, MDY'",
        &[1082, 1114, 1184, 1182, 1115, 1185],
    ),
    (
        "SET DateStyle = 'German'",
        &[1082, 1114, 1184, 1182, 1115, 1185],
    ),
];

/// One value: its type, the server's text and binary forms.
struct Fetched {
    oid: u32,
    text: String,
    binary: Vec<u8>,
}

/// Fetches `expr`'s text and binary forms.
async fn fetch(client: &Client, expr: &'static str) -> Fetched {
    let sql = format!("SELECT {expr}");
    let text = client
        .simple_query(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
            _ => None,
        })
        .flatten()
        .unwrap_or_else(|| panic!("{sql}: no non-NULL value"));
    let row = client
        .query_one(&sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let oid = row.columns()[0].type_().oid();
    let Raw(binary) = row.get(0);
    Fetched { oid, text, binary }
}

/// What `encode` made of a fetched value.
fn encoded(f: &Fetched) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode(f.oid, f.text.as_bytes(), &mut out).map(|()| out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn binary_encoding_matches_the_server() {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 0,
        ..Default::default()
    })
    .expect("start a server");
    let client = cluster.primary.connect("shop").await.expect("connect");
    let all: Vec<&'static str> = SCALARS.iter().chain(ARRAYS).copied().collect();

    let mut oids = BTreeSet::new();
    let mut compared = 0;
    let mut failures = Vec::new();
    // each value's text under the first settings, the proxy's own
    let mut baseline = Vec::new();
    for settings in EXACT {
        client.batch_execute(settings).await.expect(settings);
        for &expr in &all {
            let f = fetch(&client, expr).await;
            assert!(supported(f.oid), "{expr}: type {} not supported", f.oid);
            oids.insert(f.oid);
            if settings == &EXACT[0] {
                baseline.push(f.text.clone());
            }
            compared += 1;
            match encoded(&f) {
                Some(mine) if mine == f.binary => {}
                mine => failures.push(format!(
                    "[{settings}] {expr} (type {}) text {:?}: server {} ours {}",
                    f.oid,
                    f.text,
                    hex(&f.binary),
                    mine.map_or("refused".into(), |m| hex(&m)),
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!(
        "{compared} values ({} expressions x {} settings) identical; types {oids:?}",
        all.len(),
        EXACT.len()
    );
    // each array type's element type was also met as a scalar or in the list
    assert!(oids.len() >= 75, "only {} types met: {oids:?}", oids.len());

    for &(settings, restyled) in OTHER_STYLES {
        client.batch_execute(settings).await.expect(settings);
        let (mut refused, mut restyled_refused) = (0, 0);
        for (&expr, base) in all.iter().zip(&baseline) {
            let f = fetch(&client, expr).await;
            let Some(mine) = encoded(&f) else {
                refused += 1;
                restyled_refused += usize::from(restyled.contains(&f.oid));
                continue;
            };
            assert_eq!(
                hex(&mine),
                hex(&f.binary),
                "[{settings}] {expr}: text {:?} misread",
                f.text
            );
            assert!(
                !restyled.contains(&f.oid) || f.text == *base,
                "[{settings}] {expr}: restyled text {:?} (not {base:?}) accepted",
                f.text
            );
        }
        assert!(restyled_refused > 0, "[{settings}]: nothing refused");
        println!(
            "[{settings}]: {refused} of {} refused ({restyled_refused} of restyled types), \
             the rest exact",
            all.len()
        );
    }
}
