//! fork(2) for the runtime's helper stages. The runtime is single-threaded,
//! so the child may keep using the allocator and std.

use nix::unistd::{fork, ForkResult, Pid};

use crate::error::{Context, Result};
use crate::sync::{Channel, Msg};

/// Run `f` in a child. If it fails, the error text goes to the parent over
/// `chan`; the child never returns into the caller's code. `parent_end`,
/// the runtime's side of the channel, is closed in the child so the child
/// sees EOF (and gives up) if the runtime dies.
pub fn fork_child(
    chan: &Channel,
    parent_end: Option<&Channel>,
    f: impl FnOnce() -> Result<()>,
) -> Result<Pid> {
    // SAFETY: single-threaded process; the child only runs `f` and exits.
    match unsafe { fork() }.ctx(|| "fork")? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            if let Some(p) = parent_end {
                p.close_in_child();
            }
            let code = match f() {
                Ok(()) => 0,
                Err(e) => {
                    // After `create` returned nobody reads the channel (e.g.
                    // a failing startContainer hook): say it on stderr.
                    if chan.send(&Msg::Failed(e.to_string())).is_err() {
                        eprintln!("berth-runtime: {e}");
                    }
                    1
                }
            };
            // SAFETY: leave without running the parent's destructors/atexit.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Make the runtime a subreaper, so a container process double-forked by
/// the stages becomes our child and can be waited for.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(crate::error::Error::invalid(format!(
            "set child subreaper: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Until the container's program replaces us (execve makes it dumpable
/// again), processes in the container must not ptrace us or open our
/// /proc entries to reach host fds (CVE-2016-9962).
pub fn make_undumpable() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(crate::error::Error::invalid(format!(
            "make the runtime non-dumpable: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
