//! The Kubernetes path: Debian's containerd 1.6 (started here on a private
//! root, state dir, socket and config) drives berth-runtime through
//! containerd-shim-runc-v2, selected as a RuntimeClass handler selects it:
//! runtime type `io.containerd.runc.v2` with `options.BinaryName` pointing
//! at berth-runtime. `ctr` has no way to name a CRI runtime, so it passes
//! the same type and option itself (`--runtime io.containerd.runc.v2
//! --runc-binary`); the CRI config's `berth` runtime is checked as loaded.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_tests::containerd::{PrivateContainerd, RUNC_V2};
use berth_tests::{
    bin_path, busybox_tar, cleanup, copy_busybox_rootfs, run_with_timeout, wait_until,
};

const IMAGE: &str = "docker.io/library/busybox:latest";
const TIMEOUT: Duration = Duration::from_secs(120);

fn start() -> PrivateContainerd {
    let c = PrivateContainerd::start();
    let tar = busybox_tar();
    c.ctr_ok(&["images", "import", tar.to_str().expect("utf-8 path")]);
    c
}

/// `ctr run <berth runtime args> <args…>`.
fn run(c: &PrivateContainerd, args: &[&str]) -> berth_tests::Output {
    let runtime = c.berth_run_args();
    let mut all: Vec<&str> = vec!["run"];
    all.extend(runtime.iter().map(String::as_str));
    all.extend_from_slice(args);
    c.ctr(&all)
}

/// A cgroup file of the container `<namespace>/<id>`: in the v1 hierarchy
/// of `controller` (hybrid host), else in the unified one under `v2_name`.
fn cgroup_file(
    c: &PrivateContainerd,
    id: &str,
    controller: &str,
    v1_name: &str,
    v2_name: &str,
) -> String {
    let v1 = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(c.namespace())
        .join(id)
        .join(v1_name);
    let v2 = Path::new("/sys/fs/cgroup")
        .join(c.namespace())
        .join(id)
        .join(v2_name);
    let path = if v1.exists() { v1 } else { v2 };
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The task's status column in `ctr task ls`.
fn task_status(c: &PrivateContainerd, id: &str) -> String {
    let ls = c.ctr_ok(&["task", "ls"]);
    ls.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&id))
        .and_then(|f| f.get(2).map(|s| s.to_string()))
        .unwrap_or_else(|| panic!("no task {id} in:\n{ls}"))
}

fn task_pid(c: &PrivateContainerd, id: &str) -> String {
    let ls = c.ctr_ok(&["task", "ls"]);
    ls.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&id))
        .and_then(|f| f.get(1).map(|s| s.to_string()))
        .unwrap_or_else(|| panic!("no task {id} in:\n{ls}"))
}

/// The shim hands berth-runtime `--root <runc-root>/<namespace>`.
fn berth_state(c: &PrivateContainerd, id: &str) -> serde_json::Value {
    let root = c.runc_root().join(c.namespace());
    let mut cmd = Command::new(bin_path("berth-runtime"));
    cmd.arg("--root").arg(&root).args(["state", id]);
    let out = run_with_timeout(&mut cmd, None, TIMEOUT);
    assert!(
        out.success(),
        "berth-runtime state {id} under {}: {}",
        root.display(),
        out.stderr
    );
    serde_json::from_str(&out.stdout).expect("state JSON")
}

/// Everything gone once the tasks are deleted and containerd stopped.
fn assert_nothing_left(mut c: PrivateContainerd) {
    assert_eq!(c.ctr_ok(&["task", "ls", "-q"]).trim(), "");
    assert_eq!(c.ctr_ok(&["containers", "ls", "-q"]).trim(), "");
    let path: PathBuf = c.path().to_path_buf();
    let mounts = cleanup::mounts_under(&path);
    assert!(
        mounts.is_empty(),
        "mounts left after the tasks were deleted: {mounts:?}"
    );
    let runc_root = c.runc_root().join(c.namespace());
    let states: Vec<PathBuf> = fs::read_dir(&runc_root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(states.is_empty(), "berth-runtime state left: {states:?}");
    c.stop();
    let namespace = c.namespace().to_string();
    assert!(
        cleanup::processes_under(&path, &namespace).is_empty(),
        "containerd, shims or containers survived the stop"
    );
    let cgroups = cleanup::cgroup_dirs(&namespace);
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
}

#[test]
fn containerd_runs_execs_pauses_and_measures_with_berth_runtime() {
    let c = start();

    // Foreground runs: output and exit status through the shim.
    let hi = run(&c, &["--rm", IMAGE, "hi", "echo", "hi"]);
    assert!(hi.success(), "ctr run: {}\n{}", hi.stderr, c.log());
    assert_eq!(hi.stdout.trim(), "hi");
    let seven = run(&c, &["--rm", IMAGE, "seven", "sh", "-c", "exit 7"]);
    assert_eq!(seven.code(), Some(7), "exit status: {}", seven.stderr);

    // A detached task with memory and CPU limits, read back from its cgroup.
    let out = run(
        &c,
        &[
            "-d",
            "--memory-limit",
            "67108864",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            IMAGE,
            "sleeper",
            "sleep",
            "600",
        ],
    );
    assert!(out.success(), "ctr run -d: {}\n{}", out.stderr, c.log());
    let memory = cgroup_file(
        &c,
        "sleeper",
        "memory",
        "memory.limit_in_bytes",
        "memory.max",
    );
    assert_eq!(memory, "67108864");
    let quota = cgroup_file(&c, "sleeper", "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(
        quota == "50000" || quota == "50000 100000",
        "CPU quota {quota:?}"
    );
    let shares = cgroup_file(&c, "sleeper", "cpu", "cpu.shares", "cpu.weight");
    assert!(shares == "512" || shares == "20", "CPU shares {shares:?}");

    // The task is berth-runtime's: its state agrees with containerd's pid.
    let pid = task_pid(&c, "sleeper");
    let state = berth_state(&c, "sleeper");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"].to_string(), pid, "{state}");

    // exec without a terminal: same pid namespace, exit status back.
    let fifo = c.fifo_args();
    let fifo: Vec<&str> = fifo.iter().map(String::as_str).collect();
    let exec = c.ctr(
        &[
            &["task", "exec"][..],
            &fifo,
            &[
                "--exec-id",
                "e1",
                "sleeper",
                "sh",
                "-c",
                "cat /proc/1/cmdline; exit 3",
            ],
        ]
        .concat(),
    );
    assert_eq!(exec.code(), Some(3), "exec: {}", exec.stderr);
    assert!(
        exec.stdout.starts_with("sleep"),
        "PID 1 from exec: {:?}",
        exec.stdout
    );
    let no_tty = c.ctr(
        &[
            &["task", "exec"][..],
            &fifo,
            &["--exec-id", "e2", "sleeper", "tty"],
        ]
        .concat(),
    );
    assert_eq!(no_tty.code(), Some(1), "exec without --tty: {no_tty:?}");
    assert!(
        no_tty.stdout.contains("not a tty"),
        "exec without --tty: {no_tty:?}"
    );

    // exec --tty needs a terminal on ctr's side: `script` gives it one.
    let tty_cmd = c.ctr_command(
        &[
            &["task", "exec", "--tty"][..],
            &fifo,
            &["--exec-id", "e3", "sleeper", "sh", "-c", "tty; exit 4"],
        ]
        .concat(),
    );
    let line: Vec<String> = std::iter::once(tty_cmd.get_program())
        .chain(tty_cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut script = Command::new("script");
    script.args(["-q", "-e", "-c", &line.join(" "), "/dev/null"]);
    let tty = run_with_timeout(&mut script, None, TIMEOUT);
    assert_eq!(
        tty.code(),
        Some(4),
        "exec --tty: {} {}",
        tty.stdout,
        tty.stderr
    );
    assert!(
        tty.stdout.contains("/dev/pts/"),
        "exec --tty sees a terminal: {:?}",
        tty.stdout
    );

    // ps lists the container's processes (berth-runtime ps --format json).
    let ps = c.ctr_ok(&["task", "ps", "sleeper"]);
    assert!(
        ps.lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(pid.as_str())),
        "ctr task ps: {ps}"
    );

    // pause/resume: the freezer, and containerd's view of it.
    c.ctr_ok(&["task", "pause", "sleeper"]);
    assert_eq!(task_status(&c, "sleeper"), "PAUSED");
    let frozen = cgroup_file(&c, "sleeper", "freezer", "freezer.state", "cgroup.freeze");
    assert!(frozen == "FROZEN" || frozen == "1", "freezer: {frozen:?}");
    assert_eq!(berth_state(&c, "sleeper")["status"], "paused");
    c.ctr_ok(&["task", "resume", "sleeper"]);
    assert_eq!(task_status(&c, "sleeper"), "RUNNING");
    let thawed = c.ctr_ok(
        &[
            &["task", "exec"][..],
            &fifo,
            &["--exec-id", "e4", "sleeper", "echo", "thawed"],
        ]
        .concat(),
    );
    assert_eq!(thawed.trim(), "thawed");

    // metrics: the shim reads the cgroup berth-runtime made.
    let metrics = c.ctr_ok(&["task", "metrics", "sleeper"]);
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("limit") && l.contains("67108864")),
        "memory limit in metrics:\n{metrics}"
    );
    assert!(metrics.contains("pids.current"), "metrics:\n{metrics}");

    // kill (PID 1 ignores SIGTERM without a handler, as under runc), then
    // delete: the task, berth-runtime's state and the cgroup go.
    c.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "sleeper"]);
    assert!(
        wait_until(TIMEOUT, || task_status(&c, "sleeper") == "STOPPED"),
        "task did not stop after SIGKILL"
    );
    c.ctr_ok(&["task", "delete", "sleeper"]);
    c.ctr_ok(&["containers", "delete", "sleeper"]);
    let leftovers = cleanup::container_cgroups(c.namespace());
    assert!(leftovers.is_empty(), "cgroups after delete: {leftovers:?}");

    assert_nothing_left(c);
}

#[test]
fn containerd_reports_the_oom_kill_of_a_berth_runtime_task() {
    let c = start();
    let events_log = c.path().join("events.txt");
    let mut events = c.ctr_command(&["events"]);
    let mut events = events
        .stdin(Stdio::null())
        .stdout(fs::File::create(&events_log).expect("events file"))
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr events");
    let oom = run(
        &c,
        &[
            "--rm",
            "--memory-limit",
            "16777216",
            IMAGE,
            "oom",
            // containerd-shim-runc-v2 arms its OOM watch only after the
            // task has started; a hog that dies at once can beat it (seen
            // on a loaded machine), so it waits a second first.
            "sh",
            "-c",
            "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1",
        ],
    );
    assert_eq!(oom.code(), Some(137), "OOM-killed dd: {}", oom.stderr);
    let reported = wait_until(TIMEOUT, || {
        fs::read_to_string(&events_log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("/tasks/oom") && l.contains("\"container_id\":\"oom\""))
    });
    let _ = events.kill();
    let _ = events.wait();
    assert!(
        reported,
        "no /tasks/oom event:\n{}",
        fs::read_to_string(&events_log).unwrap_or_default()
    );
    assert_nothing_left(c);
}

/// The CRI config's `berth` runtime loads, and a full OCI spec as CRI
/// writes it (here with a pids limit, which `ctr run` has no flag for)
/// runs under the same runtime type and BinaryName.
#[test]
fn containerd_runtime_class_config_and_full_spec_with_pids_limit() {
    let c = start();
    let plugins = c.ctr_ok(&["plugins", "ls"]);
    let cri = plugins
        .lines()
        .find(|l| {
            l.contains("io.containerd.grpc.v1.cri") || l.split_whitespace().nth(1) == Some("cri")
        })
        .unwrap_or_else(|| panic!("no CRI plugin:\n{plugins}"));
    assert!(
        cri.trim_end().ends_with("ok"),
        "CRI plugin with the berth runtime: {cri}\n{}",
        c.log()
    );
    let mut dump = Command::new(berth_tests::containerd::CONTAINERD);
    dump.arg("--config")
        .arg(c.path().join("config.toml"))
        .args(["config", "dump"]);
    let dump = run_with_timeout(&mut dump, None, TIMEOUT).ok();
    // The runtime and its options tables, in that order.
    let start = dump
        .find("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.berth]")
        .unwrap_or_else(|| panic!("no berth runtime in:\n{dump}"));
    let berth = &dump[start..];
    assert!(
        berth.contains(&format!("runtime_type = \"{RUNC_V2}\"")),
        "{berth}"
    );
    assert!(
        berth.contains(&format!(
            "BinaryName = \"{}\"",
            bin_path("berth-runtime").display()
        )),
        "{berth}"
    );

    // A full spec (`--config`): ctr's default spec with the busybox rootfs,
    // a pids limit and the command.
    let spec_out = c.ctr_ok(&["oci", "spec"]);
    let mut spec: serde_json::Value = serde_json::from_str(&spec_out).expect("ctr oci spec");
    let rootfs = c.path().join("pids-rootfs");
    fs::create_dir_all(&rootfs).expect("mkdir rootfs");
    copy_busybox_rootfs(&rootfs);
    spec["root"] = serde_json::json!({ "path": rootfs });
    spec["process"]["args"] = serde_json::json!(["sleep", "600"]);
    spec["process"]["env"] = serde_json::json!(["PATH=/bin:/usr/bin"]);
    spec["linux"]["resources"]["pids"] = serde_json::json!({ "limit": 42 });
    spec["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/pids", c.namespace()));
    let spec_file = c.path().join("pids-spec.json");
    fs::write(&spec_file, spec.to_string()).expect("write spec");
    let out = run(
        &c,
        &["-d", "--config", spec_file.to_str().expect("utf-8"), "pids"],
    );
    assert!(
        out.success(),
        "ctr run --config: {}\n{}",
        out.stderr,
        c.log()
    );
    assert_eq!(
        cgroup_file(&c, "pids", "pids", "pids.max", "pids.max"),
        "42"
    );
    let metrics = c.ctr_ok(&["task", "metrics", "pids"]);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pids.limit") && l.contains("42")),
        "pids limit in metrics:\n{metrics}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&c.ctr_ok(&["containers", "info", "pids"])).expect("container info");
    assert_eq!(info["Runtime"]["Name"], RUNC_V2, "{info}");
    c.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "pids"]);
    assert!(
        wait_until(TIMEOUT, || task_status(&c, "pids") == "STOPPED"),
        "task did not stop after SIGKILL"
    );
    c.ctr_ok(&["task", "delete", "pids"]);
    c.ctr_ok(&["containers", "delete", "pids"]);
    assert_nothing_left(c);
}
