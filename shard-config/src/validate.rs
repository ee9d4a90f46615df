//! Cross-field checks on a read config: ranges, pairs, uniqueness and references.

use std::collections::HashMap;

use crate::address::Address;
use crate::diagnostics::Diagnostics;
use crate::fields::Located;
use crate::model::ProxyConfig;
use crate::raw::{RawAdmin, RawBackend, RawConfig, RawProxy, RawRouting, RawShard, RawUser};
use crate::scram;

/// Records every semantic problem of `raw` (structural ones were reported while reading).
pub(crate) fn validate(raw: &RawConfig, d: &mut Diagnostics) {
    proxy(&raw.proxy, d);
    if let Some(admin) = &raw.admin {
        self::admin(admin, d);
    }
    users(&raw.users, d);
    if let Some(backend) = &raw.backend {
        self::backend(backend, d);
    }
    shards(&raw.shards, d);
    routing(&raw.routing, &raw.shards, d);
}

/// Reports `{path} must be at least {min}` when `value` is below `min`.
fn at_least<T: PartialOrd + Copy + std::fmt::Display>(
    value: &Option<Located<T>>,
    min: T,
    path: &str,
    d: &mut Diagnostics,
) {
    if let Some(v) = value {
        if v.value < min {
            d.error(
                v.line,
                format!("{path} must be at least {min} (got {})", v.value),
            );
        }
    }
}

/// Reports `{path} must not be empty` for an empty string.
fn not_empty(value: &Option<Located<String>>, path: &str, d: &mut Diagnostics) {
    if let Some(v) = value {
        if v.value.is_empty() {
            d.error(v.line, format!("{path} must not be empty"));
        }
    }
}

fn proxy(p: &RawProxy, d: &mut Diagnostics) {
    at_least(&p.pool_size, 1, "proxy.pool_size", d);
    at_least(&p.connect_timeout_ms, 1, "proxy.connect_timeout_ms", d);
    at_least(&p.startup_timeout_ms, 1, "proxy.startup_timeout_ms", d);
    at_least(&p.merge_row_limit, 1, "proxy.merge_row_limit", d);
    at_least(
        &p.max_message_bytes,
        ProxyConfig::MIN_MAX_MESSAGE_BYTES,
        "proxy.max_message_bytes",
        d,
    );
    if let Some(n) = &p.node_id {
        let max = ProxyConfig::MAX_NODE_ID;
        if !(0..=i64::from(max)).contains(&n.value) {
            d.error(
                n.line,
                format!(
                    "proxy.node_id must be between 0 and {max} (the snowflake node bits), got {}",
                    n.value
                ),
            );
        }
    }
    not_empty(&p.tls_cert, "proxy.tls_cert", d);
    not_empty(&p.tls_key, "proxy.tls_key", d);
    match (&p.tls_cert, &p.tls_key) {
        (Some(cert), None) => d.error(
            cert.line,
            "proxy.tls_cert is set but proxy.tls_key is not: set both or neither",
        ),
        (None, Some(key)) => d.error(
            key.line,
            "proxy.tls_key is set but proxy.tls_cert is not: set both or neither",
        ),
        _ => {}
    }
    for f in p.write_functions.iter().flatten() {
        if f.value.trim().is_empty() {
            d.error(
                f.line,
                "proxy.write_functions: a function name must not be empty",
            );
        }
    }
}

fn admin(a: &RawAdmin, d: &mut Diagnostics) {
    not_empty(&a.user, "admin.user", d);
    not_empty(&a.password, "admin.password", d);
}

fn users(users: &[RawUser], d: &mut Diagnostics) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let label = match &user.name {
            Some(n) if !n.value.is_empty() => format!("user {:?}", n.value),
            _ => format!("user #{}", i + 1),
        };
        if let Some(name) = &user.name {
            if name.value.is_empty() {
                d.error(name.line, format!("{label}: name must not be empty"));
            } else if let Some(first) = seen.get(name.value.as_str()) {
                d.error(
                    name.line,
                    format!(
                        "duplicate user name {:?} (first defined on line {first})",
                        name.value
                    ),
                );
            } else {
                seen.insert(&name.value, name.line);
            }
        }
        if let Some(password) = &user.password {
            if password.value.is_empty() {
                d.error(
                    password.line,
                    format!("{label}: password must not be empty"),
                );
            } else if password.value.starts_with(scram::PREFIX) {
                if let Err(e) = scram::check_verifier(&password.value) {
                    d.error(
                        password.line,
                        format!("{label}: malformed SCRAM-SHA-256 verifier: {e}"),
                    );
                }
            }
        }
    }
}

fn backend(b: &RawBackend, d: &mut Diagnostics) {
    not_empty(&b.user, "backend.user", d);
    not_empty(&b.database, "backend.database", d);
}

fn shards(shards: &[RawShard], d: &mut Diagnostics) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<&Address, (String, usize)> = HashMap::new();
    for (i, shard) in shards.iter().enumerate() {
        let label = match &shard.name {
            Some(n) if !n.value.is_empty() => format!("shard {:?}", n.value),
            _ => format!("shard #{}", i + 1),
        };
        if let Some(name) = &shard.name {
            if name.value.is_empty() {
                d.error(name.line, format!("{label}: name must not be empty"));
            } else if let Some(first) = names.get(name.value.as_str()) {
                d.error(
                    name.line,
                    format!(
                        "duplicate shard name {:?} (first defined on line {first})",
                        name.value
                    ),
                );
            } else {
                names.insert(&name.value, name.line);
            }
        }
        let servers = shard
            .primary
            .iter()
            .map(|a| (a, "shards.primary"))
            .chain(shard.replicas.iter().map(|a| (a, "shards.replicas")));
        for (address, path) in servers {
            if address.value.port == 0 {
                d.error(
                    address.line,
                    format!(
                        "bad address \"{}\" in {path}: port 0 is not a Postgres server's port",
                        address.value
                    ),
                );
            }
            match addresses.get(&address.value) {
                Some((owner, line)) => d.error(
                    address.line,
                    format!(
                        "{label}: server {} is already used by {owner} (line {line})",
                        address.value
                    ),
                ),
                None => {
                    addresses.insert(&address.value, (label.clone(), address.line));
                }
            }
        }
    }
}

fn routing(r: &RawRouting, shards: &[RawShard], d: &mut Diagnostics) {
    let Some(default) = &r.default_shard else {
        return;
    };
    let mut known: Vec<&str> = Vec::new();
    for name in shards.iter().filter_map(|s| s.name.as_ref()) {
        if !known.contains(&name.value.as_str()) {
            known.push(&name.value);
        }
    }
    // Without any named shard the missing shards were reported already.
    if known.is_empty() || known.contains(&default.value.as_str()) {
        return;
    }
    d.error(
        default.line,
        format!(
            "unknown default_shard {:?}; known shards: {}",
            default.value,
            known.join(", ")
        ),
    );
}
