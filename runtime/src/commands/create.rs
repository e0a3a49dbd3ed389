//! `create`: build a container whose init waits on the exec fifo.

use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxIdMapping;

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};
use crate::namespaces::Plan;
use crate::process::init::{self, InitConfig};
use crate::process::spawn::{become_subreaper, fork_child_into};
use crate::spec::Bundle;
use crate::state::{self, Container, Root, Status};
use crate::sync::{self, Channel, Msg};

pub struct CreateOptions {
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Instead of --console-socket: our end of a socket pair, for a
    /// foreground run that proxies the terminal itself.
    pub console_fd: Option<OwnedFd>,
}

pub fn create(root: &Root, id: &str, opts: &CreateOptions) -> Result<Container> {
    state::validate_id(id)?;
    if root.container_dir(id).exists() {
        return Err(Error::Exists(id.to_string()));
    }
    let bundle = Bundle::load(&opts.bundle)?;
    let spec = &bundle.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json has no linux section"))?;
    let plan = Plan::from_spec(linux.namespaces().as_deref().unwrap_or_default())?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console = match (&opts.console_socket, terminal) {
        (Some(path), true) => Some(crate::tty::connect_console_socket(path)?),
        (None, true) if opts.console_fd.is_some() => opts
            .console_fd
            .as_ref()
            .map(|fd| fd.try_clone())
            .transpose()
            .ctx(|| "duplicate console socket")?,
        (None, true) => {
            return Err(Error::invalid(
                "process.terminal is true but no --console-socket was given",
            ))
        }
        (Some(_), false) => {
            return Err(Error::invalid(
                "--console-socket given but process.terminal is false",
            ))
        }
        (None, false) => None,
    };
    let dir = root.create_dir(id)?;
    let result = build(root, id, &dir, bundle, plan, console, opts);
    if result.is_err() {
        let _ = root.remove(id);
    }
    result
}

fn build(
    root: &Root,
    id: &str,
    dir: &Path,
    bundle: Bundle,
    plan: Plan,
    console: Option<OwnedFd>,
    opts: &CreateOptions,
) -> Result<Container> {
    let fifo = dir.join(state::EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
        .ctx(|| format!("create {}", fifo.display()))?;
    // Any uid in the container must be able to open it for writing.
    std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o622))
        .ctx(|| format!("chmod {}", fifo.display()))?;
    let linux = bundle.spec.linux().clone().unwrap_or_default();
    let cgroups_path = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let cgroup =
        Cgroup::new(cgroups_path.as_deref(), id).map_err(|e| Error::Cgroup(e.to_string()))?;
    let mut container = Container {
        id: id.to_string(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        pid: 0,
        pid_start_time: 0,
        created: state::now_rfc3339(),
        owner: owner_name(),
        cgroup_path: Some(cgroup.path()),
        cgroup_created: Some(Vec::new()),
        host_ns_rootfs: if plan.has(oci_spec::runtime::LinuxNamespaceType::Mount) {
            None
        } else {
            Some(crate::rootfs::hostns::HostNsRootfs::record(&bundle.rootfs)?)
        },
        paused: false,
        created_done: false,
        spec: bundle.spec.clone(),
    };
    root.save(&container)?;
    let uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    let gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    let cfg = InitConfig {
        id: id.to_string(),
        bundle: bundle.dir,
        rootfs: bundle.rootfs,
        spec: bundle.spec,
        plan,
        console,
        fifo,
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds,
        new_keyring: !opts.no_new_keyring,
    };
    let resources = crate::devices_policy::with_required_devices(
        linux.resources().as_ref(),
        linux.devices().as_deref().unwrap_or_default(),
    );
    // The cgroup is made and limited before the init exists; the init's
    // first stage joins it by itself (see `fork_child_into`).
    let (created, join) = cgroup
        .prepare(resources.as_ref())
        .map_err(|e| Error::Cgroup(e.to_string()))?;
    container.cgroup_created = Some(created);
    let unified = match join.open_unified() {
        // SAFETY: a fresh fd that nothing else owns.
        Some(Ok(fd)) => Some(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }),
        _ => None,
    };
    let forked = become_subreaper()
        .and_then(|()| sync::pair())
        .and_then(|(parent, child)| {
            let stage1 = fork_child_into(&child, Some(&parent), unified.as_ref(), |born_in| {
                init::stage1(&child, &cfg, &join, born_in)
            })?;
            Ok((parent, stage1))
        });
    drop(unified);
    drop(cfg);
    let (parent, stage1) = match forked {
        Ok(v) => v,
        Err(e) => {
            let _ = cgroup.destroy(container.cgroup_created.as_deref());
            return Err(e);
        }
    };
    let mut init_pid: Option<Pid> = None;
    let result = drive(
        root,
        &parent,
        &mut container,
        &cgroup,
        stage1,
        &mut init_pid,
        &uid_maps,
        &gid_maps,
    );
    if let Err(e) = result {
        for p in [Some(stage1), init_pid].into_iter().flatten() {
            let _ = kill(p, Signal::SIGKILL);
            let _ = waitpid(p, None);
        }
        let _ = cgroup.destroy(container.cgroup_created.as_deref());
        if let Some(h) = &container.host_ns_rootfs {
            let _ = h.unmount();
        }
        return Err(e);
    }
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, container.pid)?;
    }
    Ok(container)
}

#[allow(clippy::too_many_arguments)]
fn drive(
    root: &Root,
    chan: &Channel,
    container: &mut Container,
    cgroup: &Cgroup,
    stage1: Pid,
    init_pid: &mut Option<Pid>,
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
) -> Result<()> {
    let pid = loop {
        match chan.expect("init pid", |m| {
            matches!(m, Msg::Pid(_) | Msg::WantIdMaps | Msg::WantCgroup)
        })? {
            Msg::WantCgroup => {
                cgroup
                    .add_process(stage1.as_raw())
                    .map_err(|e| Error::Cgroup(e.to_string()))?;
                chan.send(&Msg::Go)?;
            }
            Msg::WantIdMaps => {
                write_id_maps(stage1, uid_maps, gid_maps)?;
                chan.send(&Msg::Go)?;
            }
            Msg::Pid(p) => break Pid::from_raw(p),
            _ => unreachable!("filtered by expect"),
        }
    };
    *init_pid = Some(pid);
    let _ = waitpid(stage1, None);
    container.pid = pid.as_raw();
    container.pid_start_time = state::process_start_time(pid.as_raw())
        .ok_or_else(|| Error::invalid("container init exited during setup"))?;
    let hooks = container.spec.hooks().clone();
    // Hooks may ask `state` for the pid; otherwise one write less (a crash
    // here is still cleaned up by delete: it kills the cgroup's processes).
    if hooks.as_ref().is_some_and(|h| {
        h.prestart().is_some() || h.create_runtime().is_some() || h.create_container().is_some()
    }) {
        root.save(container)?;
    }
    chan.send(&Msg::Pid(pid.as_raw()))?;
    chan.expect("mounts done", |m| matches!(m, Msg::RunCreateHooks))?;
    let hook_state = container.hook_state(Status::Creating);
    if let Some(h) = &hooks {
        crate::hooks::run_all("prestart", h.prestart().as_ref(), &hook_state)?;
        crate::hooks::run_all("createRuntime", h.create_runtime().as_ref(), &hook_state)?;
    }
    chan.send(&Msg::Go)?;
    chan.expect("init ready", |m| matches!(m, Msg::Ready))?;
    container.created_done = true;
    root.save(container)
}

fn write_id_maps(pid: Pid, uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<()> {
    let fmt = |maps: &[LinuxIdMapping]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    let uid_path = format!("/proc/{pid}/uid_map");
    std::fs::write(&uid_path, fmt(uid)).ctx(|| format!("write {uid_path}"))?;
    let gid_path = format!("/proc/{pid}/gid_map");
    std::fs::write(&gid_path, fmt(gid)).ctx(|| format!("write {gid_path}"))
}

pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .ctx(|| "current directory")?
            .join(path)
    };
    berth_common::atomic::write_file_volatile(&abs, pid.to_string().as_bytes(), 0o644)
        .ctx(|| format!("write pid file {}", abs.display()))
}

fn owner_name() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}
