//! Lifecycle answers clients rely on, as dockerd gives them: kill waits for
//! the exit, a manual stop or kill suspends the restart policy, a container
//! waiting for its restart is `restarting`.

use std::time::Duration;

use berth_tests::{wait_until, Daemon};

#[test]
fn kill_answers_after_the_exit() {
    let d = Daemon::with_busybox();
    for i in 0..5 {
        let name = format!("k{i}");
        d.docker_ok(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
        d.docker_ok(&["kill", &name]);
        let v = d.inspect("container", &name);
        assert_eq!(v["State"]["Status"], "exited", "{v}");
        assert_eq!(v["State"]["ExitCode"], 137, "{v}");
        let rm = d.docker(&["rm", &name]);
        assert!(rm.success(), "rm after kill: {}", rm.stderr);
    }
    // Another signal is only delivered.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "hup",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 9' HUP; while true; do sleep 0.1; done",
    ]);
    d.docker_ok(&["kill", "-s", "HUP", "hup"]);
    assert_eq!(d.docker_ok(&["wait", "hup"]).trim(), "9");
    d.docker_ok(&["rm", "hup"]);
}

fn restart_count(d: &Daemon, name: &str) -> u64 {
    d.inspect("container", name)["RestartCount"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn restarting_state_and_manual_stop() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    // The back-off doubles: the container soon spends most of its time
    // waiting to be restarted.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let v = d.inspect("container", "crash");
            v["State"]["Status"] == "restarting" && v["RestartCount"].as_u64() >= Some(4)
        }),
        "never seen restarting: {}",
        d.inspect("container", "crash")
    );
    let v = d.inspect("container", "crash");
    assert_eq!(v["State"]["Restarting"], true, "{v}");
    assert_eq!(v["State"]["Running"], true, "{v}");
    assert_eq!(v["State"]["ExitCode"], 3, "{v}");
    let ps = d.docker_ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Restarting (3) "), "{ps}");

    let rm = d.docker(&["rm", "crash"]);
    assert!(!rm.success());
    assert!(
        rm.stderr.contains(
            "cannot remove container \"crash\": container is restarting: stop the container before removing or force remove"
        ),
        "{}",
        rm.stderr
    );

    // stop calls the restart off, for good.
    d.docker_ok(&["stop", "crash"]);
    let v = d.inspect("container", "crash");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["Restarting"], false, "{v}");
    let count = restart_count(&d, "crash");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.inspect("container", "crash")["State"]["Status"], "exited");
    assert_eq!(restart_count(&d, "crash"), count);

    // The next start brings the policy back, with a fresh count.
    d.docker_ok(&["start", "crash"]);
    assert!(wait_until(Duration::from_secs(30), || restart_count(
        &d, "crash"
    ) >= 1));
    assert!(restart_count(&d, "crash") < count + 1, "count was reset");
    d.docker_ok(&["rm", "-f", "crash"]);
}

#[test]
fn kill_suspends_the_restart_policy() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "1000",
    ]);
    d.docker_ok(&["kill", "svc"]);
    std::thread::sleep(Duration::from_secs(2));
    let v = d.inspect("container", "svc");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["RestartCount"], 0, "{v}");
    let rm = d.docker(&["rm", "svc"]);
    assert!(rm.success(), "{}", rm.stderr);
}

#[test]
fn commit_around_the_exit_never_fails_on_pause() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "brief",
        "busybox",
        "sh",
        "-c",
        "echo x > /f; sleep 1",
    ]);
    // Commits while it runs, as it exits, and after: none may fail.
    let mut after_exit = 0;
    let mut n = 0;
    while after_exit < 3 {
        let exited = d.inspect("container", "brief")["State"]["Status"] == "exited";
        d.docker_ok(&["commit", "brief", &format!("brief:{n}")]);
        n += 1;
        if exited {
            after_exit += 1;
        }
    }
    assert_eq!(
        d.docker_ok(&["run", "--rm", &format!("brief:{}", n - 1), "cat", "/f"]),
        "x\n"
    );
    d.docker_ok(&["rm", "brief"]);
}

/// docker-py: the start request's `Tty` decides the framing (the exec's own
/// `Tty` decides whether the process gets a terminal), `Detach` returns at
/// once.
#[test]
fn exec_start_tty_and_detach() {
    let d = Daemon::with_busybox();
    d.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let out = d.python(
        r#"
import time, docker
api = docker.from_env().api
# A terminal, multiplexed output.
e = api.exec_create("box", ["sh", "-c", "echo hi"], tty=True)
got = api.exec_start(e["Id"], tty=False)
assert got == b"hi\r\n", got
# Pipes, raw output: stdout only, as dockerd.
e = api.exec_create("box", ["sh", "-c", "echo out; echo err >&2"], tty=False)
got = api.exec_start(e["Id"], tty=True)
assert got == b"out\n", got
# Detach: the answer comes at once, the process runs on.
e = api.exec_create("box", ["sh", "-c", "sleep 1; touch /tmp/done"])
got = api.exec_start(e["Id"], detach=True)
assert not got, got
assert api.exec_inspect(e["Id"])["Running"], api.exec_inspect(e["Id"])
for _ in range(100):
    if not api.exec_inspect(e["Id"])["Running"]:
        break
    time.sleep(0.1)
assert api.exec_inspect(e["Id"])["ExitCode"] == 0, api.exec_inspect(e["Id"])
e = api.exec_create("box", ["ls", "/tmp/done"])
assert api.exec_start(e["Id"]) == b"/tmp/done\n"
print("ok")
"#,
    );
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
    d.docker_ok(&["rm", "-f", "box"]);
}

/// Field names in any case, as Go's decoder in dockerd takes them, at
/// every level of the body.
#[test]
fn json_field_names_match_case_insensitively() {
    let d = Daemon::with_busybox();
    let out = d.python(
        r#"
import docker
api = docker.from_env().api
def post(path, body):
    return api._result(api._post_json(api._url(path), data=body), json=True)
c = post("/containers/create?name=lc", {
    "image": "busybox", "cmd": ["sleep", "1000"], "labels": {"lower.key": "v"},
    "hostConfig": {"restartPolicy": {"name": "on-failure", "maximumRetryCount": 2},
                   "memory": 64 * 1024 * 1024, "CPUShares": 512},
})
v = api.inspect_container(c["Id"])
assert v["Config"]["Cmd"] == ["sleep", "1000"], v["Config"]
assert v["Config"]["Labels"] == {"lower.key": "v"}, v["Config"]["Labels"]
hc = v["HostConfig"]
assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}, hc["RestartPolicy"]
assert hc["Memory"] == 64 * 1024 * 1024 and hc["CpuShares"] == 512, hc
api.start("lc")
e = post("/containers/lc/exec", {"cmd": ["true"], "detachKeys": "ctrl-x", "attachStdout": True})
x = api.exec_inspect(e["Id"])
assert x["DetachKeys"] == "ctrl-x" and x["OpenStdout"], x
post("/volumes/create", {"name": "lcvol", "labels": {"k": "v"}})
assert api.inspect_volume("lcvol")["Labels"] == {"k": "v"}
n = post("/networks/create", {"name": "lcnet", "internal": True, "labels": {"k": "v"}})
assert api.inspect_network(n["Id"])["Internal"] is True
api.remove_network(n["Id"])
api.remove_container("lc", force=True)
api.remove_volume("lcvol")
print("ok")
"#,
    );
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
}

/// `--runtime runc` as on dockerd; runtime and log-driver errors in
/// dockerd's words.
#[test]
fn runtime_names_and_log_driver_errors() {
    let d = Daemon::with_busybox();
    let out = d.docker_ok(&[
        "run",
        "--name",
        "rc",
        "--runtime",
        "runc",
        "busybox",
        "echo",
        "ok",
    ]);
    assert_eq!(out, "ok\n");
    assert_eq!(
        d.inspect("container", "rc")["HostConfig"]["Runtime"],
        "runc"
    );
    d.docker_ok(&["rm", "rc"]);
    let cases: [(&[&str], &str); 5] = [
        (
            &["--runtime", "nope"],
            "unknown or invalid runtime name: nope",
        ),
        (
            &["--log-driver", "syslog"],
            "logger: no log driver named 'syslog' is registered",
        ),
        (
            &["--log-opt", "colour=red"],
            "unknown log opt 'colour' for json-file log driver",
        ),
        (
            &["--log-driver", "local", "--log-opt", "tag=x"],
            "unknown log opt 'tag' for log driver local",
        ),
        (
            &["--log-opt", "mode=sometimes"],
            "logger: logging mode not supported: sometimes",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let out = d.docker(&args);
        assert!(!out.success(), "{flags:?}");
        assert!(out.stderr.contains(want), "{flags:?}: {}", out.stderr);
    }
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
}

/// A container waiting for its restart when berthd dies is restarted by
/// the next berthd.
#[test]
fn restarting_container_survives_a_daemon_crash() {
    let mut d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "crashy",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 4",
    ]);
    assert!(wait_until(Duration::from_secs(30), || {
        let v = d.inspect("container", "crashy");
        v["State"]["Status"] == "restarting" && v["RestartCount"].as_u64() >= Some(5)
    }));
    let before = restart_count(&d, "crashy");
    d.kill9();
    d.start_again();
    assert!(
        wait_until(Duration::from_secs(30), || restart_count(&d, "crashy")
            > before),
        "not restarted after the daemon restart: {}",
        d.inspect("container", "crashy")
    );
    d.docker_ok(&["rm", "-f", "crashy"]);
}
