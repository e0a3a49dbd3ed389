//! Exec processes: `runtime exec --process FILE --detach`, after which the
//! process is re-parented to us (we are its subreaper) and its stdio is
//! served on the connection that asked for it.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use berth_common::shim::ExitStatus;

use crate::io::ConsoleSocket;
use crate::procio::{Plumbing, ProcIo};
use crate::runtime::read_pid_file;
use crate::server::Shim;
use crate::slog;

/// Finished execs remembered for `exec_state`/`exec_wait`; older ones are
/// forgotten so a container exec'd into forever (health checks) does not
/// grow the shim.
pub const MAX_FINISHED_EXECS: usize = 128;

pub struct Exec {
    pub id: String,
    /// Start order, to forget the oldest finished first.
    pub seq: u64,
    pub pid: i32,
    pub io: ProcIo,
    /// The connection carrying its stdio, while there is one.
    pub conn: Option<u64>,
    pub exit: Option<(ExitStatus, Instant)>,
    /// Exited and its output drained: waiters have been answered.
    pub done: bool,
}

fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

fn valid_exec_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Shim {
    /// Starts an exec and returns its pid.
    pub fn start_exec(
        &mut self,
        exec_id: &str,
        process: &serde_json::Value,
        detach: bool,
        conn: u64,
    ) -> Result<i32> {
        if !valid_exec_id(exec_id) {
            bail!("invalid exec id {exec_id:?}");
        }
        if self.execs.contains_key(exec_id) {
            bail!("exec id {exec_id} is already in use");
        }
        if self.init_exit.is_some() {
            bail!("container has stopped");
        }
        if !process.is_object() {
            bail!("exec process must be a JSON object (an OCI process)");
        }
        let terminal = process
            .get("terminal")
            .and_then(|t| t.as_bool())
            .unwrap_or(false);
        self.exec_seq += 1;
        // Short names: socket paths are limited to 108 bytes.
        let n = self.exec_seq;
        let process_file = self.state_file(&format!("exec-{n}.json"));
        let pid_file = self.state_file(&format!("exec-{n}.pid"));
        let body = serde_json::to_vec(process).context("encoding the exec process")?;
        // Read once by the runtime right away and then removed: no need
        // for the fsyncs of an atomic write.
        write_private(&process_file, &body)
            .with_context(|| format!("writing {}", process_file.display()))?;

        let result = self.run_exec(n, terminal, detach, &process_file, &pid_file);
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        let (pid, io) = result?;
        slog!("exec {exec_id} started as pid {pid} (terminal {terminal}, detach {detach})");
        self.execs.insert(
            exec_id.to_string(),
            Exec {
                id: exec_id.to_string(),
                seq: n,
                pid,
                io,
                conn: (!detach).then_some(conn),
                exit: None,
                done: false,
            },
        );
        Ok(pid)
    }

    /// Forgets the oldest finished execs beyond `MAX_FINISHED_EXECS`.
    pub fn prune_execs(&mut self) {
        let mut done: Vec<(u64, String)> = self
            .execs
            .values()
            .filter(|e| e.done)
            .map(|e| (e.seq, e.id.clone()))
            .collect();
        if done.len() <= MAX_FINISHED_EXECS {
            return;
        }
        done.sort();
        let excess = done.len() - MAX_FINISHED_EXECS;
        for (_, id) in done.into_iter().take(excess) {
            self.execs.remove(&id);
        }
    }

    fn run_exec(
        &mut self,
        n: u64,
        terminal: bool,
        detach: bool,
        process_file: &std::path::Path,
        pid_file: &std::path::Path,
    ) -> Result<(i32, ProcIo)> {
        let mut args = vec!["exec", "--detach"];
        let console = if terminal {
            Some(ConsoleSocket::bind(
                &self.state_file(&format!("exec-{n}.sock")),
            )?)
        } else {
            None
        };
        let plumbing = if terminal {
            args.push("--tty");
            Plumbing::for_terminal()?
        } else {
            // A detached exec's output is read and dropped; it still gets
            // pipes so its errors can be reported.
            Plumbing::pipes(!detach)?
        };
        let mut extra = vec![
            std::path::Path::new("--process"),
            process_file,
            std::path::Path::new("--pid-file"),
            pid_file,
        ];
        if let Some(c) = &console {
            extra.push(std::path::Path::new("--console-socket"));
            extra.push(c.connect_path());
        }
        let Plumbing {
            child,
            ours,
            errors,
        } = plumbing;
        self.rt
            .run_with_stdio(&args, &extra, child, Some(&errors))?;
        drop(errors);
        let pid = read_pid_file(pid_file)?;
        let io = match &console {
            Some(c) => match ProcIo::from_console(c, !detach) {
                Ok(io) => io,
                Err(e) => {
                    // Without its terminal the process cannot be served.
                    // SAFETY: kill(2) on the pid the runtime just started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return Err(e);
                }
            },
            None => ours,
        };
        Ok((pid, io))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_exec_id;

    #[test]
    fn exec_ids_are_restricted_to_safe_characters() {
        assert!(valid_exec_id("0123abcdef"));
        assert!(!valid_exec_id(""));
        assert!(!valid_exec_id("../x"));
        assert!(!valid_exec_id(&"a".repeat(129)));
    }
}
