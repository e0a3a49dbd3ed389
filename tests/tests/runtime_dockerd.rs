//! The runc-compatibility proof: Debian's dockerd 20.10 (with its own
//! containerd and containerd-shim-runc-v2) drives berth-runtime as an extra
//! runtime, on a private socket, data root and exec root.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_tests::dockerd::PrivateDockerd;
use berth_tests::{bin_path, busybox_tar, cleanup, run_with_timeout, Output};

const TIMEOUT: Duration = Duration::from_secs(120);

/// dockerd with berth-runtime added as the runtime `berth`.
fn start_dockerd() -> PrivateDockerd {
    let runtime = bin_path("berth-runtime");
    PrivateDockerd::start_with(&[format!("--add-runtime=berth={}", runtime.display())])
}

/// `docker run --rm --runtime berth --network none <args…>` on `d`.
fn run_rm(d: &PrivateDockerd, args: &[&str]) -> Output {
    let args = [
        &["run", "--rm", "--runtime", "berth", "--network", "none"][..],
        args,
    ]
    .concat();
    d.docker(&args)
}

fn leftover_cgroups(parent: &str) -> Vec<PathBuf> {
    cleanup::cgroup_dirs(parent)
}

/// The runtime --root holding container `id`: `<exec-root>/runtime-*/moby`.
fn runtime_root(dockerd_dir: &Path, id: &str) -> PathBuf {
    let exec = dockerd_dir.join("exec");
    fs::read_dir(&exec)
        .expect("read exec root")
        .flatten()
        .map(|e| e.path().join("moby"))
        .find(|root| root.join(id).is_dir())
        .unwrap_or_else(|| panic!("no runtime state dir for {id} under {}", exec.display()))
}

/// The memory cgroup of container `id` below `parent` (v1 memory
/// hierarchy, or the unified one on a pure v2 host).
fn berth_runtime_memory_dir(parent: &str, id: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup/memory").join(parent).join(id);
    if v1.is_dir() {
        v1
    } else {
        Path::new("/sys/fs/cgroup").join(parent).join(id)
    }
}

#[test]
fn dockerd_runs_and_execs_with_berth_runtime() {
    let mut d = start_dockerd();
    let tar = busybox_tar();
    d.docker_ok(&["load", "-i", tar.to_str().expect("utf-8 path")]);

    // A foreground run: output and exit status come back through
    // containerd-shim-runc-v2 and berth-runtime.
    let out = run_rm(&d, &["busybox", "echo", "hi"]).ok();
    assert_eq!(out.trim(), "hi");
    let status = run_rm(&d, &["busybox", "sh", "-c", "exit 7"]);
    assert_eq!(
        status.code(),
        Some(7),
        "exit code should pass through: {}",
        status.stderr
    );

    // dockerd's default seccomp profile is compiled by berth: a syscall it
    // denies (unshare of a user namespace needs CAP_SYS_ADMIN here) fails.
    let denied = run_rm(&d, &["busybox", "unshare", "-U", "true"]);
    assert!(
        !denied.success(),
        "unshare should be refused inside a default container"
    );
    let unconfined = run_rm(
        &d,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "unshare",
            "-U",
            "true",
        ],
    );
    assert!(
        unconfined.success(),
        "without seccomp the same unshare works, so the profile refused it: {}",
        unconfined.stderr
    );

    // exec joins a running container: same pid namespace, sees its PID 1.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "--runtime",
        "berth",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ]);
    let runtime = d.docker_ok(&["inspect", "-f", "{{.HostConfig.Runtime}}", "sleeper"]);
    assert_eq!(runtime.trim(), "berth");
    let pid1 = d.docker_ok(&["exec", "sleeper", "cat", "/proc/1/cmdline"]);
    assert!(pid1.starts_with("sleep"), "PID 1 seen from exec: {pid1:?}");
    let exec_out = d.docker_ok(&["exec", "sleeper", "sh", "-c", "echo from-exec; exit 0"]);
    assert_eq!(exec_out.trim(), "from-exec");
    let exec_code = d.docker(&["exec", "sleeper", "sh", "-c", "exit 5"]);
    assert_eq!(exec_code.code(), Some(5));
    // Resource limits reach the cgroup berth-runtime made (cgroupfs
    // driver: <cgroup-parent>/<container id> in each hierarchy).
    d.docker_ok(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "sleeper",
    ]);
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", "sleeper"]);
    // The container really is berth's: berth-runtime reads its state under
    // the --root the shim passes (dockerd 20.10 names it after the default
    // runtime, runtime-runc), and agrees with dockerd on the init pid.
    let root = runtime_root(d.path(), id.trim());
    let mut state_cmd = Command::new(bin_path("berth-runtime"));
    state_cmd
        .arg("--root")
        .arg(&root)
        .args(["state", id.trim()]);
    let state = run_with_timeout(&mut state_cmd, None, TIMEOUT);
    assert!(state.success(), "berth-runtime state: {}", state.stderr);
    let state: serde_json::Value = serde_json::from_str(&state.stdout).expect("state JSON");
    assert_eq!(state["status"], "running", "{state}");
    let pid = d.docker_ok(&["inspect", "-f", "{{.State.Pid}}", "sleeper"]);
    assert_eq!(state["pid"].to_string(), pid.trim(), "{state}");
    let memory = berth_runtime_memory_dir(d.cgroup_parent(), id.trim());
    let limit = fs::read_to_string(memory.join("memory.limit_in_bytes"))
        .or_else(|_| fs::read_to_string(memory.join("memory.max")))
        .unwrap_or_else(|e| panic!("reading the limit in {}: {e}", memory.display()));
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    // pause/unpause go through `berth-runtime pause/resume` (the freezer);
    // top through `berth-runtime ps`.
    d.docker_ok(&["pause", "sleeper"]);
    let paused = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", "sleeper"]);
    assert_eq!(paused.trim(), "paused");
    d.docker_ok(&["unpause", "sleeper"]);
    let again = d.docker_ok(&["exec", "sleeper", "echo", "thawed"]);
    assert_eq!(again.trim(), "thawed");
    let top = d.docker_ok(&["top", "sleeper"]);
    assert!(top.contains("sleep 600"), "docker top: {top}");
    d.docker_ok(&["rm", "-f", "sleeper"]);

    // A memory limit dockerd sets is enforced in berth's cgroup, and the
    // shim's OOM watch on that cgroup reports it.
    let oom = d.docker(&[
        "run",
        "--name",
        "oom",
        "--runtime",
        "berth",
        "--network",
        "none",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(oom.code(), Some(137), "OOM-killed dd: {}", oom.stderr);
    let killed = d.docker_ok(&["inspect", "-f", "{{.State.OOMKilled}}", "oom"]);
    assert_eq!(killed.trim(), "true", "dockerd should see the OOM kill");
    d.docker_ok(&["rm", "oom"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");

    d.stop();
    let path = d.path().to_path_buf();
    assert!(
        cleanup::processes_under(&path, d.cgroup_parent()).is_empty(),
        "dockerd, containerd or shims survived the stop"
    );
    let mounts: Vec<PathBuf> = cleanup::mounts_under(&path);
    assert!(
        mounts.is_empty(),
        "mounts left after dockerd stopped: {mounts:?}"
    );
    let cgroups: Vec<PathBuf> = leftover_cgroups(d.cgroup_parent())
        .into_iter()
        .flat_map(|p| {
            fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
        })
        .filter(|p| p.is_dir())
        .collect();
    assert!(
        cgroups.is_empty(),
        "container cgroups left behind: {cgroups:?}"
    );
}
