//! Who runs the servers (ourselves, or the `postgres` account when we are
//! root: Postgres refuses to run as root) and the directories they live in.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use rand::Rng;

/// The account that owns and runs the Postgres servers when we are root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owner {
    uid: u32,
    gid: u32,
}

/// `None` when not root (servers run as the current user), else the
/// `postgres` account.
pub(crate) fn server_owner() -> Result<Option<Owner>> {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    static OWNER: OnceLock<std::result::Result<Owner, String>> = OnceLock::new();
    OWNER
        .get_or_init(|| lookup_postgres_account().map_err(|e| format!("{e:#}")))
        .clone()
        .map(Some)
        .map_err(|e| anyhow!(e))
}

fn lookup_postgres_account() -> Result<Owner> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .stdin(Stdio::null())
            .output()
            .context("could not run `id`")?;
        if !out.status.success() {
            bail!(
                "the tests run as root, Postgres refuses to run as root, and there is no \
                 `postgres` account to run it as: install Debian's postgresql package (it \
                 creates the account) or `useradd --system --home /var/lib/postgresql postgres`"
            );
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("unexpected output of `id`")
    };
    Ok(Owner {
        uid: id("-u")?,
        gid: id("-g")?,
    })
}

pub(crate) fn chown(path: &Path, owner: Option<Owner>) -> Result<()> {
    if let Some(o) = owner {
        std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid))
            .with_context(|| format!("chown postgres {}", path.display()))?;
    }
    Ok(())
}

/// Whether `SHARDGATE_KEEP_TEST_DIRS` asks to keep the directories.
pub(crate) fn keep_dirs() -> bool {
    std::env::var_os("SHARDGATE_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A directory removed on drop (unless `SHARDGATE_KEEP_TEST_DIRS` is set):
/// by default a fresh `temp_dir()/shardgate-test-XXXXXXXX`.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh directory `temp_dir()/shardgate-test-XXXXXXXX`, ours.
    pub fn new() -> Result<TempDir> {
        Self::owned_by(None)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Like [`new`](Self::new), belonging to `owner` (the server account).
    pub(crate) fn owned_by(owner: Option<Owner>) -> Result<TempDir> {
        let base = std::env::temp_dir();
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let path = base.join(format!("shardgate-test-{:08x}", rng.gen::<u32>()));
            match Self::create(&path, owner) {
                Ok(dir) => return Ok(dir),
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        bail!(
            "could not find an unused directory name in {}",
            base.display()
        )
    }

    /// Creates the directory `path` (its parent must exist, it must not),
    /// belonging to `owner`.
    pub(crate) fn create(path: &Path, owner: Option<Owner>) -> Result<TempDir> {
        std::fs::create_dir(path)
            .with_context(|| format!("could not create {}", path.display()))?;
        let dir = TempDir {
            path: path.to_path_buf(),
        };
        chown(&dir.path, owner)?;
        Ok(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if keep_dirs() {
            eprintln!("SHARDGATE_KEEP_TEST_DIRS: keeping {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
