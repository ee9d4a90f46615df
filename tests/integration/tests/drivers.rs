//! The driver matrix: real client libraries, used the way their own
//! documentation shows, against shardgate on two shards (each a primary and
//! a streaming replica) and against one plain reference Postgres holding the
//! same rows.
//!
//! Every driver has a script under `tests/drivers/` (psql and pg_dump,
//! psycopg 3, psycopg2, asyncpg, the SQLAlchemy 2 ORM, node-postgres,
//! postgres.js, pgJDBC). A script runs a fixed list of checks and prints, per
//! check, the values it read (`= NAME: VALUE`) and `ok NAME` or
//! `FAIL NAME: REASON` (see `tests/drivers/python/common.py`). The same
//! script runs against the reference and against the proxy; a check passes
//! when it ran to its end on the proxy and printed exactly the reference's
//! values. The one exception is `txn_write_two_shards`: a transaction that
//! writes on both shards must be refused with SQLSTATE 0A000, leave nothing
//! behind, and leave the session answering (set
//! `SHARDGATE_DRIVERS_TWO_SHARD_WRITES=commit` to expect instead what the
//! reference does, once two-phase commit lands).
//!
//! Install the drivers first: `tests/drivers/install.sh` (`.ci/run` does).
//! `SHARDGATE_DRIVERS=asyncpg,psycopg3` runs a subset;
//! `SHARDGATE_DRIVERS_JOBS=N` runs N drivers at a time (default 3);
//! `SHARDGATE_DRIVERS_SELF_TEST=1` runs the scripts against a second plain
//! Postgres instead of the proxy (everything must pass: a check that does
//! not is broken); `SHARDGATE_DRIVERS_HOLD=S` keeps the servers and the proxy up for S
//! seconds after the matrix (their ports are printed), for a post-mortem.
//!
//! Besides each script's checks, `rows_on_shards` reads every driver's
//! table on the shard primaries directly: the rows must be the reference's,
//! each on the shard that owns its id (this tells a write that went wrong
//! from a read that did not see it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use integration::{config_for_shards, pg_bin, Cluster, ClusterOptions, PgServer, Proxy};
use shard_config::hash::KeyValue;

/// How long one run of one driver script may take before it is killed.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// Users in the fixture (ids 1..=USERS), three orders each.
const USERS: i64 = 60;
/// Fresh ids for rows the scripts insert start here.
const FRESH_FROM: i64 = 100_001;
/// Fresh ids handed to each script, per shard.
const FRESH_PER_SHARD: usize = 200;
/// Existing users per shard whose ids the scripts read by key.
const KEYS_PER_SHARD: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Psql,
    Python(&'static str),
    Node(&'static str),
    Jdbc,
}

#[derive(Clone, Copy, Debug)]
struct Driver {
    name: &'static str,
    kind: Kind,
}

impl Driver {
    /// The driver's scratch table, hashed on `id` in the proxy's config.
    fn table(&self) -> String {
        format!("t_{}", self.name)
    }
}

const DRIVERS: &[Driver] = &[
    Driver {
        name: "psql",
        kind: Kind::Psql,
    },
    Driver {
        name: "psycopg3",
        kind: Kind::Python("psycopg3_checks.py"),
    },
    Driver {
        name: "psycopg2",
        kind: Kind::Python("psycopg2_checks.py"),
    },
    Driver {
        name: "asyncpg",
        kind: Kind::Python("asyncpg_checks.py"),
    },
    Driver {
        name: "sqlalchemy",
        kind: Kind::Python("sqlalchemy_checks.py"),
    },
    Driver {
        name: "nodepg",
        kind: Kind::Node("pg_checks.js"),
    },
    Driver {
        name: "postgresjs",
        kind: Kind::Node("postgresjs_checks.js"),
    },
    Driver {
        name: "jdbc",
        kind: Kind::Jdbc,
    },
];

/// The check whose proxy answer is not the reference's.
const TWO_SHARD_WRITE: &str = "txn_write_two_shards";

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../drivers")
}

const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

// ---------------------------------------------------------------------------
// The fixture: schema and rows
// ---------------------------------------------------------------------------

const SCHEMA: &str = "
CREATE TABLE users (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text,
    balance numeric(12,2),
    created_at timestamptz NOT NULL,
    profile jsonb,
    tags text[],
    avatar bytea,
    uid uuid
);
CREATE TABLE orders (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    total numeric(10,2) NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE TABLE products (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    price numeric(10,2) NOT NULL
);
";

fn user_row(i: i64) -> String {
    let name = if i % 11 == 0 {
        format!("'O''Brien {i}'")
    } else {
        format!("'user {i}'")
    };
    let email = if i % 9 == 0 {
        "NULL".to_string()
    } else {
        format!("'u{i}@shop.example'")
    };
    let balance = if i % 13 == 0 {
        "NULL".to_string()
    } else {
        format!("{}.{:02}", (i * 7919) % 10_000, (i * 37) % 100)
    };
    let created = format!(
        "timestamptz '2026-01-01 00:00:00+00' + interval '{} minutes {}.{:06} seconds'",
        i * 61,
        i % 60,
        (i * 123_457) % 1_000_000
    );
    let tier = ["gold", "silver", "bronze"][(i % 3) as usize];
    let profile = if i % 10 == 0 {
        "NULL".to_string()
    } else {
        format!(
            "'{{\"n\": {i}, \"tier\": \"{tier}\", \"nested\": {{\"ok\": true, \"list\": [1, 2.5, null, \"x\"]}}}}'"
        )
    };
    let tags = if i % 7 == 0 {
        "'{}'".to_string()
    } else {
        format!("ARRAY['t{}', 'common', 'with space', 'quote\"d']", i % 3)
    };
    let avatar = if i % 10 == 0 {
        "NULL".to_string()
    } else {
        format!("decode('00ff{:02x}0a5c', 'hex')", i % 256)
    };
    let uid = format!("'00000000-0000-4000-8000-{i:012x}'");
    format!("({i}, {name}, {email}, {balance}, {created}, {profile}, {tags}, {avatar}, {uid})")
}

fn order_rows(user: i64) -> Vec<String> {
    (0..3)
        .map(|j| {
            let status = ["new", "paid", "shipped"][((user + j) % 3) as usize];
            format!(
                "({}, {user}, {}.{:02}, '{status}', timestamptz '2026-02-01 00:00:00+00' + interval '{} hours')",
                user * 10 + j,
                (user * 31 + j * 17) % 300,
                ((user + j) * 7) % 100,
                user * 3 + j
            )
        })
        .collect()
}

/// The statements loading `users` (the ids given) with their orders, and
/// every product.
fn load_sql(users: &[i64]) -> Vec<String> {
    let mut sql = vec![SCHEMA.to_string()];
    if !users.is_empty() {
        let rows: Vec<String> = users.iter().map(|&i| user_row(i)).collect();
        sql.push(format!(
            "INSERT INTO users (id, name, email, balance, created_at, profile, tags, avatar, uid) VALUES {}",
            rows.join(",\n")
        ));
        let rows: Vec<String> = users.iter().flat_map(|&i| order_rows(i)).collect();
        sql.push(format!(
            "INSERT INTO orders (id, user_id, total, status, created_at) VALUES {}",
            rows.join(",\n")
        ));
    }
    let products: Vec<String> = (1..=8)
        .map(|p| format!("({p}, 'product {p}', {}.{:02})", p * 3, (p * 25) % 100))
        .collect();
    sql.push(format!(
        "INSERT INTO products (id, name, price) VALUES {}",
        products.join(", ")
    ));
    sql
}

fn tables_config(drivers: &[Driver]) -> String {
    let mut text = String::from(
        "\n[tables.users]\nsharding_key = \"id\"\nalgorithm = \"hash\"\n\
         \n[tables.orders]\nsharding_key = \"user_id\"\ncolocate_with = \"users\"\n\
         \n[tables.products]\nbroadcast = true\n",
    );
    for d in drivers {
        text.push_str(&format!(
            "\n[tables.{}]\nsharding_key = \"id\"\nalgorithm = \"hash\"\n",
            d.table()
        ));
    }
    text
}

/// Which shard (index) owns each key of `table` under `config`.
fn shard_of(config: &str, table: &str, key: i64) -> Result<usize> {
    let text = config.replace("{listen}", "127.0.0.1:6432");
    let parsed = shard_config::parse(&text, "drivers.toml")
        .map_err(|e| anyhow!("the test's config does not parse: {e:?}"))?;
    parsed
        .shard_map()
        .shard_for_key(table, &KeyValue::Int(key))
        .ok_or_else(|| anyhow!("{table} has no shard for key {key}"))
}

/// The environment every script gets, less the port.
struct Keys {
    s: [Vec<i64>; 2],
    w: BTreeMap<String, [Vec<i64>; 2]>,
}

fn keys_for(config: &str, drivers: &[Driver]) -> Result<Keys> {
    let text = config.replace("{listen}", "127.0.0.1:6432");
    let parsed = shard_config::parse(&text, "drivers.toml")
        .map_err(|e| anyhow!("the test's config does not parse: {e:?}"))?;
    let map = parsed.shard_map();
    let owner = |table: &str, k: i64| {
        map.shard_for_key(table, &KeyValue::Int(k))
            .ok_or_else(|| anyhow!("{table} has no shard for key {k}"))
    };
    let mut s = [Vec::new(), Vec::new()];
    for k in 1..=USERS {
        s[owner("users", k)?].push(k);
    }
    for list in &mut s {
        if list.len() < KEYS_PER_SHARD {
            bail!("fewer than {KEYS_PER_SHARD} users on a shard: {s:?}");
        }
        list.truncate(KEYS_PER_SHARD);
    }
    let mut w = BTreeMap::new();
    for d in drivers {
        let table = d.table();
        let mut lists = [Vec::new(), Vec::new()];
        let mut k = FRESH_FROM;
        while lists.iter().any(|l| l.len() < FRESH_PER_SHARD) {
            let shard = owner(&table, k)?;
            if lists[shard].len() < FRESH_PER_SHARD {
                lists[shard].push(k);
            }
            k += 1;
        }
        w.insert(table, lists);
    }
    Ok(Keys { s, w })
}

fn join(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

// ---------------------------------------------------------------------------
// Running a script
// ---------------------------------------------------------------------------

/// What one run of a script printed.
#[derive(Debug, Default)]
struct Run {
    checks: Vec<CheckOut>,
    /// Lines that fit no format (a crash's traceback on stdout, …).
    stray: Vec<String>,
    stderr: String,
    status: String,
    timed_out: bool,
    elapsed: Duration,
}

#[derive(Debug, Default)]
struct CheckOut {
    name: String,
    values: Vec<String>,
    info: Vec<String>,
    /// `None`: started but never finished (the script hung or died).
    outcome: Option<std::result::Result<(), String>>,
}

impl Run {
    fn check(&self, name: &str) -> Option<&CheckOut> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn parse(stdout: &str) -> (Vec<CheckOut>, Vec<String>) {
        let mut checks: Vec<CheckOut> = Vec::new();
        let mut stray = Vec::new();
        for line in stdout.lines() {
            if let Some(name) = line.strip_prefix("# start ") {
                checks.push(CheckOut {
                    name: name.trim().to_string(),
                    ..Default::default()
                });
                continue;
            }
            let current = checks.last_mut();
            let Some(current) = current else {
                stray.push(line.to_string());
                continue;
            };
            let name = current.name.clone();
            if let Some(v) = line.strip_prefix(&format!("= {name}: ")) {
                current.values.push(v.to_string());
            } else if line == format!("= {name}:") {
                current.values.push(String::new());
            } else if let Some(v) = line.strip_prefix(&format!("# {name}: ")) {
                current.info.push(v.to_string());
            } else if line == format!("ok {name}") {
                current.outcome = Some(Ok(()));
            } else if let Some(r) = line.strip_prefix(&format!("FAIL {name}: ")) {
                current.outcome = Some(Err(r.to_string()));
            } else {
                stray.push(line.to_string());
            }
        }
        (checks, stray)
    }
}

/// Runs `cmd` to its end or for at most `timeout` (then kills its process
/// group), keeping everything it printed.
fn run_script(mut cmd: Command, timeout: Duration) -> Result<Run> {
    let started = Instant::now();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let what = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {what}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out_reader = thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => {
                    text.push_str(&l);
                    text.push('\n');
                }
                Err(_) => break,
            }
        }
        text
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for a script")? {
            break status;
        }
        if started.elapsed() > timeout {
            timed_out = true;
            // SAFETY: kill(2) has no memory-safety preconditions; the child
            // is not reaped yet, so its pid (= its process group) is its own.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            break child.wait().context("reaping a killed script")?;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let (checks, stray) = Run::parse(&stdout);
    Ok(Run {
        checks,
        stray,
        stderr,
        status: status.to_string(),
        timed_out,
        elapsed: started.elapsed(),
    })
}

/// What the scripts need besides their own files.
struct Tools {
    python: PathBuf,
    psql: PathBuf,
    pg_dump: PathBuf,
    /// Where JdbcChecks.class was compiled to.
    java_classes: Option<PathBuf>,
}

fn command_for(driver: &Driver, tools: &Tools) -> Result<Command> {
    let dir = drivers_dir();
    let cmd = match driver.kind {
        Kind::Psql => {
            let mut cmd = Command::new("bash");
            cmd.arg(dir.join("psql/psql_checks.sh"))
                .env("PSQL", &tools.psql)
                .env("PG_DUMP", &tools.pg_dump);
            cmd
        }
        Kind::Python(script) => {
            let mut cmd = Command::new(&tools.python);
            cmd.arg(dir.join("python").join(script))
                .current_dir(dir.join("python"))
                .env("PYTHONDONTWRITEBYTECODE", "1");
            cmd
        }
        Kind::Node(script) => {
            let mut cmd = Command::new("node");
            cmd.arg(dir.join("node").join(script))
                .current_dir(dir.join("node"));
            cmd
        }
        Kind::Jdbc => {
            let classes = tools
                .java_classes
                .as_ref()
                .context("JdbcChecks was not compiled")?;
            let mut cmd = Command::new("java");
            cmd.arg("-cp")
                .arg(format!("{}:{JDBC_JAR}", classes.display()))
                .arg("-Xshare:auto")
                .arg("-XX:TieredStopAtLevel=1")
                .arg("JdbcChecks");
            cmd
        }
    };
    Ok(cmd)
}

fn script_env(cmd: &mut Command, port: u16, driver: &Driver, keys: &Keys) {
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGOPTIONS",
        "PGSERVICE",
        "PGSSLMODE",
        "PGPASSFILE",
    ] {
        cmd.env_remove(var);
    }
    let w = &keys.w[&driver.table()];
    cmd.env("SG_HOST", "127.0.0.1")
        .env("SG_PORT", port.to_string())
        .env("SG_USER", "shop")
        .env("SG_PASSWORD", "shop")
        .env("SG_DB", "shop")
        .env("SG_TABLE", driver.table())
        .env("SG_S0", join(&keys.s[0]))
        .env("SG_S1", join(&keys.s[1]))
        .env("SG_W0", join(&w[0]))
        .env("SG_W1", join(&w[1]))
        .env("TZ", "UTC");
}

fn prerequisites(drivers: &[Driver]) -> Result<Tools> {
    let dir = drivers_dir();
    let install =
        "run tests/drivers/install.sh (it installs the Python and Node drivers and pgJDBC)";
    let python = dir.join(".venv/bin/python");
    let mut missing = Vec::new();
    if drivers.iter().any(|d| matches!(d.kind, Kind::Python(_))) && !python.is_file() {
        missing.push(format!("{} is missing", python.display()));
    }
    if drivers.iter().any(|d| matches!(d.kind, Kind::Node(_)))
        && !dir.join("node/node_modules/postgres").is_dir()
    {
        missing.push("tests/drivers/node/node_modules is missing".to_string());
    }
    let jdbc = drivers.iter().any(|d| d.kind == Kind::Jdbc);
    if jdbc && !Path::new(JDBC_JAR).is_file() {
        missing.push(format!("{JDBC_JAR} is missing"));
    }
    if !missing.is_empty() {
        // a fresh machine: the README's test command installs them itself
        eprintln!("{}: running tests/drivers/install.sh", missing.join("; "));
        let status = Command::new("bash")
            .arg(dir.join("install.sh"))
            .status()
            .context("running tests/drivers/install.sh")?;
        if !status.success() {
            bail!("{}: {install} (it failed: {status})", missing.join("; "));
        }
    }
    Ok(Tools {
        python,
        psql: pg_bin("psql")?,
        pg_dump: pg_bin("pg_dump")?,
        java_classes: None,
    })
}

/// A directory removed on drop.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn compile_jdbc() -> Result<ScratchDir> {
    let dir = ScratchDir(std::env::temp_dir().join(format!(
        "shardgate-drivers-java-{}-{:x}",
        std::process::id(),
        rand::random::<u32>()
    )));
    std::fs::create_dir_all(&dir.0).with_context(|| format!("creating {}", dir.0.display()))?;
    let mut cmd = Command::new("javac");
    cmd.arg("-d")
        .arg(&dir.0)
        .arg("-cp")
        .arg(JDBC_JAR)
        .arg(drivers_dir().join("java/JdbcChecks.java"));
    let run = run_script(cmd, Duration::from_secs(120))?;
    if !run.status.contains("exit status: 0") {
        bail!(
            "javac failed ({}): {}{}",
            run.status,
            run.stderr,
            run.stray.join("\n")
        );
    }
    Ok(dir)
}

// ---------------------------------------------------------------------------
// Judging
// ---------------------------------------------------------------------------

/// One driver's verdicts, check by check, in the script's order.
struct Verdicts {
    driver: &'static str,
    checks: Vec<(String, std::result::Result<(), String>)>,
    /// Failures not tied to one check (the reference run broke, …).
    general: Vec<String>,
    reference_time: Duration,
    proxy_time: Duration,
}

fn short(text: &str) -> String {
    const MAX: usize = 600;
    if text.len() <= MAX {
        text.to_string()
    } else {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &text[..end], text.len())
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether a transaction writing two shards is expected to commit (as on
/// the reference) rather than to be refused.
fn two_shard_writes_commit() -> bool {
    self_test() || std::env::var("SHARDGATE_DRIVERS_TWO_SHARD_WRITES").as_deref() == Ok("commit")
}

/// `SHARDGATE_DRIVERS_SELF_TEST=1`: the scripts run against two plain
/// reference servers instead of the reference and the proxy; every check
/// must pass (a check that fails then is broken or not deterministic).
fn self_test() -> bool {
    std::env::var("SHARDGATE_DRIVERS_SELF_TEST").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn expected_two_shard_values(reference: &[String]) -> Vec<String> {
    if two_shard_writes_commit() {
        return reference.to_vec();
    }
    vec![
        "error 0A000".to_string(),
        "after rollback SELECT 1 -> 1".to_string(),
        "rows left 0".to_string(),
    ]
}

fn judge(driver: &Driver, reference: &Run, proxy: &Run) -> Verdicts {
    let mut v = Verdicts {
        driver: driver.name,
        checks: Vec::new(),
        general: Vec::new(),
        reference_time: reference.elapsed,
        proxy_time: proxy.elapsed,
    };
    if reference.checks.is_empty() {
        v.general.push(format!(
            "the script ran no check against the reference ({}): stdout {:?}, stderr:\n{}",
            reference.status,
            reference.stray,
            tail(&reference.stderr, 20)
        ));
    }
    for rc in &reference.checks {
        let name = rc.name.clone();
        // The reference must pass every check: otherwise the check is broken.
        match &rc.outcome {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                v.checks.push((
                    name,
                    Err(format!("BROKEN CHECK: fails on the reference: {e}")),
                ));
                continue;
            }
            None => {
                v.checks.push((
                    name,
                    Err(format!(
                        "BROKEN CHECK: did not finish on the reference ({}{}); stderr:\n{}",
                        reference.status,
                        if reference.timed_out { ", killed" } else { "" },
                        tail(&reference.stderr, 10)
                    )),
                ));
                continue;
            }
        }
        if name == TWO_SHARD_WRITE {
            let sane = ["error none", "after rollback SELECT 1 -> 1", "rows left 2"];
            if rc.values != sane {
                v.checks.push((
                    name,
                    Err(format!(
                        "BROKEN CHECK: the reference printed {:?}, not {sane:?}",
                        rc.values
                    )),
                ));
                continue;
            }
        }
        let verdict = match proxy.check(&name) {
            None => Err(format!(
                "not run: the script stopped before it ({}{}); stderr:\n{}",
                proxy.status,
                if proxy.timed_out {
                    format!(", killed after {SCRIPT_TIMEOUT:?}")
                } else {
                    String::new()
                },
                tail(&proxy.stderr, 10)
            )),
            Some(pc) => {
                let info = if pc.info.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", pc.info.join("; "))
                };
                match &pc.outcome {
                    None => Err(format!(
                        "no ok/FAIL line: the script hung or died in this check ({}{}); \
                         values so far {}; stderr:\n{}",
                        proxy.status,
                        if proxy.timed_out { ", killed" } else { "" },
                        pc.values.len(),
                        tail(&proxy.stderr, 10)
                    )),
                    Some(Err(e)) => Err(format!("{e}{info}")),
                    Some(Ok(())) => {
                        let expected = if name == TWO_SHARD_WRITE {
                            expected_two_shard_values(&rc.values)
                        } else {
                            rc.values.clone()
                        };
                        compare(&expected, &pc.values).map_err(|e| format!("{e}{info}"))
                    }
                }
            }
        };
        v.checks.push((name, verdict));
    }
    v
}

fn compare(expected: &[String], got: &[String]) -> std::result::Result<(), String> {
    if expected == got {
        return Ok(());
    }
    let differing = expected.iter().zip(got).filter(|(a, b)| a != b).count()
        + expected.len().abs_diff(got.len());
    let first = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    Err(format!(
        "wrong values: {differing} of {} value lines differ (proxy printed {}); first at #{}:\n      \
         reference: {}\n      proxy:     {}",
        expected.len(),
        got.len(),
        first + 1,
        expected
            .get(first)
            .map_or("(nothing)".to_string(), |s| short(s)),
        got.get(first).map_or("(nothing)".to_string(), |s| short(s)),
    ))
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn selected_drivers() -> Vec<Driver> {
    let Ok(filter) = std::env::var("SHARDGATE_DRIVERS") else {
        return DRIVERS.to_vec();
    };
    let wanted: BTreeSet<String> = filter
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let known: Vec<&str> = DRIVERS.iter().map(|d| d.name).collect();
    for w in &wanted {
        assert!(
            known.contains(&w.as_str()),
            "SHARDGATE_DRIVERS names {w:?}; the drivers are {known:?}"
        );
    }
    DRIVERS
        .iter()
        .copied()
        .filter(|d| wanted.contains(d.name))
        .collect()
}

async fn load(server: &PgServer, sql: &[String]) -> Result<()> {
    let client = server.connect("shop").await?;
    for s in sql {
        client
            .batch_execute(s)
            .await
            .with_context(|| format!("loading {}", short(s)))?;
    }
    Ok(())
}

fn print_matrix(verdicts: &[Verdicts]) {
    let mut names: Vec<String> = Vec::new();
    for v in verdicts {
        for (n, _) in &v.checks {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let width = names.iter().map(String::len).max().unwrap_or(5).max(5);
    let mut text = format!("\n{:width$}", "check");
    for v in verdicts {
        text.push_str(&format!(" {:>10}", v.driver));
    }
    text.push('\n');
    for n in &names {
        text.push_str(&format!("{n:width$}"));
        for v in verdicts {
            let cell = match v.checks.iter().find(|(c, _)| c == n) {
                None => "-",
                Some((_, Ok(()))) => "ok",
                Some((_, Err(_))) => "FAIL",
            };
            text.push_str(&format!(" {cell:>10}"));
        }
        text.push('\n');
    }
    let mut totals = format!("{:width$}", "passed");
    for v in verdicts {
        let ok = v.checks.iter().filter(|(_, r)| r.is_ok()).count();
        totals.push_str(&format!(" {:>10}", format!("{ok}/{}", v.checks.len())));
    }
    text.push_str(&totals);
    eprintln!("{text}");
}

#[test]
fn driver_matrix() {
    let started = Instant::now();
    let drivers = selected_drivers();
    if drivers.is_empty() {
        eprintln!("SHARDGATE_DRIVERS selects no driver: nothing to do");
        return;
    }
    let mut tools = prerequisites(&drivers).unwrap_or_else(|e| panic!("{e:#}"));

    // Servers: two shards (primary + replica) and the reference, in parallel
    // with compiling the Java checks.
    let want_jdbc = drivers.iter().any(|d| d.kind == Kind::Jdbc);
    let (shards, reference, twin, java) = thread::scope(|s| {
        let shards = s.spawn(|| {
            Cluster::start_many(
                2,
                ClusterOptions {
                    replicas: 1,
                    ..Default::default()
                },
            )
        });
        let reference = s.spawn(|| {
            Cluster::start(ClusterOptions {
                replicas: 0,
                ..Default::default()
            })
        });
        let twin = s.spawn(|| {
            self_test()
                .then(|| {
                    Cluster::start(ClusterOptions {
                        replicas: 0,
                        ..Default::default()
                    })
                })
                .transpose()
        });
        let java = s.spawn(move || want_jdbc.then(compile_jdbc).transpose());
        (
            shards.join().expect("shards thread").expect("shards"),
            reference
                .join()
                .expect("reference thread")
                .expect("reference"),
            twin.join().expect("twin thread").expect("second reference"),
            java.join().expect("javac thread").expect("javac"),
        )
    });
    tools.java_classes = java.as_ref().map(|d| d.0.clone());
    eprintln!("servers up after {:?}", started.elapsed());

    let refs: Vec<&Cluster> = shards.iter().collect();
    // Every driver's table is configured, selected or not: the config does
    // not depend on the filter.
    // Reads go to the primaries: a driver reads back what it just wrote, and
    // read-your-writes on replicas comes with the high-availability issue.
    let config = format!(
        "{}read_from = \"primary\"\n{}",
        config_for_shards(&refs),
        tables_config(DRIVERS)
    );
    let keys = keys_for(&config, &drivers).expect("keys");
    let mut on_shard: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
    for k in 1..=USERS {
        on_shard[shard_of(&config, "users", k).expect("shard of a user")].push(k);
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let all: Vec<i64> = (1..=USERS).collect();
        load(&reference.primary, &load_sql(&all))
            .await
            .expect("loading the reference");
        if let Some(twin) = &twin {
            load(&twin.primary, &load_sql(&all))
                .await
                .expect("loading the second reference");
        }
        for (shard, users) in shards.iter().zip(&on_shard) {
            load(&shard.primary, &load_sql(users))
                .await
                .expect("loading a shard");
        }
        for shard in &shards {
            shard.wait_replicated().await.expect("replicas caught up");
        }
    });
    let proxy = Proxy::start(&config).expect("proxy");
    let target_port = match &twin {
        Some(twin) => {
            eprintln!("SHARDGATE_DRIVERS_SELF_TEST: a second reference stands in for the proxy");
            twin.primary.port
        }
        None => proxy.port,
    };
    eprintln!(
        "fixture loaded, proxy on port {} after {:?}; users on s0 {:?}…, on s1 {:?}…",
        proxy.port,
        started.elapsed(),
        keys.s[0],
        keys.s[1]
    );

    // Run the drivers, a few at a time; each against both servers at once.
    let jobs: usize = std::env::var("SHARDGATE_DRIVERS_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Verdicts)>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..jobs.min(drivers.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(driver) = drivers.get(i) else { break };
                let run = |port: u16| -> Run {
                    let result = command_for(driver, &tools).and_then(|mut cmd| {
                        script_env(&mut cmd, port, driver, &keys);
                        run_script(cmd, SCRIPT_TIMEOUT)
                    });
                    result.unwrap_or_else(|e| Run {
                        status: format!("could not run: {e:#}"),
                        stderr: format!("{e:#}"),
                        ..Default::default()
                    })
                };
                let (reference_run, proxy_run) = thread::scope(|s2| {
                    let r = s2.spawn(|| run(reference.primary.port));
                    let p = s2.spawn(|| run(target_port));
                    (
                        r.join().expect("reference run thread"),
                        p.join().expect("proxy run thread"),
                    )
                });
                let mut verdicts = judge(driver, &reference_run, &proxy_run);
                if twin.is_none() {
                    verdicts.checks.push((
                        "rows_on_shards".to_string(),
                        rows_on_shards(driver, &config, &reference, &shards)
                            .map_err(|e| format!("{e:#}")),
                    ));
                }
                report_driver(&verdicts, &proxy_run);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, verdicts));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let verdicts: Vec<Verdicts> = results.into_iter().map(|(_, v)| v).collect();

    print_matrix(&verdicts);
    let mut failures = Vec::new();
    let mut known = Vec::new();
    for v in &verdicts {
        for g in &v.general {
            failures.push(format!("{}: {g}", v.driver));
        }
        for (name, r) in &v.checks {
            match (r, known_gap(v.driver, name)) {
                (Err(e), None) => failures.push(format!("{} / {name}: {e}", v.driver)),
                (Err(_), Some(why)) => known.push(format!("{} / {name}: {why}", v.driver)),
                (Ok(()), Some(why)) => failures.push(format!(
                    "{} / {name} passes now: remove it from KNOWN_GAPS ({why})",
                    v.driver
                )),
                (Ok(()), None) => {}
            }
        }
    }
    if !known.is_empty() {
        eprintln!(
            "known gaps ({}), expected to fail:\n{}",
            known.len(),
            known.join("\n")
        );
    }
    eprintln!("driver matrix took {:?}", started.elapsed());
    if let Some(secs) = std::env::var("SHARDGATE_DRIVERS_HOLD")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // For a post-mortem by hand: everything stays up for a while.
        eprintln!(
            "SHARDGATE_DRIVERS_HOLD: holding for {secs} s: proxy 127.0.0.1:{} (PGPASSWORD=shop \
             psql -h 127.0.0.1 -p {} -U shop shop), reference :{}, s0 primary :{} replica :{}, \
             s1 primary :{} replica :{}, proxy log {}",
            proxy.port,
            proxy.port,
            reference.primary.port,
            shards[0].primary.port,
            shards[0].replicas[0].port,
            shards[1].primary.port,
            shards[1].replicas[0].port,
            proxy
                .config_path()
                .with_file_name("shardgate.log")
                .display()
        );
        thread::sleep(Duration::from_secs(secs));
    }
    if !failures.is_empty() {
        panic!(
            "{} driver check(s) failed:\n{}\n\n--- proxy log (last 40 lines):\n{}",
            failures.len(),
            failures.join("\n"),
            tail(&proxy.log(), 40)
        );
    }
}

/// Checks that fail today for a reason an open issue names: each must
/// fail (a gap that closes fails the test until it is taken off this list).
/// `*` stands for every driver.
const KNOWN_GAPS: &[(&str, &str, &str)] = &[
    ("sqlalchemy", "insert_add_all", "an ORM session is a transaction: add_all over both shards writes two shards in one transaction, refused until two-phase commit (issue 11)"),
];

/// Why `driver`'s `check` is expected to fail, if it is.
fn known_gap(driver: &str, check: &str) -> Option<&'static str> {
    KNOWN_GAPS
        .iter()
        .find(|(d, c, _)| (*d == "*" || *d == driver) && *c == check)
        .map(|(_, _, why)| *why)
}

/// Whatever the reads through the proxy saw: the driver's table on the
/// shard primaries, read directly, holds exactly the reference's rows, each
/// on the shard that owns its id.
fn rows_on_shards(
    driver: &Driver,
    config: &str,
    reference: &Cluster,
    shards: &[Cluster],
) -> Result<()> {
    let table = driver.table();
    let sql = format!("SELECT id, val, amount FROM {table} ORDER BY id");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let r = reference.primary.connect("shop").await?;
        let expected = integration::reference::rows(&r, &sql)
            .await
            .map_err(|e| anyhow!("BROKEN CHECK: on the reference: {e}"))?;
        let mut got = Vec::new();
        let mut misplaced = Vec::new();
        for (i, shard) in shards.iter().enumerate() {
            let c = shard.primary.connect("shop").await?;
            let rows = integration::reference::rows(&c, &sql)
                .await
                .map_err(|e| anyhow!("on s{i}'s primary: {e}"))?;
            for row in rows {
                let id: i64 = row
                    .first()
                    .cloned()
                    .flatten()
                    .context("a NULL id")?
                    .parse()?;
                if shard_of(config, &table, id)? != i {
                    misplaced.push(format!("{id} on s{i}"));
                }
                got.push((id, row));
            }
        }
        got.sort_by_key(|(id, _)| *id);
        let got: Vec<Vec<Option<String>>> = got.into_iter().map(|(_, row)| row).collect();
        if !misplaced.is_empty() {
            bail!("rows on the wrong shard: {}", misplaced.join(", "));
        }
        let show = |rows: &[Vec<Option<String>>]| -> Vec<String> {
            rows.iter()
                .map(|r| {
                    r.iter()
                        .map(|v| v.as_deref().unwrap_or("NULL"))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect()
        };
        let refusing =
            std::env::var("SHARDGATE_DRIVERS_TWO_SHARD_WRITES").as_deref() != Ok("commit");
        // The two-shard transaction committed on the reference; through the
        // proxy it must have left nothing.
        // Rows the reference got from a check that is a known gap: the
        // gap's own check fails for it.
        let writer = |r: &String| {
            r.split('|')
                .nth(1)
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string()
        };
        let expected: Vec<String> = show(&expected)
            .into_iter()
            .filter(|r| !(refusing && r.contains("|txn_two ")))
            .filter(|r| known_gap(driver.name, &writer(r)).is_none())
            .collect();
        let got = show(&got);
        if expected == got {
            return Ok(());
        }
        // Summarise by the check that wrote the rows (the first word of val).
        let tag = |r: &String| {
            r.split('|')
                .nth(1)
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string()
        };
        let by_tag = |rows: Vec<&String>| -> String {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for r in rows {
                *counts.entry(tag(r)).or_default() += 1;
            }
            counts
                .iter()
                .map(|(t, n)| format!("{t} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let missing: Vec<&String> = expected.iter().filter(|r| !got.contains(r)).collect();
        let extra: Vec<&String> = got.iter().filter(|r| !expected.contains(r)).collect();
        bail!(
            "the shard primaries (read directly) hold {} rows, the reference {}{}; \
             missing rows written by: {}; extra or different rows: {}{}",
            got.len(),
            expected.len(),
            if refusing {
                " (less its txn_two rows)"
            } else {
                ""
            },
            if missing.is_empty() {
                "none".to_string()
            } else {
                by_tag(missing.clone())
            },
            if extra.is_empty() {
                "none".to_string()
            } else {
                by_tag(extra.clone())
            },
            extra
                .first()
                .map_or(String::new(), |r| format!(" (e.g. {r})")),
        )
    })
}

fn report_driver(v: &Verdicts, proxy_run: &Run) {
    let failed = v.checks.iter().filter(|(_, r)| r.is_err()).count();
    let mut text = format!(
        "\n== {}: {} checks, {} failed (reference run {:.1?}, proxy run {:.1?})\n",
        v.driver,
        v.checks.len(),
        failed + v.general.len(),
        v.reference_time,
        v.proxy_time
    );
    for g in &v.general {
        text.push_str(&format!("  FAIL  {g}\n"));
    }
    for (name, r) in &v.checks {
        match r {
            Ok(()) => text.push_str(&format!("  ok    {name}\n")),
            Err(e) => text.push_str(&format!("  FAIL  {name}: {e}\n")),
        }
    }
    if !proxy_run.stray.is_empty() {
        text.push_str(&format!(
            "  (unexpected output: {})\n",
            short(&proxy_run.stray.join(" | "))
        ));
    }
    eprint!("{text}");
}
