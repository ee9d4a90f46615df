//! The client side: TLS, startup, login, and handing the client to a session.

pub mod scram;
pub mod startup;
pub mod stream;
pub mod tls;

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::context::Context;
use crate::execute::Session;
use crate::protocol::messages;
use crate::protocol::SqlState;
use startup::{Hello, StartupError};

/// Serves one accepted client connection from startup to goodbye.
pub async fn handle(ctx: Arc<Context>, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let timeout = std::time::Duration::from_millis(ctx.config.proxy.startup_timeout_ms);
    let hello = match tokio::time::timeout(timeout, startup::hello(tcp, ctx.tls.as_ref())).await {
        Ok(h) => h,
        Err(_) => return,
    };
    let (mut stream, params) = match hello {
        Ok(Hello::Login { stream, params }) => (stream, params),
        Ok(Hello::Cancel { pid, secret }) => {
            ctx.cancels.cancel(pid, secret).await;
            return;
        }
        Err((Some(mut s), e)) => {
            if !matches!(e, StartupError::Io(_)) {
                startup::refuse(&mut s, e.code(), &e.to_string()).await;
            }
            return;
        }
        Err((None, _)) => return,
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(user) = get("user") else {
        startup::refuse(
            &mut stream,
            SqlState::INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        )
        .await;
        return;
    };
    let database = get("database").unwrap_or_else(|| user.clone());
    if params.iter().any(|(k, _)| k == "replication") {
        startup::refuse(
            &mut stream,
            SqlState::FEATURE_NOT_SUPPORTED,
            "replication connections are not supported by shardgate",
        )
        .await;
        return;
    }
    let verifier = ctx.users.get(&user).cloned();
    let login = startup::authenticate(&mut stream, &user, verifier, &ctx.dummy_verifier);
    match tokio::time::timeout(timeout, login).await {
        Ok(Ok(())) => {}
        Ok(Err(StartupError::Io(_))) | Err(_) => return,
        Ok(Err(e)) => {
            startup::refuse(&mut stream, e.code(), &e.to_string()).await;
            return;
        }
    }
    if database != ctx.config.backend.database {
        startup::refuse(
            &mut stream,
            SqlState::INVALID_CATALOG_NAME,
            &format!("database \"{database}\" does not exist"),
        )
        .await;
        return;
    }
    let server_params = match ctx.server_params().await {
        Ok(p) => p,
        Err(e) => {
            startup::refuse(
                &mut stream,
                SqlState::CONNECTION_FAILURE,
                &format!("no server available: {e}"),
            )
            .await;
            return;
        }
    };
    let (pid, secret, cancel) = ctx.cancels.issue();
    let mut out = BytesMut::new();
    for (k, v) in reported_params(&server_params, &params) {
        messages::parameter_status_msg(&mut out, &k, &v);
    }
    messages::backend_key_data(&mut out, pid, secret);
    messages::ready_for_query(&mut out, crate::protocol::TxStatus::Idle);
    if stream.write_all(&out).await.is_ok() {
        let (rd, wr) = stream.split();
        Session::new(ctx.clone(), rd, wr, &params, cancel)
            .run()
            .await;
    }
    ctx.cancels.release(pid, secret);
}

/// The ParameterStatus values a client sees at login: the server's, with
/// the client's own startup settings on top (normalized as Postgres does).
fn reported_params(
    server: &[(String, String)],
    client: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = server.to_vec();
    for (k, v) in client {
        let Some(slot) = out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) else {
            continue;
        };
        slot.1 = match slot.0.as_str() {
            "client_encoding" => {
                let up = v.to_ascii_uppercase().replace('-', "");
                if up == "UNICODE" {
                    "UTF8".to_string()
                } else {
                    up
                }
            }
            "DateStyle" if !v.contains(',') => {
                let order = slot
                    .1
                    .split(',')
                    .nth(1)
                    .unwrap_or(" MDY")
                    .trim()
                    .to_string();
                format!("{}, {order}", v.trim())
            }
            _ => v.clone(),
        };
    }
    if !out.iter().any(|(k, _)| k == "application_name") {
        if let Some((_, v)) = client.iter().find(|(k, _)| k == "application_name") {
            out.push(("application_name".into(), v.clone()));
        }
    }
    out
}
