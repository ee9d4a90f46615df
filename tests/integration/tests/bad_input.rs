//! Bad input at the front door: each gets the right SQLSTATE or a clean
//! close, and the proxy keeps serving everyone else.

use integration::wire::{self, msg, read_msg, sqlstate};
use integration::{config_for, process_alive, Cluster, ClusterOptions, Proxy};
use rand::{RngCore, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn setup() -> (Cluster, Proxy) {
    let cluster = Cluster::start(ClusterOptions::default()).expect("cluster");
    let proxy = Proxy::start(&config_for(&cluster)).expect("proxy");
    (cluster, proxy)
}

async fn raw_login(proxy: &Proxy) -> TcpStream {
    wire::raw_login(proxy.port).await
}

/// Reads until an ErrorResponse; returns its SQLSTATE, then expects the
/// proxy to close the connection.
async fn expect_fatal_close(s: &mut TcpStream) -> String {
    let mut code = None;
    while let Some((tag, body)) = read_msg(s).await {
        if tag == b'E' {
            code = Some(sqlstate(&body));
        }
    }
    code.expect("an ErrorResponse before the close")
}

async fn still_serving(proxy: &Proxy) {
    let c = proxy
        .connect("shop", "shop")
        .await
        .expect("others can connect");
    let rows = c.simple_query("SELECT 1").await.expect("others can query");
    assert!(!rows.is_empty());
    assert!(process_alive(proxy.pid()), "proxy still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logins_get_the_right_sqlstate() {
    let (_cluster, proxy) = setup();
    let code = |r: Result<tokio_postgres::Client, anyhow::Error>| {
        r.err()
            .and_then(|e| {
                e.chain()
                    .find_map(|c| c.downcast_ref::<tokio_postgres::Error>())
                    .and_then(|e| e.code().map(|c| c.code().to_string()))
            })
            .unwrap_or_default()
    };
    assert_eq!(code(proxy.connect("shop", "wrong").await), "28P01");
    assert_eq!(code(proxy.connect("nobody", "shop").await), "28P01");
    assert_eq!(
        code(proxy.connect_db("shop", "shop", "nodb").await),
        "3D000"
    );
    still_serving(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_before_and_after_login_is_refused_cleanly() {
    let (_cluster, proxy) = setup();

    // random bytes instead of a startup packet (fixed seed)
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..20 {
        let mut junk = vec![0u8; 64];
        rng.fill_bytes(&mut junk);
        let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        s.write_all(&junk).await.unwrap();
        let _ = s.shutdown().await;
        // the proxy answers with an error or just closes; it never hangs
        while read_msg(&mut s).await.is_some() {}
    }
    // a startup packet that claims 1 GiB
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    s.write_all(&0x4000_0000i32.to_be_bytes()).await.unwrap();
    assert_eq!(expect_fatal_close(&mut s).await, "08P01");
    still_serving(&proxy).await;

    // after login: a length field below 4
    let mut s = raw_login(&proxy).await;
    s.write_all(b"Q\0\0\0\x02").await.unwrap();
    assert_eq!(expect_fatal_close(&mut s).await, "08P01");

    // a 1 GiB Query: refused at once, not buffered
    let mut s = raw_login(&proxy).await;
    s.write_all(b"Q\x40\0\0\0SELECT").await.unwrap();
    assert_eq!(expect_fatal_close(&mut s).await, "08P01");

    // a Bind whose parameter length lies about the bytes that follow
    let mut s = raw_login(&proxy).await;
    let mut bind = b"\0s1\0\0\0\0\x01".to_vec();
    bind.extend_from_slice(&1000i32.to_be_bytes());
    bind.extend_from_slice(b"42");
    s.write_all(&msg(b'B', &bind)).await.unwrap();
    s.write_all(&msg(b'S', b"")).await.unwrap();
    assert_eq!(expect_fatal_close(&mut s).await, "08P01");

    // a Query whose length field is shorter than its text
    let mut s = raw_login(&proxy).await;
    s.write_all(b"Q\0\0\0\x06SELECT 1\0").await.unwrap();
    assert_eq!(expect_fatal_close(&mut s).await, "08P01");

    // an unknown message type
    let mut s = raw_login(&proxy).await;
    s.write_all(&msg(b'z', b"hello")).await.unwrap();
    assert_eq!(expect_fatal_close(&mut s).await, "08P01");

    // a client that vanishes mid-transaction on a raw socket
    let mut s = raw_login(&proxy).await;
    s.write_all(&msg(
        b'Q',
        b"BEGIN; CREATE TABLE vanish (id int); INSERT INTO vanish VALUES (1)\0",
    ))
    .await
    .unwrap();
    loop {
        let (tag, _) = read_msg(&mut s).await.expect("reply");
        if tag == b'Z' {
            break;
        }
    }
    drop(s);
    let c = proxy.connect("shop", "shop").await.unwrap();
    c.batch_execute("SET lock_timeout = '5s'").await.unwrap();
    // the table was never committed, and its lock is gone
    let err = c
        .simple_query("/* shardgate: primary */ SELECT * FROM vanish")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    still_serving(&proxy).await;
}
