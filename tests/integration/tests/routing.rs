//! Read/write splitting proved by what the servers say: which server
//! answered (`pg_is_in_recovery()`, `inet_server_port()`), and that session
//! state follows the client across servers.

use std::collections::HashSet;
use std::time::Duration;

use integration::{config_for, Cluster, ClusterOptions, Proxy};
use tokio_postgres::SimpleQueryMessage;

/// The first column of the first row of a simple query.
async fn one(c: &tokio_postgres::Client, sql: &str) -> String {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

fn two_replicas() -> (Cluster, Proxy) {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 2,
        ..Default::default()
    })
    .expect("cluster");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy");
    (cluster, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_replicas_and_everything_else_to_the_primary() {
    let (cluster, proxy) = two_replicas();
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'); CREATE SEQUENCE s")
        .await
        .expect("ddl");
    cluster.wait_replicated().await.expect("replicated");

    assert_eq!(
        one(&c, "SELECT pg_is_in_recovery()").await,
        "t",
        "plain read"
    );
    assert_eq!(
        one(&c, "/* shardgate: primary */ SELECT pg_is_in_recovery()").await,
        "f",
        "hint"
    );
    assert_eq!(
        one(&c, "SELECT pg_is_in_recovery() -- shardgate: primary").await,
        "f",
        "line-comment hint"
    );
    assert_eq!(
        one(&c, "SELECT pg_is_in_recovery() FROM t FOR UPDATE").await,
        "f",
        "locking read"
    );
    assert_eq!(
        one(
            &c,
            "SELECT pg_is_in_recovery() FROM (SELECT nextval('s')) x"
        )
        .await,
        "f",
        "writing function"
    );
    assert_eq!(
        one(
            &c,
            "SELECT pg_is_in_recovery() FROM pg_try_advisory_lock(1)"
        )
        .await,
        "f",
        "advisory lock"
    );

    // inside BEGIN … COMMIT: the primary, throughout
    c.batch_execute("BEGIN").await.expect("begin");
    assert_eq!(one(&c, "SELECT pg_is_in_recovery()").await, "f");
    assert_eq!(one(&c, "SELECT v FROM t WHERE id = 1").await, "a");
    c.batch_execute("COMMIT").await.expect("commit");

    // BEGIN READ ONLY may use one replica throughout
    c.batch_execute("BEGIN READ ONLY").await.expect("begin ro");
    let port = one(&c, "SELECT inet_server_port()").await;
    assert_eq!(one(&c, "SELECT pg_is_in_recovery()").await, "t");
    for _ in 0..4 {
        assert_eq!(
            one(&c, "SELECT inet_server_port()").await,
            port,
            "one replica throughout"
        );
    }
    c.batch_execute("COMMIT").await.expect("commit");

    // a failed transaction stays on its server until ROLLBACK
    c.batch_execute("BEGIN").await.expect("begin");
    assert!(c.batch_execute("SELECT 1/0").await.is_err());
    let err = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("25P02"));
    c.batch_execute("ROLLBACK").await.expect("rollback");
    assert_eq!(one(&c, "SELECT pg_is_in_recovery()").await, "t");

    // unparseable statements go to the primary unchanged
    c.batch_execute("DO $$ BEGIN INSERT INTO t VALUES (2, 'b'); END $$")
        .await
        .expect("DO block");
    assert_eq!(
        one(&c, "/* shardgate: primary */ SELECT count(*) FROM t").await,
        "2"
    );
    // writes
    c.execute("INSERT INTO t VALUES ($1, $2)", &[&3i32, &"c"])
        .await
        .expect("prepared insert");
    let n = c
        .execute("UPDATE t SET v = 'z' WHERE id > 0", &[])
        .await
        .expect("update");
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_and_prepared_statements_follow_the_client_across_servers() {
    let (_cluster, proxy) = two_replicas();
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.batch_execute("SET application_name = 'x'")
        .await
        .expect("set");
    let mut ports = HashSet::new();
    for _ in 0..6 {
        let row = c
            .simple_query("SELECT current_setting('application_name'), inet_server_port()")
            .await
            .expect("show");
        let r = row
            .iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .expect("a row");
        assert_eq!(r.get(0), Some("x"), "SET seen on every server");
        ports.insert(r.get(1).unwrap_or_default().to_string());
    }
    assert!(ports.len() >= 2, "reads ran on several servers: {ports:?}");
    assert_eq!(one(&c, "SHOW application_name").await, "x");

    // extended-protocol SET is recorded too
    c.execute("SET search_path = pg_catalog, public", &[])
        .await
        .expect("extended SET");
    for _ in 0..3 {
        assert_eq!(one(&c, "SHOW search_path").await, "pg_catalog, public");
    }
    // a rolled-back SET is forgotten; a committed one is kept
    c.batch_execute("BEGIN; SET work_mem = '1MB'; ROLLBACK")
        .await
        .expect("rolled back set");
    c.batch_execute("BEGIN").await.expect("begin");
    c.batch_execute("SET statement_timeout = '7s'")
        .await
        .expect("set in txn");
    c.batch_execute("COMMIT").await.expect("commit");
    for _ in 0..3 {
        assert_eq!(one(&c, "SHOW work_mem").await, "4MB");
        assert_eq!(one(&c, "SHOW statement_timeout").await, "7s");
    }
    c.batch_execute("RESET ALL").await.expect("reset all");
    for _ in 0..3 {
        assert_eq!(one(&c, "SHOW statement_timeout").await, "0");
    }

    // one prepared statement, executed 10 times, alternates replicas
    let stmt = c
        .prepare("SELECT inet_server_port(), pg_is_in_recovery(), $1::int + 1")
        .await
        .expect("prepare");
    let mut seen = Vec::new();
    for i in 0..10i32 {
        let row = c.query_one(&stmt, &[&i]).await.expect("execute");
        assert!(row.get::<_, bool>(1), "a replica answered");
        assert_eq!(row.get::<_, i32>(2), i + 1);
        seen.push(row.get::<_, i32>(0));
    }
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), 2, "alternates replicas: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replica_mid_query_gives_an_error_and_others_go_on() {
    let (cluster, proxy) = two_replicas();
    let victim = &cluster.replicas[0];
    let c = proxy.connect("shop", "shop").await.expect("connect");
    let c2 = proxy.connect("shop", "shop").await.expect("connect");
    // reads alternate between the two replicas: after a read on the other
    // one, c2's next read lands on the victim
    let mut next_on_victim = false;
    for _ in 0..4 {
        let port: u16 = one(&c2, "SELECT inet_server_port()").await.parse().unwrap();
        if port != victim.port {
            next_on_victim = true;
            break;
        }
    }
    assert!(next_on_victim);
    let sleeper = tokio::spawn(async move {
        let r = c2
            .simple_query("SELECT pg_sleep(20), inet_server_port()")
            .await
            .map(|_| ())
            .map_err(|e| e.code().map(|c| c.code().to_string()));
        (c2, r)
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    victim.stop_immediate().expect("stop replica");
    let (c2, result) = tokio::time::timeout(Duration::from_secs(15), sleeper)
        .await
        .expect("no hang")
        .expect("join");
    let code = result
        .expect_err("the query on the killed replica failed")
        .unwrap_or_default();
    assert!(
        ["57P01", "08006", "57P02", "57P03"].contains(&code.as_str()),
        "backend-lost SQLSTATE, got {code:?}"
    );
    // the same client and others keep working
    for _ in 0..6 {
        assert_eq!(one(&c2, "SELECT 1").await, "1");
        assert_eq!(one(&c, "SELECT 1").await, "1");
    }
    let fresh = proxy.connect("shop", "shop").await.expect("new client");
    for _ in 0..6 {
        assert_eq!(one(&fresh, "SELECT 1").await, "1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_transaction_leaves_no_lock() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy");
    let setup = proxy.connect("shop", "shop").await.expect("connect");
    setup
        .batch_execute(
            "CREATE TABLE acct (id int PRIMARY KEY, n int); INSERT INTO acct VALUES (1, 0)",
        )
        .await
        .expect("setup");

    // a client that holds a row lock, then its socket just closes
    let (client, connection) =
        tokio_postgres::connect(&proxy.conn_str("shop", "shop"), tokio_postgres::NoTls)
            .await
            .expect("connect");
    let task = tokio::spawn(connection);
    client
        .batch_execute("BEGIN; UPDATE acct SET n = n + 1 WHERE id = 1")
        .await
        .expect("lock");
    task.abort(); // drops the socket without Terminate
    drop(client);

    let other = proxy.connect("shop", "shop").await.expect("connect");
    other
        .batch_execute("SET lock_timeout = '5s'")
        .await
        .expect("set");
    other
        .batch_execute("UPDATE acct SET n = n + 10 WHERE id = 1")
        .await
        .expect("row lock was released");
    assert_eq!(
        one(&other, "/* shardgate: primary */ SELECT n FROM acct").await,
        "10",
        "the vanished transaction was rolled back"
    );
    // and nothing stays idle in transaction on the primary
    let direct = cluster.primary.connect("postgres").await.expect("direct");
    let mut idle = 1;
    for _ in 0..50 {
        idle = direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .expect("activity")
            .get::<_, i64>(0);
        if idle == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(idle, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replicas_are_skipped_and_listed_functions_go_to_the_primary() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    let config = config_for(&cluster)
        .replace("[routing]", "[routing]\nmax_replica_lag_ms = 300")
        .replace(
            "pool_size = 20",
            "pool_size = 20\nwrite_functions = [\"public.bump\"]",
        );
    let proxy = Proxy::start(&config).expect("proxy");
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.batch_execute(
        "CREATE TABLE counter (n int); INSERT INTO counter VALUES (0);
         CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS 'UPDATE counter SET n = n + 1 RETURNING n'",
    )
    .await
    .expect("setup");
    cluster.wait_replicated().await.expect("replicated");
    assert_eq!(one(&c, "SELECT pg_is_in_recovery()").await, "t");
    assert_eq!(
        one(&c, "SELECT pg_is_in_recovery() FROM bump()").await,
        "f",
        "a function listed in write_functions runs on the primary"
    );

    // stop replay on the replica: it falls behind, and reads move to the primary
    let replica = cluster.replicas[0]
        .connect("postgres")
        .await
        .expect("replica");
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .expect("pause");
    for _ in 0..5 {
        c.batch_execute("INSERT INTO counter VALUES (1)")
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..4 {
        assert_eq!(
            one(&c, "SELECT pg_is_in_recovery()").await,
            "f",
            "a replica lagging past max_replica_lag_ms is skipped"
        );
    }
    replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .expect("resume");
    let mut back = false;
    for _ in 0..50 {
        if one(&c, "SELECT pg_is_in_recovery()").await == "t" {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "the replica serves reads again once it caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_reads_and_writes_each_reach_a_server_that_can_run_them() {
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy");
    let c = proxy.connect("shop", "shop").await.expect("connect");
    c.batch_execute("CREATE TABLE p (i int)")
        .await
        .expect("ddl");
    cluster.wait_replicated().await.expect("replicated");
    // tokio-postgres sends these without waiting for answers: reads and
    // writes interleave in one pipeline
    for round in 0..3 {
        let futs = (0..40i32).map(|i| {
            let c = &c;
            async move {
                if i % 3 == 0 {
                    c.execute("INSERT INTO p VALUES ($1)", &[&i])
                        .await
                        .map(|n| n as i32)
                } else if i % 3 == 1 {
                    c.query_one("SELECT $1::int + 1", &[&i])
                        .await
                        .map(|r| r.get::<_, i32>(0) - 1)
                } else {
                    c.simple_query(&format!("SELECT {i}")).await.map(|m| {
                        m.iter()
                            .find_map(|m| match m {
                                SimpleQueryMessage::Row(r) => {
                                    r.get(0).map(|v| v.parse().unwrap_or(-1))
                                }
                                _ => None,
                            })
                            .unwrap_or(-1)
                    })
                }
            }
        });
        let results = futures::future::join_all(futs).await;
        for (i, r) in results.into_iter().enumerate() {
            let v = r.unwrap_or_else(|e| panic!("round {round} statement {i}: {e}"));
            let want = if i % 3 == 0 { 1 } else { i as i32 };
            assert_eq!(v, want, "round {round} statement {i}");
        }
    }
    assert_eq!(
        one(&c, "/* shardgate: primary */ SELECT count(*) FROM p").await,
        (3 * 14).to_string()
    );
}
