//! Reaping: SIGCHLD arrives on a signalfd; every child (the container's init,
//! exec processes re-parented to us as subreaper, orphans of the container)
//! is collected with `waitpid(-1, WNOHANG)`.
//!
//! OOM: the container's memory cgroup is found from `/proc/<init>/cgroup`
//! while init is alive. At exit, `oom_killed` is true when the cgroup's
//! `oom_kill` counter (v1 `memory.oom_control`, v2 `memory.events`) grew
//! since creation — the same cgroup-wide notion dockerd and containerd use.
//! Without a memory cgroup, `oom_killed` is false.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

pub struct Reaper {
    sigfd: SignalFd,
}

impl Reaper {
    /// Blocks SIGCHLD (children we spawn get an empty mask from std) and
    /// opens the signalfd.
    pub fn new() -> Result<Reaper> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block().context("blocking SIGCHLD")?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("signalfd")?;
        Ok(Reaper { sigfd })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sigfd.as_fd()
    }

    /// Drains the signalfd and returns every child that ended: (pid, exit
    /// code with signals as 128+N).
    pub fn reap(&mut self) -> Vec<(i32, i32)> {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        let mut done = Vec::new();
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => done.push((pid.as_raw(), code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    done.push((pid.as_raw(), 128 + sig as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        done
    }
}

pub struct OomWatch {
    counter_file: Option<(PathBuf, &'static str)>,
    baseline: u64,
}

impl OomWatch {
    pub fn for_pid(pid: i32) -> OomWatch {
        let counter_file = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|s| memory_counter_file(&s));
        let mut w = OomWatch {
            counter_file,
            baseline: 0,
        };
        w.baseline = w.count().unwrap_or(0);
        w
    }

    pub fn describe(&self) -> String {
        match &self.counter_file {
            Some((p, _)) => p.display().to_string(),
            None => "none (no memory cgroup found)".into(),
        }
    }

    fn count(&self) -> Option<u64> {
        let (path, key) = self.counter_file.as_ref()?;
        let s = std::fs::read_to_string(path).ok()?;
        s.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == *key).then(|| v.trim().parse().ok()).flatten()
        })
    }

    pub fn oom_killed(&self) -> bool {
        self.count().is_some_and(|n| n > self.baseline)
    }
}

/// The file holding the `oom_kill` counter of the memory cgroup named in a
/// `/proc/PID/cgroup` listing: v1 `memory` controller first, else the v2
/// unified path.
fn memory_counter_file(proc_cgroup: &str) -> Option<(PathBuf, &'static str)> {
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let f = PathBuf::from("/sys/fs/cgroup/memory")
                .join(path)
                .join("memory.oom_control");
            if f.exists() {
                return Some((f, "oom_kill"));
            }
        } else if controllers.is_empty() {
            v2 = Some(path.to_string());
        }
    }
    let f = PathBuf::from("/sys/fs/cgroup")
        .join(v2?)
        .join("memory.events");
    f.exists().then_some((f, "oom_kill"))
}
