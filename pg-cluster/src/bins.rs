//! Finding the PostgreSQL programs (`initdb`, `pg_ctl`, `psql`, …) on the
//! machine.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// Finds the PostgreSQL program `name` (`initdb`, `pg_ctl`, `psql`,
/// `pgbench`, …): in the directory `$PG_BIN` if that is set, else in the
/// newest `/usr/lib/postgresql/<version>/bin`, else on `PATH`.
///
/// When it is missing, the error says how to install it.
pub fn pg_bin(name: &str) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let path = Path::new(&dir).join(name);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "PG_BIN={} has no `{name}`: point PG_BIN at the directory holding the PostgreSQL \
             server programs (initdb, pg_ctl, postgres, psql, …)",
            Path::new(&dir).display()
        );
    }
    for dir in debian_pg_bin_dirs() {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    bail!(
        "the PostgreSQL program `{name}` was not found (looked in $PG_BIN, \
         /usr/lib/postgresql/*/bin and PATH). The end-to-end tests need a PostgreSQL server \
         installation: on Debian/Ubuntu run `apt-get install postgresql-15` (or \
         `apt-get install postgresql` for the distribution's default version), or set PG_BIN \
         to the directory that holds initdb, pg_ctl, postgres, pg_basebackup and psql"
    )
}

/// `/usr/lib/postgresql/<version>/bin`, newest version first.
fn debian_pg_bin_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, e.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|(_, dir)| dir).collect()
}
