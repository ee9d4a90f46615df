//! The differential query test (issue 4, point 6): the shop's rows on three
//! shards behind shardgate and in one plain reference Postgres; thousands of
//! generated queries ([`integration::querygen`]) run on both, and every
//! answer must agree: row by row where the ORDER BY fixes the order, as
//! multisets where it does not, by row count for LIMIT without a total
//! order. A refusal (SQLSTATE 0A000) is counted by reason, never a failure;
//! any other error from shardgate, a wrong answer or a hang is.
//!
//! Seeds: a fixed one (the same queries on every run) and a random one
//! (`SHARDGATE_DIFF_SEED` if set, else from the clock), printed first.
//! `SHARDGATE_DIFF_QUERIES` changes how many queries each seed runs (2,500
//! for the fixed seed, 1,500 for the random one by default).

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use integration::querygen::{self, Compare, Data, Param, Query};
use integration::wire::TextParam;
use integration::{config_for_shards, Cluster, ClusterOptions, Proxy};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The seed every run uses.
const FIXED_SEED: u64 = 0x5348_4152_4447_4154;
/// Queries per run for the fixed seed, and for the random one.
const FIXED_QUERIES: u64 = 2500;
const RANDOM_QUERIES: u64 = 1500;
/// Stop after this many mismatches.
const MAX_MISMATCHES: usize = 5;
/// A query that takes longer on either side counts as a hang.
const QUERY_TIMEOUT: Duration = Duration::from_secs(20);

type Rows = Vec<Vec<Option<String>>>;

/// What one side answered.
#[derive(Debug)]
enum Answer {
    Rows(Rows),
    /// An error: its SQLSTATE (or `client`/`timeout`) and message.
    Error(String, String),
}

/// A binary result value turned into text (PostgreSQL's text format for the
/// shop's types; type name and hex for others). Both sides go through the
/// same decoder, so only equality matters.
struct Text(Option<String>);

impl<'a> FromSql<'a> for Text {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let s = match *ty {
            Type::BOOL => if bool::from_sql(ty, raw)? { "t" } else { "f" }.to_string(),
            Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
            Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
            Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
            Type::FLOAT8 => f64::from_sql(ty, raw)?.to_string(),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => String::from_sql(ty, raw)?,
            Type::NUMERIC => numeric_text(raw).ok_or("malformed binary numeric")?,
            Type::TIMESTAMPTZ => {
                let micros = i64::from_sql(&Type::INT8, raw)?;
                timestamp_text(micros)
            }
            _ => {
                let mut s = format!("{}:", ty.name());
                for b in raw {
                    let _ = write!(s, "{b:02x}");
                }
                s
            }
        };
        Ok(Text(Some(s)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Text(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A binary `numeric` in PostgreSQL's text format.
fn numeric_text(raw: &[u8]) -> Option<String> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes([*raw.get(2 * i)?, *raw.get(2 * i + 1)?]))
    };
    let ndigits = usize::try_from(word(0)?).ok()?;
    let weight = i64::from(word(1)?);
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).ok()?;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| word(4 + i)).collect::<Option<_>>()?;
    // The digit of base-10000 weight w (0 outside the stored digits).
    let digit = |w: i64| -> i16 {
        let i = weight - w;
        if i < 0 {
            0
        } else {
            usize::try_from(i)
                .ok()
                .and_then(|i| digits.get(i).copied())
                .unwrap_or(0)
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        let _ = write!(s, "{}", digit(weight));
        for w in (0..weight).rev() {
            let _ = write!(s, "{:04}", digit(w));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut w = -1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(w));
            w -= 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Some(s)
}

/// A binary `timestamptz` (microseconds since 2000-01-01 UTC) as UTC text.
fn timestamp_text(micros: i64) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400) + 10_957; // 1970-01-01 → 2000-01-01
    let tod = secs.rem_euclid(86_400);
    let (year, month, day) = shard_config::time::civil_from_days(days);
    let mut s = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    );
    if frac != 0 {
        let _ = write!(s, ".{frac:06}");
    }
    s.push_str("+00");
    s
}

fn error_answer(e: &tokio_postgres::Error) -> Answer {
    match e.as_db_error() {
        // a refusal carries its kind in the DETAIL: count by that
        Some(d) => match d
            .detail()
            .and_then(|x| x.strip_prefix("shardgate refusal: "))
        {
            Some(kind) => Answer::Error(
                d.code().code().to_string(),
                format!("[{kind}] {}", d.message()),
            ),
            None => Answer::Error(d.code().code().to_string(), d.message().to_string()),
        },
        None => Answer::Error("client".into(), e.to_string()),
    }
}

/// Runs `q` on `c`: the simple protocol without parameters (text results),
/// else a prepared statement (binary results, decoded by [`Text`]).
async fn run(c: &Client, q: &Query) -> Answer {
    let work = async {
        if !q.prepared {
            return match c.simple_query(&q.sql).await {
                Ok(msgs) => Answer::Rows(
                    msgs.iter()
                        .filter_map(|m| match m {
                            SimpleQueryMessage::Row(r) => {
                                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                            }
                            _ => None,
                        })
                        .collect(),
                ),
                Err(e) => error_answer(&e),
            };
        }
        let boxed: Vec<Box<dyn ToSql + Sync>> = q
            .params
            .iter()
            .map(|p| -> Box<dyn ToSql + Sync> {
                match p {
                    Param::Int8(v) => Box::new(*v),
                    Param::Int4(v) => Box::new(*v),
                    Param::Text(v) => Box::new(v.clone()),
                    Param::AsText(v) => Box::new(TextParam(v.clone())),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        match c.query(&q.sql, &refs).await {
            Ok(rows) => {
                let mut out = Vec::new();
                for row in rows {
                    let mut values = Vec::new();
                    for i in 0..row.len() {
                        match row.try_get::<_, Text>(i) {
                            Ok(Text(v)) => values.push(v),
                            Err(e) => return Answer::Error("client".into(), e.to_string()),
                        }
                    }
                    out.push(values);
                }
                Answer::Rows(out)
            }
            Err(e) => error_answer(&e),
        }
    };
    match tokio::time::timeout(QUERY_TIMEOUT, work).await {
        Ok(a) => a,
        Err(_) => Answer::Error(
            "timeout".into(),
            format!("no answer within {QUERY_TIMEOUT:?}"),
        ),
    }
}

/// A refusal's reason for the summary: the kind the proxy names in the
/// DETAIL, else its message up to the first `: `,
/// without the query's own expressions, at most ten words.
fn reason(message: &str) -> String {
    if let Some(kind) = message.strip_prefix('[').and_then(|m| m.split_once(']')) {
        return kind.0.to_string();
    }
    let head = message.split(": ").next().unwrap_or(message);
    let head = if let Some(i) = head.find(", which ") {
        // "GROUP BY <expr>, which is not in the select list"
        let first: Vec<&str> = head.split(' ').take(2).collect();
        format!("{} … {}", first.join(" "), &head[i + 2..])
    } else if let Some(i) = head.find(" next to aggregates") {
        format!("… {}", &head[i + 1..])
    } else {
        head.to_string()
    };
    head.split_whitespace()
        .take(10)
        .collect::<Vec<_>>()
        .join(" ")
}

fn show(a: &Answer) -> String {
    match a {
        Answer::Error(code, msg) => format!("ERROR {code}: {msg}"),
        Answer::Rows(rows) => {
            let mut s = format!("{} rows", rows.len());
            for r in rows.iter().take(40) {
                let cells: Vec<&str> = r.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
                let _ = write!(s, "\n      ({})", cells.join(" | "));
            }
            if rows.len() > 40 {
                s.push_str("\n      …");
            }
            s
        }
    }
}

/// Whether `got` is an acceptable answer where `want` is the reference's.
fn same(compare: Compare, want: &Rows, got: &Rows) -> bool {
    match compare {
        Compare::Ordered => want == got,
        Compare::Multiset => {
            let (mut w, mut g) = (want.clone(), got.clone());
            w.sort();
            g.sort();
            w == g
        }
        Compare::RowCount => want.len() == got.len(),
    }
}

/// How one query went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Matched,
    Refused,
    /// Both sides failed with the same SQLSTATE.
    BothFailed,
    /// The reference failed: the generator made a bad query.
    BadQuery,
    Mismatch,
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    total: u64,
    matched: u64,
    refused: u64,
    both_failed: u64,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        self.total += 1;
        match o {
            Outcome::Matched => self.matched += 1,
            Outcome::Refused => self.refused += 1,
            Outcome::BothFailed => self.both_failed += 1,
            Outcome::BadQuery | Outcome::Mismatch => {}
        }
    }

    fn line(&self) -> String {
        format!(
            "{:5} queries {:5} matched {:5} refused ({:5.1}%){}",
            self.total,
            self.matched,
            self.refused,
            100.0 * self.refused as f64 / self.total.max(1) as f64,
            if self.both_failed > 0 {
                format!(", {} failed alike on both", self.both_failed)
            } else {
                String::new()
            },
        )
    }
}

/// The binary decoder ([`Text`]) gives PostgreSQL's own text for the
/// shop's types: the same queries in the simple and extended protocol on the
/// reference (in UTC, the decoder's time zone) must agree.
async fn check_decoder(reference: &Cluster) {
    let c = reference.primary.connect("shop").await.expect("reference");
    c.batch_execute("SET TimeZone = 'UTC'")
        .await
        .expect("set UTC");
    let mut checks: Vec<String> = querygen::TABLE_DUMPS
        .iter()
        .map(|s| s.to_string())
        .collect();
    checks.extend(
        [
            "SELECT sum(total), avg(total), sum(qty * price), avg(qty), -sum(total) FROM orders o \
             JOIN order_items i ON i.user_id = o.user_id AND i.order_id = o.id",
            "SELECT x, -x, x / 7, x * 10000, round(x, 0) FROM (VALUES (0.00), (0.01), (12.5), \
             (10000.0001), (123456789.123), (-0.5), ('NaN'), ('Infinity'), (NULL)) v(x)",
            "SELECT t, t + interval '0.000123 s' FROM (VALUES (timestamptz '1999-12-31 23:59:59+00'), \
             ('2026-02-28 12:00:00+00'), ('1970-01-01 00:00:00+00'), ('0044-03-15 00:00:00+00'), \
             ('infinity'), ('-infinity')) v(t)",
            "SELECT true, false, NULL::bool, 1::int2, -5::int4, 9223372036854775807, 'é'::varchar",
        ]
        .map(String::from),
    );
    for sql in checks {
        let simple = Query {
            sql: sql.clone(),
            params: Vec::new(),
            prepared: false,
            compare: Compare::Ordered,
            kind: "check",
        };
        let prepared = Query {
            prepared: true,
            ..simple.clone()
        };
        let (Answer::Rows(a), Answer::Rows(b)) = (run(&c, &simple).await, run(&c, &prepared).await)
        else {
            panic!("{sql}: the reference failed");
        };
        assert!(
            a == b,
            "{sql}: binary decoding differs from the text format:\n{}\nvs\n{}",
            show(&Answer::Rows(a.clone())),
            show(&Answer::Rows(b.clone()))
        );
    }
}

async fn load(c: &Client, what: &str, statements: &[String]) {
    for sql in statements {
        c.batch_execute(sql).await.unwrap_or_else(|e| {
            panic!(
                "{what}: {}: {e:?}",
                sql.chars().take(120).collect::<String>()
            )
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_queries_agree_with_one_database() {
    let started = Instant::now();
    let random_seed = match std::env::var("SHARDGATE_DIFF_SEED") {
        Ok(s) => s
            .trim()
            .parse::<u64>()
            .expect("SHARDGATE_DIFF_SEED is a decimal u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    let (fixed_n, random_n) = match std::env::var("SHARDGATE_DIFF_QUERIES") {
        Ok(n) => {
            let n = n
                .trim()
                .parse()
                .expect("SHARDGATE_DIFF_QUERIES is a number");
            (n, n)
        }
        Err(_) => (FIXED_QUERIES, RANDOM_QUERIES),
    };
    println!(
        "differential: fixed seed {FIXED_SEED} ({fixed_n} queries), random seed {random_seed} \
         ({random_n} queries; rerun with SHARDGATE_DIFF_SEED={random_seed})"
    );

    // Three shards and the reference, started together, no replicas.
    let mut clusters = Cluster::start_many(
        4,
        ClusterOptions {
            replicas: 0,
            ..Default::default()
        },
    )
    .expect("start the shards and the reference");
    let reference = clusters.pop().expect("four clusters");
    let shards: Vec<&Cluster> = clusters.iter().collect();
    let config = format!("{}\n{}", config_for_shards(&shards), shop_schema::TABLES);
    let proxy = Proxy::start(&config).expect("start shardgate");
    let mut sg = proxy
        .connect("shop", "shop")
        .await
        .expect("connect to shardgate");
    let db = reference
        .primary
        .connect("shop")
        .await
        .expect("connect to the reference");

    let data = Data::new();
    let schema = shop_schema::schema_statements();
    let inserts = data.inserts();
    load(&sg, "through shardgate", &schema).await;
    load(&sg, "through shardgate", &inserts).await;
    load(&db, "reference", &schema).await;
    load(&db, "reference", &inserts).await;
    println!(
        "differential: servers up and data loaded in {:.1?}",
        started.elapsed()
    );

    // The same rows on both sides, and every shard holds some.
    for sql in querygen::TABLE_DUMPS {
        let q = Query {
            sql: sql.to_string(),
            params: Vec::new(),
            prepared: false,
            compare: Compare::Ordered,
            kind: "dump",
        };
        let (Answer::Rows(want), Answer::Rows(got)) = (run(&db, &q).await, run(&sg, &q).await)
        else {
            panic!("{sql}: could not read the table from both sides");
        };
        assert!(want.len() >= 25, "{sql}: {} rows", want.len());
        assert!(
            want == got,
            "{sql}: shardgate's rows differ from the reference's"
        );
    }
    check_decoder(&reference).await;
    for (k, shard) in clusters.iter().enumerate() {
        let c = shard
            .primary
            .connect("shop")
            .await
            .expect("direct to a shard");
        for table in ["users", "orders", "order_items", "inventory"] {
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .expect("count")
                .get(0);
            assert!(n > 0, "shard s{k} holds no {table}");
        }
    }

    let queries_started = Instant::now();
    let mut all = Tally::default();
    let mut by_group: BTreeMap<String, Tally> = BTreeMap::new();
    let mut refusals: BTreeMap<String, u64> = BTreeMap::new();
    let mut compared: BTreeMap<&str, u64> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    'seeds: for (seed, n) in [(FIXED_SEED, fixed_n), (random_seed, random_n)] {
        for index in 0..n {
            let qseed = querygen::query_seed(seed, index);
            let q = querygen::generate(qseed, &data);
            let want = run(&db, &q).await;
            let got = run(&sg, &q).await;
            let outcome = match (&want, &got) {
                (Answer::Rows(w), Answer::Rows(g)) if same(q.compare, w, g) => Outcome::Matched,
                (Answer::Rows(_), Answer::Error(code, msg)) if code == "0A000" => {
                    *refusals.entry(reason(msg)).or_default() += 1;
                    Outcome::Refused
                }
                (Answer::Error(a, _), Answer::Error(b, _)) if a == b => Outcome::BothFailed,
                (Answer::Error(..), _) => Outcome::BadQuery,
                _ => Outcome::Mismatch,
            };
            all.add(outcome);
            let protocol = if q.prepared { "prepared" } else { "simple" };
            for group in [
                format!("shape     {} / {protocol}", q.kind),
                format!("from      {}", querygen::source_label(qseed)),
            ] {
                by_group.entry(group).or_default().add(outcome);
            }
            if outcome == Outcome::Matched {
                *compared
                    .entry(match q.compare {
                        Compare::Ordered => "in order",
                        Compare::Multiset => "as multisets",
                        Compare::RowCount => "by row count",
                    })
                    .or_default() += 1;
            }
            if matches!(outcome, Outcome::Mismatch | Outcome::BadQuery) {
                let what = if outcome == Outcome::BadQuery {
                    "the reference failed: a bad generated query (fix the generator)"
                } else {
                    "MISMATCH"
                };
                let params: Vec<String> = q.params.iter().map(ToString::to_string).collect();
                failures.push(format!(
                    "{what}\n  seed {seed} query #{index} (query seed {qseed}), {} / {}, compared {:?}\n  \
                     sql: {}\n  params: [{}]\n  reference: {}\n  shardgate: {}",
                    q.kind,
                    if q.prepared { "prepared" } else { "simple" },
                    q.compare,
                    q.sql,
                    params.join(", "),
                    show(&want),
                    show(&got)
                ));
                if failures.len() >= MAX_MISMATCHES {
                    break 'seeds;
                }
            }
            if sg.is_closed() {
                sg = proxy
                    .connect("shop", "shop")
                    .await
                    .expect("reconnect to shardgate");
            }
        }
    }

    let mut out = format!(
        "\ndifferential summary (3 shards vs one Postgres; fixed seed {FIXED_SEED}, random seed \
         {random_seed}):\n  all       {}\n  mismatches {}\n  matched   ",
        all.line(),
        failures.len()
    );
    let cmp: Vec<String> = compared.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.push_str(&cmp.join(", "));
    out.push_str("\n  refusals (0A000) by reason:\n");
    let mut reasons: Vec<(&String, &u64)> = refusals.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (r, n) in reasons {
        let _ = writeln!(out, "    {n:5}  {r}");
    }
    for (g, t) in &by_group {
        let _ = writeln!(out, "  {g:<38} {}", t.line());
    }
    let _ = writeln!(
        out,
        "  time: {:.1?} for the queries, {:.1?} in all",
        queries_started.elapsed(),
        started.elapsed()
    );
    println!("{out}");
    if !failures.is_empty() {
        panic!(
            "{} failure(s) (seed {FIXED_SEED} is fixed; rerun the random part with \
             SHARDGATE_DIFF_SEED={random_seed}):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    assert_eq!(all.matched + all.refused + all.both_failed, all.total);
    if std::env::var_os("SHARDGATE_DIFF_QUERIES").is_none() {
        assert!(all.total >= 2000, "only {} queries ran", all.total);
    }
}
