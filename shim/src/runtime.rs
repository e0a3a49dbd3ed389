//! Running the OCI runtime (berth-runtime or runc: same command line).
//!
//! Every call is a short-lived child we wait for by pid, so the reaper's
//! `waitpid(-1)` loop never sees it (the loop only runs between calls).

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};

pub struct Runtime {
    pub path: PathBuf,
    pub root: PathBuf,
    pub id: String,
}

/// The stdio a runtime command runs with; for `create` and `exec` these are
/// inherited by the container process.
pub struct CommandStdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Runtime {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.path);
        c.arg("--root").arg(&self.root);
        c
    }

    /// Runs `runtime --root R ARGS... ID AFTER_ID...` with null stdin and
    /// captured output.
    pub fn run(&self, args: &[&str], after_id: &[&str]) -> Result<()> {
        let mut c = self.command();
        c.args(args)
            .arg(&self.id)
            .args(after_id)
            .stdin(Stdio::null());
        let out = c
            .output()
            .with_context(|| format!("running {}", self.path.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(anyhow!(
            "{} {} failed ({}): {}",
            self.path.display(),
            args.first().copied().unwrap_or(""),
            out.status,
            msg
        ))
    }

    /// `create` or `exec`: the child gets `stdio`; on failure the error text
    /// is read from `error_source`, the read end of the pipe the runtime
    /// wrote its stderr to (non-blocking, so a pipe still held open by a
    /// stray process cannot hang us).
    pub fn run_with_stdio(
        &self,
        args: &[&str],
        extra: &[&Path],
        stdio: CommandStdio,
        error_source: Option<&OwnedFd>,
    ) -> Result<()> {
        let mut c = self.command();
        c.args(args)
            .args(extra)
            .arg(&self.id)
            .stdin(Stdio::from(stdio.stdin))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr));
        let status = c
            .status()
            .with_context(|| format!("running {}", self.path.display()))?;
        // `c` still holds the child's ends of the pipes: drop them so EOF can
        // be seen.
        drop(c);
        if status.success() {
            return Ok(());
        }
        let mut msg = String::new();
        if let Some(fd) = error_source {
            msg = read_available(fd);
        }
        Err(anyhow!(
            "{} {} failed ({}): {}",
            self.path.display(),
            args.first().copied().unwrap_or(""),
            status,
            msg.trim()
        ))
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
