//! berth-runtime driven like runc: run/create/start/state/kill/delete/exec,
//! exit codes, PID 1, hostname, network namespace, pause/resume, pid files,
//! JSON error logs.

mod runtime_support;

use std::time::Duration;

use berth_tests::wait_until;
use runtime_support::Bundle;

#[test]
fn exit_code_passes_through() {
    let mut b = Bundle::new();
    b.set_args(&["sh", "-c", "exit 42"]);
    let out = b.run("exit");
    assert_eq!(out.code(), Some(42), "stderr: {}", out.stderr);
    b.set_args(&["true"]);
    assert_eq!(b.run("true").code(), Some(0));
    // Killed by a signal: 128 + signal, like a shell reports it. (A pid
    // namespace's init cannot SIGKILL itself, so share the host's.)
    b.remove_namespace("pid");
    b.set_args(&["sh", "-c", "kill -9 $$"]);
    assert_eq!(b.run("signal").code(), Some(137));
}

#[test]
fn init_is_pid_1_with_hostname_and_only_loopback() {
    let mut b = Bundle::new();
    b.config["hostname"] = serde_json::json!("berth-test-host");
    b.set_args(&[
        "sh",
        "-c",
        "echo pid=$$; hostname; ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1",
    ]);
    let out = b.run_ok("pid1");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines[0], "pid=1", "{out}");
    assert_eq!(lines[1], "berth-test-host", "{out}");
    assert_eq!(lines[2], "lo", "only lo in a new net namespace: {out}");
    assert_eq!(lines[3..], ["lo"], "{out}");
}

#[test]
fn create_start_state_kill_delete() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let id = b.id("life");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let pid_file = b.path().join("init.pid");
    let out = b.rt_detached(&[
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert!(out.success(), "create: {}", out.stderr);
    let st = b.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], bundle.as_str());
    assert!(st["ociVersion"].is_string());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    let from_file: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(from_file, pid, "pid file matches state");
    // The init is blocked, not yet running the program.
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!cmdline.starts_with("sleep"), "{cmdline:?}");

    assert!(b.rt(&["start", &id]).success());
    assert_eq!(b.state(&id)["status"], "running");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with("sleep"))
    }));
    let again = b.rt(&["start", &id]);
    assert!(!again.success(), "second start must fail");

    let del = b.rt(&["delete", &id]);
    assert!(
        !del.success(),
        "delete of a running container needs --force"
    );
    assert!(del.stderr.contains("not stopped"), "{}", del.stderr);

    assert!(b.rt(&["kill", &id, "KILL"]).success());
    assert!(wait_until(Duration::from_secs(5), || b.state(&id)
        ["status"]
        == "stopped"));
    let kill_stopped = b.rt(&["kill", &id, "TERM"]);
    assert!(
        !kill_stopped.success(),
        "kill of a stopped container errors"
    );
    assert!(
        kill_stopped.stderr.contains("not running"),
        "{}",
        kill_stopped.stderr
    );

    assert!(b.rt(&["delete", &id]).success());
    assert!(!b.container_dir(&id).exists());
    assert!(
        b.cgroup_leftovers(&id).is_empty(),
        "{:?}",
        b.cgroup_leftovers(&id)
    );
    let gone = b.rt(&["state", &id]);
    assert!(!gone.success());
    assert!(gone.stderr.contains("does not exist"), "{}", gone.stderr);
    // runc semantics: forced delete of a missing container is fine.
    assert!(b.rt(&["delete", "--force", &id]).success());
}

#[test]
fn delete_force_kills_a_running_container() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("force");
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert!(b.rt(&["delete", "--force", &id]).success());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.contains(") Z")
        }
    );
    assert!(!b.container_dir(&id).exists());
    assert!(b.cgroup_leftovers(&id).is_empty());
}

#[test]
fn exec_joins_the_running_container() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("exec");
    let out = b.rt(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo me=$$; exit 5",
    ]);
    assert_eq!(out.code(), Some(5), "stderr: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0].trim(),
        "sleep 1000",
        "exec sees the init as PID 1: {}",
        out.stdout
    );
    let me: i32 = lines[1].trim_start_matches("me=").parse().unwrap();
    assert!(
        me > 1,
        "exec'd process lives in the container's pid namespace: {me}"
    );

    // --env, --cwd, --user and a process.json.
    let out = b.rt(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u):$(id -g)",
    ]);
    assert_eq!(
        out.stdout.trim(),
        "bar /tmp 1000:1000",
        "stderr: {}",
        out.stderr
    );
    let process = serde_json::json!({
        "terminal": false, "user": {"uid": 0, "gid": 0}, "cwd": "/",
        "args": ["sh", "-c", "echo from-process-json"], "env": ["PATH=/bin"]
    });
    let pfile = b.path().join("process.json");
    std::fs::write(&pfile, process.to_string()).unwrap();
    let out = b.rt(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    assert_eq!(
        out.stdout.trim(),
        "from-process-json",
        "stderr: {}",
        out.stderr
    );

    // Detached exec with a pid file.
    let pid_file = b.path().join("exec.pid");
    let out = b.rt_detached(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    assert!(out.success(), "{}", out.stderr);
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmd.starts_with("sleep"), "{cmd:?}");

    let missing = b.rt(&["exec", &id, "no-such-binary"]);
    assert!(!missing.success());
    assert!(
        missing.stderr.contains("executable file not found"),
        "{}",
        missing.stderr
    );
    assert!(b.rt(&["delete", "--force", &id]).success());
}

#[test]
fn pause_and_resume() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("pause");
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert!(b.rt(&["pause", &id]).success());
    assert_eq!(b.state(&id)["status"], "paused");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state_char = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
    assert_eq!(state_char, 'D', "frozen task is in D state: {stat}");
    assert!(!b.rt(&["pause", &id]).success(), "pausing twice fails");
    assert!(b.rt(&["resume", &id]).success());
    assert_eq!(b.state(&id)["status"], "running");
    assert!(
        !b.rt(&["resume", &id]).success(),
        "resume of a running container fails"
    );
    assert!(b.rt(&["delete", "--force", &id]).success());
}

#[test]
fn list_ps_and_events() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("list");
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let out = b.rt(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v[0]["id"], id.as_str());
    assert_eq!(v[0]["status"], "running");
    assert_eq!(b.rt(&["list", "-q"]).stdout.trim(), id);
    let ps = b.rt(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(pids, vec![pid]);
    let ev = b.rt(&["events", "--stats", &id]);
    let ev: serde_json::Value = serde_json::from_str(ev.stdout.trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert!(ev["data"]["memory"].is_object(), "{ev}");
    assert!(b.rt(&["delete", "--force", &id]).success());
}

#[test]
fn errors_go_to_a_json_log_and_stderr() {
    let b = Bundle::new();
    let log = b.path().join("log.json");
    let out = b.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "nope",
    ]);
    assert!(!out.success());
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("does not exist"));
    assert!(line["time"].is_string());
}

#[test]
fn version_features_and_systemd_flag() {
    let b = Bundle::new();
    let v = b.rt(&["--version"]);
    assert!(v.success() && v.stdout.contains("version"), "{}", v.stdout);
    let f: serde_json::Value = serde_json::from_str(&b.rt(&["features"]).stdout).unwrap();
    assert!(f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "pid"));
    let s = b.rt(&["--systemd-cgroup", "list"]);
    assert!(!s.success());
    assert!(s.stderr.contains("systemd"), "{}", s.stderr);
}

#[test]
fn many_containers_in_parallel() {
    let mut b = Bundle::new();
    b.set_args(&["sh", "-c", "echo $(hostname)"]);
    // One bundle dir per container, all sharing the (read-only) rootfs.
    b.config["root"]["path"] = serde_json::json!(b.bundle.join("rootfs"));
    let b = std::sync::Arc::new(b);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || {
                let id = format!("par-{}-{i}", std::process::id());
                let dir = b.path().join(format!("bundle-{i}"));
                std::fs::create_dir(&dir).unwrap();
                let mut c = b.config.clone();
                c["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", b.cgroup_parent));
                std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
                let out = b.rt(&["run", "--bundle", dir.to_str().unwrap(), &id]);
                (id, out)
            })
        })
        .collect();
    for h in handles {
        let (id, out) = h.join().unwrap();
        assert!(out.success(), "{id}: {}", out.stderr);
        assert_eq!(out.stdout.trim(), "berth", "{id}");
        assert!(!b.container_dir(&id).exists());
        assert!(b.cgroup_leftovers(&id).is_empty(), "{id}");
    }
}
