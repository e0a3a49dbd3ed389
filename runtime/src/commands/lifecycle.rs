//! `start`, `kill`, `delete`, `pause`, `resume`.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::state::{Container, Root, Status};

fn cgroup_of(c: &Container) -> Result<Option<Cgroup>> {
    match &c.cgroup_path {
        Some(p) => Cgroup::from_state(p)
            .map(Some)
            .map_err(|e| Error::Cgroup(e.to_string())),
        None => Ok(None),
    }
}

pub fn start(root: &Root, id: &str) -> Result<()> {
    let c = root.load(id)?;
    match c.status(root) {
        Status::Created => {}
        Status::Stopped => return Err(Error::invalid("cannot start a container that has stopped")),
        Status::Running | Status::Paused => {
            return Err(Error::invalid("cannot start an already running container"))
        }
        Status::Creating => {
            return Err(Error::invalid(
                "cannot start a container that is still being created",
            ))
        }
    }
    let fifo_path = c.fifo_path(root);
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(&fifo_path)
        .ctx(|| format!("open {}", fifo_path.display()))?;
    let mut byte = [0u8; 1];
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Err(nix::Error::EINTR) => continue,
            r => r.ctx(|| "poll exec fifo")?,
        };
        match (&fifo).read(&mut byte) {
            Ok(1) => break,
            Ok(_) => return Err(Error::invalid("container init exited before start")),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !c.init_alive() {
                    return Err(Error::invalid("container init exited before start"));
                }
            }
            Err(e) => return Err(e).ctx(|| "read exec fifo"),
        }
    }
    std::fs::remove_file(&fifo_path).ctx(|| format!("remove {}", fifo_path.display()))?;
    if let Some(h) = c.spec.hooks() {
        // poststart failures are reported, the container keeps running.
        if let Err(e) = crate::hooks::run_all(
            "poststart",
            h.poststart().as_ref(),
            &c.hook_state(Status::Running),
        ) {
            crate::logging::warn(&e.to_string());
        }
    }
    Ok(())
}

pub fn kill(root: &Root, id: &str, signal: i32, all: bool) -> Result<()> {
    let c = root.load(id)?;
    let status = c.status(root);
    if status == Status::Stopped || status == Status::Creating && !c.init_alive() {
        return Err(Error::invalid("container not running"));
    }
    if all {
        if let Some(cg) = cgroup_of(&c)? {
            let pids = cg.pids().map_err(|e| Error::Cgroup(e.to_string()))?;
            for p in pids {
                let _ = send_signal_raw(p, signal);
            }
        }
        return Ok(());
    }
    send_signal_raw(c.pid, signal).ctx(|| format!("send signal {signal} to {}", c.pid))
}

fn send_signal_raw(pid: i32, sig: i32) -> std::result::Result<(), nix::Error> {
    // 0 and negative pids name process groups: never ours to signal.
    if pid <= 0 {
        return Err(nix::Error::ESRCH);
    }
    // SAFETY: kill(2) with plain integers; realtime signals are not in nix's enum.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}

pub fn delete(root: &Root, id: &str, force: bool) -> Result<()> {
    let c = match root.load(id) {
        Err(Error::NotExist(_)) if force => return Ok(()),
        r => r?,
    };
    match c.status(root) {
        Status::Stopped => {}
        Status::Created | Status::Creating => kill_and_wait(&c)?,
        s @ (Status::Running | Status::Paused) => {
            if !force {
                return Err(Error::invalid(format!(
                    "cannot delete container {id} that is not stopped: {s}"
                )));
            }
            kill_and_wait(&c)?;
        }
    }
    destroy(root, &c)
}

/// SIGKILL every process of the container and wait until the init is gone.
fn kill_and_wait(c: &Container) -> Result<()> {
    let cg = cgroup_of(c)?;
    if let Some(cg) = &cg {
        // A frozen process cannot die.
        let _ = cg.thaw();
    }
    let _ = send_signal_raw(c.pid, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(cg) = &cg {
            for p in cg.pids().unwrap_or_default() {
                let _ = send_signal_raw(p, libc::SIGKILL);
            }
        }
        if !c.init_alive() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::invalid(format!(
                "container init {} did not exit after SIGKILL",
                c.pid
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Remove what a stopped container still has: cgroup, state; then poststop.
pub fn destroy(root: &Root, c: &Container) -> Result<()> {
    if let Some(cg) = cgroup_of(c)? {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match cg.destroy(c.cgroup_created.as_deref()) {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => return Err(Error::Cgroup(e.to_string())),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    if let Some(h) = &c.host_ns_rootfs {
        h.unmount()?;
    }
    root.remove(&c.id)?;
    if let Some(h) = c.spec.hooks() {
        if let Err(e) = crate::hooks::run_all(
            "poststop",
            h.poststop().as_ref(),
            &c.hook_state(Status::Stopped),
        ) {
            crate::logging::warn(&e.to_string());
        }
    }
    Ok(())
}

pub fn pause(root: &Root, id: &str) -> Result<()> {
    let mut c = root.load(id)?;
    let s = c.status(root);
    if s != Status::Running {
        return Err(Error::invalid(format!("container not running: {s}")));
    }
    let cg = cgroup_of(&c)?.ok_or_else(|| Error::invalid("container has no cgroup"))?;
    cg.freeze().map_err(|e| Error::Cgroup(e.to_string()))?;
    c.paused = true;
    root.save(&c)
}

pub fn resume(root: &Root, id: &str) -> Result<()> {
    let mut c = root.load(id)?;
    if c.status(root) != Status::Paused {
        return Err(Error::invalid("container not paused"));
    }
    let cg = cgroup_of(&c)?.ok_or_else(|| Error::invalid("container has no cgroup"))?;
    cg.thaw().map_err(|e| Error::Cgroup(e.to_string()))?;
    c.paused = false;
    root.save(&c)
}

pub fn cgroup(c: &Container) -> Result<Cgroup> {
    cgroup_of(c)?.ok_or_else(|| Error::invalid("container has no cgroup"))
}
