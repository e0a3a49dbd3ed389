//! Foreground `run` and `exec`: forward signals to the container process
//! and return its exit code (128+signal if killed).

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// Signals the runtime handles synchronously while a container runs in the
/// foreground. Blocked before forking; the container's process unblocks all.
pub fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGTRAP,
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGABRT,
        Signal::SIGSYS,
    ] {
        set.remove(s);
    }
    set
}

pub fn block() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded()), None)
        .ctx(|| "block signals")
}

fn exit_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Reap children until `pid` is gone, forwarding every other signal to it.
pub fn forward_until_exit(pid: Pid) -> Result<i32> {
    let set = forwarded();
    loop {
        if let Some(code) = reap(pid)? {
            return Ok(code);
        }
        let sig = set.wait().ctx(|| "wait for signals")?;
        match sig {
            Signal::SIGCHLD | Signal::SIGURG | Signal::SIGWINCH => {}
            other => {
                let _ = kill(pid, other);
            }
        }
    }
}

/// Reap all exited children; Some(code) if `pid` was among them.
pub fn reap(pid: Pid) -> Result<Option<i32>> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(s) => {
                if s.pid() == Some(pid) {
                    if let Some(code) = exit_code(s) {
                        return Ok(Some(code));
                    }
                }
            }
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::ECHILD) => {
                return Err(crate::error::Error::invalid(format!(
                    "process {pid} is not a child of the runtime"
                )))
            }
            Err(e) => return Err(e).ctx(|| "waitpid"),
        }
    }
}
