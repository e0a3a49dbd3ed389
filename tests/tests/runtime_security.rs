//! What the container process gets and what it must not get: masked and
//! read-only paths, capabilities, rlimits, users, cwd inside the root, no
//! leaked host fds, a runtime binary that cannot be overwritten.

mod runtime_support;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::Duration;

use berth_tests::wait_until;
use runtime_support::{cap_line, Bundle};
use serde_json::json;

#[test]
fn masked_paths_readonly_paths_and_readonly_root() {
    let mut b = Bundle::new();
    assert_eq!(b.config["root"]["readonly"], true);
    b.set_args(&[
        "sh",
        "-c",
        "echo kcore=$(cat /proc/kcore | wc -c); \
         echo firmware=$(ls /sys/firmware | wc -l); \
         echo 1 > /proc/sys/kernel/domainname && echo sys-writable || echo sys-ro; \
         touch /newfile && echo root-writable || echo root-ro; \
         touch /dev/shm/x && echo shm-writable",
    ]);
    let out = b.run_ok("masked");
    assert!(out.contains("kcore=0"), "{out}");
    assert!(out.contains("firmware=0"), "{out}");
    assert!(out.contains("sys-ro"), "{out}");
    assert!(out.contains("root-ro"), "{out}");
    assert!(out.contains("shm-writable"), "{out}");
}

#[test]
fn capabilities_match_the_config() {
    let mut b = Bundle::new();
    let caps = json!(["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"]);
    for set in [
        "bounding",
        "effective",
        "permitted",
        "inheritable",
        "ambient",
    ] {
        b.config["process"]["capabilities"][set] = caps.clone();
    }
    b.set_args(&["cat", "/proc/self/status"]);
    let status = b.run_ok("caps");
    let want = (1u64 << 0) | (1 << 5) | (1 << 13);
    for line in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
        assert_eq!(cap_line(&status, line), want, "{line} in\n{status}");
    }
    // The template's smaller set.
    let mut b = Bundle::new();
    b.set_args(&["cat", "/proc/self/status"]);
    let status = b.run_ok("caps-default");
    let want = (1u64 << 29) | (1 << 5) | (1 << 10); // AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert_eq!(cap_line(&status, "CapEff"), want, "{status}");
    assert_eq!(cap_line(&status, "CapBnd"), want, "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
}

#[test]
fn rlimits_are_applied() {
    let mut b = Bundle::new();
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
    ]);
    b.set_args(&["cat", "/proc/self/limits"]);
    let out = b.run_ok("rlimit");
    let line = out
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["123", "456"], "{line}");
    let core = out
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(core.split_whitespace().nth(4) == Some("0"), "{core}");
}

#[test]
fn runs_as_a_non_root_user_with_groups_and_umask() {
    let mut b = Bundle::new();
    b.config["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 23});
    b.config["process"]["cwd"] = json!("/tmp");
    b.config["root"]["readonly"] = json!(false);
    b.set_args(&["sh", "-c", "id -u; id -g; grep Groups /proc/self/status; grep CapEff /proc/self/status; umask; echo $HOME"]);
    let out = b.run_ok("user");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    assert_eq!(
        lines[2].split_whitespace().skip(1).collect::<Vec<_>>(),
        ["10", "20"],
        "{out}"
    );
    assert_eq!(
        cap_line(lines[3], "CapEff"),
        0,
        "non-root without ambient caps has none"
    );
    assert_eq!(lines[4], "0027", "{out}");
    assert_eq!(
        lines[5], "/home/user",
        "HOME from the container's /etc/passwd: {out}"
    );
}

#[test]
fn cwd_is_resolved_inside_the_rootfs() {
    let mut b = Bundle::new();
    // A symlink that points far above the root must stay inside it.
    std::os::unix::fs::symlink("../../../../../../", b.bundle.join("rootfs/escape")).unwrap();
    b.config["process"]["cwd"] = json!("/escape/tmp");
    b.set_args(&["sh", "-c", "pwd; ls /proc/self/cwd/ | head -3"]);
    let out = b.run_ok("cwd");
    // The symlink was resolved inside the root: cwd is the container's /tmp.
    assert_eq!(out.lines().next(), Some("/tmp"), "{out}");
    // The real directory is the container's /tmp, not the host's.
    std::fs::write(b.bundle.join("rootfs/tmp/marker-in-rootfs"), "x").unwrap();
    b.set_args(&["ls"]);
    let out = b.run_ok("cwd2");
    assert!(out.contains("marker-in-rootfs"), "{out}");

    b.config["process"]["cwd"] = json!("/does/not/exist");
    let out = b.run("cwd3");
    assert!(!out.success());
    assert!(out.stderr.contains("/does/not/exist"), "{}", out.stderr);
}

/// Runs `berth-runtime args` with an extra, inheritable host fd at 7 and a
/// file at fd 3 (for --preserve-fds).
fn run_with_extra_fds(b: &Bundle, args: &[&str], preserved: &std::fs::File) -> berth_tests::Output {
    use std::os::fd::AsRawFd;
    let host_dir = std::fs::File::open("/").unwrap();
    let dir_fd = host_dir.as_raw_fd();
    let pfd = preserved.as_raw_fd();
    let mut cmd = b.command(args);
    // SAFETY: only async-signal-safe dup2 calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Via high numbers, so neither source can be the other's target
            // and dup2 always clears close-on-exec.
            if libc::dup2(pfd, 100) < 0
                || libc::dup2(dir_fd, 101) < 0
                || libc::dup2(100, 3) < 0
                || libc::dup2(101, 7) < 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    berth_tests::run_with_timeout(&mut cmd, None, runtime_support::TIMEOUT)
}

#[test]
fn no_host_fd_reaches_the_container_but_preserved_ones_do() {
    let mut b = Bundle::new();
    let payload = b.path().join("payload");
    std::fs::write(&payload, "preserved-content").unwrap();
    let f = std::fs::File::open(&payload).unwrap();
    b.set_args(&["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]);
    let id = b.id("fds");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let out = run_with_extra_fds(&b, &["run", "--bundle", &bundle, &id], &f);
    assert!(out.success(), "{}", out.stderr);
    // 0-2 and the fd `ls` itself opens for the directory; no 7, no 3 from us.
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{}",
        out.stdout
    );

    b.set_args(&["sh", "-c", "cat <&3; echo; ls /proc/self/fd | tr '\\n' ' '"]);
    let id = b.id("fds");
    b.write_config(&id);
    let out = run_with_extra_fds(
        &b,
        &["run", "--preserve-fds", "1", "--bundle", &bundle, &id],
        &f,
    );
    assert!(out.success(), "{}", out.stderr);
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("preserved-content"));
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4"]
    );

    // exec must not leak either.
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("fds-exec");
    let out = run_with_extra_fds(&b, &["exec", &id, "ls", "/proc/self/fd"], &f);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{}",
        out.stdout
    );
    assert!(b.rt(&["delete", "--force", &id]).success());
}

#[test]
fn runtime_binary_cannot_be_overwritten_while_in_a_container() {
    // The CVE-2019-5736 pattern: grab the runtime's /proc/<pid>/exe while it
    // runs, then reopen it for writing once it is gone.
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("seal");
    let before = std::fs::read(runtime_support::runtime()).unwrap();
    let mut child = b
        .command(&["exec", &id, "sleep", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let exe = format!("/proc/{}/exe", child.id());
    let protected = || {
        let memfd = std::fs::read_link(&exe).is_ok_and(|p| p.to_string_lossy().contains("memfd:"));
        let readonly = nix::sys::statvfs::statvfs(exe.as_str())
            .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
        memfd || readonly
    };
    assert!(
        wait_until(Duration::from_secs(10), protected),
        "runtime did not re-exec from a protected binary: {:?}",
        std::fs::read_link(&exe)
    );
    let handle = nix::fcntl::open(
        exe.as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .expect("O_PATH open of the runtime's exe");
    let _ = child.kill();
    let _ = child.wait();
    let via = format!("/proc/self/fd/{handle}");
    // What the handle names stays unwritable for good: a file on a
    // read-only mount, or a memfd sealed against writes.
    let readonly_mount = nix::sys::statvfs::statvfs(via.as_str())
        .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    let sealed = std::fs::File::open(&via).is_ok_and(|f| {
        use std::os::fd::AsRawFd;
        // SAFETY: F_GET_SEALS on a valid fd.
        let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
        seals >= 0 && seals & libc::F_SEAL_WRITE != 0
    });
    assert!(
        readonly_mount || sealed,
        "the runtime ran from a writable file"
    );
    let write = std::fs::OpenOptions::new()
        .write(true)
        .open(&via)
        .and_then(|mut f| f.write_all(b"overwritten"));
    let _ = nix::unistd::close(handle);
    let err = write.expect_err("writing the runtime's exe must fail");
    // ETXTBSY only while other tests still execute the same binary; the
    // read-only/sealed check above is what outlasts that.
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EROFS) | Some(libc::EPERM) | Some(libc::ETXTBSY)
        ),
        "want EROFS (read-only bind) or EPERM (sealed memfd), got {err}"
    );
    assert_eq!(std::fs::read(runtime_support::runtime()).unwrap(), before);
    let del = b.rt(&["delete", "--force", &id]);
    assert!(del.success(), "delete: {}", del.stderr);
}

#[test]
fn user_namespace_with_id_maps() {
    let mut b = Bundle::new();
    let mut ns = b.config["linux"]["namespaces"].as_array().unwrap().clone();
    ns.push(json!({"type": "user"}));
    b.config["linux"]["namespaces"] = json!(ns);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["process"]["oomScoreAdj"] = json!(100);
    b.set_args(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; echo pid=$$; cat /proc/self/oom_score_adj",
    ]);
    let out = b.run_ok("userns");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"],
        "{out}"
    );
    assert_eq!(lines[1], "0");
    assert_eq!(lines[2], "pid=1");
    assert_eq!(lines[3], "100");
    // exec joins the user namespace too.
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("userns-exec");
    let out = b.rt(&[
        "exec",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u",
    ]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2,
        "stdout: {} stderr: {}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"]
    );
    assert_eq!(lines[1], "1000");
    let host_uid = std::fs::read_to_string(format!("/proc/{}/status", b.state(&id)["pid"]))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .unwrap();
    assert_eq!(
        host_uid, "200000",
        "container root is uid 200000 on the host"
    );
    assert!(b.rt(&["delete", "--force", &id]).success());
}

/// A requested AppArmor profile or SELinux label never silently vanishes:
/// with the LSM off (this host) or on (berth-runtime cannot apply it) the
/// container is refused, naming the setting.
#[test]
fn requested_security_labels_are_never_ignored() {
    let cases = [
        ("apparmor", "process.apparmorProfile"),
        ("selinux-process", "process.selinuxLabel"),
        ("selinux-mount", "linux.mountLabel"),
    ];
    for (what, field) in cases {
        let mut b = Bundle::new();
        match what {
            "apparmor" => b.config["process"]["apparmorProfile"] = json!("docker-default"),
            "selinux-process" => {
                b.config["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0")
            }
            _ => b.config["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0"),
        }
        b.set_args(&["true"]);
        let out = b.run(what);
        assert!(!out.success(), "{what}: the label was ignored");
        assert!(out.stderr.contains(field), "{what}: {}", out.stderr);
    }
    // An empty label is no request.
    let mut b = Bundle::new();
    b.config["process"]["apparmorProfile"] = json!("");
    b.set_args(&["true"]);
    b.run_ok("empty-label");
}
