//! Bad bundles fail with one clear line and a non-zero exit, and leave no
//! state dir, cgroup, mount or process behind.

mod runtime_support;

use runtime_support::Bundle;
use serde_json::json;

/// Runs `create` on the current config and checks the failure is clean.
#[track_caller]
fn assert_clean_failure(b: &Bundle, what: &str, expect_in_error: &str) {
    let id = b.id(what);
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let out = b.rt_detached(&["create", "--bundle", &bundle, &id]);
    assert!(!out.success(), "{what}: create should fail");
    let err = out.stderr.trim();
    assert_eq!(
        err.lines().count(),
        1,
        "{what}: one line of error, got:\n{err}"
    );
    assert!(
        err.contains(expect_in_error),
        "{what}: error should mention {expect_in_error:?}: {err}"
    );
    assert!(
        !b.container_dir(&id).exists(),
        "{what}: state dir left behind"
    );
    assert!(
        b.cgroup_leftovers(&id).is_empty(),
        "{what}: cgroup left: {:?}",
        b.cgroup_leftovers(&id)
    );
    assert!(
        b.mounts_under_bundle().is_empty(),
        "{what}: mounts left: {:?}",
        b.mounts_under_bundle()
    );
    let procs = berth_tests::cleanup::processes_under(b.path(), &b.cgroup_parent);
    assert!(procs.is_empty(), "{what}: processes left: {procs:?}");
    assert!(!b.rt(&["state", &id]).success());
}

#[test]
fn malformed_config_json() {
    let b = Bundle::new();
    let id = b.id("malformed");
    std::fs::write(b.bundle.join("config.json"), "{\"ociVersion\": ").unwrap();
    let bundle = b.bundle.display().to_string();
    let out = b.rt_detached(&["create", "--bundle", &bundle, &id]);
    assert!(!out.success());
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("config.json"), "{}", out.stderr);
    assert!(!b.container_dir(&id).exists());
}

#[test]
fn missing_rootfs() {
    let mut b = Bundle::new();
    b.config["root"]["path"] = json!("no-such-rootfs");
    assert_clean_failure(&b, "rootfs", "no-such-rootfs");
}

#[test]
fn bad_namespace_paths() {
    let mut b = Bundle::new();
    let mut ns = b.config["linux"]["namespaces"].as_array().unwrap().clone();
    for n in ns.iter_mut() {
        if n["type"] == "network" {
            n["path"] = json!("/proc/self/ns/no-such-ns");
        }
    }
    b.config["linux"]["namespaces"] = json!(ns.clone());
    assert_clean_failure(&b, "nspath", "no-such-ns");
    // A namespace file of the wrong kind.
    for n in ns.iter_mut() {
        if n["type"] == "network" {
            n["path"] = json!("/proc/self/ns/uts");
        }
    }
    b.config["linux"]["namespaces"] = json!(ns);
    assert_clean_failure(&b, "nskind", "not a net namespace");
}

#[test]
fn impossible_cpu_limit() {
    let mut b = Bundle::new();
    // The kernel refuses quotas under 1ms.
    b.config["linux"]["resources"]["cpu"] = json!({"quota": 1, "period": 100000});
    assert_clean_failure(&b, "quota", "cpu");
}

#[test]
fn missing_executable_and_bad_cwd() {
    let mut b = Bundle::new();
    b.set_args(&["/no/such/program"]);
    assert_clean_failure(&b, "noexec", "/no/such/program");
    b.set_args(&["no-such-program-in-path"]);
    assert_clean_failure(&b, "nopath", "executable file not found");
    b.set_args(&["sh"]);
    b.config["process"]["cwd"] = json!("relative/dir");
    assert_clean_failure(&b, "relcwd", "cwd");
}

#[test]
fn failing_mount_and_failing_hook() {
    let mut b = Bundle::new();
    let mut mounts = b.config["mounts"].as_array().unwrap().clone();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": "/no/such/source", "options": ["rbind"]}));
    b.config["mounts"] = json!(mounts);
    assert_clean_failure(&b, "mount", "/no/such/source");

    let mut b = Bundle::new();
    b.config["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    assert_clean_failure(&b, "hook", "prestart hook");
}

#[test]
fn terminal_without_console_socket_and_duplicate_ids() {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    assert_clean_failure(&b, "tty", "console-socket");

    b.config["process"]["terminal"] = json!(false);
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("dup");
    let bundle = b.bundle.display().to_string();
    let out = b.rt_detached(&["create", "--bundle", &bundle, &id]);
    assert!(!out.success());
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    assert_eq!(
        b.state(&id)["status"],
        "running",
        "the existing container is untouched"
    );
    assert!(b.rt(&["delete", "--force", &id]).success());

    let out = b.rt_detached(&["create", "--bundle", &bundle, "../escape"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("invalid container id"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_runtime_killed_during_create_leaves_a_deletable_container() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;
    let mut b = Bundle::new();
    // A createRuntime hook that blocks (a shell builtin reading a fifo, so
    // the only hook process names its script), so create is surely midway.
    let fifo = b.path().join("hook.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let hook = b.path().join("slow-hook.sh");
    std::fs::write(&hook, format!("#!/bin/sh\nread x < {}\n", fifo.display())).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    b.config["hooks"] = json!({"createRuntime": [{"path": hook}]});
    b.set_args(&["sleep", "1000"]);
    let id = b.id("killed");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let mut child = b
        .command(&["create", "--bundle", &bundle, &id])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let hook_pids = || -> Vec<i32> {
        berth_tests::cleanup::processes_under(b.path(), &b.cgroup_parent)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("slow-hook.sh"))
            })
            .collect()
    };
    assert!(
        berth_tests::wait_until(Duration::from_secs(20), || !hook_pids().is_empty()),
        "the hook never ran"
    );
    let _ = child.kill();
    let _ = child.wait();
    for p in hook_pids() {
        // SAFETY: the hook process this test made.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let st = b.rt(&["state", &id]);
    assert!(
        st.success(),
        "the half-made container is visible: {}",
        st.stderr
    );
    let del = b.rt(&["delete", &id]);
    assert!(del.success(), "delete: {}", del.stderr);
    assert!(!b.container_dir(&id).exists());
    assert!(
        b.cgroup_leftovers(&id).is_empty(),
        "{:?}",
        b.cgroup_leftovers(&id)
    );
    assert!(
        berth_tests::wait_until(Duration::from_secs(10), || {
            berth_tests::cleanup::processes_under(b.path(), &b.cgroup_parent).is_empty()
        }),
        "left behind: {:?}",
        berth_tests::cleanup::processes_under(b.path(), &b.cgroup_parent)
    );
}
