//! fork(2) for the runtime's helper stages. The runtime is single-threaded,
//! so the child may keep using the allocator and std.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::unistd::{fork, ForkResult, Pid};

use crate::cgroups::SelfJoin;

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
        ForkResult::Child => child_main(chan, parent_end, f),
    }
}

/// As [`fork_child`], but the child is born in the cgroup2 directory
/// `cgroup_dir` (clone3 with CLONE_INTO_CGROUP) when given and the kernel
/// allows it. `f` learns whether it was: if not (old kernel, or refused)
/// this was a plain fork and the child must join by itself.
///
/// Why: moving a process afterwards (`cgroup.procs`) takes the kernel's
/// global threadgroup lock for writing, an RCU grace period (~10 ms);
/// being born there takes only its read side.
pub fn fork_child_into(
    chan: &Channel,
    parent_end: Option<&Channel>,
    cgroup_dir: Option<&OwnedFd>,
    f: impl FnOnce(bool) -> Result<()>,
) -> Result<Pid> {
    if let Some(dir) = cgroup_dir {
        match clone_into_cgroup(dir.as_raw_fd()) {
            Ok(0) => {
                // SAFETY: the child's copy of the fd; the child never returns
                // into code that would drop it.
                unsafe { libc::close(dir.as_raw_fd()) };
                child_main(chan, parent_end, || f(true))
            }
            Ok(pid) => return Ok(Pid::from_raw(pid)),
            Err(e) => {
                crate::logging::debug(&format!("clone3(CLONE_INTO_CGROUP) refused ({e}): forking"))
            }
        }
    }
    fork_child(chan, parent_end, || f(false))
}

/// clone3(CLONE_INTO_CGROUP) without a new stack: fork semantics. Returns
/// 0 in the child, the child's pid in the parent.
pub(crate) fn clone_into_cgroup(dir: RawFd) -> std::io::Result<i32> {
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: dir as u64,
    };
    // SAFETY: clone3 without CLONE_VM or a stack duplicates the (single-
    // threaded) process as fork does; the args outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc as i32)
    }
}

fn child_main(chan: &Channel, parent_end: Option<&Channel>, f: impl FnOnce() -> Result<()>) -> ! {
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

/// In a freshly forked (single-threaded) stage: join the container's
/// cgroup in every hierarchy by itself, v1 through `tasks` ← "0" (no global
/// lock), cgroup2 through `cgroup.procs` unless `born_in_unified`. If the
/// kernel refuses, the runtime moves us by pid instead (the old way).
pub fn join_cgroup(chan: &Channel, join: &SelfJoin, born_in_unified: bool) -> Result<()> {
    let joined = if born_in_unified {
        join.join_v1()
    } else {
        join.join()
    };
    if let Err(e) = joined {
        crate::logging::debug(&format!(
            "joining the cgroup by itself failed ({e}): asking the runtime"
        ));
        chan.send(&Msg::WantCgroup)?;
        chan.expect("cgroup joined", |m| matches!(m, Msg::Go))?;
    }
    Ok(())
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
