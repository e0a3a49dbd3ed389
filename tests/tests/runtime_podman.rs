//! Debian's podman 4.3 (rootful, no pod) with `--runtime berth-runtime`:
//! conmon drives berth-runtime for run, run -d, exec, logs, stop, rm and a
//! memory limit. Private storage, config and runtime root (see
//! tests/src/podman.rs); `--network none`, cgroupfs, file events.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_tests::podman::PrivatePodman;
use berth_tests::{bin_path, busybox_tar, cleanup, run_with_timeout};

const IMAGE: &str = "localhost/busybox:latest";

fn start() -> PrivatePodman {
    let p = PrivatePodman::start();
    let tar = busybox_tar();
    let loaded = p.podman_ok(&["load", "-i", tar.to_str().expect("utf-8 path")]);
    assert!(loaded.contains("busybox"), "podman load: {loaded}");
    p
}

/// `<hierarchy>/<parent>/libpod-<id>` in the v1 memory hierarchy or the
/// unified one.
fn container_cgroup(p: &PrivatePodman, id: &str) -> PathBuf {
    let leaf = format!("libpod-{id}");
    let v1 = Path::new("/sys/fs/cgroup/memory")
        .join(p.cgroup_parent())
        .join(&leaf);
    if v1.is_dir() {
        v1
    } else {
        Path::new("/sys/fs/cgroup")
            .join(p.cgroup_parent())
            .join(leaf)
    }
}

/// Every hierarchy's cgroup of container `id` that still exists.
fn cgroups_of(p: &PrivatePodman, id: &str) -> Vec<PathBuf> {
    let leaf = format!("libpod-{id}");
    cleanup::cgroup_dirs(p.cgroup_parent())
        .into_iter()
        .map(|d| d.join(&leaf))
        .filter(|d| d.is_dir())
        .collect()
}

fn berth_state(p: &PrivatePodman, id: &str) -> serde_json::Value {
    let mut cmd = Command::new(bin_path("berth-runtime"));
    cmd.arg("--root").arg(p.runtime_root()).args(["state", id]);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(60));
    assert!(out.success(), "berth-runtime state {id}: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("state JSON")
}

/// The container is gone everywhere berth-runtime put something.
fn assert_removed(p: &PrivatePodman, id: &str) {
    assert!(
        !p.runtime_root().join(id).exists(),
        "berth-runtime state of {id} left behind"
    );
    let left = cgroups_of(p, id);
    assert!(left.is_empty(), "cgroups of {id} left behind: {left:?}");
}

#[test]
fn podman_runs_execs_logs_stops_and_removes_with_berth_runtime() {
    let p = start();

    // Foreground: output and exit status through conmon.
    let hi = p.run(&["--rm", IMAGE, "echo", "hi"]);
    assert!(hi.success(), "podman run: {}", hi.stderr);
    assert_eq!(hi.stdout.trim(), "hi");
    let seven = p.run(&["--rm", IMAGE, "sh", "-c", "exit 7"]);
    assert_eq!(seven.code(), Some(7), "exit status: {}", seven.stderr);

    // Detached, with a memory limit and a TERM handler for `stop`.
    let id = p
        .run(&[
            "-d",
            "--name",
            "s1",
            "--memory",
            "64m",
            IMAGE,
            "sh",
            "-c",
            "trap 'echo got-term; exit 0' TERM; echo started; sleep 600 & wait",
        ])
        .ok();
    let id = id.trim().to_string();
    let runtime = p.podman_ok(&["inspect", "-f", "{{.OCIRuntime}}", "s1"]);
    assert_eq!(
        runtime.trim(),
        bin_path("berth-runtime").display().to_string()
    );
    let pid = p.podman_ok(&["inspect", "-f", "{{.State.Pid}}", "s1"]);
    let state = berth_state(&p, &id);
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"].to_string(), pid.trim(), "{state}");
    let memory = container_cgroup(&p, &id);
    let limit = fs::read_to_string(memory.join("memory.limit_in_bytes"))
        .or_else(|_| fs::read_to_string(memory.join("memory.max")))
        .unwrap_or_else(|e| panic!("memory limit in {}: {e}", memory.display()));
    assert_eq!(limit.trim(), (64u64 << 20).to_string());

    // exec: PID 1 is the container's, exit status back; -t gives a pty.
    let cmdline = p.podman_ok(&["exec", "s1", "cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("sh"), "PID 1 from exec: {cmdline:?}");
    let code = p.podman(&["exec", "s1", "sh", "-c", "exit 3"]);
    assert_eq!(code.code(), Some(3), "exec exit status: {}", code.stderr);
    let tty = p.podman_ok(&["exec", "-t", "s1", "tty"]);
    assert!(tty.contains("/dev/pts/"), "exec -t: {tty:?}");

    // stop delivers SIGTERM (the trap answers), logs keep the output.
    p.podman_ok(&["stop", "--time", "30", "s1"]);
    let exit = p.podman_ok(&["inspect", "-f", "{{.State.ExitCode}}", "s1"]);
    assert_eq!(exit.trim(), "0", "stopped by its TERM trap");
    let logs = p.podman_ok(&["logs", "s1"]);
    assert!(
        logs.contains("started") && logs.contains("got-term"),
        "podman logs: {logs:?}"
    );
    p.podman_ok(&["rm", "s1"]);
    assert_removed(&p, &id);

    // rm -f of a running container: kill, delete, nothing left.
    let id2 = p.run(&["-d", "--name", "s2", IMAGE, "sleep", "600"]).ok();
    let id2 = id2.trim().to_string();
    assert_eq!(berth_state(&p, &id2)["status"], "running");
    p.podman_ok(&["rm", "--force", "--time", "0", "s2"]);
    assert_removed(&p, &id2);

    assert_eq!(p.podman_ok(&["ps", "-aq"]).trim(), "");
    let mounts = cleanup::mounts_under(p.path());
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let procs = cleanup::processes_under(p.path(), p.cgroup_parent());
    assert!(
        procs.is_empty(),
        "conmon or container processes left: {procs:?}"
    );
}
