//! Config features beyond the basics: sysctl, devices, oom score, domain
//! name, bind and tmpfs mount options, the cgroup view, --no-pivot, update,
//! kill --all and signal forwarding in a foreground run.

mod runtime_support;

use std::process::Stdio;
use std::time::Duration;

use berth_tests::wait_until;
use runtime_support::Bundle;
use serde_json::json;

#[test]
fn sysctl_devices_oom_score_domainname_and_mount_options() {
    let mut b = Bundle::new();
    let shared = b.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("file"), "from-host\n").unwrap();
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.config["process"]["oomScoreAdj"] = json!(123);
    b.config["domainname"] = json!("example.org");
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}]);
    let mut mounts = b.config["mounts"].as_array().unwrap().clone();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": shared, "options": ["rbind", "ro", "nosuid"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "noexec"]}));
    b.config["mounts"] = json!(mounts);
    b.set_args(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/oom_score_adj; \
         cat /proc/sys/kernel/domainname; stat -c '%t:%T %a' /dev/fuse; cat /data/file; \
         echo x > /data/new 2>/dev/null && echo data-writable || echo data-ro; \
         grep ' /data ' /proc/mounts | grep -q nosuid && echo data-nosuid; \
         grep ' /scratch ' /proc/mounts",
    ]);
    let out = b.run_ok("config");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert_eq!(lines[1], "123", "{out}");
    assert_eq!(lines[2], "example.org", "{out}");
    assert_eq!(lines[3], "a:e5 666", "{out}");
    assert_eq!(lines[4], "from-host", "{out}");
    assert_eq!(lines[5], "data-ro", "{out}");
    assert_eq!(lines[6], "data-nosuid", "{out}");
    assert!(
        lines[7].contains("noexec") && lines[7].contains("size=1024k"),
        "{out}"
    );
    // The host's sysctl is untouched by the container's (own net namespace).
    assert!(!shared.join("new").exists());
}

#[test]
fn cgroup_view_and_update() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("cgview");
    let read_limit = |b: &Bundle| {
        let out = b.rt(&["exec", &id, "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]);
        out.stdout.trim().to_string()
    };
    assert_eq!(read_limit(&b), (64u64 << 20).to_string());
    let out = b.rt(&["update", "--memory", "32m", "--pids-limit", "50", &id]);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(read_limit(&b), (32u64 << 20).to_string());
    let out = b.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    assert_eq!(out.stdout.trim(), "50");
    // JSON resources on stdin, as containerd sends them.
    let mut cmd = b.command(&["update", "--resources", "-", &id]);
    let out = berth_tests::run_with_timeout(
        &mut cmd,
        Some(br#"{"memory": {"limit": 50331648}}"#),
        runtime_support::TIMEOUT,
    );
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(read_limit(&b), "50331648");
    assert!(b.rt(&["delete", "--force", &id]).success());
}

/// As with runc: a new network namespace has its loopback up.
#[test]
fn a_new_network_namespace_has_loopback_up() {
    let mut b = Bundle::new();
    b.set_args(&["cat", "/sys/class/net/lo/flags"]);
    let out = b.run_ok("lo");
    let flags = u32::from_str_radix(out.trim().trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("flags {out:?}: {e}"));
    assert_eq!(
        flags & libc::IFF_UP as u32,
        libc::IFF_UP as u32,
        "lo is down"
    );
}

#[test]
fn no_pivot_runs_in_a_chroot() {
    let mut b = Bundle::new();
    b.set_args(&["sh", "-c", "echo pid=$$; ls /"]);
    let id = b.id("nopivot");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let out = b.rt(&["run", "--no-pivot", "--bundle", &bundle, &id]);
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stdout.starts_with("pid=1"), "{}", out.stdout);
    assert!(out.stdout.contains("bin"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("bundle"),
        "the host root is not visible: {}",
        out.stdout
    );
}

#[test]
fn kill_all_reaches_every_process() {
    let mut b = Bundle::new();
    // Without a pid namespace the init does not take its children down.
    b.remove_namespace("pid");
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("killall");
    let out = b.rt_detached(&["exec", "--detach", &id, "sleep", "999"]);
    assert!(out.success(), "{}", out.stderr);
    let pids = |b: &Bundle| -> Vec<i64> {
        serde_json::from_str(&b.rt(&["ps", "--format", "json", &id]).stdout).unwrap_or_default()
    };
    assert_eq!(pids(&b).len(), 2);
    assert!(b.rt(&["kill", "--all", &id, "KILL"]).success());
    assert!(
        wait_until(Duration::from_secs(10), || pids(&b).is_empty()),
        "{:?}",
        pids(&b)
    );
    assert!(b.rt(&["delete", &id]).success());
}

#[test]
fn foreground_run_forwards_signals() {
    let mut b = Bundle::new();
    b.set_args(&[
        "sh",
        "-c",
        "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    let id = b.id("signals");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let child = b
        .command(&["run", "--bundle", &bundle, &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    assert!(
        wait_until(Duration::from_secs(10), || b
            .rt(&["state", &id])
            .stdout
            .contains("running")),
        "container did not start"
    );
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("got-term"), "{stdout}");
    assert_eq!(out.status.code(), Some(7));
    assert!(
        !b.container_dir(&id).exists(),
        "foreground run deletes the container"
    );
}

#[test]
fn joins_existing_namespaces_by_path() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let first = b.start_detached("nsowner");
    let pid = b.state(&first)["pid"].as_i64().unwrap();
    let net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let ipc = std::fs::read_link(format!("/proc/{pid}/ns/ipc")).unwrap();
    let mut ns: Vec<serde_json::Value> =
        b.config["linux"]["namespaces"].as_array().unwrap().clone();
    for n in ns.iter_mut() {
        if n["type"] == "network" {
            n["path"] = json!(format!("/proc/{pid}/ns/net"));
        }
        if n["type"] == "ipc" {
            n["path"] = json!(format!("/proc/{pid}/ns/ipc"));
        }
    }
    b.config["linux"]["namespaces"] = json!(ns);
    b.set_args(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts",
    ]);
    let out = b.run_ok("nsjoiner");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], net.to_str().unwrap(), "{out}");
    assert_eq!(lines[1], ipc.to_str().unwrap(), "{out}");
    let own_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_ne!(
        lines[2],
        own_uts.to_str().unwrap(),
        "uts was not asked to be shared"
    );
    assert!(b.rt(&["delete", "--force", &first]).success());
}

#[test]
fn fifo_device_is_created_without_a_cgroup_rule() {
    let mut b = Bundle::new();
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/myfifo", "type": "p", "major": 8, "minor": 666, "fileMode": 420}]);
    // A deny-all device policy, so the configured devices get allow rules.
    b.config["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}]);
    b.set_args(&[
        "sh",
        "-c",
        "stat -c '%F %a' /dev/myfifo; ls /sys/fs/cgroup/devices >/dev/null 2>&1 && \
         (grep -c '^p ' /sys/fs/cgroup/devices/devices.list || true)",
    ]);
    let out = b.run_ok("fifo");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "fifo 644", "{out}");
    if let Some(count) = lines.get(1) {
        assert_eq!(*count, "0", "{out}");
    }
}

#[test]
fn rootfs_propagation_values() {
    let mut b = Bundle::new();
    b.set_args(&["sh", "-c", "head -1 /proc/self/mountinfo"]);
    for (p, shared) in [
        ("rshared", true),
        ("shared", true),
        ("rslave", false),
        ("rprivate", false),
    ] {
        b.config["linux"]["rootfsPropagation"] = json!(p);
        let out = b.run_ok(p);
        assert_eq!(out.contains(" shared:"), shared, "{p}: {out}");
    }
    for p in ["unbindable", "runbindable"] {
        b.config["linux"]["rootfsPropagation"] = json!(p);
        let out = b.run_ok(p);
        assert!(out.contains(" unbindable"), "{p}: {out}");
    }
    b.config["linux"]["rootfsPropagation"] = json!("sideways");
    let out = b.run("bad-propagation");
    assert!(!out.success());
    assert!(out.stderr.contains("rootfsPropagation"), "{}", out.stderr);
}

#[test]
fn events_stream_reports_oom_kills() {
    use std::io::BufRead;
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    b.set_args(&[
        "sh",
        "-c",
        "while true; do dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 0.2; done",
    ]);
    let id = b.start_detached("oomevents");
    let mut child = b
        .command(&["events", "--interval", "300ms", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (mut saw_stats, mut saw_oom) = (false, false);
    while std::time::Instant::now() < deadline && !(saw_stats && saw_oom) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["id"], id.as_str());
            saw_stats |= v["type"] == "stats";
            saw_oom |= v["type"] == "oom";
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(saw_stats && saw_oom, "stats: {saw_stats}, oom: {saw_oom}");
    assert!(b.rt(&["delete", "--force", &id]).success());
}

/// Mount points below `dir` as findmnt lists them.
fn findmnt_under(dir: &std::path::Path) -> Vec<String> {
    let out = berth_tests::run_with_timeout(
        std::process::Command::new("findmnt").args(["-rn", "-o", "TARGET"]),
        None,
        Duration::from_secs(30),
    )
    .ok();
    let dir = dir.display().to_string();
    out.lines()
        .filter(|t| t.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// The propagation fields of the host's `/` (e.g. "shared:1").
fn root_propagation() -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .map(|l| {
            l.split(" - ")
                .next()
                .unwrap_or("")
                .split(' ')
                .skip(6)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Issue 14.2: without "mount" in linux.namespaces the container shares
/// the runtime's mount namespace; its mounts live on the host below the
/// rootfs while it exists and are all gone after delete.
#[test]
fn a_missing_mount_namespace_is_inherited_and_delete_leaves_no_mounts() {
    let mut b = Bundle::new();
    b.remove_namespace("mount");
    let before = findmnt_under(b.path());
    assert!(before.is_empty(), "mounts before: {before:?}");
    let propagation = root_propagation();

    // Foreground: its own root (busybox, no /work), its own /proc.
    b.set_args(&[
        "sh",
        "-c",
        "test -x /bin/busybox && test ! -e /work && test -r /proc/1/cmdline && echo inside",
    ]);
    assert_eq!(b.run_ok("hostmnt").trim(), "inside");
    assert_eq!(
        findmnt_under(b.path()),
        Vec::<String>::new(),
        "mounts after run"
    );

    // Detached: same mount namespace as ours, mounts visible on the host.
    b.set_args(&["sleep", "600"]);
    let id = b.start_detached("hostmnt");
    let pid = b.state(&id)["pid"].as_i64().expect("pid");
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).expect("ns link");
    assert_eq!(
        ns(&pid.to_string()),
        ns("self"),
        "the init has a mount ns of its own"
    );
    let during = findmnt_under(b.path());
    assert!(
        during.iter().any(|t| t.ends_with("/rootfs/proc")),
        "the container's /proc is not on the host: {during:?}"
    );
    // exec lands in the container's root too.
    let exec = b.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "test ! -e /work && cat /proc/1/cmdline",
    ]);
    assert!(exec.success(), "exec: {}", exec.stderr);
    assert!(exec.stdout.starts_with("sleep"), "{}", exec.stdout);
    assert!(b.rt(&["delete", "--force", &id]).success());
    assert_eq!(
        findmnt_under(b.path()),
        Vec::<String>::new(),
        "mounts after delete"
    );
    assert_eq!(
        root_propagation(),
        propagation,
        "the host's / changed propagation"
    );

    // A rootfs that is a mount already (as an engine's overlay is) keeps
    // that mount: delete takes down only what the container stacked on it.
    let rootfs = b.bundle.join("rootfs");
    let run = |cmd: &str, args: &[&str]| {
        let out = berth_tests::run_with_timeout(
            std::process::Command::new(cmd).args(args).arg(&rootfs),
            None,
            Duration::from_secs(30),
        );
        assert!(out.success(), "{cmd} {args:?}: {}", out.stderr);
    };
    run("mount", &["--bind", rootfs.to_str().expect("utf-8")]);
    let engine_mount = findmnt_under(b.path());
    assert_eq!(engine_mount.len(), 1, "{engine_mount:?}");
    let id = b.start_detached("premounted");
    assert!(b.rt(&["delete", "--force", &id]).success());
    let after = findmnt_under(b.path());
    run("umount", &[]);
    assert_eq!(after, engine_mount, "the engine's mount went too");
}
