//! Running the OCI runtime (berth-runtime or runc: same command line).
//!
//! Every call is a short-lived child we wait for by pid, so the reaper's
//! `waitpid(-1)` loop never sees it (the loop only runs between calls).
//! A runtime that hangs is killed after `RUNTIME_TIMEOUT`.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::{io, slog};

pub struct Runtime {
    pub path: PathBuf,
    pub root: PathBuf,
    pub id: String,
    /// `path` on a private read-only mount, opened once: the runtime runs
    /// from it, so it need not protect itself (CVE-2019-5736) with a
    /// re-exec on every call. None where the kernel or the file system
    /// refuses; the runtime then seals itself as before.
    view: Option<OwnedFd>,
}

/// The stdio a runtime command runs with; for `create` and `exec` these are
/// inherited by the container process.
pub struct CommandStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A runtime operation that takes longer than this is killed and reported
/// as failed, so a hung runtime cannot wedge the shim for good.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(120);

impl Runtime {
    pub fn new(path: PathBuf, root: PathBuf, id: String) -> Runtime {
        let view = match berth_common::readonly_exe::open(&path) {
            Ok(fd) => Some(fd),
            Err(e) => {
                slog!(
                    "no read-only view of {} ({e}): the runtime seals itself",
                    path.display()
                );
                None
            }
        };
        Runtime {
            path,
            root,
            id,
            view,
        }
    }

    /// The runtime binary, from the read-only view where there is one.
    fn program(&self) -> Command {
        match &self.view {
            Some(fd) => {
                let mut c = Command::new(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                c.arg0(&self.path);
                c
            }
            None => Command::new(&self.path),
        }
    }

    fn command(&self) -> Command {
        let mut c = self.program();
        c.arg("--root").arg(&self.root);
        c
    }

    fn failure(&self, op: &str, status: impl std::fmt::Display, msg: &str) -> anyhow::Error {
        anyhow!(
            "{} {op} failed ({status}): {}",
            self.path.display(),
            msg.trim()
        )
    }

    /// Runs `runtime --root R ARGS... ID AFTER_ID...` with null stdin; its
    /// stdout and stderr are collected for the error message.
    pub fn run(&self, args: &[&str], after_id: &[&str]) -> Result<()> {
        let op = args.first().copied().unwrap_or("");
        let (out_r, out_w) = io::pipe()?;
        io::set_nonblocking(&out_r)?;
        let mut c = self.command();
        c.args(args)
            .arg(&self.id)
            .args(after_id)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w.try_clone().context("dup pipe")?))
            .stderr(Stdio::from(out_w));
        let mut child = c
            .spawn()
            .with_context(|| format!("running {}", self.path.display()))?;
        drop(c);
        let mut output = Vec::new();
        let status = wait_child(&mut child, Some(&out_r), &mut output)
            .with_context(|| format!("{} {op}", self.path.display()))?;
        if status.success() {
            return Ok(());
        }
        Err(self.failure(op, status, &String::from_utf8_lossy(&output)))
    }

    /// `create` or `exec`: the child gets `stdio`; on failure the error text
    /// is read from `error_source`, the read end of the pipe the runtime
    /// wrote its stderr to (non-blocking, so a pipe still held open by the
    /// container cannot hang us).
    pub fn run_with_stdio(
        &self,
        args: &[&str],
        extra: &[&Path],
        stdio: CommandStdio,
        error_source: Option<&OwnedFd>,
    ) -> Result<()> {
        let op = args.first().copied().unwrap_or("");
        let mut c = self.command();
        c.args(args)
            .args(extra)
            .arg(&self.id)
            .stdin(Stdio::from(stdio.stdin))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr));
        let mut child = c
            .spawn()
            .with_context(|| format!("running {}", self.path.display()))?;
        // `c` holds the child's ends of the pipes: drop them so end of file
        // can be seen.
        drop(c);
        let status = wait_child(&mut child, None, &mut Vec::new())
            .with_context(|| format!("{} {op}", self.path.display()))?;
        if status.success() {
            return Ok(());
        }
        let msg = error_source.map(read_available).unwrap_or_default();
        Err(self.failure(op, status, &msg))
    }
}

/// Waits for `child` (by its pidfd, so no other child is reaped), reading
/// `output` meanwhile; kills it after `RUNTIME_TIMEOUT`.
fn wait_child(
    child: &mut Child,
    mut output: Option<&OwnedFd>,
    collected: &mut Vec<u8>,
) -> Result<ExitStatus> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if raw < 0 {
        // No pidfd (old kernel): a plain blocking wait.
        let status = child.wait()?;
        if let Some(fd) = output {
            collected.extend_from_slice(read_available(fd).as_bytes());
        }
        return Ok(status);
    }
    // SAFETY: pidfd_open returned a new descriptor that we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw as RawFd) };
    let deadline = Instant::now() + RUNTIME_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s, killed", RUNTIME_TIMEOUT.as_secs());
        }
        let mut pfds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: output.map_or(-1, |o| o.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfds is a valid array of two pollfd; a negative fd is ignored.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("poll");
        }
        if pfds[1].revents != 0 {
            if let Some(fd) = output {
                let got = read_available(fd);
                if got.is_empty() && pfds[1].revents & libc::POLLHUP != 0 {
                    // Every writer closed it: stop watching.
                    output = None;
                }
                collected.extend_from_slice(got.as_bytes());
            }
        }
        if pfds[0].revents != 0 {
            let status = child.wait()?;
            if let Some(fd) = output {
                collected.extend_from_slice(read_available(fd).as_bytes());
            }
            return Ok(status);
        }
    }
}

/// What can be read from a non-blocking fd right now (at most 64 KiB).
pub fn read_available(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let Ok(dup) = fd.try_clone() else {
        return String::new();
    };
    let mut f = File::from(dup);
    let mut buf = [0u8; 4096];
    while out.len() < 65536 {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a runtime `--pid-file`.
pub fn read_pid_file(path: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(path)
        .with_context(|| format!("reading pid file {}", path.display()))?;
    let pid: i32 = s
        .trim()
        .parse()
        .with_context(|| format!("pid file {} holds {:?}", path.display(), s.trim()))?;
    if pid <= 0 {
        return Err(anyhow!("pid file {} holds pid {pid}", path.display()));
    }
    Ok(pid)
}

#[cfg(test)]
mod view_tests {
    use super::*;

    #[test]
    fn the_runtime_runs_from_a_read_only_view_of_its_binary() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        // Any ELF binary that can report on its own /proc/self/exe will do.
        let python = PathBuf::from("/usr/bin/python3");
        if !python.exists() {
            return;
        }
        let rt = Runtime::new(python, PathBuf::from("/nonexistent"), "x".into());
        assert!(rt.view.is_some(), "no read-only view was made");
        let out = rt
            .program()
            .args([
                "-c",
                "import os; print(os.statvfs('/proc/self/exe').f_flag & os.ST_RDONLY)",
            ])
            .output()
            .expect("run python3 through the view");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    }
}
