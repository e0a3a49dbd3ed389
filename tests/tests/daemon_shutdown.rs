//! berthd stopped gracefully (SIGTERM), as dockerd: without live-restore it
//! stops the running containers with their own stop signal and timeout, and
//! the next start brings back those whose restart policy says so; with
//! live-restore (also switched on by a reload) they keep running.

use std::time::Duration;

use berth_tests::{wait_until, Daemon};

fn alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn pid(d: &Daemon, name: &str) -> i64 {
    d.inspect("container", name)["State"]["Pid"]
        .as_i64()
        .unwrap_or(0)
}

/// `docker run -d --name NAME [extra…] busybox sh -c SCRIPT`; its pid.
fn run(d: &Daemon, name: &str, extra: &[&str], script: &str) -> i64 {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend(["busybox", "sh", "-c", script]);
    d.docker_ok(&args);
    let p = pid(d, name);
    assert!(p > 0, "{name} has no pid");
    p
}

/// Leaves at SIGTERM with `code`.
fn looping(code: i32) -> String {
    format!("trap 'exit {code}' TERM; while true; do sleep 0.1; done")
}

#[test]
fn graceful_stop_stops_containers_and_the_next_start_restarts_by_policy() {
    let mut d = Daemon::with_busybox();
    let mut pids = Vec::new();
    for (name, policy, code) in [
        ("always", "always", 0),
        ("unless", "unless-stopped", 0),
        ("failing", "on-failure", 3),
        ("clean", "on-failure", 0),
        ("plain", "no", 0),
    ] {
        let p = run(&d, name, &["--restart", policy], &looping(code));
        pids.push((name, p));
    }
    // Its own stop signal, and a stop timeout for one that ignores it.
    let usr1 = run(
        &d,
        "usr1",
        &["--stop-signal", "USR1"],
        "trap 'exit 9' USR1; trap '' TERM; while true; do sleep 0.1; done",
    );
    let stubborn = run(
        &d,
        "stubborn",
        &["--stop-timeout", "1"],
        "trap '' TERM; while true; do sleep 0.1; done",
    );
    // Stopped by its user: unless-stopped leaves it so, always does not.
    run(
        &d,
        "user-unless",
        &["--restart", "unless-stopped"],
        &looping(0),
    );
    run(&d, "user-always", &["--restart", "always"], &looping(0));
    d.docker_ok(&["stop", "user-unless", "user-always"]);

    d.stop();
    for (name, p) in pids
        .iter()
        .chain([&("usr1", usr1), &("stubborn", stubborn)])
    {
        assert!(!alive(*p), "{name} (pid {p}) still runs after SIGTERM");
    }
    assert!(d.log().contains("containers stopped"), "{}", d.log());

    d.start_again();
    let running = |d: &Daemon, name: &str| d.inspect("container", name)["State"]["Running"] == true;
    for name in ["always", "unless", "failing", "user-always"] {
        assert!(
            wait_until(Duration::from_secs(30), || running(&d, name)),
            "{name} was not restarted:\n{}",
            berth_tests::tail(&d.log(), 30)
        );
        let new_pid = pid(&d, name);
        assert!(new_pid > 0 && alive(new_pid), "{name}: pid {new_pid}");
        assert!(pids.iter().all(|(_, p)| *p != new_pid));
    }
    // Give any wrong restart the time the right ones took.
    std::thread::sleep(Duration::from_millis(500));
    let exits = [
        ("plain", 0),
        ("clean", 0),
        ("usr1", 9),
        ("stubborn", 137),
        ("user-unless", 0),
    ];
    for (name, code) in exits {
        let st = d.inspect("container", name)["State"].clone();
        assert_eq!(st["Running"], false, "{name}: {st}");
        assert_eq!(st["Status"], "exited", "{name}: {st}");
        assert_eq!(st["ExitCode"], code, "{name}: {st}");
    }
    d.docker_ok(&["rm", "-f", "always", "unless", "failing", "user-always"]);
}

#[test]
fn live_restore_keeps_containers_running_across_a_graceful_restart() {
    let mut d = Daemon::with_busybox();
    let info = |d: &Daemon| -> serde_json::Value {
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).unwrap()
    };
    assert_eq!(info(&d)["LiveRestoreEnabled"], false);
    // Switched on by a reload, as dockerd allows.
    std::fs::write(&d.config_file, r#"{"live-restore": true}"#).unwrap();
    // SAFETY: kill(2) on the berthd this test started.
    unsafe { libc::kill(d.pid().unwrap() as i32, libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(20), || info(&d)["LiveRestoreEnabled"]
            == true),
        "live-restore not reloaded:\n{}",
        berth_tests::tail(&d.log(), 30)
    );
    let plain = run(&d, "plain", &[], &looping(0));
    let always = run(&d, "always", &["--restart", "always"], &looping(0));

    d.stop();
    assert!(
        alive(plain) && alive(always),
        "a container died with berthd"
    );
    d.start_again();
    for (name, p) in [("plain", plain), ("always", always)] {
        let st = d.inspect("container", name)["State"].clone();
        assert_eq!(st["Status"], "running", "{name}: {st}");
        assert_eq!(st["Pid"], p, "{name}: {st}");
    }
    // Still fully controllable.
    d.docker_ok(&["stop", "plain"]);
    assert!(!alive(plain));
    d.docker_ok(&["rm", "-f", "plain", "always"]);
    assert!(!alive(always));
}
