//! Proxy-issued cancel keys, mapped to the server connections running a
//! client's statement (several when it runs on several shards), so a
//! `CancelRequest` reaches the right Postgres backends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::Rng;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::protocol::messages;
use shard_config::Address;

/// Where a client's current query runs: a server and its cancel key.
#[derive(Debug, Clone)]
pub struct Running {
    /// The server.
    pub addr: Address,
    /// The server backend's pid.
    pub pid: i32,
    /// The server backend's secret.
    pub secret: i32,
}

/// One client's slot: updated when the client's statements move between
/// servers (several while a statement runs on several shards).
#[derive(Debug, Default)]
pub struct Slot(Mutex<Vec<Running>>);

impl Slot {
    /// Records the server connections now running the client's statements.
    pub fn set(&self, running: Vec<Running>) {
        if let Ok(mut s) = self.0.lock() {
            *s = running;
        }
    }
}

/// All live clients' cancel keys.
#[derive(Default)]
pub struct Registry {
    keys: Mutex<HashMap<(i32, i32), Arc<Slot>>>,
}

impl Registry {
    /// Issues a fresh key for a new client.
    pub fn issue(&self) -> (i32, i32, Arc<Slot>) {
        let slot = Arc::new(Slot::default());
        let mut rng = rand::thread_rng();
        loop {
            let key = (rng.gen_range(1..i32::MAX), rng.gen::<i32>());
            if let Ok(mut keys) = self.keys.lock() {
                if keys.contains_key(&key) {
                    continue;
                }
                keys.insert(key, slot.clone());
            }
            return (key.0, key.1, slot);
        }
    }

    /// Forgets a client's key when it leaves.
    pub fn release(&self, pid: i32, secret: i32) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(&(pid, secret));
        }
    }

    /// Forwards a cancel for the client holding this key to every server
    /// running its statement, if any.
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let running = self
            .keys
            .lock()
            .ok()
            .and_then(|k| k.get(&(pid, secret)).cloned())
            .and_then(|slot| slot.0.lock().ok().map(|r| r.clone()))
            .unwrap_or_default();
        futures::future::join_all(running.iter().map(send)).await;
    }
}

/// Sends a CancelRequest to a server.
pub async fn send(r: &Running) {
    if let Ok(mut s) = TcpStream::connect((r.addr.host.as_str(), r.addr.port)).await {
        let _ = s
            .write_all(&messages::cancel_request(r.pid, r.secret))
            .await;
        let _ = s.shutdown().await;
    }
}
