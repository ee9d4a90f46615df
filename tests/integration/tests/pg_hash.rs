//! shardgate's `hash` slots are PostgreSQL's own hash partitions, proved on a
//! real server for every key type the port covers (int2, int4, int8, text,
//! uuid) and for a multi-column key with NULLs.
//!
//! For each value (all 65,536 int2 values; ≥ 3,000 deterministic
//! pseudo-random values of every other type, boundaries included) the test
//! checks, in a few bulk round trips:
//!
//! - the full 64-bit hash: the type's support function
//!   (`hashint8extended` …) called with the partition seed equals
//!   `hash_key`;
//! - `satisfies_hash_partition` is true at our remainder for moduli 1024, 8
//!   and 2147483647 (odd, so every bit of the combined hash matters), and
//!   false at the next remainder for 1024;
//! - real routing: `INSERT` into a table with 1024 hash partitions and into
//!   one with 8, then `tableoid` says every row sits in the partition whose
//!   REMAINDER is `slot(v, modulus)` (every value; for int2 every 16th).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use integration::{Cluster, ClusterOptions};

use shard_config::hash::{hash_key, partition_hash, slot, KeyValue, PARTITION_SEED};

/// Moduli checked with `satisfies_hash_partition`: the default slot count,
/// a small power of two, and the largest odd int4 (a remainder modulo an odd
/// number depends on all 64 bits of the hash).
const BIG_MODULUS: u64 = 2_147_483_647;

/// At most this many failures are printed.
const SHOW: usize = 25;

/// splitmix64: a deterministic generator, stable across crate versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A key value owned by the test.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Value {
    Int(i64),
    Text(String),
    Uuid([u8; 16]),
}

impl Value {
    fn key(&self) -> KeyValue<'_> {
        match self {
            Value::Int(v) => KeyValue::Int(*v),
            Value::Text(s) => KeyValue::Text(s.as_bytes()),
            Value::Uuid(b) => KeyValue::Uuid(*b),
        }
    }

    /// The text form PostgreSQL reads and prints (`k::text`).
    fn sql_text(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::Text(s) => s.clone(),
            Value::Uuid(b) => {
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                )
            }
        }
    }
}

/// One key type under test.
struct KeyType {
    /// Suffix of the tables' names.
    name: &'static str,
    /// The column's SQL type.
    sql: &'static str,
    /// Its hash-partitioning support function (`pg_amproc` number 2).
    hash_fn: &'static str,
    values: Vec<Value>,
}

fn dedup(values: Vec<Value>) -> Vec<Value> {
    let mut seen = HashSet::new();
    values
        .into_iter()
        .filter(|v| seen.insert(v.clone()))
        .collect()
}

/// Integers around every boundary the int8 fold and the int2/int4 types have.
fn int_boundaries() -> Vec<i64> {
    let mut out = vec![0, 1, -1, 2, -2, 42, -42, 255, 256, -256, 1000, -1000];
    for bound in [
        i64::from(i16::MIN),
        i64::from(i16::MAX),
        i64::from(u16::MAX),
        i64::from(i32::MIN),
        i64::from(i32::MAX),
        i64::from(u32::MAX),
        i64::MIN,
        i64::MAX,
    ] {
        for d in -2..=2 {
            out.push(bound.saturating_add(d));
        }
    }
    for shift in 0..63 {
        out.push(1i64 << shift);
        out.push(-(1i64 << shift));
        out.push((1i64 << shift) - 1);
    }
    out
}

fn int_values(rng: &mut Rng, min: i64, max: i64, random: usize) -> Vec<Value> {
    let mut out: Vec<i64> = int_boundaries()
        .into_iter()
        .filter(|v| (min..=max).contains(v))
        .collect();
    let span = (max as i128 - min as i128 + 1) as u128;
    for _ in 0..random {
        let raw = rng.next();
        let v: i64 = match rng.below(6) {
            // Uniform over the type's whole range.
            0 | 1 => (min as i128 + (raw as u128 % span) as i128) as i64,
            // Small magnitudes, both signs.
            2 => (raw % 2001) as i64 - 1000,
            // High half 0 or all ones: where the fold xors/complements.
            3 => (raw & 0xffff_ffff) as i64,
            4 => (raw | 0xffff_ffff_0000_0000) as i64,
            // Any bit pattern.
            _ => raw as i64,
        };
        if (min..=max).contains(&v) {
            out.push(v);
        } else {
            out.push((min as i128 + (raw as u128 % span) as i128) as i64);
        }
    }
    dedup(out.into_iter().map(Value::Int).collect())
}

fn text_values(rng: &mut Rng, random: usize) -> Vec<Value> {
    const POOL: &[char] = &[
        'a', 'b', 'c', 'x', 'y', 'z', 'A', 'Q', 'Z', '0', '1', '9', ' ', '-', '_', '\'', '"', '\\',
        ',', '{', '}', '(', ')', '\t', '\n', 'é', 'ß', 'ü', 'Ø', '€', 'ж', 'ю', '鍵', '日', 'ア',
        '😀', '🎉', '\u{0301}', '\u{00a0}', '\u{7f}',
    ];
    let mut out: Vec<String> = vec![
        String::new(),
        "a".into(),
        "hello world!".into(),
        "hello world!!".into(),
        "abcdefghijklmnopqrstuvwx".into(),
        "the quick brown fox jumps over the lazy dog".into(),
        "héllo wörld €😀".into(),
        "Ünïcødé ключ 鍵".into(),
    ];
    // Every byte length 0..=48 in ASCII: each tail length 0..=11 after 0..=4
    // whole 12-byte chunks.
    for len in 0..=48 {
        out.push((0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect());
    }
    for _ in 0..random {
        let len = match rng.below(10) {
            0 => 40 + rng.below(160) as usize,
            _ => rng.below(25) as usize,
        };
        let s: String = (0..len)
            .map(|_| POOL[rng.below(POOL.len() as u64) as usize])
            .collect();
        out.push(s);
    }
    dedup(out.into_iter().map(Value::Text).collect())
}

fn uuid_values(rng: &mut Rng, random: usize) -> Vec<Value> {
    let mut out = vec![
        [0u8; 16],
        [0xff; 16],
        0xa0eebc99_9c0b_4ef8_bb6d_6bb9bd380a11_u128.to_be_bytes(),
        1u128.to_be_bytes(),
        (1u128 << 127).to_be_bytes(),
    ];
    for _ in 0..random {
        let hi = rng.next();
        let lo = rng.next();
        out.push(((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes());
    }
    dedup(out.into_iter().map(Value::Uuid).collect())
}

fn key_types() -> Vec<KeyType> {
    let mut rng = Rng(0x5eed_0f5a_4d6a_7e00);
    vec![
        KeyType {
            name: "int2",
            sql: "int2",
            hash_fn: "hashint2extended",
            // Exhaustive.
            values: (i64::from(i16::MIN)..=i64::from(i16::MAX))
                .map(Value::Int)
                .collect(),
        },
        KeyType {
            name: "int4",
            sql: "int4",
            hash_fn: "hashint4extended",
            values: int_values(&mut rng, i32::MIN.into(), i32::MAX.into(), 3000),
        },
        KeyType {
            name: "int8",
            sql: "int8",
            hash_fn: "hashint8extended",
            values: int_values(&mut rng, i64::MIN, i64::MAX, 3000),
        },
        KeyType {
            name: "text",
            sql: "text",
            hash_fn: "hashtextextended",
            values: text_values(&mut rng, 3000),
        },
        KeyType {
            name: "uuid",
            sql: "uuid",
            hash_fn: "uuid_hash_extended",
            values: uuid_values(&mut rng, 3000),
        },
    ]
}

/// SQL creating `parent` (hash-partitioned on `columns`, whose definitions
/// are `defs`) with `modulus` partitions named `parent_<remainder>`.
fn partitioned_table(parent: &str, defs: &str, columns: &str, modulus: u64) -> String {
    format!(
        "CREATE TABLE {parent} ({defs}) PARTITION BY HASH ({columns});
         DO $$ BEGIN
           FOR r IN 0..{last} LOOP
             EXECUTE format('CREATE TABLE {parent}_%s PARTITION OF {parent}
                             FOR VALUES WITH (MODULUS {modulus}, REMAINDER %s)', r, r);
           END LOOP;
         END $$;",
        last = modulus - 1
    )
}

/// The REMAINDER of partition `parent_<r>`, from `tableoid::regclass::text`.
fn remainder_of(partition: &str) -> Option<u64> {
    partition.rsplit('_').next()?.parse().ok()
}

fn as_i32(v: u64) -> i32 {
    i32::try_from(v).expect("remainder below an int4 modulus")
}

/// Checks one key type; returns the failures.
async fn check_type(client: &tokio_postgres::Client, t: &KeyType) -> Vec<String> {
    let started = Instant::now();
    let mut failures = Vec::new();
    let parent = format!("h_{}", t.name);
    let parent8 = format!("h8_{}", t.name);
    let def = format!("k {}", t.sql);
    client
        .batch_execute(&format!(
            "{}{}",
            partitioned_table(&parent, &def, "k", 1024),
            partitioned_table(&parent8, &def, "k", 8)
        ))
        .await
        .unwrap_or_else(|e| panic!("creating the {} tables: {e}", t.name));
    let created = started.elapsed();

    let texts: Vec<String> = t.values.iter().map(Value::sql_text).collect();
    let slots =
        |m: u64| -> Vec<i32> { t.values.iter().map(|v| as_i32(slot(&v.key(), m))).collect() };
    let (r1024, r8, rbig) = (slots(1024), slots(8), slots(BIG_MODULUS));

    // 1. The full hash, and satisfies_hash_partition at our remainders.
    let sql = format!(
        "SELECT t.i, {hash_fn}(t.v, $2),
                satisfies_hash_partition('{parent}'::regclass, 1024, t.r1024, t.v),
                satisfies_hash_partition('{parent}'::regclass, 1024, (t.r1024 + 1) % 1024, t.v),
                satisfies_hash_partition('{parent}'::regclass, 8, t.r8, t.v),
                satisfies_hash_partition('{parent}'::regclass, {BIG_MODULUS}, t.rbig, t.v)
         FROM unnest($1::text[]::{ty}[], $3::int4[], $4::int4[], $5::int4[])
              WITH ORDINALITY AS t(v, r1024, r8, rbig, i)
         ORDER BY t.i",
        hash_fn = t.hash_fn,
        ty = t.sql,
    );
    let seed = PARTITION_SEED as i64;
    let rows = client
        .query(&sql, &[&texts, &seed, &r1024, &r8, &rbig])
        .await
        .unwrap_or_else(|e| panic!("{} hash query: {e}", t.name));
    assert_eq!(rows.len(), t.values.len(), "{}: one row per value", t.name);
    for (row, v) in rows.iter().zip(&t.values) {
        let i: i64 = row.get(0);
        let pg_hash = row.get::<_, i64>(1) as u64;
        let ours = hash_key(&v.key());
        let what = format!("{} #{i} {:?}", t.name, v.sql_text());
        if pg_hash != ours {
            failures.push(format!(
                "{what}: {}(v, seed) = {pg_hash:#018x}, hash_key = {ours:#018x}",
                t.hash_fn
            ));
        }
        for (col, label) in [(2, "1024"), (4, "8"), (5, "2147483647")] {
            if !row.get::<_, bool>(col) {
                failures.push(format!(
                    "{what}: not in our remainder for modulus {label} \
                     (slot 1024 = {}, 8 = {}, big = {})",
                    r1024[i as usize - 1],
                    r8[i as usize - 1],
                    rbig[i as usize - 1]
                ));
            }
        }
        if row.get::<_, bool>(3) {
            failures.push(format!("{what}: satisfies the wrong remainder too"));
        }
    }
    let hashed = started.elapsed();

    // 2. Real routing: INSERT, then ask each row where it went. Every value
    // but int2's 65,536, of which every 16th (4,096 values, every partition
    // of both tables still reached many times over).
    let step = t.values.len().div_ceil(4096);
    let routed: Vec<&Value> = t.values.iter().step_by(step).collect();
    let routed_texts: Vec<String> = routed.iter().map(|v| v.sql_text()).collect();
    for (table, modulus) in [(&parent, 1024u64), (&parent8, 8)] {
        let inserted = client
            .execute(
                &format!(
                    "INSERT INTO {table} (k) SELECT unnest($1::text[]::{}[])",
                    t.sql
                ),
                &[&routed_texts],
            )
            .await
            .unwrap_or_else(|e| panic!("INSERT INTO {table}: {e}"));
        assert_eq!(inserted as usize, routed.len(), "{table}: rows inserted");
        let rows = client
            .query(
                &format!("SELECT k::text, tableoid::regclass::text FROM {table}"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading {table}: {e}"));
        assert_eq!(rows.len(), routed.len(), "{table}: rows read back");
        let placed: HashMap<String, String> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        let mut distinct_partitions = HashSet::new();
        for v in &routed {
            let text = v.sql_text();
            let expected = slot(&v.key(), modulus);
            match placed.get(&text) {
                None => failures.push(format!("{table}: {text:?} not read back")),
                Some(partition) => {
                    distinct_partitions.insert(partition.clone());
                    if remainder_of(partition) != Some(expected) {
                        failures.push(format!(
                            "{table}: {text:?} routed to {partition}, slot({modulus}) = {expected}"
                        ));
                    }
                }
            }
        }
        // Enough values to touch (nearly) every partition: the check is not
        // vacuous.
        let want = if modulus == 8 { 8 } else { 900 };
        assert!(
            distinct_partitions.len() >= want,
            "{table}: only {} partitions used",
            distinct_partitions.len()
        );
    }
    eprintln!(
        "{:>5}: {} values ({} routed); tables {:?}, hashes+satisfies {:?}, routing {:?}",
        t.name,
        t.values.len(),
        routed.len(),
        created,
        hashed - created,
        started.elapsed() - hashed
    );
    failures
}

/// A three-column key (int8, text, uuid) with NULLs: `partition_hash`
/// combines the non-NULL columns in order, as PostgreSQL does.
async fn check_multi_column(client: &tokio_postgres::Client) -> Vec<String> {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut rng = Rng(0x00c0_ffee);
    let ints = int_values(&mut rng, i64::MIN, i64::MAX, 2000);
    let texts = text_values(&mut rng, 2000);
    let uuids = uuid_values(&mut rng, 2000);
    let n = 2500;
    let pick = |rng: &mut Rng, pool: &[Value]| -> Option<Value> {
        // About one column in four is NULL, so all-NULL keys occur too.
        (rng.below(4) != 0).then(|| pool[rng.below(pool.len() as u64) as usize].clone())
    };
    let rows: Vec<[Option<Value>; 3]> = (0..n)
        .map(|i| match i {
            0 => [None, None, None],
            _ => [
                pick(&mut rng, &ints),
                pick(&mut rng, &texts),
                pick(&mut rng, &uuids),
            ],
        })
        .collect();
    let a: Vec<Option<i64>> = rows
        .iter()
        .map(|r| match &r[0] {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        })
        .collect();
    let b: Vec<Option<String>> = rows
        .iter()
        .map(|r| r[1].as_ref().map(Value::sql_text))
        .collect();
    let c: Vec<Option<String>> = rows
        .iter()
        .map(|r| r[2].as_ref().map(Value::sql_text))
        .collect();
    let hashes: Vec<u64> = rows
        .iter()
        .map(|r| {
            partition_hash(&[
                r[0].as_ref().map(Value::key),
                r[1].as_ref().map(Value::key),
                r[2].as_ref().map(Value::key),
            ])
        })
        .collect();
    let rem = |m: u64| -> Vec<i32> { hashes.iter().map(|h| as_i32(h % m)).collect() };
    let (r1024, r8, rbig) = (rem(1024), rem(8), rem(BIG_MODULUS));

    client
        .batch_execute(&partitioned_table(
            "h_multi",
            "id int4, a int8, b text, c uuid",
            "a, b, c",
            8,
        ))
        .await
        .expect("creating h_multi");
    let result = client
        .query(
            &format!(
                "SELECT t.i,
                        satisfies_hash_partition('h_multi'::regclass, 1024, t.r1024, t.a, t.b, t.c),
                        satisfies_hash_partition('h_multi'::regclass, 8, t.r8, t.a, t.b, t.c),
                        satisfies_hash_partition('h_multi'::regclass, {BIG_MODULUS}, t.rbig, t.a, t.b, t.c)
                 FROM unnest($1::int8[], $2::text[], $3::text[]::uuid[], $4::int4[], $5::int4[], $6::int4[])
                      WITH ORDINALITY AS t(a, b, c, r1024, r8, rbig, i)
                 ORDER BY t.i"
            ),
            &[&a, &b, &c, &r1024, &r8, &rbig],
        )
        .await
        .expect("multi-column satisfies query");
    assert_eq!(result.len(), n);
    for row in &result {
        let i: i64 = row.get(0);
        for (col, label) in [(1, "1024"), (2, "8"), (3, "2147483647")] {
            if !row.get::<_, bool>(col) {
                failures.push(format!(
                    "h_multi row #{i} {:?}: not in our remainder for modulus {label}",
                    rows[i as usize - 1]
                ));
            }
        }
    }

    client
        .execute(
            "INSERT INTO h_multi (id, a, b, c)
             SELECT t.i, t.a, t.b, t.c
             FROM unnest($1::int8[], $2::text[], $3::text[]::uuid[]) WITH ORDINALITY AS t(a, b, c, i)",
            &[&a, &b, &c],
        )
        .await
        .expect("INSERT INTO h_multi");
    let placed = client
        .query(
            "SELECT id, tableoid::regclass::text FROM h_multi ORDER BY id",
            &[],
        )
        .await
        .expect("reading h_multi");
    assert_eq!(placed.len(), n, "h_multi: rows read back");
    for row in &placed {
        let id: i32 = row.get(0);
        let partition: String = row.get(1);
        let idx = id as usize - 1;
        let expected = hashes[idx] % 8;
        if remainder_of(&partition) != Some(expected) {
            failures.push(format!(
                "h_multi row {id} {:?}: routed to {partition}, partition_hash % 8 = {expected}",
                rows[idx]
            ));
        }
    }
    eprintln!("multi: {n} rows in {:?}", started.elapsed());
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_equal_postgres_hash_partitions() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions {
        replicas: 0,
        ..Default::default()
    })
    .expect("cluster starts");
    eprintln!("server started in {:?}", started.elapsed());
    let client = cluster.primary.connect("postgres").await.expect("connect");
    let version: String = client
        .query_one("SHOW server_version", &[])
        .await
        .expect("server_version")
        .get(0);
    eprintln!("PostgreSQL {version}");

    let mut failures = Vec::new();
    let mut checked = 0;
    for t in key_types() {
        checked += t.values.len();
        failures.extend(check_type(&client, &t).await);
    }
    failures.extend(check_multi_column(&client).await);
    eprintln!(
        "{checked} single-column values + multi-column rows checked in {:?}",
        started.elapsed()
    );

    assert!(
        failures.is_empty(),
        "{} mismatches with PostgreSQL; the first {}:\n{}",
        failures.len(),
        SHOW.min(failures.len()),
        failures[..SHOW.min(failures.len())].join("\n")
    );
}
