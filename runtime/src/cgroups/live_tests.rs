//! Tests against the real cgroupfs of this host (root required), using a
//! forked child as the "container". Each test uses its own cgroup path and
//! removes it, and its children, when done.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder,
};

use super::*;

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "cgroup live tests need root (CI runs as root)"
    );
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique_path() -> String {
    format!(
        "/berth-unit-{}-{}/ctr",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// A forked child blocked on a pipe until `release`; then it runs `body`
/// and _exits with its return value. Killed and reaped on drop, and its
/// cgroup destroyed.
struct Child {
    pid: i32,
    go: i32,
    reaped: Option<i32>,
    cgroup: Option<Cgroup>,
    /// What `apply` created; `None`: destroy as for state without a record.
    created: Option<Vec<PathBuf>>,
}

impl Child {
    fn spawn(body: fn() -> i32) -> Child {
        let mut fds = [0; 2];
        // SAFETY: the child only makes raw syscalls (read, mmap, fork, ...)
        // before _exit; nothing allocates after fork.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            let pid = libc::fork();
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let mut b = 0u8;
                libc::read(fds[0], &mut b as *mut u8 as *mut libc::c_void, 1);
                libc::_exit(body());
            }
            libc::close(fds[0]);
            Child {
                pid,
                go: fds[1],
                reaped: None,
                cgroup: None,
                created: None,
            }
        }
    }

    fn release(&self) {
        // SAFETY: writing one byte from a valid buffer to our pipe end.
        unsafe { libc::write(self.go, b"x".as_ptr() as *const libc::c_void, 1) };
    }

    fn wait(&mut self) -> i32 {
        if let Some(s) = self.reaped {
            return s;
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        self.reaped = Some(status);
        status
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            // SAFETY: signalling and reaping our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            if let Some(cg) = &self.cgroup {
                let _ = cg.thaw();
            }
            self.wait();
        }
        // SAFETY: closing our pipe end once.
        unsafe { libc::close(self.go) };
        if let Some(cg) = self.cgroup.take() {
            cg.destroy(self.created.as_deref())
                .expect("destroying the test cgroup");
            assert_left_nothing(&cg);
        }
    }
}

fn assert_left_nothing(cg: &Cgroup) {
    let top = cg.path().split('/').nth(1).unwrap_or_default().to_owned();
    for dir in cg.hierarchy().all_dirs(&format!("/{top}")) {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
}

fn resources(f: impl FnOnce(LinuxResourcesBuilder) -> LinuxResourcesBuilder) -> LinuxResources {
    f(LinuxResourcesBuilder::default()).build().unwrap()
}

fn in_cgroup(body: fn() -> i32, r: &LinuxResources) -> Child {
    require_root();
    let mut child = Child::spawn(body);
    let cg = Cgroup::new(Some(&unique_path()), "unused").unwrap();
    child.created = Some(cg.apply(child.pid, Some(r)).expect("apply"));
    child.cgroup = Some(cg);
    child
}

fn read(dir: PathBuf, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_owned()
}

/// Maps and touches 64 MiB, a page at a time.
fn allocate_64m() -> i32 {
    const LEN: usize = 64 << 20;
    // SAFETY: anonymous private mapping; we only write inside it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return 2;
        }
        let mut off = 0;
        while off < LEN {
            *(p as *mut u8).add(off) = 1;
            off += 4096;
        }
    }
    0
}

#[test]
fn memory_limit_oom_kills_and_is_detected() {
    let r = resources(|b| {
        b.memory(
            LinuxMemoryBuilder::default()
                .limit(16i64 << 20)
                .swap(16i64 << 20)
                .build()
                .unwrap(),
        )
    });
    let mut child = in_cgroup(allocate_64m, &r);
    let cg = child.cgroup.clone().unwrap();
    let st = cg.stats().unwrap();
    assert_eq!(st.memory.usage.limit, 16 << 20);
    assert!(!cg.oom_killed().unwrap());
    child.release();
    let status = child.wait();
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "allocating 64 MiB under a 16 MiB limit should be OOM-killed, status {status:#x}"
    );
    assert!(
        cg.oom_killed().unwrap(),
        "OOM kill not visible in the cgroup"
    );
    assert!(cg.oom_kill_count().unwrap() >= 1);
}

#[test]
fn cpu_settings_are_written() {
    let r = resources(|b| {
        b.cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .build()
                .unwrap(),
        )
    });
    let child = in_cgroup(|| 0, &r);
    let cg = child.cgroup.as_ref().unwrap();
    match cg.hierarchy().placement("cpu", &cg.path()).unwrap() {
        Placement::V1(d) => {
            assert_eq!(read(d.clone(), "cpu.cfs_quota_us"), "50000");
            assert_eq!(read(d.clone(), "cpu.cfs_period_us"), "100000");
            assert_eq!(read(d, "cpu.shares"), "512");
        }
        Placement::V2(d) => {
            assert_eq!(read(d.clone(), "cpu.max"), "50000 100000");
            assert_eq!(read(d, "cpu.weight"), v2::shares_to_weight(512).to_string());
        }
    }
    assert_eq!(
        read(cg.controller_dir("cpuset").unwrap(), "cpuset.cpus"),
        "0"
    );
    assert_eq!(cg.pids().unwrap(), vec![child.pid]);
}

/// Forks up to 10 sleepers; returns how many forks succeeded.
fn fork_ten() -> i32 {
    let mut pids = [0i32; 10];
    let mut ok = 0;
    for slot in pids.iter_mut() {
        // SAFETY: the grandchild only pauses; raw syscalls only.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::pause();
                libc::_exit(0);
            }
        }
        if pid > 0 {
            *slot = pid;
            ok += 1;
        }
    }
    for pid in pids.iter().filter(|p| **p > 0) {
        // SAFETY: killing and reaping our own children.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
            libc::waitpid(*pid, std::ptr::null_mut(), 0);
        }
    }
    ok
}

#[test]
fn pids_limit_is_enforced_and_updatable() {
    let r = resources(|b| b.pids(LinuxPidsBuilder::default().limit(5i64).build().unwrap()));
    let mut child = in_cgroup(fork_ten, &r);
    let cg = child.cgroup.clone().unwrap();
    assert_eq!(cg.stats().unwrap().pids.limit, 5);
    assert_eq!(cg.stats().unwrap().pids.current, 1);
    // Raise it with update; the child (1) + 4 forks fit in 5, so raise to 8
    // and expect 7 forks.
    let raised = resources(|b| b.pids(LinuxPidsBuilder::default().limit(8i64).build().unwrap()));
    cg.update(&raised).unwrap();
    child.release();
    let status = child.wait();
    assert!(libc::WIFEXITED(status));
    assert_eq!(
        libc::WEXITSTATUS(status),
        7,
        "forks allowed under pids.max=8"
    );
}

#[test]
fn freeze_and_thaw() {
    let r = resources(|b| b);
    let child = in_cgroup(
        || loop {
            std::hint::spin_loop();
        },
        &r,
    );
    child.release();
    let cg = child.cgroup.as_ref().unwrap();
    assert!(!cg.is_frozen().unwrap());
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    let state = std::fs::read_to_string(format!("/proc/{}/stat", child.pid)).unwrap();
    let after_comm = state.rsplit(')').next().unwrap_or("");
    assert!(
        after_comm.trim_start().starts_with('D') || after_comm.trim_start().starts_with('S'),
        "frozen task should not be running: {after_comm}"
    );
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
}

fn open_dev_null() -> i32 {
    // SAFETY: path is a NUL-terminated literal.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY) };
    if fd >= 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(1)
    }
}

#[test]
fn device_rules_deny_access() {
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let r = resources(|b| b.devices(vec![deny_all]));
    let mut child = in_cgroup(open_dev_null, &r);
    child.release();
    let status = child.wait();
    assert_eq!(
        libc::WEXITSTATUS(status),
        libc::EPERM,
        "open(/dev/null) should be denied"
    );
}

#[test]
fn impossible_limits_leave_nothing_behind() {
    require_root();
    let path = unique_path();
    let cg = Cgroup::new(Some(&path), "x").unwrap();
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let tiny = resources(|b| b.memory(LinuxMemoryBuilder::default().limit(1i64).build().unwrap()));
    let err = cg.apply(me, Some(&tiny)).unwrap_err();
    assert!(matches!(err, CgroupError::InvalidLimit(_)), "{err}");
    assert_left_nothing(&cg);

    let quota = resources(|b| b.cpu(LinuxCpuBuilder::default().quota(500i64).build().unwrap()));
    assert!(cg.apply(me, Some(&quota)).is_err());
    assert_left_nothing(&cg);

    // Well-formed, but the kernel refuses it: only fails at write time.
    let cpus = resources(|b| b.cpu(LinuxCpuBuilder::default().cpus("4000").build().unwrap()));
    let err = cg.apply(me, Some(&cpus)).unwrap_err();
    assert!(err.to_string().contains("cpuset.cpus"), "{err}");
    assert_left_nothing(&cg);
}

#[test]
fn destroy_removes_created_parents() {
    let child = in_cgroup(|| 0, &resources(|b| b));
    let cg = child.cgroup.as_ref().unwrap();
    for dir in cg.hierarchy().all_dirs(&cg.path()) {
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
    // Drop kills the child, destroys and checks the top-level parent is gone.
}

/// The host's cgroup2 hierarchy on its own: on a hybrid host this
/// exercises the pure-v2 code paths (eBPF devices, cgroup.freeze).
fn unified_only() -> Hierarchy {
    let h = Hierarchy::detect().unwrap();
    let mut unified = h
        .unified
        .expect("these tests need a cgroup2 mount (hybrid or pure v2)");
    // Posing as pure v2 would enable every controller in the host's root
    // subtree_control; these tests need none, so offer none.
    unified.controllers.clear();
    Hierarchy {
        v1: Default::default(),
        unified: Some(unified),
    }
}

fn in_v2_cgroup(body: fn() -> i32, r: &LinuxResources) -> Child {
    require_root();
    let mut child = Child::spawn(body);
    let cg = Cgroup::with_hierarchy(&unique_path(), unified_only()).unwrap();
    child.created = Some(cg.apply(child.pid, Some(r)).expect("apply on cgroup v2"));
    child.cgroup = Some(cg);
    child
}

#[test]
fn v2_device_program_denies_access() {
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let zero = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(oci_spec::runtime::LinuxDeviceType::C)
        .major(1i64)
        .minor(5i64)
        .access("rw")
        .build()
        .unwrap();
    let r = resources(|b| b.devices(vec![deny_all.clone(), zero.clone()]));
    let mut child = in_v2_cgroup(open_dev_null, &r);
    let cg = child.cgroup.clone().unwrap();
    // Updating replaces the program rather than stacking a second one.
    cg.update(&resources(|b| b.devices(vec![deny_all, zero])))
        .unwrap();
    child.release();
    let status = child.wait();
    assert_eq!(
        libc::WEXITSTATUS(status),
        libc::EPERM,
        "open(/dev/null) should be denied"
    );
}

#[test]
fn v2_device_program_allows_listed_devices() {
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .build()
        .unwrap();
    let null = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(oci_spec::runtime::LinuxDeviceType::C)
        .major(1i64)
        .minor(3i64)
        .access("rwm")
        .build()
        .unwrap();
    let r = resources(|b| b.devices(vec![deny_all, null]));
    let mut child = in_v2_cgroup(open_dev_null, &r);
    child.release();
    assert_eq!(libc::WEXITSTATUS(child.wait()), 0, "/dev/null was allowed");
}

#[test]
fn v2_freeze_and_thaw() {
    let child = in_v2_cgroup(
        || loop {
            std::hint::spin_loop();
        },
        &resources(|b| b),
    );
    child.release();
    let cg = child.cgroup.as_ref().unwrap();
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
}

#[test]
fn unlimited_memory_update_lifts_the_swap_limit_too() {
    let limited = resources(|b| {
        b.memory(
            LinuxMemoryBuilder::default()
                .limit(16i64 << 20)
                .swap(32i64 << 20)
                .build()
                .unwrap(),
        )
    });
    let child = in_cgroup(|| 0, &limited);
    let cg = child.cgroup.as_ref().unwrap();
    let unlimited =
        resources(|b| b.memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap()));
    cg.update(&unlimited).unwrap();
    let st = cg.stats().unwrap();
    assert!(st.memory.usage.limit > 1 << 40, "{:?}", st.memory.usage);
    if let Some(Placement::V1(_)) = cg.hierarchy().placement("memory", &cg.path()) {
        assert!(st.memory.swap.limit > 1 << 40, "{:?}", st.memory.swap);
    }
}

fn join_then_report() -> i32 {
    // Filled in by the test before fork; read-only afterwards.
    match JOIN.get().map(|j| j.join()) {
        Some(Ok(())) => 0,
        Some(Err(e)) => e.raw_os_error().unwrap_or(1),
        None => 2,
    }
}

static JOIN: std::sync::OnceLock<SelfJoin> = std::sync::OnceLock::new();

#[test]
fn prepared_cgroup_is_joined_by_the_child_itself() {
    require_root();
    let cg = Cgroup::new(Some(&unique_path()), "unused").unwrap();
    let r = resources(|b| b.pids(LinuxPidsBuilder::default().limit(7i64).build().unwrap()));
    let (_, join) = cg.prepare(Some(&r)).unwrap();
    assert!(cg.pids().unwrap().is_empty(), "prepare moves nobody");
    JOIN.set(join).expect("JOIN set once");
    let mut child = Child::spawn(|| {
        let rc = join_then_report();
        if rc != 0 {
            return rc;
        }
        // Stay until the parent has looked.
        // SAFETY: pause has no preconditions.
        unsafe { libc::pause() };
        0
    });
    child.cgroup = Some(cg.clone());
    child.release();
    let in_all = || {
        cg.hierarchy().all_dirs(&cg.path()).iter().all(|dir| {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            procs.trim() == child.pid.to_string()
        })
    };
    let joined = (0..1000).any(|_| {
        if in_all() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        false
    });
    assert!(joined, "child did not show up in every hierarchy");
    assert_eq!(cg.pids().unwrap(), vec![child.pid]);
    assert_eq!(cg.stats().unwrap().pids.limit, 7);
}

/// Expected "0::/path\n" and "pids:/path\n" lines, set before fork.
static EXPECT: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
static FAST_JOIN: std::sync::OnceLock<SelfJoin> = std::sync::OnceLock::new();

/// In the grandchild: does /proc/self/cgroup show both lines? Raw syscalls.
fn cgroup_lines_match() -> i32 {
    let Some((v2, v1)) = EXPECT.get() else {
        return 3;
    };
    let mut buf = [0u8; 4096];
    // SAFETY: reading into a stack buffer with raw syscalls.
    let n = unsafe {
        let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
        if fd < 0 {
            return 4;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return 5;
    }
    let text = &buf[..n as usize];
    let has = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    if has(v2) && has(v1) {
        0
    } else {
        6
    }
}

/// join_v1, then clone3(CLONE_INTO_CGROUP) a grandchild; its verdict.
fn join_v1_and_clone_into_cgroup() -> i32 {
    let Some(join) = FAST_JOIN.get() else {
        return 10;
    };
    if join.join_v1().is_err() {
        return 11;
    }
    let fd = match join.open_unified() {
        Some(Ok(fd)) => fd,
        _ => return 12,
    };
    let cloned = crate::process::spawn::clone_into_cgroup(fd);
    // SAFETY: the grandchild only makes raw syscalls before _exit; the
    // parent closes its fd and reaps the grandchild.
    unsafe {
        if let Ok(0) = cloned {
            libc::_exit(cgroup_lines_match());
        }
        libc::close(fd);
        let Ok(pid) = cloned else {
            return 13;
        };
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            14
        }
    }
}

#[test]
fn join_v1_then_clone_into_cgroup_places_the_init_everywhere() {
    require_root();
    let h = Hierarchy::detect().unwrap();
    let path = unique_path();
    let cg = Cgroup::with_hierarchy(&path, h.clone()).unwrap();
    let (_, join) = cg.prepare(None).unwrap();
    let v1_line = if h.v1.contains_key("pids") {
        format!("pids:{path}\n")
    } else {
        format!("0::{path}\n")
    };
    EXPECT
        .set((format!("0::{path}\n").into_bytes(), v1_line.into_bytes()))
        .expect("set once");
    FAST_JOIN.set(join).expect("set once");
    let mut child = Child::spawn(join_v1_and_clone_into_cgroup);
    child.cgroup = Some(cg);
    child.release();
    let status = child.wait();
    assert!(libc::WIFEXITED(status), "{status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the clone3(CLONE_INTO_CGROUP) child is not in the container's v1 and v2 cgroups"
    );
}

/// Issue 9.6: a parent another start has just created (still with empty
/// cpuset.cpus/mems) must be filled in, not copied empty into the leaf,
/// which would then refuse the task with ENOSPC.
#[test]
fn a_leaf_below_an_unfilled_cpuset_parent_accepts_tasks() {
    require_root();
    let h = Hierarchy::detect().unwrap();
    let Some(cpuset_root) = h.v1.get("cpuset").cloned() else {
        eprintln!("no v1 cpuset hierarchy on this host: nothing to race");
        return;
    };
    let path = unique_path();
    let parent_rel = path.trim_start_matches('/').trim_end_matches("/ctr");
    let parent = cpuset_root.join(parent_rel);
    // What a racing start leaves for a moment: the parent made, not filled.
    std::fs::create_dir(&parent).unwrap();
    assert_eq!(read(parent.clone(), "cpuset.cpus"), "");
    let mut child = Child::spawn(|| 0);
    let cg = Cgroup::new(Some(&path), "unused").unwrap();
    let applied = cg.apply(child.pid, Some(&resources(|b| b)));
    child.cgroup = Some(cg);
    applied.expect("apply below an unfilled parent");
    assert_ne!(read(parent.clone(), "cpuset.cpus"), "");
    child.release();
    assert_eq!(child.wait(), 0);
}
