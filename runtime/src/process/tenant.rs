//! A process exec'd into a running container ("tenant"): stage 1 joins the
//! init's namespaces and root, forks stage 2 into its pid namespace, and
//! stage 2 becomes the configured process.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::finalize;
use super::spawn::fork_child;
use crate::cgroups::SelfJoin;
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, Join, JOIN_ORDER};
use crate::sync::{Channel, Msg};

pub struct TenantConfig {
    pub init_pid: i32,
    /// Namespace types the container was configured with.
    pub namespaces: Vec<LinuxNamespaceType>,
    pub process: Process,
    /// Compiled by the parent (see `seccomp::cache`).
    pub seccomp: Option<crate::seccomp::Filter>,
    pub console: Option<OwnedFd>,
    pub preserve_fds: u32,
}

fn same_ns(pid: i32, name: &str) -> bool {
    let a = std::fs::metadata(format!("/proc/{pid}/ns/{name}"));
    let b = std::fs::metadata(format!("/proc/self/ns/{name}"));
    matches!((a, b), (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev())
}

pub fn stage1(chan: &Channel, cfg: &TenantConfig, join: &SelfJoin, born_in: bool) -> Result<()> {
    super::spawn::make_undumpable()?;
    super::spawn::join_cgroup(chan, join, born_in)?;
    let pid = cfg.init_pid;
    let mut joins = Vec::new();
    for t in JOIN_ORDER {
        let name = namespaces::proc_name(t);
        if !cfg.namespaces.contains(&t) || same_ns(pid, name) {
            continue;
        }
        let path = format!("/proc/{pid}/ns/{name}");
        joins.push(Join {
            typ: t,
            fd: namespaces::open_ns(std::path::Path::new(&path), t)?,
        });
    }
    finalize::set_oom_score_adj(&cfg.process)?;
    let root = std::fs::File::open(format!("/proc/{pid}/root"))
        .ctx(|| format!("open root of container process {pid}"))?;
    for j in &joins {
        namespaces::setns(j)?;
    }
    nix::unistd::fchdir(root.as_raw_fd()).ctx(|| "enter container root")?;
    nix::unistd::chroot(".").ctx(|| "chroot into container root")?;
    drop(root);
    let child = fork_child(chan, None, || match stage2(chan, cfg) {
        Ok(never) => match never {},
        Err(e) => Err(e),
    })?;
    chan.send(&Msg::Pid(child.as_raw()))
}

fn stage2(chan: &Channel, cfg: &TenantConfig) -> Result<Infallible> {
    match chan.recv()? {
        Msg::Pid(_) => {}
        m => return Err(Error::invalid(format!("expected go, got {m:?}"))),
    }
    let process = &cfg.process;
    if let Some(console) = &cfg.console {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::tty::setup(console, size, false)?;
    }
    let mut plan = finalize::plan(process, cfg.seccomp.clone())?;
    finalize::prepare_process(process, false)?;
    plan.apply_seccomp_early()?;
    crate::identity::switch(process)?;
    plan.exec(cfg.preserve_fds)
}
