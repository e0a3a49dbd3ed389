//! Control groups on cgroup v1, pure v2 and hybrid hosts, written directly
//! against cgroupfs.
//!
//! A container's cgroup is one path (e.g. "/berth/<id>") that exists in
//! every mounted hierarchy. Each resource is written where its controller
//! lives: a v1 mount if there is one, else the unified hierarchy (on a hybrid
//! host some controllers, like hugetlb here, may be v2-only).
//!
//! Deliberate limits, each an error naming the field rather than a silent
//! no-op: systemd-managed paths (`slice:prefix:name`), v1-only knobs on v2 (swappiness, disableOOMKiller, realtime), blkio
//! weights without a weight-capable I/O scheduler. Device rules are the v1
//! devices controller or, on v2, an eBPF program (see `devices_bpf`).
//! `destroy` removes the leaf and, of its ancestors, only those this
//! container's `apply` created (and only when empty): a parent an
//! administrator or orchestrator made beforehand, with its own limits,
//! outlives its last container. Without that record (state written by an
//! older berth-runtime) every ancestor left empty goes, except the hierarchy
//! root and systemd units (`*.slice`, `*.scope`).

mod devices_bpf;
mod fsutil;
pub mod hierarchy;
#[cfg(test)]
mod live_tests;
mod path;
mod stats;
mod v1;
mod v2;
mod validate;

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

pub use hierarchy::{Hierarchy, Placement};
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuUsage, Hugetlb, Memory, MemoryEntry, Pids, Stats, Throttling,
};
pub use validate::MIN_MEMORY_LIMIT;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("systemd cgroup path {0:?} is not supported: berth manages cgroupfs directly (no --systemd-cgroup)")]
    SystemdUnsupported(String),
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },
    #[error("no cgroup filesystem is mounted (see /proc/self/mountinfo)")]
    NoCgroupMount,
    #[error("invalid resource limit: {0}")]
    InvalidLimit(String),
    #[error("{0} is not supported on this host: {1}")]
    Unsupported(String, String),
    #[error("cgroup controller {0:?} is not available on this host")]
    MissingController(String),
    #[error("creating cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("removing cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("writing {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error("parsing {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cgroup {path} did not become {wanted} within {waited:?}")]
    FreezeTimeout {
        path: PathBuf,
        wanted: &'static str,
        waited: Duration,
    },
    #[error("device cgroup eBPF program: {0}")]
    DeviceProgram(String),
}

/// The controllers (v2 names) that `r` sets anything for.
fn requested_controllers(r: &LinuxResources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if r.memory().is_some() {
        out.push("memory");
    }
    if r.cpu().is_some() {
        out.extend(["cpu", "cpuset"]);
    }
    if r.pids().is_some() {
        out.push("pids");
    }
    if r.block_io().is_some() {
        out.push("io");
    }
    if r.hugepage_limits().as_ref().is_some_and(|l| !l.is_empty()) {
        out.push("hugetlb");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        out.push("rdma");
    }
    out
}

fn remove_created(created: &[PathBuf]) {
    for dir in created.iter().rev() {
        let _ = fsutil::remove_dir(dir);
    }
}

/// What a freshly forked, single-threaded child needs to move itself into
/// the cgroup: prepared paths, so nothing here allocates (safe between fork
/// and exec of a multi-threaded parent).
///
/// Fastest use (no global cgroup lock at all): the intermediate child calls
/// [`SelfJoin::join_v1`], then clones the container init with
/// `clone3(CLONE_INTO_CGROUP)` on [`SelfJoin::open_unified`]'s fd; the init
/// inherits the v1 cgroups and is born in the v2 one. Simplest use:
/// [`SelfJoin::join`] in the child that becomes (or forks) the init.
#[derive(Debug, Clone)]
pub struct SelfJoin {
    /// v1 `tasks` files: writing "0" moves the calling thread.
    v1_tasks: Vec<std::ffi::CString>,
    /// The cgroup2 directory (pure v2, or the unified half of hybrid).
    unified: Option<std::ffi::CString>,
}

impl SelfJoin {
    /// Moves the calling process (which must be single-threaded) into the
    /// cgroup in every hierarchy. The v2 part goes through cgroup.procs and
    /// so still takes the kernel's global lock; see [`SelfJoin::join_v1`].
    pub fn join(&self) -> Result<(), io::Error> {
        self.join_v1()?;
        if let Some(dir) = &self.unified {
            write_zero_at(dir, c"cgroup.procs")?;
        }
        Ok(())
    }

    /// Moves the calling single-threaded process into the v1 hierarchies
    /// only (no-op on pure v2).
    pub fn join_v1(&self) -> Result<(), io::Error> {
        for file in &self.v1_tasks {
            write_zero_at(file, c"")?;
        }
        Ok(())
    }

    /// Opens the cgroup2 directory for `clone3(CLONE_INTO_CGROUP)`; the
    /// caller owns (and closes) the fd. None when no cgroup2 is mounted.
    pub fn open_unified(&self) -> Option<Result<i32, io::Error>> {
        let dir = self.unified.as_ref()?;
        // SAFETY: NUL-terminated path we own.
        let fd = unsafe {
            libc::open(
                dir.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        Some(if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        })
    }
}

/// Writes "0" to `base` (a file) or to `name` inside `base` (a directory),
/// with raw syscalls only.
fn write_zero_at(base: &std::ffi::CStr, name: &std::ffi::CStr) -> Result<(), io::Error> {
    // SAFETY: NUL-terminated paths we own; plain open(at)/write/close.
    unsafe {
        let fd = if name.is_empty() {
            libc::open(base.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC)
        } else {
            let dir = libc::open(
                base.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if dir < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = libc::openat(dir, name.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            libc::close(dir);
            fd
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != 1 {
            return Err(err);
        }
    }
    Ok(())
}

/// A container's cgroup. Cheap to build; touches cgroupfs only in methods.
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: String,
    hierarchy: Hierarchy,
}

impl Cgroup {
    /// `cgroups_path` is `linux.cgroupsPath` from config.json; None means
    /// "/berth/<id>". The systemd `slice:prefix:name` form is refused.
    pub fn new(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup, CgroupError> {
        let path = path::resolve(cgroups_path, id)?;
        Ok(Cgroup {
            path,
            hierarchy: Hierarchy::detect()?,
        })
    }

    /// Rebuilds the handle from `path()` as saved in state.json.
    pub fn from_state(path: &str) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup {
            path: path::normalise(path)?,
            hierarchy: Hierarchy::detect()?,
        })
    }

    /// For tests and callers that already know the layout.
    pub fn with_hierarchy(path: &str, hierarchy: Hierarchy) -> Result<Cgroup, CgroupError> {
        Ok(Cgroup {
            path: path::normalise(path)?,
            hierarchy,
        })
    }

    /// The normalised cgroup path ("/berth/<id>"), to store in state.json.
    pub fn path(&self) -> String {
        self.path.clone()
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// The directory of `controller` for this cgroup, if the host has it.
    pub fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        match self.hierarchy.placement(controller, &self.path)? {
            Placement::V1(d) | Placement::V2(d) => Some(d),
        }
    }

    /// Creates the cgroup in every hierarchy, applies `resources`, then moves
    /// `pid` in. On any failure everything this call created is removed.
    /// Returns the directories it created (parents included, top-down), for
    /// [`Cgroup::destroy`].
    pub fn apply(
        &self,
        pid: i32,
        resources: Option<&LinuxResources>,
    ) -> Result<Vec<PathBuf>, CgroupError> {
        let created = self.create_and_set(resources)?;
        if let Err(e) = self.add_process(pid) {
            remove_created(&created);
            return Err(e);
        }
        Ok(created)
    }

    /// The parent's half of the fast join: creates the cgroup and applies
    /// `resources` without moving any process. The child then calls
    /// [`SelfJoin::join`]. On error nothing this call created is left.
    ///
    /// Why: moving another process (`cgroup.procs` ← pid) takes the kernel's
    /// global threadgroup lock, which costs an RCU grace period (~10 ms
    /// here) on the first move. A single-threaded process moving itself
    /// through v1 `tasks` ← "0" skips that lock.
    ///
    /// Returns the directories it created (as [`Cgroup::apply`] does) and
    /// the child's paths.
    pub fn prepare(
        &self,
        resources: Option<&LinuxResources>,
    ) -> Result<(Vec<PathBuf>, SelfJoin), CgroupError> {
        let created = self.create_and_set(resources)?;
        match self.self_join() {
            Ok(join) => Ok((created, join)),
            Err(e) => {
                remove_created(&created);
                Err(e)
            }
        }
    }

    /// Paths for [`SelfJoin`], for a cgroup that already exists.
    pub fn self_join(&self) -> Result<SelfJoin, CgroupError> {
        let cstring = |p: PathBuf| {
            std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).map_err(|_| {
                CgroupError::InvalidPath {
                    path: self.path.clone(),
                    reason: "contains a NUL byte".into(),
                }
            })
        };
        let mut v1_tasks = Vec::new();
        let mut seen = Vec::new();
        for mountpoint in self.hierarchy.v1.values() {
            let dir = hierarchy::join_rel(mountpoint, &self.path);
            if !seen.contains(&dir) {
                seen.push(dir.clone());
                v1_tasks.push(cstring(dir.join("tasks"))?);
            }
        }
        let unified = match &self.hierarchy.unified {
            Some(u) => Some(cstring(hierarchy::join_rel(&u.mountpoint, &self.path))?),
            None => None,
        };
        Ok(SelfJoin { v1_tasks, unified })
    }

    /// Creates the directories and writes the limits; on error removes
    /// what it created. Returns the directories it created.
    fn create_and_set(
        &self,
        resources: Option<&LinuxResources>,
    ) -> Result<Vec<PathBuf>, CgroupError> {
        if let Some(r) = resources {
            validate::validate(r)?;
        }
        let mut created: Vec<PathBuf> = Vec::new();
        let result = self
            .create_all(&mut created, resources)
            .and_then(|()| match resources {
                Some(r) => self.set(r),
                None => Ok(()),
            });
        match result {
            Ok(()) => Ok(created),
            Err(e) => {
                remove_created(&created);
                Err(e)
            }
        }
    }

    fn create_all(
        &self,
        created: &mut Vec<PathBuf>,
        resources: Option<&LinuxResources>,
    ) -> Result<(), CgroupError> {
        for dir in self.hierarchy.all_dirs(&self.path) {
            let root = self
                .hierarchy
                .root_of(&dir)
                .ok_or(CgroupError::NoCgroupMount)?;
            let is_cpuset = self
                .hierarchy
                .v1
                .get("cpuset")
                .is_some_and(|m| dir.starts_with(m));
            // Two starts sharing a new parent must not see it before its
            // cpus/mems are filled in (the second one's leaf would copy the
            // empty values and refuse tasks with ENOSPC): create and fill
            // the whole path under one host-wide lock.
            let _lock = if is_cpuset {
                Some(fsutil::lock_dir(&root)?)
            } else {
                None
            };
            let made = fsutil::create_dirs(&dir, &root)?;
            created.extend(made.iter().cloned());
            if is_cpuset {
                v1::init_cpuset(&root, &dir)?;
            }
        }
        if let Some(unified) = &self.hierarchy.unified {
            // Pure v2: every controller, so stats work without limits. Hybrid:
            // only v2-only controllers a limit needs, to leave the host's
            // unified tree as it was otherwise.
            let wanted: Vec<String> = if self.hierarchy.is_pure_v2() {
                unified.controllers.clone()
            } else {
                let asked = resources.map(requested_controllers).unwrap_or_default();
                unified
                    .controllers
                    .iter()
                    .filter(|c| asked.contains(&c.as_str()) && !self.hierarchy.v1.contains_key(*c))
                    .cloned()
                    .collect()
            };
            if !wanted.is_empty() {
                let leaf = hierarchy::join_rel(&unified.mountpoint, &self.path);
                v2::enable_controllers(&unified.mountpoint, &leaf, &wanted);
            }
        }
        Ok(())
    }

    /// Moves `pid` (all its threads) into the cgroup in every hierarchy.
    /// Used for init by `apply` and for processes joining via exec.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for dir in self.hierarchy.all_dirs(&self.path) {
            fsutil::write(&dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// Changes limits of an existing cgroup (`berth-runtime update`).
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate::validate(resources)?;
        self.set(resources)
    }

    fn placement(&self, controller: &str, asked_for: &str) -> Result<Placement, CgroupError> {
        self.hierarchy
            .placement(controller, &self.path)
            .ok_or_else(|| {
                CgroupError::Unsupported(
                    asked_for.to_owned(),
                    format!("the {controller} controller is not mounted"),
                )
            })
    }

    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = r.memory() {
            match self.placement("memory", "memory limits")? {
                Placement::V1(d) => v1::set_memory(&d, m)?,
                Placement::V2(d) => v2::set_memory(&d, m)?,
            }
        }
        if let Some(c) = r.cpu() {
            let wants_cpu = c.shares().is_some_and(|v| v != 0)
                || c.quota().is_some_and(|v| v != 0)
                || c.period().is_some_and(|v| v != 0)
                || c.burst().is_some()
                || c.idle().is_some()
                || c.realtime_runtime().is_some_and(|v| v != 0)
                || c.realtime_period().is_some_and(|v| v != 0);
            if wants_cpu {
                match self.placement("cpu", "cpu limits")? {
                    Placement::V1(d) => v1::set_cpu(&d, c)?,
                    Placement::V2(d) => v2::set_cpu(&d, c)?,
                }
            }
            let wants_cpuset = c.cpus().as_deref().is_some_and(|s| !s.is_empty())
                || c.mems().as_deref().is_some_and(|s| !s.is_empty());
            if wants_cpuset {
                match self.placement("cpuset", "cpuset")? {
                    Placement::V1(d) | Placement::V2(d) => v1::set_cpuset(&d, c)?,
                }
            }
        }
        if let Some(p) = r.pids() {
            match self.placement("pids", "pids limit")? {
                Placement::V1(d) | Placement::V2(d) => v1::set_pids(&d, p.limit())?,
            }
        }
        if let Some(rules) = r.devices() {
            match self.placement("devices", "device rules")? {
                Placement::V1(d) => v1::set_devices(&d, rules)?,
                Placement::V2(d) => devices_bpf::apply(&d, rules)?,
            }
        }
        if let Some(b) = r.block_io() {
            if self.hierarchy.v1.contains_key("blkio") {
                if let Placement::V1(d) = self.placement("blkio", "blockIO")? {
                    v1::set_blkio(&d, b)?;
                }
            } else {
                let (Placement::V1(d) | Placement::V2(d)) = self.placement("io", "blockIO")?;
                v2::set_io(&d, b)?;
            }
        }
        if let Some(limits) = r.hugepage_limits().as_deref().filter(|l| !l.is_empty()) {
            match self.placement("hugetlb", "hugepageLimits")? {
                Placement::V1(d) => v1::set_hugepages(&d, limits)?,
                Placement::V2(d) => v2::set_hugepages(&d, limits)?,
            }
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() {
                if let Placement::V1(d) = self.placement("net_cls", "network.classID")? {
                    v1::set_net_cls(&d, n)?;
                }
            }
            if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                if let Placement::V1(d) = self.placement("net_prio", "network.priorities")? {
                    v1::set_net_prio(&d, n)?;
                }
            }
        }
        if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
            // Same rdma.max format on v1 and v2.
            let (Placement::V1(d) | Placement::V2(d)) = self.placement("rdma", "rdma limits")?;
            v1::set_rdma(&d, rdma)?;
        }
        if let Some(entries) = r.unified().as_ref().filter(|m| !m.is_empty()) {
            let unified = self.hierarchy.unified.as_ref().ok_or_else(|| {
                CgroupError::Unsupported("unified".into(), "no cgroup2 hierarchy is mounted".into())
            })?;
            v2::set_unified(
                &hierarchy::join_rel(&unified.mountpoint, &self.path),
                entries,
            )?;
        }
        Ok(())
    }

    /// Freezes every process of the cgroup and waits until the kernel says
    /// they are frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    /// Whether the cgroup is frozen (state "paused").
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.placement("freezer", "pause")? {
            Placement::V1(d) => Ok(fsutil::read(&d, "freezer.state")?.trim() == "FROZEN"),
            Placement::V2(d) => {
                Ok(fsutil::read_keyed(&d, "cgroup.events")?.get("frozen") == Some(&1))
            }
        }
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let placement = self.placement("freezer", "pause/resume")?;
        let wanted = if frozen { "frozen" } else { "thawed" };
        let deadline = Duration::from_secs(10);
        let start = Instant::now();
        let mut delay = Duration::from_micros(200);
        loop {
            let done = match &placement {
                Placement::V1(d) => {
                    let value = if frozen { "FROZEN" } else { "THAWED" };
                    // Rewriting retries a freeze that a forking task interrupted.
                    fsutil::write(d, "freezer.state", value)?;
                    fsutil::read(d, "freezer.state")?.trim() == value
                }
                Placement::V2(d) => {
                    fsutil::write(d, "cgroup.freeze", if frozen { "1" } else { "0" })?;
                    let events = fsutil::read_keyed(d, "cgroup.events")?;
                    events.get("frozen") == Some(&u64::from(frozen))
                }
            };
            if done {
                return Ok(());
            }
            if start.elapsed() > deadline {
                let (Placement::V1(path) | Placement::V2(path)) = placement;
                return Err(CgroupError::FreezeTimeout {
                    path,
                    wanted,
                    waited: start.elapsed(),
                });
            }
            thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    /// PIDs in the cgroup (all hierarchies hold the same set). A cgroup
    /// that does not exist (already destroyed) has none.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self
            .hierarchy
            .procs_dir(&self.path)
            .ok_or(CgroupError::NoCgroupMount)?;
        match fsutil::read(&dir, "cgroup.procs") {
            Ok(text) => Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(CgroupError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// How many processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        match self.hierarchy.placement("memory", &self.path) {
            Some(Placement::V1(d)) => v1::oom_kill_count(&d),
            Some(Placement::V2(d)) => v2::oom_kill_count(&d),
            None => Ok(0),
        }
    }

    /// True once any process of the container was OOM-killed.
    pub fn oom_killed(&self) -> Result<bool, CgroupError> {
        Ok(self.oom_kill_count()? > 0)
    }

    /// Resource usage, in runc's `events --stats` shape. Controllers the
    /// host lacks are left at zero.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut st = Stats::default();
        let h = &self.hierarchy;
        let p = &self.path;
        match (h.placement("cpu", p), h.placement("cpuacct", p)) {
            (Some(Placement::V2(d)), _) => v2::cpu_stats(&d, &mut st)?,
            (cpu, acct) => {
                let v1_dir = |pl: Option<Placement>| match pl {
                    Some(Placement::V1(d)) => Some(d),
                    _ => None,
                };
                let (cpu, acct) = (v1_dir(cpu), v1_dir(acct));
                v1::cpu_stats(acct.as_deref(), cpu.as_deref(), &mut st)?;
            }
        }
        match h.placement("memory", p) {
            Some(Placement::V1(d)) => v1::memory_stats(&d, &mut st)?,
            Some(Placement::V2(d)) => v2::memory_stats(&d, &mut st)?,
            None => {}
        }
        if let Some(Placement::V1(d) | Placement::V2(d)) = h.placement("pids", p) {
            v1::pids_stats(&d, &mut st)?;
        }
        match (h.placement("blkio", p), h.placement("io", p)) {
            (Some(Placement::V1(d)), _) => v1::blkio_stats(&d, &mut st)?,
            (_, Some(Placement::V2(d))) => v2::io_stats(&d, &mut st)?,
            _ => {}
        }
        match h.placement("hugetlb", p) {
            Some(Placement::V1(d)) => v1::hugetlb_stats(&d, &mut st)?,
            Some(Placement::V2(d)) => v2::hugetlb_stats(&d, &mut st)?,
            None => {}
        }
        Ok(st)
    }

    /// Removes the cgroup from every hierarchy, then the parents `created`
    /// names (what [`Cgroup::apply`] returned), deepest first, each only
    /// if empty: another container may share it by now. `None` (no record)
    /// removes each parent left empty up to (not including) the hierarchy
    /// root, never systemd-looking ones (`*.slice`, `*.scope`).
    /// Processes must be gone already; exiting ones are waited for briefly.
    pub fn destroy(&self, created: Option<&[PathBuf]>) -> Result<(), CgroupError> {
        let mut first_err = None;
        let leaves = self.hierarchy.all_dirs(&self.path);
        for dir in &leaves {
            if let Err(e) = devices_bpf::detach_all(dir) {
                first_err.get_or_insert(e);
            }
            match fsutil::remove_dir(dir) {
                Ok(()) if created.is_none() => self.remove_empty_parents(dir),
                Ok(()) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(created) = created {
            let mut parents: Vec<&PathBuf> = created
                .iter()
                .filter(|d| !leaves.contains(d) && leaves.iter().any(|l| l.starts_with(d)))
                .collect();
            parents.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for dir in parents {
                // EBUSY: another container's cgroup is below it now.
                let _ = std::fs::remove_dir(dir);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn remove_empty_parents(&self, dir: &Path) {
        let Some(root) = self.hierarchy.root_of(dir) else {
            return;
        };
        for parent in dir.ancestors().skip(1) {
            if parent == root || !parent.starts_with(&root) {
                break;
            }
            let name = parent.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".slice") || name.ends_with(".scope") {
                break;
            }
            // rmdir fails (EBUSY) while the parent has children or tasks.
            if std::fs::remove_dir(parent).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod ownership_tests {
    //! `destroy` on fake hierarchies (plain directories): which parents go.
    use std::collections::BTreeMap;

    use super::hierarchy::Unified;
    use super::*;

    fn pure_v2(root: &Path) -> Hierarchy {
        Hierarchy {
            v1: BTreeMap::new(),
            unified: Some(Unified {
                mountpoint: root.join("unified"),
                controllers: Vec::new(),
            }),
        }
    }

    fn hybrid(root: &Path) -> Hierarchy {
        let mut h = pure_v2(root);
        for c in ["memory", "pids"] {
            h.v1.insert(c.to_string(), root.join(c));
        }
        h
    }

    fn mounts(h: &Hierarchy) -> Vec<PathBuf> {
        h.v1.values()
            .cloned()
            .chain(h.unified.iter().map(|u| u.mountpoint.clone()))
            .collect()
    }

    fn check(make: fn(&Path) -> Hierarchy) {
        let tmp = tempfile::tempdir().unwrap();
        let h = make(tmp.path());
        for m in mounts(&h) {
            // An orchestrator's parent, made before any container.
            std::fs::create_dir_all(m.join("kubepods/burstable")).unwrap();
        }
        let c1 = Cgroup::with_hierarchy("/kubepods/burstable/c1", h.clone()).unwrap();
        let created = c1.create_and_set(None).unwrap();
        assert_eq!(
            created.len(),
            mounts(&h).len(),
            "only the leaves: {created:?}"
        );
        c1.destroy(Some(&created)).unwrap();
        for m in mounts(&h) {
            assert!(!m.join("kubepods/burstable/c1").exists());
            assert!(
                m.join("kubepods/burstable").is_dir(),
                "admin parent removed in {m:?}"
            );
        }

        // A parent the first container made, shared with a second.
        let a = Cgroup::with_hierarchy("/shared/a", h.clone()).unwrap();
        let made_a = a.create_and_set(None).unwrap();
        let b = Cgroup::with_hierarchy("/shared/b", h.clone()).unwrap();
        let made_b = b.create_and_set(None).unwrap();
        a.destroy(Some(&made_a)).unwrap();
        for m in mounts(&h) {
            assert!(m.join("shared/b").is_dir(), "b removed in {m:?}");
        }
        b.destroy(Some(&made_b)).unwrap();
        for m in mounts(&h) {
            assert!(!m.join("shared/b").exists());
            assert!(
                m.join("shared").is_dir(),
                "b did not make the shared parent"
            );
        }

        // One container alone: it made the parent, its delete removes it.
        let solo = Cgroup::with_hierarchy("/solo/x", h.clone()).unwrap();
        let made = solo.create_and_set(None).unwrap();
        solo.destroy(Some(&made)).unwrap();
        for m in mounts(&h) {
            assert!(!m.join("solo").exists(), "created parent left in {m:?}");
        }

        // State from before the record: every empty parent goes.
        let old = Cgroup::with_hierarchy("/kubepods/burstable/c2", h.clone()).unwrap();
        old.create_and_set(None).unwrap();
        old.destroy(None).unwrap();
        for m in mounts(&h) {
            assert!(!m.join("kubepods").exists());
        }
    }

    #[test]
    fn destroy_removes_only_created_parents_on_v2() {
        check(pure_v2);
    }

    #[test]
    fn destroy_removes_only_created_parents_on_hybrid() {
        check(hybrid);
    }
}

#[cfg(test)]
mod placement_tests {
    //! Issue 14.7 on fake mount tables: each controller's limits land in
    //! the hierarchy that serves it, v1 or unified. The leaf is pre-made
    //! with the kernel's files (empty) so writes can be read back.
    use std::collections::BTreeMap;

    use super::hierarchy::Unified;
    use super::*;

    fn resources(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).expect("resources JSON")
    }

    fn limits() -> LinuxResources {
        resources(serde_json::json!({
            "blockIO": {
                "weight": 300,
                "throttleReadBpsDevice": [{ "major": 254, "minor": 0, "rate": 1048576 }],
                "throttleWriteIOPSDevice": [{ "major": 254, "minor": 0, "rate": 120 }]
            },
            "hugepageLimits": [{ "pageSize": "2MB", "limit": 4194304 }],
            "rdma": { "mlx5_0": { "hcaHandles": 3, "hcaObjects": 100 } },
            "network": { "classID": 1048577, "priorities": [{ "name": "eth0", "priority": 5 }] }
        }))
    }

    fn touch(dir: &Path, files: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), "").unwrap();
        }
    }

    /// A Cgroup on `h` whose mountpoints exist.
    fn cgroup(h: Hierarchy) -> Cgroup {
        for m in h.v1.values().chain(h.unified.iter().map(|u| &u.mountpoint)) {
            std::fs::create_dir_all(m).unwrap();
        }
        Cgroup::with_hierarchy("/pod/c", h).unwrap()
    }

    fn read(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
    }

    #[test]
    fn v1_controllers_of_a_hybrid_host_get_their_limits() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        let mut v1 = BTreeMap::new();
        for (c, dir) in [
            ("blkio", "blkio"),
            ("hugetlb", "hugetlb"),
            ("net_cls", "net_cls,net_prio"),
            ("net_prio", "net_cls,net_prio"),
            ("rdma", "rdma"),
        ] {
            v1.insert(c.to_string(), t.join(dir));
        }
        let h = Hierarchy {
            v1,
            unified: Some(Unified {
                mountpoint: t.join("unified"),
                controllers: Vec::new(),
            }),
        };
        let leaf = |m: &str| t.join(m).join("pod/c");
        touch(
            &leaf("blkio"),
            &[
                "blkio.weight",
                "blkio.throttle.read_bps_device",
                "blkio.throttle.write_iops_device",
            ],
        );
        touch(&leaf("hugetlb"), &["hugetlb.2MB.limit_in_bytes"]);
        touch(
            &leaf("net_cls,net_prio"),
            &["net_cls.classid", "net_prio.ifpriomap"],
        );
        touch(&leaf("rdma"), &["rdma.max"]);
        let cg = cgroup(h);
        cg.create_and_set(Some(&limits())).unwrap();
        assert_eq!(read(&leaf("blkio"), "blkio.weight"), "300");
        assert_eq!(
            read(&leaf("blkio"), "blkio.throttle.read_bps_device"),
            "254:0 1048576"
        );
        assert_eq!(
            read(&leaf("blkio"), "blkio.throttle.write_iops_device"),
            "254:0 120"
        );
        assert_eq!(
            read(&leaf("hugetlb"), "hugetlb.2MB.limit_in_bytes"),
            "4194304"
        );
        assert_eq!(
            read(&leaf("net_cls,net_prio"), "net_cls.classid"),
            "1048577"
        );
        assert_eq!(
            read(&leaf("net_cls,net_prio"), "net_prio.ifpriomap"),
            "eth0 5"
        );
        assert_eq!(
            read(&leaf("rdma"), "rdma.max"),
            "mlx5_0 hca_handle=3 hca_object=100"
        );
        // Nothing of it went to the unified hierarchy.
        let unified = t.join("unified/pod/c");
        let stray: Vec<_> = std::fs::read_dir(&unified)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(stray.is_empty(), "written to the unified leaf: {stray:?}");
    }

    #[test]
    fn v2_only_controllers_of_a_hybrid_host_get_their_limits_in_the_unified_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        // As on this host: hugetlb only in cgroup2; here rdma and io too.
        let h = Hierarchy {
            v1: BTreeMap::from([("memory".to_string(), t.join("memory"))]),
            unified: Some(Unified {
                mountpoint: t.join("unified"),
                controllers: ["hugetlb", "rdma", "io"].map(String::from).to_vec(),
            }),
        };
        let leaf = t.join("unified/pod/c");
        touch(
            &leaf,
            &["hugetlb.2MB.max", "rdma.max", "io.weight", "io.max"],
        );
        let mut r = limits();
        r.set_network(None);
        // One throttle: the fake io.max keeps only the last write.
        let mut bio = r.block_io().clone().unwrap();
        bio.set_throttle_write_iops_device(None);
        r.set_block_io(Some(bio));
        let cg = cgroup(h);
        cg.create_and_set(Some(&r)).unwrap();
        assert_eq!(read(&leaf, "hugetlb.2MB.max"), "4194304");
        assert_eq!(
            read(&leaf, "rdma.max"),
            "mlx5_0 hca_handle=3 hca_object=100"
        );
        assert_eq!(
            read(&leaf, "io.weight"),
            format!("default {}", v2::blkio_to_io_weight(300))
        );
        assert_eq!(read(&leaf, "io.max"), "254:0 rbps=1048576");
    }

    #[test]
    fn net_cls_on_pure_v2_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Hierarchy {
            v1: BTreeMap::new(),
            unified: Some(Unified {
                mountpoint: tmp.path().join("unified"),
                controllers: Vec::new(),
            }),
        };
        let cg = cgroup(h);
        let r = resources(serde_json::json!({ "network": { "classID": 7 } }));
        let err = cg.create_and_set(Some(&r)).unwrap_err();
        assert!(err.to_string().contains("network.classID"), "{err}");
        assert!(
            !tmp.path().join("unified/pod").exists(),
            "left behind on error"
        );
    }
}
