//! Real clients through the proxy: tokio-postgres (simple and extended
//! protocol, text and binary values, COPY, cancel, LISTEN/NOTIFY), psql
//! (including its catalog commands), pgbench, TLS, and the login methods
//! the proxy uses towards Postgres (SCRAM, MD5, trust).
//!
//! Each test starts its own cluster and proxy. Related checks share one
//! cluster and run one after another; a failing check does not stop the
//! others: every failure is reported at the end with the proxy's log.

use std::error::Error as StdError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::Bytes;
use futures::{SinkExt, StreamExt, TryStreamExt};
use integration::wire::TextParam;
use integration::{config_for, pg_bin, run_cmd, Auth, Cluster, ClusterOptions, PgServer, Proxy};
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification, SimpleQueryMessage};

/// How long one step (a query, a login, a COPY) may take before the check
/// fails as hung.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Collects the outcome of named checks; [`finish`](Checks::finish) panics
/// with every failure and the end of the proxy's log.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn record(&mut self, name: &str, result: Result<()>) {
        match result {
            Ok(()) => eprintln!("ok: {name}"),
            Err(e) => {
                eprintln!("FAILED: {name}: {e:#}");
                self.failures.push(format!("{name}: {e:#}"));
            }
        }
    }

    fn finish(self, proxies: &[&Proxy]) {
        if self.failures.is_empty() {
            return;
        }
        let mut logs = String::new();
        for proxy in proxies {
            logs.push_str(&format!(
                "\n--- proxy on port {} (last 60 log lines):\n{}",
                proxy.port,
                tail(&proxy.log(), 60)
            ));
        }
        panic!(
            "{} check(s) failed:\n{}\n{logs}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A tokio-postgres error with its SQLSTATE and server message, if any.
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {}: {}{}",
            db.severity(),
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => match e.source() {
            Some(source) => format!("{e} ({source})"),
            None => e.to_string(),
        },
    }
}

/// Awaits a tokio-postgres call, at most [`STEP_TIMEOUT`].
async fn pg<T>(
    what: &str,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Err(_) => bail!("{what}: no answer within {STEP_TIMEOUT:?}"),
        Ok(Err(e)) => bail!("{what}: {}", pg_error(&e)),
        Ok(Ok(v)) => Ok(v),
    }
}

/// Awaits a tokio-postgres call that must fail with SQLSTATE `code`.
async fn pg_fails<T>(
    what: &str,
    code: &SqlState,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<()> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Err(_) => bail!("{what}: no answer within {STEP_TIMEOUT:?}"),
        Ok(Ok(_)) => bail!(
            "{what}: succeeded, expected an error with SQLSTATE {}",
            code.code()
        ),
        Ok(Err(e)) if e.code() == Some(code) => Ok(()),
        Ok(Err(e)) => bail!(
            "{what}: expected SQLSTATE {}, got {}",
            code.code(),
            pg_error(&e)
        ),
    }
}

/// Connects through the proxy as shop/shop, at most [`STEP_TIMEOUT`].
async fn connect(proxy: &Proxy) -> Result<Client> {
    tokio::time::timeout(STEP_TIMEOUT, proxy.connect("shop", "shop"))
        .await
        .map_err(|_| anyhow!("login through the proxy: no answer within {STEP_TIMEOUT:?}"))?
}

/// The rows of a simple-query answer, as text (None for NULL).
fn simple_rows(msgs: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The row counts of the CommandComplete messages of a simple-query answer.
fn command_counts(msgs: &[SimpleQueryMessage]) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// Text rows from string literals (`"~"` stands for NULL).
fn rows(expected: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    expected
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| (*v != "~").then(|| (*v).to_owned()))
                .collect()
        })
        .collect()
}

/// Runs a simple query and returns its single value (as text).
async fn scalar(client: &Client, sql: &str) -> Result<Option<String>> {
    let msgs = pg(sql, client.simple_query(sql)).await?;
    let rows = simple_rows(&msgs);
    ensure!(
        rows.len() == 1 && rows[0].len() == 1,
        "{sql}: expected one value, got {rows:?}"
    );
    Ok(rows[0][0].clone())
}

/// A directory under the temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(label: &str) -> Result<ScratchDir> {
        let path = std::env::temp_dir().join(format!(
            "shardgate-clients-{label}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(ScratchDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn output_text(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout), 40),
        tail(&String::from_utf8_lossy(&out.stderr), 40)
    )
}

/// Runs psql on connection string `conninfo` with `args` (`-X`, no psqlrc),
/// password `password`.
fn psql_conninfo(conninfo: &str, password: &str, args: &[&str]) -> Result<Output> {
    let psql = pg_bin("psql")?;
    let mut all = vec!["-X", "-d", conninfo];
    all.extend_from_slice(args);
    run_cmd(
        &psql,
        &all,
        &[("PGPASSWORD", password), ("PGCONNECT_TIMEOUT", "10")],
    )
}

fn proxy_conninfo(proxy: &Proxy, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=shop dbname=shop {extra}",
        proxy.port
    )
}

/// Runs psql through the proxy as shop and returns its stdout; an error
/// (with both outputs) unless it exits 0.
fn psql_ok(proxy: &Proxy, args: &[&str]) -> Result<String> {
    let mut all = vec!["-v", "ON_ERROR_STOP=1"];
    all.extend_from_slice(args);
    let out = psql_conninfo(&proxy_conninfo(proxy, ""), "shop", &all)?;
    ensure!(
        out.status.success(),
        "psql {args:?} failed: {}",
        output_text(&out)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------
// 1 + 2. tokio-postgres: simple and extended protocol, COPY
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_queries_and_copy() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster starts");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy starts");
    let mut checks = Checks::default();
    checks.record(
        "simple query protocol",
        simple_queries(&cluster, &proxy).await,
    );
    checks.record(
        "prepared statements, text and binary values",
        prepared_statements(&cluster, &proxy).await,
    );
    checks.record(
        "prepared statements reused, portals, errors",
        statement_reuse_and_errors(&proxy).await,
    );
    checks.record(
        "COPY FROM STDIN / TO STDOUT",
        copy_in_and_out(&cluster, &proxy).await,
    );
    checks.record("binary COPY", binary_copy(&cluster, &proxy).await);
    eprintln!(
        "tokio_postgres_queries_and_copy took {:?}",
        started.elapsed()
    );
    checks.finish(&[&proxy]);
}

async fn simple_queries(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    let client = connect(proxy).await?;

    let sql = "SELECT 1 AS one, 'two' AS two, NULL AS three";
    let msgs = pg(sql, client.simple_query(sql)).await?;
    ensure!(
        simple_rows(&msgs) == rows(&[&["1", "two", "~"]]),
        "{sql}: got {:?}",
        simple_rows(&msgs)
    );

    let sql = "SELECT 1; SELECT 2, 3; SELECT g FROM generate_series(1, 3) g";
    let msgs = pg(sql, client.simple_query(sql)).await?;
    ensure!(
        simple_rows(&msgs) == rows(&[&["1"], &["2", "3"], &["1"], &["2"], &["3"]]),
        "{sql}: got {:?}",
        simple_rows(&msgs)
    );
    ensure!(
        command_counts(&msgs) == [1, 1, 3],
        "{sql}: command counts {:?}",
        command_counts(&msgs)
    );

    // Writes and a read in one Query message: all of it on the primary.
    let sql = "CREATE TABLE simple_t (id int PRIMARY KEY, v text); \
               INSERT INTO simple_t VALUES (1, 'a'), (2, NULL); \
               UPDATE simple_t SET v = 'b' WHERE id = 2; \
               SELECT id, v, pg_is_in_recovery() FROM simple_t ORDER BY id";
    let msgs = pg("multi-statement write", client.simple_query(sql)).await?;
    ensure!(
        command_counts(&msgs) == [0, 2, 1, 2],
        "multi-statement write: command counts {:?}",
        command_counts(&msgs)
    );
    ensure!(
        simple_rows(&msgs) == rows(&[&["1", "a", "f"], &["2", "b", "f"]]),
        "multi-statement write: rows {:?}",
        simple_rows(&msgs)
    );

    // Read your own write on the primary, by hint and in a transaction.
    let v = scalar(
        &client,
        "/* shardgate: primary */ SELECT v FROM simple_t WHERE id = 2",
    )
    .await?;
    ensure!(v.as_deref() == Some("b"), "hinted read: {v:?}");
    pg("BEGIN", client.batch_execute("BEGIN")).await?;
    let in_tx = scalar(
        &client,
        "SELECT v || ':' || pg_is_in_recovery() FROM simple_t WHERE id = 1",
    )
    .await?;
    pg("COMMIT", client.batch_execute("COMMIT")).await?;
    ensure!(
        in_tx.as_deref() == Some("a:false"),
        "read in a transaction: {in_tx:?}"
    );

    // A plain read goes to the replica once it has caught up.
    cluster.wait_replicated().await?;
    let sql = "SELECT count(*), string_agg(v, ',' ORDER BY id), pg_is_in_recovery() FROM simple_t";
    let msgs = pg(sql, client.simple_query(sql)).await?;
    ensure!(
        simple_rows(&msgs) == rows(&[&["2", "a,b", "t"]]),
        "{sql}: got {:?}",
        simple_rows(&msgs)
    );

    // An error in the middle of a multi-statement query stops it; the
    // session goes on.
    pg_fails(
        "SELECT 1; SELECT 1/0; SELECT 3",
        &SqlState::DIVISION_BY_ZERO,
        client.simple_query("SELECT 1; SELECT 1/0; SELECT 3"),
    )
    .await?;
    let v = scalar(&client, "SELECT 'still here'").await?;
    ensure!(v.as_deref() == Some("still here"), "after an error: {v:?}");

    // An empty query and a batch.
    let msgs = pg("empty query", client.simple_query("")).await?;
    ensure!(simple_rows(&msgs).is_empty(), "empty query returned rows");
    pg(
        "batch_execute",
        client.batch_execute(
            "INSERT INTO simple_t VALUES (3, 'c'); INSERT INTO simple_t VALUES (4, 'd')",
        ),
    )
    .await?;
    let n = scalar(
        &client,
        "/* shardgate: primary */ SELECT count(*) FROM simple_t",
    )
    .await?;
    ensure!(n.as_deref() == Some("4"), "after batch: count {n:?}");
    Ok(())
}

const TYPED_COLUMNS: &str = "i4, i8, t, f8, b, bin, ts, n::text";

/// The values of one `typed_t` row as read with tokio-postgres (binary).
#[derive(Debug, PartialEq)]
struct Typed {
    i4: Option<i32>,
    i8: Option<i64>,
    t: Option<String>,
    f8: Option<f64>,
    b: Option<bool>,
    bin: Option<Vec<u8>>,
    ts: Option<SystemTime>,
    n: Option<String>,
}

impl Typed {
    /// Reads the 8 columns of [`TYPED_COLUMNS`] starting at `first`.
    fn from_row(row: &tokio_postgres::Row, first: usize) -> Result<Typed> {
        Ok(Typed {
            i4: row.try_get(first)?,
            i8: row.try_get(first + 1)?,
            t: row.try_get(first + 2)?,
            f8: row.try_get(first + 3)?,
            b: row.try_get(first + 4)?,
            bin: row.try_get(first + 5)?,
            ts: row.try_get(first + 6)?,
            n: row.try_get(first + 7)?,
        })
    }
}

async fn prepared_statements(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    let mut client = connect(proxy).await?;
    pg(
        "CREATE TABLE typed_t",
        client.batch_execute(
            "CREATE TABLE typed_t (id serial PRIMARY KEY, i4 int4, i8 int8, t text, \
             f8 float8, b bool, bin bytea, ts timestamp, n numeric(20, 5))",
        ),
    )
    .await?;

    // A prepared write with binary parameters, RETURNING binary results.
    let insert = pg(
        "prepare INSERT",
        client.prepare(&format!(
            "INSERT INTO typed_t (i4, i8, t, f8, b, bin, ts, n) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::numeric) \
             RETURNING id, {TYPED_COLUMNS}"
        )),
    )
    .await?;
    let full = Typed {
        i4: Some(-42),
        i8: Some(i64::MAX - 1),
        t: Some("héllo, wörld 'quoted' \\ \"dq\" \u{1F600}".to_owned()),
        f8: Some(3.25),
        b: Some(true),
        bin: Some((0..=255u8).collect()),
        ts: Some(UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456)),
        n: Some("12345.67890".to_owned()),
    };
    let row = pg(
        "INSERT … RETURNING (values)",
        client.query_one(
            &insert,
            &[
                &full.i4, &full.i8, &full.t, &full.f8, &full.b, &full.bin, &full.ts, &full.n,
            ],
        ),
    )
    .await?;
    let full_id: i32 = row.try_get(0)?;
    let returned = Typed::from_row(&row, 1)?;
    ensure!(
        returned == full,
        "INSERT RETURNING gave {returned:?}, sent {full:?}"
    );

    let nulls = Typed {
        i4: None,
        i8: None,
        t: None,
        f8: None,
        b: None,
        bin: None,
        ts: None,
        n: None,
    };
    let row = pg(
        "INSERT … RETURNING (NULLs)",
        client.query_one(
            &insert,
            &[
                &nulls.i4, &nulls.i8, &nulls.t, &nulls.f8, &nulls.b, &nulls.bin, &nulls.ts,
                &nulls.n,
            ],
        ),
    )
    .await?;
    let null_id: i32 = row.try_get(0)?;
    let returned = Typed::from_row(&row, 1)?;
    ensure!(
        returned == nulls,
        "INSERT RETURNING NULLs gave {returned:?}"
    );

    // Read back on the primary: by hint, then in a transaction.
    let by_id_primary = pg(
        "prepare hinted SELECT",
        client.prepare(&format!(
            "/* shardgate: primary */ SELECT {TYPED_COLUMNS}, pg_is_in_recovery() \
             FROM typed_t WHERE id = $1"
        )),
    )
    .await?;
    for (id, expected) in [(full_id, &full), (null_id, &nulls)] {
        let row = pg("hinted read back", client.query_one(&by_id_primary, &[&id])).await?;
        let got = Typed::from_row(&row, 0)?;
        ensure!(&got == expected, "hinted read of id {id}: {got:?}");
        ensure!(
            !row.try_get::<_, bool>(8)?,
            "the hinted read ran on a replica"
        );
    }
    // Prepared inside a transaction (so on the primary, where the table
    // already exists); reused outside it below, on the replica, where the
    // proxy has to prepare it again by itself.
    let by_id;
    {
        let tx = pg("BEGIN", client.transaction()).await?;
        by_id = pg(
            "prepare SELECT in a transaction",
            tx.prepare(&format!(
                "SELECT {TYPED_COLUMNS}, pg_is_in_recovery() FROM typed_t WHERE id = $1"
            )),
        )
        .await?;
        let row = pg(
            "read back in a transaction",
            tx.query_one(&by_id, &[&full_id]),
        )
        .await?;
        let got = Typed::from_row(&row, 0)?;
        ensure!(got == full, "read in a transaction: {got:?}");
        ensure!(
            !row.try_get::<_, bool>(8)?,
            "the transaction ran on a replica"
        );
        pg("COMMIT", tx.commit()).await?;
    }

    // And from the replica once it has caught up.
    cluster.wait_replicated().await?;
    for (id, expected) in [(full_id, &full), (null_id, &nulls)] {
        let row = pg("replica read back", client.query_one(&by_id, &[&id])).await?;
        let got = Typed::from_row(&row, 0)?;
        ensure!(&got == expected, "replica read of id {id}: {got:?}");
        ensure!(
            row.try_get::<_, bool>(8)?,
            "a read outside a transaction did not run on a replica"
        );
    }

    // Parameters in text format (and mixed with binary ones in one Bind).
    let row = pg(
        "text parameters",
        client.query_one(
            "SELECT $1::int4 * 2, $2::text || '!', $3::float8 + 0.5, $4::bool, \
             $5::int8, $6::numeric::text, $7::int4 + $8::int4",
            &[
                &TextParam("21"),
                &TextParam("hi"),
                &TextParam("1.5"),
                &TextParam("true"),
                &TextParam("9000000000"),
                &TextParam("1.50"),
                &TextParam("40"),
                &2i32,
            ],
        ),
    )
    .await?;
    ensure!(row.try_get::<_, i32>(0)? == 42, "text int4 param");
    ensure!(row.try_get::<_, String>(1)? == "hi!", "text text param");
    ensure!(row.try_get::<_, f64>(2)? == 2.0, "text float8 param");
    ensure!(row.try_get::<_, bool>(3)?, "text bool param");
    ensure!(
        row.try_get::<_, i64>(4)? == 9_000_000_000,
        "text int8 param"
    );
    ensure!(row.try_get::<_, String>(5)? == "1.50", "text numeric param");
    ensure!(
        row.try_get::<_, i32>(6)? == 42,
        "mixed text and binary params"
    );

    // A prepared write with text parameters for every type, read back binary.
    let row = pg(
        "INSERT with text parameters",
        client.query_one(
            "INSERT INTO typed_t (i4, i8, t, f8, b, bin, ts, n) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &TextParam("-7"),
                &TextParam("-9000000000"),
                &TextParam("plain text"),
                &TextParam("-0.125"),
                &TextParam("false"),
                &TextParam("\\x00ff10"),
                &TextParam("2024-02-29 23:59:58.654321"),
                &TextParam("-0.00001"),
            ],
        ),
    )
    .await?;
    let text_id: i32 = row.try_get(0)?;
    let row = pg(
        "read back text-param row",
        client.query_one(&by_id_primary, &[&text_id]),
    )
    .await?;
    let got = Typed::from_row(&row, 0)?;
    let expected = Typed {
        i4: Some(-7),
        i8: Some(-9_000_000_000),
        t: Some("plain text".to_owned()),
        f8: Some(-0.125),
        b: Some(false),
        bin: Some(vec![0x00, 0xff, 0x10]),
        // 2024-02-29 23:59:58.654321 UTC
        ts: Some(UNIX_EPOCH + Duration::from_micros(1_709_251_198_654_321)),
        n: Some("-0.00001".to_owned()),
    };
    ensure!(got == expected, "text-param row read back as {got:?}");

    // The unnamed statement in one round trip (Parse/Bind/Execute/Sync).
    let rows = pg(
        "query_typed",
        client.query_typed(
            "SELECT $1::int8 * 2, $2::text",
            &[(&21i64, Type::INT8), (&"typed", Type::TEXT)],
        ),
    )
    .await?;
    ensure!(
        rows.len() == 1
            && rows[0].try_get::<_, i64>(0)? == 42
            && rows[0].try_get::<_, String>(1)? == "typed",
        "query_typed gave {rows:?}"
    );
    Ok(())
}

async fn statement_reuse_and_errors(proxy: &Proxy) -> Result<()> {
    let mut client = connect(proxy).await?;
    pg(
        "CREATE TABLE reuse_t",
        client.batch_execute("CREATE TABLE reuse_t (id serial PRIMARY KEY, k int4, v text)"),
    )
    .await?;

    // One read statement, many executions, in and out of transactions (so
    // on the replica and on the primary).
    let stmt = pg(
        "prepare reused SELECT",
        client.prepare("SELECT $1::int4 + 1, $2::text || 'x', pg_is_in_recovery()"),
    )
    .await?;
    for i in 0..300i32 {
        let in_tx = i % 50 == 7;
        if in_tx {
            pg("BEGIN", client.batch_execute("BEGIN")).await?;
        }
        let row = pg(
            "reused SELECT",
            client.query_one(&stmt, &[&i, &i.to_string()]),
        )
        .await
        .with_context(|| format!("execution #{i}"))?;
        if in_tx {
            pg("COMMIT", client.batch_execute("COMMIT")).await?;
        }
        let (a, b, recovery): (i32, String, bool) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        ensure!(
            a == i + 1 && b == format!("{i}x"),
            "execution #{i}: got ({a}, {b:?})"
        );
        ensure!(
            recovery != in_tx,
            "execution #{i} (in a transaction: {in_tx}) ran with pg_is_in_recovery() = {recovery}"
        );
    }

    // One write statement, many executions.
    let insert = pg(
        "prepare reused INSERT",
        client.prepare("INSERT INTO reuse_t (k, v) VALUES ($1, $2) RETURNING id, k"),
    )
    .await?;
    for i in 0..200i32 {
        let row = pg(
            "reused INSERT",
            client.query_one(&insert, &[&i, &format!("bulk {i}")]),
        )
        .await
        .with_context(|| format!("insert #{i}"))?;
        ensure!(
            row.try_get::<_, i32>(1)? == i,
            "insert #{i} returned {row:?}"
        );
    }
    let n = scalar(
        &client,
        "/* shardgate: primary */ SELECT count(*) FROM reuse_t WHERE v LIKE 'bulk %'",
    )
    .await?;
    ensure!(n.as_deref() == Some("200"), "reused INSERT: count {n:?}");

    // Many statements prepared and closed (tokio-postgres closes a
    // statement when it is dropped).
    for i in 0..60 {
        let s = pg(
            "prepare throwaway",
            client.prepare(&format!("SELECT {i} + $1::int4")),
        )
        .await?;
        let row = pg("throwaway", client.query_one(&s, &[&1i32])).await?;
        ensure!(row.try_get::<_, i32>(0)? == i + 1, "throwaway #{i}");
    }
    // The long-lived statement still works after all that.
    let row = pg(
        "reused SELECT again",
        client.query_one(&stmt, &[&1i32, &"y"]),
    )
    .await?;
    ensure!(row.try_get::<_, i32>(0)? == 2, "reused SELECT again");

    // A portal read in pieces (Execute with a row limit, PortalSuspended).
    {
        let tx = pg("BEGIN", client.transaction()).await?;
        let s = pg(
            "prepare portal query",
            tx.prepare("SELECT g FROM generate_series(1, 25) g"),
        )
        .await?;
        let portal = pg("bind portal", tx.bind(&s, &[])).await?;
        let mut got = Vec::new();
        for _ in 0..10 {
            let rows = pg("query_portal", tx.query_portal(&portal, 10)).await?;
            let n = rows.len();
            for r in rows {
                got.push(r.try_get::<_, i32>(0)?);
            }
            if n < 10 {
                break;
            }
        }
        ensure!(
            got == (1..=25).collect::<Vec<_>>(),
            "portal read in pieces gave {got:?}"
        );
        pg("COMMIT", tx.commit()).await?;
    }

    // Errors in the extended protocol; the session recovers.
    pg_fails(
        "SELECT 1 / $1 with 0",
        &SqlState::DIVISION_BY_ZERO,
        client.query_one("SELECT 1 / $1::int4", &[&0i32]),
    )
    .await?;
    pg_fails(
        "prepare a syntax error",
        &SqlState::SYNTAX_ERROR,
        client.prepare("SELEC 1"),
    )
    .await?;
    pg_fails(
        "prepare an unknown table",
        &SqlState::UNDEFINED_TABLE,
        client.prepare("SELECT * FROM no_such_table WHERE id = $1"),
    )
    .await?;
    let row = pg(
        "SELECT after errors",
        client.query_one(&stmt, &[&5i32, &"z"]),
    )
    .await?;
    ensure!(row.try_get::<_, i32>(0)? == 6, "SELECT after errors");

    // An error inside a transaction aborts it until ROLLBACK.
    pg("BEGIN", client.batch_execute("BEGIN")).await?;
    pg_fails(
        "error in a transaction",
        &SqlState::DIVISION_BY_ZERO,
        client.query_one("SELECT 1 / $1::int4", &[&0i32]),
    )
    .await?;
    pg_fails(
        "statement in a failed transaction",
        &SqlState::IN_FAILED_SQL_TRANSACTION,
        client.query_one(&stmt, &[&1i32, &"a"]),
    )
    .await?;
    pg("ROLLBACK", client.batch_execute("ROLLBACK")).await?;
    let row = pg(
        "SELECT after ROLLBACK",
        client.query_one(&stmt, &[&8i32, &"w"]),
    )
    .await?;
    ensure!(
        row.try_get::<_, i32>(0)? == 9 && row.try_get::<_, bool>(2)?,
        "after ROLLBACK: {row:?}"
    );
    Ok(())
}

/// One line of `copy_t` in COPY text format.
fn copy_line(id: i64) -> String {
    let note = if id % 7 == 0 {
        "\\N".to_owned()
    } else {
        format!("note-{id}")
    };
    format!("{id}\tnäme {id} with a\\ttab and a \\\\ backslash\t{note}\n")
}

async fn copy_in_and_out(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    let mut client = connect(proxy).await?;
    pg(
        "CREATE TABLE copy_t",
        client.batch_execute("CREATE TABLE copy_t (id int8 PRIMARY KEY, name text, note text)"),
    )
    .await?;

    // 10,000 rows in 10 CopyData chunks.
    let sink = pg(
        "COPY FROM STDIN",
        client.copy_in("COPY copy_t (id, name, note) FROM STDIN"),
    )
    .await?;
    futures::pin_mut!(sink);
    let mut expected = String::new();
    for chunk in 0..10i64 {
        let mut buf = String::new();
        for id in chunk * 1000 + 1..=(chunk + 1) * 1000 {
            buf.push_str(&copy_line(id));
        }
        expected.push_str(&buf);
        pg("sending CopyData", sink.send(Bytes::from(buf))).await?;
    }
    let n = pg("finishing COPY FROM STDIN", sink.as_mut().finish()).await?;
    ensure!(n == 10_000, "COPY FROM STDIN reported {n} rows");

    let sql = "/* shardgate: primary */ SELECT count(*), count(note), sum(id) FROM copy_t";
    let msgs = pg(sql, client.simple_query(sql)).await?;
    ensure!(
        simple_rows(&msgs) == rows(&[&["10000", "8572", "50005000"]]),
        "after COPY: {:?}",
        simple_rows(&msgs)
    );

    // COPY TO STDOUT in a transaction (on the primary): same rows.
    {
        let tx = pg("BEGIN", client.transaction()).await?;
        let stream = pg(
            "COPY copy_t TO STDOUT",
            tx.copy_out("COPY copy_t TO STDOUT"),
        )
        .await?;
        let chunks: Vec<Bytes> = pg("reading COPY TO STDOUT", stream.try_collect()).await?;
        let text = String::from_utf8(chunks.concat()).context("COPY output is not UTF-8")?;
        let mut got: Vec<&str> = text.lines().collect();
        let mut want: Vec<&str> = expected.lines().collect();
        got.sort_unstable();
        want.sort_unstable();
        ensure!(
            got.len() == 10_000 && got == want,
            "COPY TO STDOUT in a transaction: {} lines, differing from what was copied in (first: {:?})",
            got.len(),
            got.first()
        );
        pg("COMMIT", tx.commit()).await?;
    }

    // COPY (SELECT … ORDER BY) TO STDOUT from the replica: byte for byte.
    cluster.wait_replicated().await?;
    let stream = pg(
        "COPY (SELECT …) TO STDOUT",
        client.copy_out("COPY (SELECT id, name, note FROM copy_t ORDER BY id) TO STDOUT"),
    )
    .await?;
    let chunks: Vec<Bytes> = pg("reading COPY (SELECT …) TO STDOUT", stream.try_collect()).await?;
    let got = chunks.concat();
    ensure!(
        got == expected.as_bytes(),
        "COPY (SELECT …) TO STDOUT: {} bytes, expected {} (first line {:?})",
        got.len(),
        expected.len(),
        String::from_utf8_lossy(&got).lines().next()
    );

    let stream = pg(
        "COPY … CSV HEADER",
        client.copy_out(
            "COPY (SELECT 1 AS a, 'x,y' AS b, NULL AS c) TO STDOUT WITH (FORMAT csv, HEADER)",
        ),
    )
    .await?;
    let chunks: Vec<Bytes> = pg("reading CSV COPY", stream.try_collect()).await?;
    let got = String::from_utf8_lossy(&chunks.concat()).into_owned();
    ensure!(got == "a,b,c\n1,\"x,y\",\n", "CSV COPY gave {got:?}");

    // An empty COPY FROM STDIN.
    let sink = pg(
        "empty COPY FROM STDIN",
        client.copy_in::<_, Bytes>("COPY copy_t (id, name, note) FROM STDIN"),
    )
    .await?;
    futures::pin_mut!(sink);
    let n = pg("finishing empty COPY", sink.as_mut().finish()).await?;
    ensure!(n == 0, "empty COPY reported {n} rows");

    // Bad data: the server refuses the COPY, the session goes on.
    let sink = pg(
        "bad COPY FROM STDIN",
        client.copy_in("COPY copy_t (id, name, note) FROM STDIN"),
    )
    .await?;
    futures::pin_mut!(sink);
    let sent = tokio::time::timeout(
        STEP_TIMEOUT,
        sink.send(Bytes::from_static(b"20001\tok\tok\nnot-a-number\tx\ty\n")),
    )
    .await
    .map_err(|_| anyhow!("sending bad CopyData: no answer within {STEP_TIMEOUT:?}"))?;
    let result = match sent {
        Err(e) => Err(e),
        Ok(()) => tokio::time::timeout(STEP_TIMEOUT, sink.as_mut().finish())
            .await
            .map_err(|_| anyhow!("finishing bad COPY: no answer within {STEP_TIMEOUT:?}"))?,
    };
    match result {
        Ok(n) => bail!("COPY with a bad row succeeded ({n} rows)"),
        Err(e) if e.code() == Some(&SqlState::INVALID_TEXT_REPRESENTATION) => {}
        Err(e) => bail!("COPY with a bad row: expected 22P02, got {}", pg_error(&e)),
    }
    let n = scalar(
        &client,
        "/* shardgate: primary */ SELECT count(*) FROM copy_t",
    )
    .await?;
    ensure!(
        n.as_deref() == Some("10000"),
        "after the refused COPY: count {n:?}"
    );
    Ok(())
}

async fn binary_copy(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    let client = connect(proxy).await?;
    pg(
        "CREATE TABLE copy_bin",
        client.batch_execute("CREATE TABLE copy_bin (id int8, data bytea, label text)"),
    )
    .await?;
    let sink = pg(
        "COPY … FROM STDIN (FORMAT binary)",
        client.copy_in("COPY copy_bin (id, data, label) FROM STDIN (FORMAT binary)"),
    )
    .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::BYTEA, Type::TEXT]);
    futures::pin_mut!(writer);
    let data = |id: i64| -> Vec<u8> { (0..(id % 64) as u8).map(|b| b ^ 0xa5).collect() };
    for id in 0..2000i64 {
        let label = (id % 5 != 0).then(|| format!("label {id}"));
        pg(
            "binary CopyData",
            writer.as_mut().write(&[&id, &data(id), &label]),
        )
        .await?;
    }
    let n = pg("finishing binary COPY", writer.as_mut().finish()).await?;
    ensure!(n == 2000, "binary COPY FROM STDIN reported {n} rows");

    cluster.wait_replicated().await?;
    let stream = pg(
        "COPY … TO STDOUT (FORMAT binary)",
        client.copy_out(
            "COPY (SELECT id, data, label FROM copy_bin ORDER BY id) TO STDOUT (FORMAT binary)",
        ),
    )
    .await?;
    let rows = BinaryCopyOutStream::new(stream, &[Type::INT8, Type::BYTEA, Type::TEXT]);
    let rows: Vec<_> = pg("reading binary COPY", rows.try_collect()).await?;
    ensure!(
        rows.len() == 2000,
        "binary COPY TO STDOUT: {} rows",
        rows.len()
    );
    for (i, row) in rows.iter().enumerate() {
        let id = i as i64;
        let (got_id, got_data, got_label): (i64, Vec<u8>, Option<String>) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        ensure!(
            got_id == id
                && got_data == data(id)
                && got_label == (id % 5 != 0).then(|| format!("label {id}")),
            "binary COPY row {i}: ({got_id}, {got_data:?}, {got_label:?})"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// 3 + 4. Cancel and LISTEN/NOTIFY
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_listen_notify() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster starts");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy starts");
    let mut checks = Checks::default();
    checks.record(
        "cancel a read on the replica (simple protocol)",
        cancel_on_replica(&cluster, &proxy).await,
    );
    checks.record(
        "cancel in a transaction on the primary (extended protocol)",
        cancel_in_transaction(&cluster, &proxy).await,
    );
    checks.record(
        "cancel while idle is harmless",
        cancel_while_idle(&proxy).await,
    );
    checks.record("LISTEN/NOTIFY", listen_notify(&proxy).await);
    eprintln!("cancel_and_listen_notify took {:?}", started.elapsed());
    checks.finish(&[&proxy]);
}

/// Waits until a query containing `marker` is active on one of the
/// cluster's servers; returns that server's port.
async fn wait_active(cluster: &Cluster, marker: &str) -> Result<u16> {
    let mut monitors: Vec<(&PgServer, Client)> = Vec::new();
    for server in cluster.all_servers() {
        monitors.push((server, server.connect("postgres").await?));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for (server, monitor) in &monitors {
            let n: i64 = monitor
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE state = 'active' AND pid <> pg_backend_pid() \
                     AND strpos(query, $1) > 0",
                    &[&marker],
                )
                .await?
                .get(0);
            if n > 0 {
                return Ok(server.port);
            }
        }
        if Instant::now() > deadline {
            bail!("no server ran a query containing {marker:?} within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn cancel_on_replica(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    let a = connect(proxy).await?;
    let b = connect(proxy).await?;
    let token = a.cancel_token();
    let a_sql = "/* cancel-a */ SELECT pg_sleep(30)";
    let b_sql = "/* cancel-b */ SELECT pg_sleep(5)";
    let started = Instant::now();
    let canceller = async {
        let a_port = wait_active(cluster, "cancel-a").await?;
        let b_port = wait_active(cluster, "cancel-b").await?;
        token
            .cancel_query(NoTls)
            .await
            .map_err(|e| anyhow!("sending the cancel request: {}", pg_error(&e)))?;
        Ok::<_, anyhow::Error>((a_port, b_port, started.elapsed()))
    };
    let (a_res, b_res, cancelled) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(45), a.simple_query(a_sql)),
        tokio::time::timeout(Duration::from_secs(45), b.simple_query(b_sql)),
        canceller
    );
    let (a_port, b_port, cancelled_at) = cancelled?;
    let replica_ports: Vec<u16> = cluster.replicas.iter().map(|r| r.port).collect();
    ensure!(
        replica_ports.contains(&a_port) && replica_ports.contains(&b_port),
        "the reads did not run on a replica (ports {a_port}, {b_port}; replicas {replica_ports:?})"
    );
    let elapsed = started.elapsed();
    match a_res {
        Err(_) => bail!("{a_sql}: no answer within 45 s after the cancel request"),
        Ok(Ok(_)) => bail!(
            "{a_sql} was not cancelled: it completed normally after {elapsed:?} \
             (cancel request sent after {cancelled_at:?})"
        ),
        Ok(Err(e)) if e.code() == Some(&SqlState::QUERY_CANCELED) => {}
        Ok(Err(e)) => bail!(
            "{a_sql}: expected SQLSTATE 57014 after the cancel, got {} after {elapsed:?}",
            pg_error(&e)
        ),
    }
    ensure!(
        elapsed < Duration::from_secs(10),
        "the cancelled query took {elapsed:?} (cancel request sent after {cancelled_at:?})"
    );
    match b_res {
        Err(_) => bail!("{b_sql}: no answer within 45 s"),
        Ok(Err(e)) => bail!(
            "another client's {b_sql} failed (the cancel hit the wrong session?): {}",
            pg_error(&e)
        ),
        Ok(Ok(_)) => {}
    }
    let v = scalar(&a, "SELECT 1")
        .await
        .context("the cancelled client")?;
    ensure!(
        v.as_deref() == Some("1"),
        "SELECT 1 after the cancel: {v:?}"
    );
    Ok(())
}

async fn cancel_in_transaction(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    let client = connect(proxy).await?;
    let token = client.cancel_token();
    pg("BEGIN", client.batch_execute("BEGIN")).await?;
    let sql = "/* cancel-tx */ SELECT pg_sleep($1)";
    let started = Instant::now();
    let canceller = async {
        let port = wait_active(cluster, "cancel-tx").await?;
        token
            .cancel_query(NoTls)
            .await
            .map_err(|e| anyhow!("sending the cancel request: {}", pg_error(&e)))?;
        Ok::<_, anyhow::Error>((port, started.elapsed()))
    };
    let (res, cancelled) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(45), client.query(sql, &[&30f64])),
        canceller
    );
    let (port, cancelled_at) = cancelled?;
    ensure!(
        port == cluster.primary.port,
        "the transaction did not run on the primary (port {port})"
    );
    let elapsed = started.elapsed();
    match res {
        Err(_) => bail!("{sql}: no answer within 45 s after the cancel request"),
        Ok(Ok(_)) => bail!(
            "{sql} was not cancelled: it completed normally after {elapsed:?} \
             (cancel request sent after {cancelled_at:?})"
        ),
        Ok(Err(e)) if e.code() == Some(&SqlState::QUERY_CANCELED) => {}
        Ok(Err(e)) => bail!(
            "{sql}: expected SQLSTATE 57014 after the cancel, got {} after {elapsed:?}",
            pg_error(&e)
        ),
    }
    ensure!(
        elapsed < Duration::from_secs(10),
        "the cancelled query took {elapsed:?}"
    );
    pg_fails(
        "a statement in the cancelled transaction",
        &SqlState::IN_FAILED_SQL_TRANSACTION,
        client.simple_query("SELECT 1"),
    )
    .await?;
    pg("ROLLBACK", client.batch_execute("ROLLBACK")).await?;
    let v = scalar(&client, "SELECT pg_is_in_recovery()").await?;
    ensure!(
        v.as_deref() == Some("t"),
        "after ROLLBACK a read ran with pg_is_in_recovery() = {v:?}"
    );
    Ok(())
}

async fn cancel_while_idle(proxy: &Proxy) -> Result<()> {
    let client = connect(proxy).await?;
    scalar(&client, "SELECT 1").await?;
    client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .map_err(|e| anyhow!("sending the cancel request: {}", pg_error(&e)))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = scalar(&client, "SELECT 'not cancelled' FROM pg_sleep(0.5)").await?;
    ensure!(
        v.as_deref() == Some("not cancelled"),
        "after an idle cancel: {v:?}"
    );
    Ok(())
}

/// Waits up to `timeout` for the next notification.
async fn next_notification(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notification>,
    timeout: Duration,
) -> Option<Notification> {
    tokio::time::timeout(timeout, rx.recv())
        .await
        .ok()
        .flatten()
}

async fn expect_notification(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Notification>,
    listener: &Client,
    what: &str,
    channel: &str,
    payload: &str,
) -> Result<()> {
    match next_notification(rx, Duration::from_secs(5)).await {
        Some(n) => {
            ensure!(
                n.channel() == channel && n.payload() == payload,
                "{what}: got channel {:?} payload {:?}, expected {channel:?} {payload:?}",
                n.channel(),
                n.payload()
            );
            Ok(())
        }
        None => {
            // Diagnose: does it arrive once the listener sends something?
            let _ = pg(
                "diagnostic query on the listener",
                listener.simple_query("/* shardgate: primary */ SELECT 1"),
            )
            .await;
            match next_notification(rx, Duration::from_secs(2)).await {
                Some(n) => bail!(
                    "{what}: the idle listener got nothing within 5 s; the notification \
                     ({:?}, {:?}) arrived only after it sent a query to the primary",
                    n.channel(),
                    n.payload()
                ),
                None => bail!(
                    "{what}: the listener never got it (not while idle for 5 s, not after \
                     sending a query)"
                ),
            }
        }
    }
}

async fn listen_notify(proxy: &Proxy) -> Result<()> {
    let (listener, mut connection) = tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_postgres::connect(&proxy.conn_str("shop", "shop"), NoTls),
    )
    .await
    .map_err(|_| anyhow!("connecting the listener: no answer within {STEP_TIMEOUT:?}"))?
    .map_err(|e| anyhow!("connecting the listener: {}", pg_error(&e)))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("listener connection failed: {}", pg_error(&e));
                    break;
                }
            }
        }
    });
    let result = async {
        let notifier = connect(proxy).await?;
        pg("LISTEN ch", listener.batch_execute("LISTEN ch")).await?;

        pg(
            "NOTIFY ch, 'hello'",
            notifier.batch_execute("NOTIFY ch, 'hello'"),
        )
        .await?;
        expect_notification(&mut rx, &listener, "NOTIFY", "ch", "hello").await?;

        // The listener runs a read (on a replica) meanwhile: its LISTEN
        // must survive that.
        let v = scalar(&listener, "SELECT pg_is_in_recovery()").await?;
        ensure!(v.as_deref() == Some("t"), "listener's read: {v:?}");
        pg(
            "SELECT pg_notify('ch', 'second')",
            notifier.simple_query("SELECT pg_notify('ch', 'second')"),
        )
        .await?;
        expect_notification(&mut rx, &listener, "pg_notify()", "ch", "second").await?;

        // A notification sent in a transaction arrives at COMMIT.
        pg("BEGIN", notifier.batch_execute("BEGIN")).await?;
        pg(
            "NOTIFY in a transaction",
            notifier.batch_execute("NOTIFY ch, 'in-tx'"),
        )
        .await?;
        if let Some(n) = next_notification(&mut rx, Duration::from_millis(500)).await {
            bail!(
                "a notification arrived before COMMIT: {:?} {:?}",
                n.channel(),
                n.payload()
            );
        }
        pg("COMMIT", notifier.batch_execute("COMMIT")).await?;
        expect_notification(&mut rx, &listener, "NOTIFY at COMMIT", "ch", "in-tx").await?;

        // Quoted channel names and payloads with quotes and non-ASCII text.
        pg(
            "LISTEN \"Mixed Case\"",
            listener.batch_execute("LISTEN \"Mixed Case\""),
        )
        .await?;
        pg(
            "NOTIFY \"Mixed Case\"",
            notifier.batch_execute("NOTIFY \"Mixed Case\", 'it''s ünïcode'"),
        )
        .await?;
        expect_notification(
            &mut rx,
            &listener,
            "quoted channel",
            "Mixed Case",
            "it's ünïcode",
        )
        .await?;

        // After UNLISTEN nothing more arrives.
        pg("UNLISTEN *", listener.batch_execute("UNLISTEN *")).await?;
        pg(
            "NOTIFY after UNLISTEN",
            notifier.batch_execute("NOTIFY ch, 'after'"),
        )
        .await?;
        if let Some(n) = next_notification(&mut rx, Duration::from_secs(1)).await {
            bail!(
                "a notification arrived after UNLISTEN *: {:?} {:?}",
                n.channel(),
                n.payload()
            );
        }
        let v = scalar(&listener, "SELECT 'listener alive'").await?;
        ensure!(v.as_deref() == Some("listener alive"), "listener: {v:?}");
        Ok(())
    }
    .await;
    drop(listener);
    driver.abort();
    result
}

// ---------------------------------------------------------------------------
// 5 + 6. psql and pgbench
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_and_pgbench() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster starts");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy starts");
    let mut checks = Checks::default();
    checks.record("psql", psql_commands(&cluster, &proxy).await);
    checks.record("pgbench", pgbench_runs(&cluster, &proxy).await);
    eprintln!("psql_and_pgbench took {:?}", started.elapsed());
    checks.finish(&[&proxy]);
}

async fn psql_commands(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    let out = psql_ok(
        proxy,
        &[
            "-c",
            "CREATE TABLE psql_items (id int PRIMARY KEY, name text NOT NULL, \
             price numeric(10,2) DEFAULT 0)",
        ],
    )?;
    ensure!(out.contains("CREATE TABLE"), "CREATE TABLE printed {out:?}");
    // psql's catalog queries are reads: they go to the replica.
    cluster.wait_replicated().await?;

    let out = psql_ok(proxy, &["-c", "\\l"])?;
    ensure!(
        out.contains("shop") && out.contains("template1"),
        "\\l printed:\n{out}"
    );

    let out = psql_ok(proxy, &["-c", "\\dt"])?;
    ensure!(
        out.contains("psql_items") && out.contains("table"),
        "\\dt printed:\n{out}"
    );

    let out = psql_ok(proxy, &["-c", "\\d psql_items"])?;
    for needle in [
        "psql_items",
        "id",
        "integer",
        "name",
        "not null",
        "price",
        "numeric(10,2)",
        "psql_items_pkey",
        "PRIMARY KEY, btree (id)",
    ] {
        ensure!(
            out.contains(needle),
            "\\d psql_items lacks {needle:?}:\n{out}"
        );
    }

    let out = psql_ok(proxy, &["-At", "-c", "SELECT pg_is_in_recovery()"])?;
    ensure!(
        out.trim() == "t",
        "SELECT pg_is_in_recovery() printed {out:?}"
    );

    // Several -c in one session: the transaction runs on the primary.
    let out = psql_ok(
        proxy,
        &[
            "-At",
            "-c",
            "BEGIN",
            "-c",
            "SELECT pg_is_in_recovery()",
            "-c",
            "COMMIT",
        ],
    )?;
    ensure!(
        out.lines().any(|l| l.trim() == "f"),
        "BEGIN; SELECT pg_is_in_recovery(); COMMIT printed {out:?}"
    );

    // \copy (COPY FROM STDIN driven by psql) and reading it back.
    let dir = ScratchDir::new("psql")?;
    let csv = dir.path().join("items.csv");
    std::fs::write(&csv, "1,apple,1.50\n2,\"pear, green\",2.25\n3,plum,0\n")?;
    let copy = format!(
        "\\copy psql_items (id, name, price) FROM '{}' WITH (FORMAT csv)",
        csv.display()
    );
    let out = psql_ok(proxy, &["-c", &copy])?;
    ensure!(out.contains("COPY 3"), "\\copy printed {out:?}");
    let out = psql_ok(
        proxy,
        &[
            "-At",
            "-c",
            "/* shardgate: primary */ SELECT string_agg(name || '=' || price, ';' ORDER BY id) FROM psql_items",
        ],
    )?;
    ensure!(
        out.trim() == "apple=1.50;pear, green=2.25;plum=0.00",
        "rows after \\copy: {out:?}"
    );

    // An error: psql exits 1 with the server's message; the proxy goes on.
    let out = psql_conninfo(
        &proxy_conninfo(proxy, ""),
        "shop",
        &["-v", "ON_ERROR_STOP=1", "-c", "SELECT 1/0"],
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("division by zero"),
        "SELECT 1/0: {}",
        output_text(&out)
    );
    let out = psql_ok(proxy, &["-At", "-c", "SELECT 'alive'"])?;
    ensure!(out.trim() == "alive", "after an error: {out:?}");
    Ok(())
}

/// Runs pgbench through the proxy as shop and checks it ran cleanly;
/// returns its combined output.
fn pgbench(proxy: &Proxy, args: &[&str]) -> Result<String> {
    let bin = pg_bin("pgbench")?;
    let port = proxy.port.to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-U", "shop"];
    all.extend_from_slice(args);
    all.push("shop");
    let out = run_cmd(
        &bin,
        &all,
        &[("PGPASSWORD", "shop"), ("PGCONNECT_TIMEOUT", "10")],
    )?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "pgbench {args:?} failed: {}",
        output_text(&out)
    );
    let lower = text.to_lowercase();
    ensure!(
        !lower.contains("error") && !lower.contains("aborted"),
        "pgbench {args:?} reported errors:\n{}",
        tail(&text, 40)
    );
    if let Some(line) = text
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
    {
        ensure!(
            line.starts_with("number of failed transactions: 0 "),
            "pgbench {args:?}: {line}"
        );
    }
    Ok(text)
}

/// The "number of transactions actually processed" of a pgbench run.
fn processed(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("number of transactions actually processed:"))?;
    line.split(':')
        .nth(1)?
        .split_whitespace()
        .next()?
        .split('/')
        .next()?
        .parse()
        .ok()
}

async fn pgbench_runs(cluster: &Cluster, proxy: &Proxy) -> Result<()> {
    pgbench(proxy, &["-i", "-s", "1"]).context("pgbench -i -s 1")?;
    cluster.wait_replicated().await?;
    let client = connect(proxy).await?;
    let n = scalar(&client, "SELECT count(*) FROM pgbench_accounts").await?;
    ensure!(
        n.as_deref() == Some("100000"),
        "pgbench_accounts on the replica: {n:?}"
    );
    for mode in ["simple", "extended", "prepared"] {
        let text = pgbench(
            proxy,
            &["-S", "-M", mode, "-T", "3", "-c", "4", "-j", "2", "-n"],
        )
        .with_context(|| format!("pgbench -S -M {mode}"))?;
        let n = processed(&text);
        ensure!(
            n.is_some_and(|n| n > 0),
            "pgbench -S -M {mode} processed {n:?} transactions:\n{}",
            tail(&text, 20)
        );
        eprintln!("pgbench -S -M {mode}: {} transactions", n.unwrap_or(0));
    }
    // The TPC-B-like read-write script (transactions, so on the primary), a
    // fixed number of transactions: every one must have left its row.
    let text = pgbench(
        proxy,
        &["-M", "prepared", "-t", "200", "-c", "4", "-j", "2"],
    )
    .context("pgbench tpcb-like -M prepared")?;
    let n = processed(&text);
    ensure!(
        n == Some(800),
        "pgbench tpcb-like processed {n:?} of 800 transactions:\n{}",
        tail(&text, 20)
    );
    let history = scalar(
        &client,
        "/* shardgate: primary */ SELECT count(*) FROM pgbench_history",
    )
    .await?;
    ensure!(
        history.as_deref() == Some("800"),
        "pgbench_history holds {history:?} rows after 800 transactions"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 7. TLS
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_psql() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions {
        replicas: 0,
        auth: Auth::Scram,
    })
    .expect("cluster starts");
    let dir = ScratchDir::new("tls").expect("scratch dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("self-signed certificate");
    let cert_path = dir.path().join("server.crt");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, certified.cert.pem()).expect("writing the certificate");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("writing the key");

    let plain_config = config_for(&cluster);
    let tls_config = plain_config.replacen(
        "[proxy]\n",
        &format!(
            "[proxy]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert_path.display(),
            key_path.display()
        ),
        1,
    );
    assert_ne!(tls_config, plain_config, "config_for has a [proxy] header");
    let tls_proxy = Proxy::start(&tls_config).expect("proxy with TLS starts");
    let plain_proxy = Proxy::start(&plain_config).expect("proxy without TLS starts");

    let mut checks = Checks::default();
    checks.record("psql sslmode=require", tls_required(&tls_proxy));
    checks.record(
        "psql sslmode=verify-full against the certificate",
        tls_verify_full(&tls_proxy, &cert_path),
    );
    checks.record("large results over TLS", tls_large_result(&tls_proxy));
    checks.record("wrong password over TLS", tls_wrong_password(&tls_proxy));
    checks.record(
        "plain connection to the TLS proxy (sslmode=disable)",
        psql_without_ssl(&tls_proxy, "sslmode=disable"),
    );
    checks.record(
        "tokio-postgres without TLS to the TLS proxy",
        async {
            let client = connect(&tls_proxy).await?;
            let v = scalar(&client, "SELECT 'no tls'").await?;
            ensure!(v.as_deref() == Some("no tls"), "{v:?}");
            Ok(())
        }
        .await,
    );
    checks.record(
        "sslmode=require without TLS configured fails",
        tls_refused(&plain_proxy),
    );
    checks.record(
        "sslmode=prefer without TLS configured falls back to plain",
        psql_without_ssl(&plain_proxy, "sslmode=prefer"),
    );
    eprintln!("tls_with_psql took {:?}", started.elapsed());
    checks.finish(&[&tls_proxy, &plain_proxy]);
}

fn tls_required(proxy: &Proxy) -> Result<()> {
    let out = psql_conninfo(
        &proxy_conninfo(proxy, "sslmode=require"),
        "shop",
        &["-c", "\\conninfo", "-At", "-c", "SELECT 40 + 2"],
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success()
            && stdout.contains("SSL connection")
            && stdout.lines().any(|l| l.trim() == "42"),
        "no SSL connection or no answer: {}",
        output_text(&out)
    );
    Ok(())
}

fn tls_verify_full(proxy: &Proxy, cert: &Path) -> Result<()> {
    let conninfo = format!(
        "host=localhost port={} user=shop dbname=shop sslmode=verify-full sslrootcert={}",
        proxy.port,
        cert.display()
    );
    let out = psql_conninfo(&conninfo, "shop", &["-At", "-c", "SELECT 'verified'"])?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "verified",
        "{}",
        output_text(&out)
    );
    Ok(())
}

fn tls_large_result(proxy: &Proxy) -> Result<()> {
    let out = psql_conninfo(
        &proxy_conninfo(proxy, "sslmode=require"),
        "shop",
        &[
            "-At",
            "-c",
            "SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g",
        ],
    )?;
    ensure!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(
        lines.len() == 5000 && lines[4999] == format!("5000|{}", "x".repeat(200)),
        "{} lines, last {:?}",
        lines.len(),
        lines.last()
    );
    Ok(())
}

fn tls_wrong_password(proxy: &Proxy) -> Result<()> {
    let out = psql_conninfo(
        &proxy_conninfo(proxy, "sslmode=require"),
        "wrong",
        &["-c", "SELECT 1"],
    )?;
    ensure!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        output_text(&out)
    );
    Ok(())
}

/// psql with `sslmode` (disable or prefer) connects without SSL.
fn psql_without_ssl(proxy: &Proxy, sslmode: &str) -> Result<()> {
    let out = psql_conninfo(
        &proxy_conninfo(proxy, sslmode),
        "shop",
        &["-c", "\\conninfo", "-At", "-c", "SELECT 'plain'"],
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success()
            && !stdout.contains("SSL connection")
            && stdout.lines().any(|l| l.trim() == "plain"),
        "{}",
        output_text(&out)
    );
    Ok(())
}

fn tls_refused(proxy: &Proxy) -> Result<()> {
    let out = psql_conninfo(
        &proxy_conninfo(proxy, "sslmode=require"),
        "shop",
        &["-c", "SELECT 1"],
    )?;
    ensure!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("server does not support SSL"),
        "{}",
        output_text(&out)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// 8. How the proxy logs in to Postgres
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_login_md5_and_trust() {
    let started = Instant::now();
    let (md5, trust) = std::thread::scope(|s| {
        let md5 = s.spawn(|| {
            Cluster::start(ClusterOptions {
                replicas: 0,
                auth: Auth::Md5,
            })
        });
        let trust = s.spawn(|| {
            Cluster::start(ClusterOptions {
                replicas: 0,
                auth: Auth::Trust,
            })
        });
        (
            md5.join().expect("md5 cluster thread"),
            trust.join().expect("trust cluster thread"),
        )
    });
    let md5 = md5.expect("md5 cluster starts");
    let trust = trust.expect("trust cluster starts");
    let md5_proxy = Proxy::start(&config_for(&md5)).expect("proxy in front of md5 starts");
    let trust_proxy = Proxy::start(&config_for(&trust)).expect("proxy in front of trust starts");

    let mut checks = Checks::default();
    checks.record(
        "md5 cluster stores an md5 password",
        async {
            let admin = md5.primary.connect("postgres").await?;
            let stored: String = admin
                .query_one(
                    "SELECT rolpassword FROM pg_authid WHERE rolname = 'shop'",
                    &[],
                )
                .await?
                .get(0);
            ensure!(stored.starts_with("md5"), "stored password {stored:?}");
            Ok(())
        }
        .await,
    );
    checks.record("backend login with md5", backend_login(&md5_proxy).await);
    checks.record(
        "backend login with trust",
        backend_login(&trust_proxy).await,
    );
    eprintln!("backend_login_md5_and_trust took {:?}", started.elapsed());
    checks.finish(&[&md5_proxy, &trust_proxy]);
}

async fn backend_login(proxy: &Proxy) -> Result<()> {
    let client = connect(proxy).await?;
    let row = pg("SELECT 1", client.query_one("SELECT 1", &[])).await?;
    ensure!(row.try_get::<_, i32>(0)? == 1, "SELECT 1 gave {row:?}");
    let user = scalar(&client, "SELECT current_user").await?;
    ensure!(user.as_deref() == Some("shop"), "current_user {user:?}");
    pg(
        "write",
        client.batch_execute(
            "CREATE TABLE login_t (id int PRIMARY KEY); INSERT INTO login_t VALUES (1), (2)",
        ),
    )
    .await?;
    let n = scalar(&client, "SELECT count(*) FROM login_t").await?;
    ensure!(n.as_deref() == Some("2"), "count {n:?}");
    drop(client);

    // Several sessions at once: more backend logins.
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(proxy).await?);
    }
    let answers = futures::future::join_all(clients.iter().enumerate().map(|(i, c)| async move {
        let sql = format!("SELECT {i} FROM pg_sleep(0.2)");
        scalar(c, &sql).await
    }))
    .await;
    for (i, answer) in answers.into_iter().enumerate() {
        let v = answer?;
        ensure!(v == Some(i.to_string()), "session {i} got {v:?}");
    }
    Ok(())
}
