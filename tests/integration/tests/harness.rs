//! Tests of the test harness itself: clusters start, replicate, log in as
//! configured, stop and start again, and leave nothing behind.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use integration::{
    config_for, free_port, pg_bin, process_alive, run_cmd, run_cmd_timeout, shardgate_bin, Auth,
    Cluster, ClusterOptions,
};

async fn in_recovery(client: &tokio_postgres::Client) -> bool {
    client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("pg_is_in_recovery()")
        .get(0)
}

/// Logs in as `shop` with `password` straight to `server`.
async fn login(
    server: &integration::PgServer,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conn_str = format!(
        "host=127.0.0.1 port={} user=shop dbname=shop password={password}",
        server.port
    );
    let (client, connection) = tokio_postgres::connect(&conn_str, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_replicate_and_cleanup() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions {
        replicas: 2,
        auth: Auth::Scram,
    })
    .expect("cluster starts");
    eprintln!("2-replica cluster started in {:?}", started.elapsed());
    assert_eq!(cluster.replicas.len(), 2);
    assert_eq!(cluster.all_servers().count(), 3);

    let ports: Vec<u16> = cluster.all_servers().map(|s| s.port).collect();
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "ports {ports:?}");

    let primary = cluster
        .primary
        .connect("shop")
        .await
        .expect("shop on primary");
    assert!(!in_recovery(&primary).await, "primary is not in recovery");
    for replica in &cluster.replicas {
        let client = replica.connect("shop").await.expect("shop on replica");
        assert!(in_recovery(&client).await, "replica is in recovery");
    }

    primary
        .batch_execute(
            "CREATE TABLE harness_t (id int PRIMARY KEY, v text);
             INSERT INTO harness_t SELECT g, 'v' || g FROM generate_series(1, 1000) g;",
        )
        .await
        .expect("create and fill on primary");
    cluster.wait_replicated().await.expect("replicas catch up");
    for replica in &cluster.replicas {
        let client = replica.connect("shop").await.expect("shop on replica");
        let row = client
            .query_one("SELECT count(*), max(v) FROM harness_t WHERE id > 0", &[])
            .await
            .expect("table visible on replica");
        assert_eq!(row.get::<_, i64>(0), 1000);
        assert_eq!(row.get::<_, String>(1), "v999");
        // A replica refuses writes.
        let err = client
            .batch_execute("INSERT INTO harness_t VALUES (0, 'x')")
            .await
            .expect_err("replica is read-only");
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
        );
    }

    // SCRAM: the right password works, a wrong one is refused with 28P01.
    login(&cluster.primary, "shop").await.expect("shop/shop");
    let err = login(&cluster.primary, "wrong")
        .await
        .expect_err("wrong password refused");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err}"
    );
    let verifier = cluster
        .primary
        .psql(
            "postgres",
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'shop'",
        )
        .expect("psql");
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");

    // shop owns database shop and may create tables in it (checked above);
    // it is not a superuser.
    let superuser: bool = primary
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = 'shop'", &[])
        .await
        .expect("pg_roles")
        .get(0);
    assert!(!superuser);

    let config = config_for(&cluster);
    assert!(config.contains("listen = \"{listen}\""), "{config}");
    assert!(
        config.contains(&format!("primary = \"127.0.0.1:{}\"", cluster.primary.port)),
        "{config}"
    );
    assert!(
        config.contains(&format!(
            "replicas = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]",
            cluster.replicas[0].port, cluster.replicas[1].port
        )),
        "{config}"
    );
    assert!(config.contains("default_shard = \"s0\""), "{config}");
    assert!(config.contains("pool_size = 20"), "{config}");

    let pids: Vec<u32> = cluster
        .all_servers()
        .map(|s| s.pid().expect("postmaster.pid"))
        .collect();
    for pid in &pids {
        assert!(process_alive(*pid), "postmaster {pid} runs");
    }
    let dirs: Vec<PathBuf> = cluster.all_servers().map(|s| s.data_dir.clone()).collect();
    let root = dirs[0].parent().expect("root dir").to_path_buf();
    assert!(root
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("shardgate-test-")));
    drop(primary);

    let dropping = Instant::now();
    drop(cluster);
    eprintln!("2-replica cluster dropped in {:?}", dropping.elapsed());
    for pid in pids {
        assert!(!process_alive(pid), "postmaster {pid} is gone after drop");
    }
    for dir in dirs {
        assert!(!dir.exists(), "{} removed", dir.display());
    }
    assert!(!root.exists(), "{} removed", root.display());
}

#[tokio::test]
async fn md5_login() {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 0,
        auth: Auth::Md5,
    })
    .expect("cluster starts");
    assert!(cluster.replicas.is_empty());
    let client = cluster.primary.connect("shop").await.expect("shop/shop");
    client.simple_query("SELECT 1").await.expect("query");
    let err = login(&cluster.primary, "wrong")
        .await
        .expect_err("wrong password refused");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err}"
    );
    let hash = cluster
        .primary
        .psql(
            "postgres",
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'shop'",
        )
        .expect("psql");
    assert!(hash.starts_with("md5"), "{hash}");
    // With no replicas, waiting for them is immediate.
    cluster.wait_replicated().await.expect("no replicas");
}

#[tokio::test]
async fn trust_login() {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 0,
        auth: Auth::Trust,
    })
    .expect("cluster starts");
    login(&cluster.primary, "shop").await.expect("shop/shop");
    login(&cluster.primary, "anything")
        .await
        .expect("trust ignores the password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_immediate_and_start_again() {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 1,
        auth: Auth::Scram,
    })
    .expect("cluster starts");
    let primary = &cluster.primary;
    let client = primary.connect("shop").await.expect("connect");
    client
        .batch_execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2);")
        .await
        .expect("write");
    // Make sure the rows are durable in WAL before the crash-like stop.
    client
        .batch_execute("SET synchronous_commit = on; INSERT INTO kept VALUES (3);")
        .await
        .expect("write");

    let old_pid = primary.pid().expect("pid");
    primary.stop_immediate().expect("stop");
    // pg_ctl returns once postmaster.pid is removed; the process may take a
    // moment longer to be reaped (PID 1 here does not reap quickly).
    let mut alive = process_alive(old_pid);
    for _ in 0..50 {
        if !alive {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        alive = process_alive(old_pid);
    }
    assert!(!alive, "postmaster gone after stop");
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "an open connection fails"
    );
    assert!(
        primary.connect("shop").await.is_err(),
        "a new connection fails"
    );
    assert!(
        primary.stop_immediate().is_err(),
        "stopping twice is an error"
    );

    primary.start_again().expect("start again");
    let client = primary
        .connect("shop")
        .await
        .expect("connect after restart");
    let n: i64 = client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .expect("rows survive")
        .get(0);
    assert_eq!(n, 3);
    assert_ne!(primary.pid(), Some(old_pid));

    // The replica reconnects to the restarted primary and keeps up.
    client
        .batch_execute("INSERT INTO kept VALUES (4)")
        .await
        .expect("write after restart");
    cluster.wait_replicated().await.expect("replica catches up");
    let replica = cluster.replicas[0].connect("shop").await.expect("replica");
    let n: i64 = replica
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .expect("rows on replica")
        .get(0);
    assert_eq!(n, 4);

    // A replica can be stopped and started too.
    cluster.replicas[0].stop_immediate().expect("stop replica");
    cluster.replicas[0].start_again().expect("start replica");
    let replica = cluster.replicas[0].connect("shop").await.expect("replica");
    assert!(in_recovery(&replica).await);
}

#[test]
fn free_ports_are_unique_and_bindable() {
    let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
    let mut unique = ports.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ports.len());
    for port in ports.iter().take(20) {
        std::net::TcpListener::bind(("127.0.0.1", *port)).expect("bindable");
    }
}

#[test]
fn run_cmd_collects_output_and_times_out() {
    let out = run_cmd(
        std::path::Path::new("sh"),
        &["-c", "echo out; echo err >&2; echo $HARNESS_X; exit 3"],
        &[("HARNESS_X", "x")],
    )
    .expect("runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\nx\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(out.status.code(), Some(3));

    let started = Instant::now();
    let err = run_cmd_timeout(
        std::path::Path::new("sh"),
        &["-c", "sleep 30 & sleep 30"],
        &[],
        Duration::from_millis(300),
    )
    .expect_err("times out");
    assert!(started.elapsed() < Duration::from_secs(5), "{err:#}");
    assert!(format!("{err:#}").contains("did not finish"), "{err:#}");
}

#[test]
fn postgres_binaries_are_found() {
    for name in ["initdb", "pg_ctl", "pg_basebackup", "psql", "pgbench"] {
        let path = pg_bin(name).expect(name);
        assert!(path.is_file(), "{}", path.display());
    }
    let err = pg_bin("no-such-postgres-program").expect_err("missing");
    assert!(format!("{err}").contains("apt-get install"), "{err}");
    let out = run_cmd(&pg_bin("psql").expect("psql"), &["--version"], &[]).expect("psql runs");
    assert!(out.status.success());
}

#[test]
fn shardgate_binary_is_built() {
    let path = shardgate_bin().expect("shardgate builds");
    assert!(path.is_file(), "{}", path.display());
    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("shardgate"));
    // Cached: the second call does not build again.
    assert_eq!(shardgate_bin().expect("cached"), path);
}

#[test]
fn a_panicking_test_still_cleans_up() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let cluster = Cluster::start(ClusterOptions {
            replicas: 0,
            auth: Auth::Trust,
        })
        .expect("cluster starts");
        let pid = cluster.primary.pid().expect("pid");
        *seen.lock().expect("lock") = Some((pid, cluster.primary.data_dir.clone()));
        panic!("test failure while the cluster runs");
    });
    assert!(result.is_err());
    let (pid, dir) = seen.lock().expect("lock").take().expect("cluster started");
    assert!(!process_alive(pid), "postmaster {pid} stopped");
    assert!(!dir.exists(), "{} removed", dir.display());
}
