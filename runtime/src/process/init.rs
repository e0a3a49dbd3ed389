//! The two child stages of `create`.
//!
//! stage 1: joins the container's cgroup (see `spawn::join_cgroup`), joins namespaces given by path, creates a user namespace (the
//! parent writes its id maps), unshares the other new namespaces, forks
//! stage 2 (so a new pid namespace applies to it) and exits.
//!
//! stage 2, the container init: mounts, pivot_root, tty, identity; reports
//! ready; then blocks on the exec fifo until `start` opens it, and execs.

use std::convert::Infallible;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::finalize;
use super::spawn::fork_child;
use crate::cgroups::SelfJoin;
use crate::error::{Context, Error, Result};
use crate::namespaces::{self, Plan};
use crate::rootfs::{self, MountContext};
use crate::sync::{Channel, Msg};

pub struct InitConfig {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
    pub plan: Plan,
    pub console: Option<OwnedFd>,
    pub fifo: PathBuf,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub new_keyring: bool,
}

pub fn stage1(chan: &Channel, cfg: &InitConfig, join: &SelfJoin, born_in: bool) -> Result<()> {
    super::spawn::make_undumpable()?;
    // Before any namespace: a new cgroup namespace is rooted where we are.
    super::spawn::join_cgroup(chan, join, born_in)?;
    // Read before any cgroup namespace hides the real paths.
    let cgroup_lines: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .ctx(|| "read /proc/self/cgroup")?
        .lines()
        .map(str::to_string)
        .collect();
    if let Some(process) = cfg.spec.process() {
        finalize::set_oom_score_adj(process)?;
    }
    for j in &cfg.plan.join {
        namespaces::setns(j)?;
    }
    if cfg.plan.creates(LinuxNamespaceType::User) {
        unshare(CloneFlags::CLONE_NEWUSER).ctx(|| "create user namespace")?;
        chan.send(&Msg::WantIdMaps)?;
        chan.expect("id maps", |m| matches!(m, Msg::Go))?;
        let root_gid = nix::unistd::Gid::from_raw(0);
        let root_uid = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(root_gid, root_gid, root_gid)
            .ctx(|| "become gid 0 in the user namespace")?;
        nix::unistd::setresuid(root_uid, root_uid, root_uid)
            .ctx(|| "become uid 0 in the user namespace")?;
    }
    let mut flags = CloneFlags::empty();
    for t in &cfg.plan.create {
        if *t != LinuxNamespaceType::User {
            flags |= namespaces::clone_flag(*t);
        }
    }
    unshare(flags).ctx(|| format!("create namespaces {flags:?}"))?;
    if cfg.plan.creates(LinuxNamespaceType::Network) {
        namespaces::loopback_up()?;
    }
    let child = fork_child(chan, None, || match stage2(chan, cfg, &cgroup_lines) {
        Ok(never) => match never {},
        Err(e) => Err(e),
    })?;
    chan.send(&Msg::Pid(child.as_raw()))
}

fn stage2(chan: &Channel, cfg: &InitConfig, cgroup_lines: &[String]) -> Result<Infallible> {
    let host_pid = match chan.recv()? {
        Msg::Pid(p) => p,
        m => return Err(Error::invalid(format!("init expected its pid, got {m:?}"))),
    };
    let spec = &cfg.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json has no process"))?;
    let linux = spec.linux().as_ref();
    nix::unistd::setsid().ok();
    if cfg.new_keyring {
        join_session_keyring(&cfg.id)?;
    }
    if cfg.plan.creates(LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
            nix::unistd::sethostname(h).ctx(|| format!("set hostname {h}"))?;
        }
        if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
            // SAFETY: setdomainname with a valid buffer and length.
            if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
                return Err(Error::invalid(format!(
                    "set domainname {d}: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
    }
    let ctx = MountContext {
        bundle: &cfg.bundle,
        cgroup_lines,
        new_cgroup_ns: cfg.plan.creates(LinuxNamespaceType::Cgroup),
    };
    let in_userns = cfg.plan.has(LinuxNamespaceType::User);
    let own_mount_ns = cfg.plan.has(LinuxNamespaceType::Mount);
    rootfs::prepare(&cfg.rootfs, spec, &ctx, in_userns, own_mount_ns)?;
    // Held as O_PATH until after pivot_root, then reopened for writing.
    let fifo = open(&cfg.fifo, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        .ctx(|| format!("open {}", cfg.fifo.display()))?;
    chan.send(&Msg::RunCreateHooks)?;
    chan.expect("go after createRuntime hooks", |m| matches!(m, Msg::Go))?;
    let hook_state = serde_json::json!({
        "ociVersion": crate::state::OCI_VERSION,
        "id": cfg.id,
        "status": "created",
        "pid": host_pid,
        "bundle": cfg.bundle,
        "annotations": spec.annotations().clone().unwrap_or_default(),
    });
    let hooks = spec.hooks().as_ref();
    crate::hooks::run_all(
        "createContainer",
        hooks.and_then(|h| h.create_container().as_ref()),
        &hook_state,
    )?;
    rootfs::enter(&cfg.rootfs, cfg.no_pivot, spec, own_mount_ns)?;
    if let Some(console) = &cfg.console {
        let size = process
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::tty::setup(console, size, true)?;
    }
    rootfs::write_sysctls(spec)?;
    rootfs::finish(spec)?;
    let filter = linux
        .and_then(|l| l.seccomp().as_ref())
        .map(crate::seccomp::compile)
        .transpose()?;
    let mut plan = finalize::plan(process, filter)?;
    finalize::prepare_process(process, true)?;
    plan.apply_seccomp_early()?;
    crate::identity::switch(process)?;
    chan.send(&Msg::Ready)?;
    wait_for_start(fifo)?;
    crate::hooks::run_all(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        &hook_state,
    )?;
    plan.exec(cfg.preserve_fds)
}

/// Block until `start` opens the fifo for reading, then tell it we go.
fn wait_for_start(fifo: std::os::fd::RawFd) -> Result<()> {
    let path = format!("/proc/self/fd/{fifo}");
    let fd = open(
        path.as_str(),
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open exec fifo")?;
    let r = nix::unistd::write(
        // SAFETY: fd was just opened and is closed right below.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        b"0",
    );
    let _ = nix::unistd::close(fd);
    let _ = nix::unistd::close(fifo);
    r.ctx(|| "write exec fifo")?;
    Ok(())
}

fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = std::ffi::CString::new(format!("_ses.{id}"))
        .map_err(|_| Error::invalid("container id contains NUL"))?;
    // SAFETY: keyctl with a valid C string.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        // No keyring support (or denied by a seccomp'd host): like runc, go on.
        if !matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EACCES) | Some(libc::EPERM)
        ) {
            return Err(Error::invalid(format!("join session keyring: {e}")));
        }
    }
    Ok(())
}
