//! Loopback ports, processes and commands: free ports that no one else was
//! handed, whether a process is alive (zombies count as gone), signals, and
//! running a command with a timeout that kills its whole process group.

use std::collections::HashSet;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rand::Rng;

/// How long [`run_cmd`] lets a command run before killing it.
pub const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// Returns a loopback TCP port that is free right now and was not handed out
/// before by this process.
///
/// Ports are drawn at random from below the kernel's ephemeral range
/// (`ip_local_port_range`), so outgoing client connections cannot take a port
/// between the moment it is handed out and the moment a server binds it.
///
/// # Panics
/// Only if no port at all can be bound on 127.0.0.1.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut handed_out = HANDED_OUT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let bindable = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();

    let (low, high) = ephemeral_port_range();
    let range = if low > 12_000 {
        Some(10_000..low)
    } else if high < 64_000 {
        Some(high + 1..65_535)
    } else {
        None
    };
    if let Some(range) = range {
        let mut rng = rand::thread_rng();
        for _ in 0..1000 {
            let port = rng.gen_range(range.clone());
            if port == 5432 || port == 6432 || handed_out.contains(&port) {
                continue;
            }
            if bindable(port) {
                handed_out.insert(port);
                return port;
            }
        }
    }
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot bind any TCP port on 127.0.0.1: {e}"));
        if handed_out.insert(port) {
            return port;
        }
    }
    panic!("no free loopback TCP port left");
}

fn ephemeral_port_range() -> (u16, u16) {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(low), Some(high)) => (low, high),
        _ => (32_768, 60_999),
    }
}

/// Whether process `pid` exists and is not a zombie (a process that exited
/// but was not reaped yet counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses, which may itself
        // contain parentheses: take the last ')'.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

pub(crate) fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Sends `signal` (`libc::SIGTERM`, …) to process `pid`; nothing happens
/// when `pid` is 0 or does not fit a `pid_t`.
pub fn send_signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// Waits up to `timeout` for `pid` to be gone; true if it is.
pub(crate) fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !process_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `program args…` with extra environment variables `env`, collects its
/// stdout and stderr, and kills it if it runs longer than
/// [`DEFAULT_CMD_TIMEOUT`] (60 s). A non-zero exit is *not* an error: check
/// `status` in the returned [`Output`].
///
/// Meant for `psql`, `pgbench` and friends in tests (see [`pg_bin`]).
pub fn run_cmd(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
    run_cmd_timeout(program, args, env, DEFAULT_CMD_TIMEOUT)
}

/// Like [`run_cmd`] with an explicit timeout; a command that overruns it is
/// killed (with its process group) and reported as an error.
pub fn run_cmd_timeout(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_with_timeout(cmd, timeout)
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let what = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{what}`"))?;
    let pid = child.id();
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    let timed_out = rx.recv_timeout(timeout).is_err();
    if timed_out {
        // The child is not reaped yet (the waiter has not returned), so its
        // pid, which is also its process group id, still belongs to it.
        if let Ok(pgid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
    let status = waiter
        .join()
        .map_err(|_| anyhow!("waiting for `{what}` panicked"))?
        .with_context(|| format!("waiting for `{what}`"))?;
    // A daemon started by the command may hold the pipes open: do not wait
    // for it forever.
    let grace = Duration::from_secs(if timed_out { 1 } else { 10 });
    let stdout = stdout.recv_timeout(grace).unwrap_or_default();
    let stderr = stderr.recv_timeout(grace).unwrap_or_default();
    if timed_out {
        bail!(
            "`{what}` did not finish within {timeout:?} and was killed\nstdout:\n{}\nstderr:\n{}",
            tail(&String::from_utf8_lossy(&stdout), 30),
            tail(&String::from_utf8_lossy(&stderr), 30)
        );
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs `cmd`, failing unless it exits 0; returns its stdout.
pub(crate) fn run_ok(cmd: Command, timeout: Duration) -> Result<String> {
    let what = describe(&cmd);
    let out = run_with_timeout(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stdout), 30),
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The file at `path` as text (invalid UTF-8 replaced), empty when it
/// cannot be read.
pub fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
