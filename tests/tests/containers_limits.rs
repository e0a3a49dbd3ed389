//! Resource limits and security settings through the docker CLI: memory
//! (OOM kill), CPU and pids limits in the cgroup files, --read-only,
//! capabilities, the default seccomp profile, namespaces.

use std::fs;
use std::path::PathBuf;

use berth_tests::Daemon;

/// A container's cgroup file (v1 controller dir, or the unified tree).
fn cgroup_file(d: &Daemon, id: &str, controller: &str, file: &str) -> String {
    let candidates = [
        PathBuf::from("/sys/fs/cgroup")
            .join(controller)
            .join(&d.cgroup_parent)
            .join(id)
            .join(file),
        PathBuf::from("/sys/fs/cgroup")
            .join(&d.cgroup_parent)
            .join(id)
            .join(file),
    ];
    for p in &candidates {
        if let Ok(s) = fs::read_to_string(p) {
            return s.trim().to_string();
        }
    }
    panic!("no cgroup file {file} for {id}: tried {candidates:?}");
}

#[test]
fn memory_hog_is_oom_killed() {
    let d = Daemon::with_busybox();
    let out = d.docker(&[
        "run",
        "--name",
        "hog",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(out.code(), Some(137), "stderr: {}", out.stderr);
    let v = d.inspect("container", "hog");
    assert_eq!(v["State"]["OOMKilled"], true);
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["HostConfig"]["Memory"], 16 << 20);
    d.docker_ok(&["rm", "hog"]);
}

#[test]
fn cpu_and_pids_limits_reach_the_cgroup() {
    let d = Daemon::with_busybox();
    let id = d.docker_ok(&[
        "run",
        "-d",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "20",
        "-m",
        "64m",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    assert_eq!(cgroup_file(&d, id, "cpu", "cpu.cfs_quota_us"), "150000");
    assert_eq!(cgroup_file(&d, id, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(cgroup_file(&d, id, "cpu", "cpu.shares"), "512");
    assert_eq!(cgroup_file(&d, id, "pids", "pids.max"), "20");
    assert_eq!(
        cgroup_file(&d, id, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    // docker update changes the live cgroup.
    d.docker_ok(&[
        "update",
        "--pids-limit",
        "30",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        id,
    ]);
    assert_eq!(cgroup_file(&d, id, "pids", "pids.max"), "30");
    assert_eq!(
        cgroup_file(&d, id, "memory", "memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(d.inspect("container", id)["HostConfig"]["PidsLimit"], 30);
    // Lowering memory below the current swap limit, and a CPU limit.
    d.docker_ok(&[
        "update",
        "--memory",
        "32m",
        "--memory-swap",
        "48m",
        "--cpus",
        "0.5",
        id,
    ]);
    assert_eq!(
        cgroup_file(&d, id, "memory", "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(&d, id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file(&d, id, "cpu", "cpu.cfs_period_us"), "100000");
    d.docker_ok(&["rm", "-f", id]);

    let id = d.docker_ok(&[
        "run",
        "-d",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "50000",
        "busybox",
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    assert_eq!(cgroup_file(&d, id, "cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(cgroup_file(&d, id, "cpu", "cpu.cfs_period_us"), "50000");
    d.docker_ok(&["rm", "-f", id]);

    // The pids limit bites inside the container.
    let out = d.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait",
    ]);
    assert!(
        out.stderr.contains("can't fork")
            || out.stderr.contains("Resource temporarily unavailable"),
        "{out:?}"
    );
}

#[test]
fn read_only_rootfs_and_capabilities() {
    let d = Daemon::with_busybox();
    let out = d.docker(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    // /dev/shm and --tmpfs stay writable.
    d.docker_ok(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/run",
        "busybox",
        "sh",
        "-c",
        "touch /run/x /dev/shm/y",
    ]);
    let shm = d.docker_ok(&["run", "--rm", "busybox", "df", "-k", "/dev/shm"]);
    assert!(shm.contains("65536"), "/dev/shm is 64 MB: {shm}");

    let ok = d.docker(&["run", "--rm", "busybox", "chown", "1000", "/tmp"]);
    assert!(ok.success(), "{}", ok.stderr);
    let out = d.docker(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "1000",
        "/tmp",
    ]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("Operation not permitted"),
        "{}",
        out.stderr
    );
    // The default set: CapEff of Docker's 14 capabilities.
    let caps = d.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "{caps}"
    );
    let caps = d.docker_ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("0000000000000000"),
        "{caps}"
    );
    // Masked /proc paths and the default seccomp profile.
    let host_timers = fs::read_to_string("/proc/timer_list").unwrap_or_default();
    assert!(!host_timers.is_empty(), "the host has /proc/timer_list");
    let timers = d.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "wc -c < /proc/timer_list",
    ]);
    assert_eq!(timers.trim(), "0", "/proc/timer_list is masked");
    let out = d.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "busybox",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status",
    ]);
    assert!(out.stdout.contains("Seccomp:\t2"), "{out:?}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert!(out.contains("Seccomp:\t0"), "{out}");
    let out = d.docker(&["run", "--rm", "busybox", "unshare", "-n", "true"]);
    assert!(
        !out.success(),
        "unshare must be refused without CAP_SYS_ADMIN: {out:?}"
    );
    let priv_caps = d.docker_ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_ne!(
        priv_caps.split_whitespace().nth(1),
        Some("00000000a80425fb")
    );
}

#[test]
fn namespaces_and_hostname() {
    let d = Daemon::with_busybox();
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hostname; ls /sys/class/net",
    ]);
    assert_eq!(out, "box\nbox\nlo\n");
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = d.docker_ok(&["run", "--rm", "--network", "host", "busybox", "hostname"]);
    assert_eq!(out.trim(), host_name.trim());
    let out = d.docker_ok(&["run", "--rm", "busybox", "sh", "-c", "echo $$"]);
    assert_eq!(out.trim(), "1");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--pid",
        "host",
        "busybox",
        "sh",
        "-c",
        "test -d /proc/1 && echo $$",
    ]);
    assert_ne!(out.trim(), "1");
    let a = d.docker_ok(&[
        "run", "-d", "--name", "pidowner", "busybox", "sleep", "1000",
    ]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--pid",
        "container:pidowner",
        "busybox",
        "ps",
        "-o",
        "args",
    ]);
    assert!(out.contains("sleep 1000"), "{out}");
    d.docker_ok(&["rm", "-f", a.trim()]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
    ]);
    assert_eq!(out.trim(), "1");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=123:456",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(out, "123\n456\n");
}
