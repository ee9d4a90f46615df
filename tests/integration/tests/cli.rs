//! The `shardgate` command line: `check` on good and bad configs, `demo`
//! from start to Ctrl-C, and libpq's FunctionCall path (large objects) via psql.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::{
    config_for, free_port, pg_bin, run_cmd, shardgate_bin, Cluster, ClusterOptions, Proxy,
};

#[test]
fn check_accepts_good_configs_and_names_file_and_line_of_bad_ones() {
    let dir = std::env::temp_dir().join(format!("sg-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[users]]\nname = \"shop\"\npassword = \"shop\"\n\n[backend]\nuser = \"shop\"\ndatabase = \"shop\"\n\n[[shards]]\nname = \"s0\"\nprimary = \"127.0.0.1:5432\"\n",
    )
    .unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[users]]\nname = \"shop\"\npassword = \"shop\"\n\n[backend]\nuser = \"shop\"\ndatabase = \"shop\"\n\n[[shards]]\nname = \"s0\"\nprimary = \"127.0.0.1\"\n\n[routing]\ndefault_shard = \"s9\"\n",
    )
    .unwrap();
    let bin = shardgate_bin().expect("binary");
    let ok = run_cmd(&bin, &["check", "--config", good.to_str().unwrap()], &[]).unwrap();
    assert!(ok.status.success(), "{ok:?}");
    let out = run_cmd(&bin, &["check", "--config", bad.to_str().unwrap()], &[]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let path = bad.to_str().unwrap();
    assert!(
        err.contains(&format!("{path}:11:")),
        "bad address on line 11: {err}"
    );
    assert!(
        err.contains(&format!("{path}:14:")),
        "unknown default shard on line 14: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_use_function_calls_through_the_proxy() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy");
    let file = std::env::temp_dir().join(format!("sg-lo-{}", std::process::id()));
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &content).unwrap();
    let psql = pg_bin("psql").unwrap();
    let port = proxy.port.to_string();
    let base = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "shop",
        "-d",
        "shop",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
    ];
    let import = format!("\\lo_import {}", file.display());
    let mut args = base.to_vec();
    args.extend(["-c", &import]);
    let out = run_cmd(&psql, &args, &[("PGPASSWORD", "shop")]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oid = stdout
        .trim()
        .strip_prefix("lo_import ")
        .expect("lo_import OID")
        .to_string();
    let back = file.with_extension("out");
    let export = format!("\\lo_export {oid} {}", back.display());
    let mut args = base.to_vec();
    args.extend(["-c", &export]);
    let out = run_cmd(&psql, &args, &[("PGPASSWORD", "shop")]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // psql writes the export as the invoking user: compare bytes
    assert_eq!(
        std::fs::read(&back).unwrap(),
        content,
        "large object round trip"
    );
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&back);
}

#[test]
fn demo_starts_serves_and_cleans_up_on_ctrl_c() {
    let bin = shardgate_bin().expect("binary");
    let port = free_port();
    let mut child = Command::new(&bin)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let pid = child.id();
    // The demo prints its banner once the shop is loaded: read stdout as it
    // comes, until the banner's last line.
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut banner = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(300)) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
                if line.contains("Ctrl-C stops and removes everything") {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("demo exited before it was up: {banner}\n{err}");
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not come up: {banner}");
        }
    }
    assert!(
        banner.contains("psql -h 127.0.0.1"),
        "prints how to connect: {banner}"
    );
    let psql = pg_bin("psql").unwrap();
    let query = |port: &str, sql: &str| -> String {
        let out = run_cmd(
            &psql,
            &[
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-U",
                "shop",
                "-d",
                "shop",
                "-X",
                "-At",
                "-c",
                sql,
            ],
            &[("PGPASSWORD", "shop")],
        )
        .unwrap();
        assert!(
            out.status.success(),
            "{sql} on port {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let port_s = port.to_string();
    assert_eq!(
        query(&port_s, "SELECT pg_is_in_recovery()"),
        "t",
        "a read through the demo reaches a replica"
    );
    assert_eq!(
        query(&port_s, "SELECT count(*) FROM products"),
        "20",
        "the shop's products, through the proxy"
    );
    // Users live on both shards' primaries (ports from the banner).
    for shard in ["s0", "s1"] {
        let prefix = format!("  {shard}  primary 127.0.0.1:");
        let primary = banner
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("banner names {shard}'s primary: {banner}"));
        let users: u32 = query(primary, "SELECT count(*) FROM users")
            .parse()
            .expect("a count");
        assert!(users > 0, "{shard} holds users");
    }
    assert!(
        banner.contains("-> replica s0: SELECT * FROM orders_archive_2026_03 AS orders_archive"),
        "a worked example of a month table: {banner}"
    );
    // Ctrl-C
    sigint(pid);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    assert!(status.success(), "demo exit: {status:?}");
    let root = std::env::temp_dir().join(format!("shardgate-demo-{pid}"));
    assert!(!root.exists(), "demo removed {}", root.display());
}

/// Sends SIGINT via the `kill` command (no libc in this crate's tests).
fn sigint(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

#[test]
fn route_prints_the_plan_of_one_statement_offline() {
    let dir = std::env::temp_dir().join(format!("sg-route-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sharded.toml");
    std::fs::write(
        &cfg,
        "[[users]]\nname = \"shop\"\npassword = \"shop\"\n\n[backend]\nuser = \"shop\"\ndatabase = \"shop\"\n\n\
         [[shards]]\nname = \"s0\"\nprimary = \"127.0.0.1:5999\"\n\n[[shards]]\nname = \"s1\"\nprimary = \"127.0.0.1:5998\"\n\n\
         [tables.users]\nsharding_key = \"id\"\n",
    )
    .unwrap();
    let bin = shardgate_bin().expect("binary");
    let config = cfg.to_str().unwrap();
    // 42 hashes to slot 610 of 1024: the second half, s1.
    let out = run_cmd(
        &bin,
        &[
            "route",
            "--config",
            config,
            "SELECT * FROM users WHERE id = $1",
            "--param",
            "42",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "replica s1: SELECT * FROM users WHERE id = $1\n"
    );
    let out = run_cmd(
        &bin,
        &[
            "route",
            "--config",
            config,
            "INSERT INTO users (id, v) VALUES (3, 'a'), (42, 'b')",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "primary s0: INSERT INTO users (id, v) VALUES (3, 'a')\nprimary s1: INSERT INTO users (id, v) VALUES (42, 'b')\n"
    );
    let out = run_cmd(
        &bin,
        &[
            "route",
            "--config",
            config,
            "SELECT count(DISTINCT v) FROM users",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused (SQLSTATE 0A000): count(DISTINCT …) across shards"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
