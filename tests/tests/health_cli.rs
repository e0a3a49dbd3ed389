//! Healthchecks through the docker CLI: probes run as execs in the
//! container and drive `State.Health` (healthy, unhealthy after the
//! retries, timeouts kill the probe, the start period), `docker ps` shows
//! it and filters on it, `health_status` events, `--no-healthcheck` over an
//! image's HEALTHCHECK, and probes resume after a daemon restart.
//! Every wait polls with a generous deadline; nothing asserts timings.

use std::time::Duration;

use berth_tests::{run_with_timeout, wait_until, Daemon};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(90);

fn health(d: &Daemon, name: &str) -> Value {
    d.inspect("container", name)["State"]["Health"].clone()
}

/// Poll until the container's health status is `want`; its health then.
fn wait_status(d: &Daemon, name: &str, want: &str) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(DEADLINE, || {
        last = health(d, name);
        last["Status"] == want
    });
    assert!(ok, "{name} never became {want}: {last}\n{}", d.log());
    last
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ps_status(d: &Daemon, name: &str) -> String {
    let out = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}|")))
        .unwrap_or_else(|| panic!("{name} not in docker ps: {out}"))
        .to_string()
}

fn ps_names(d: &Daemon, filter: &str) -> Vec<String> {
    let out = d.docker_ok(&["ps", "-a", "--filter", filter, "--format", "{{.Names}}"]);
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

#[test]
fn healthy_unhealthy_ps_filter_events_and_stop() {
    let d = Daemon::with_busybox();
    let since = now_secs();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--health-cmd",
        "echo hi; echo err >&2",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "600",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "bad",
        "--health-cmd",
        "echo boom; exit 3",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "600",
    ]);
    // A long interval: no probe runs during the test, it stays starting.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "true",
        "--health-interval",
        "1h",
        "busybox",
        "sleep",
        "600",
    ]);
    d.docker_ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "600"]);

    let h = wait_status(&d, "ok", "healthy");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let log = h["Log"].as_array().expect("Log is an array");
    let last = log.last().expect("a result");
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "hi\nerr\n", "{h}");
    for key in ["Start", "End"] {
        assert!(last[key].as_str().is_some_and(|t| t.contains('T')), "{h}");
    }
    let cfg = &d.inspect("container", "ok")["Config"]["Healthcheck"];
    assert_eq!(
        cfg["Test"],
        serde_json::json!(["CMD-SHELL", "echo hi; echo err >&2"])
    );
    assert_eq!(cfg["Interval"], 1_000_000_000u64);

    let h = wait_status(&d, "bad", "unhealthy");
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 3, "{h}");
    assert_eq!(last["Output"], "boom\n", "{h}");
    // Only the last five results are kept.
    assert!(wait_until(DEADLINE, || health(&d, "bad")["FailingStreak"]
        .as_u64()
        .is_some_and(|n| n >= 7)));
    assert_eq!(health(&d, "bad")["Log"].as_array().unwrap().len(), 5);

    assert_eq!(health(&d, "slow")["Status"], "starting");
    // State with its Health conforms to the spec.
    let state = serde_json::json!({"State": d.inspect("container", "bad")["State"]});
    berth_tests::assert_matches_spec("GET", "/containers/{id}/json", &state.to_string());
    assert!(d.inspect("container", "plain")["State"]
        .get("Health")
        .is_none());

    // docker ps: the status column and the health filter.
    assert!(
        ps_status(&d, "ok").ends_with("(healthy)"),
        "{}",
        ps_status(&d, "ok")
    );
    assert!(ps_status(&d, "bad").ends_with("(unhealthy)"));
    assert!(ps_status(&d, "slow").ends_with("(health: starting)"));
    let plain = ps_status(&d, "plain");
    assert!(plain.starts_with("Up ") && !plain.contains('('), "{plain}");
    assert_eq!(ps_names(&d, "health=healthy"), ["ok"]);
    assert_eq!(ps_names(&d, "health=unhealthy"), ["bad"]);
    assert_eq!(ps_names(&d, "health=starting"), ["slow"]);
    assert_eq!(ps_names(&d, "health=none"), ["plain"]);
    let bogus = d.docker(&["ps", "--filter", "health=sick"]);
    assert!(!bogus.success());
    assert!(
        bogus
            .stderr
            .contains("Unrecognised filter value for health: sick"),
        "{}",
        bogus.stderr
    );

    // Events: the status changes, and the probes' execs as dockerd names them.
    let until = (now_secs() + 1).to_string();
    let events = d.docker_ok(&[
        "events", "--since", &since.to_string(), "--until", &until,
        "--filter", "type=container", "--format",
        "{{.Action}}|{{index .Actor.Attributes \"name\"}}|{{index .Actor.Attributes \"execID\"}}|{{index .Actor.Attributes \"exitCode\"}}",
    ]);
    let lines: Vec<&str> = events.lines().collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    assert!(has("health_status: healthy|ok|"), "{events}");
    assert!(has("health_status: unhealthy|bad|"), "{events}");
    assert!(!has("health_status: unhealthy|ok|"), "{events}");
    let create = lines
        .iter()
        .find(|l| l.starts_with("exec_create: /bin/sh -c echo boom; exit 3|bad|"))
        .unwrap_or_else(|| panic!("no probe exec_create: {events}"));
    let exec_id = create.split('|').nth(2).unwrap();
    assert_eq!(exec_id.len(), 64, "{create}");
    assert!(
        has(&format!(
            "exec_start: /bin/sh -c echo boom; exit 3|bad|{exec_id}|"
        )),
        "{events}"
    );
    assert!(has(&format!("exec_die|bad|{exec_id}|3")), "{events}");
    let filtered = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        filtered.lines().all(|l| l.starts_with("health_status: ")),
        "{filtered}"
    );
    assert!(filtered.contains("health_status: healthy"), "{filtered}");

    // Stopped: probes end and the health reads unhealthy, as dockerd's.
    d.docker_ok(&["stop", "-t", "1", "ok"]);
    assert_eq!(health(&d, "ok")["Status"], "unhealthy");
    assert!(ps_status(&d, "ok").starts_with("Exited"));
    let streak = health(&d, "ok")["Log"].as_array().unwrap().len();
    // Started again: starting, then healthy once a probe passes.
    d.docker_ok(&["start", "ok"]);
    let h = health(&d, "ok");
    assert!(
        matches!(h["Status"].as_str(), Some("starting" | "healthy")),
        "{h}"
    );
    assert!(h["Log"].as_array().unwrap().len() >= streak.min(1));
    wait_status(&d, "ok", "healthy");

    d.docker_ok(&["rm", "-f", "ok", "bad", "slow", "plain"]);
}

#[test]
fn timeout_kills_the_probe() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "tk",
        "--health-cmd",
        "echo $$ >> /tmp/probes; echo started; exec sleep 600",
        "--health-interval",
        "1s",
        "--health-timeout",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "600",
    ]);
    let h = wait_status(&d, "tk", "unhealthy");
    let first = &h["Log"][0];
    assert_eq!(first["ExitCode"], -1, "{h}");
    assert_eq!(
        first["Output"], "Health check exceeded timeout (1s): started\n",
        "{h}"
    );
    // The first probe's process was killed (it would sleep for 10 minutes).
    let pid = d.docker_ok(&["exec", "tk", "head", "-n1", "/tmp/probes"]);
    let pid = pid.trim();
    assert!(!pid.is_empty());
    let gone = wait_until(DEADLINE, || {
        !d.docker(&["exec", "tk", "test", "-e", &format!("/proc/{pid}")])
            .success()
    });
    assert!(gone, "probe {pid} still runs");
    d.docker_ok(&["rm", "-f", "tk"]);
}

#[test]
fn start_period_failures_do_not_count() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "sp",
        "--health-cmd",
        "test -e /tmp/ready",
        "--health-interval",
        "3s",
        "--health-retries",
        "1",
        "--health-start-period",
        "1h",
        "--health-start-interval",
        "1s",
        "busybox",
        "sleep",
        "600",
    ]);
    // Failures during the start period are logged but not counted.
    let ok = wait_until(DEADLINE, || {
        health(&d, "sp")["Log"]
            .as_array()
            .is_some_and(|l| l.len() >= 3)
    });
    assert!(ok, "{}", health(&d, "sp"));
    let h = health(&d, "sp");
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    assert_eq!(h["Log"][0]["ExitCode"], 1, "{h}");
    // Healthy once the probe passes; after that failures count even in
    // the start period.
    d.docker_ok(&["exec", "sp", "touch", "/tmp/ready"]);
    wait_status(&d, "sp", "healthy");
    d.docker_ok(&["exec", "sp", "rm", "/tmp/ready"]);
    let h = wait_status(&d, "sp", "unhealthy");
    assert_eq!(h["FailingStreak"], 1, "{h}");
    d.docker_ok(&["rm", "-f", "sp"]);
}

#[test]
fn image_healthcheck_merge_no_healthcheck_and_commit() {
    let d = Daemon::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=1s --retries=4 CMD test -e /etc/passwd\n",
    )
    .unwrap();
    d.docker_ok(&["build", "-q", "-t", "hc:1", ctx.path().to_str().unwrap()]);

    // The image's HEALTHCHECK runs.
    d.docker_ok(&["run", "-d", "--name", "img", "hc:1", "sleep", "600"]);
    wait_status(&d, "img", "healthy");

    // Container fields override the image's one by one.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "merged",
        "--health-retries",
        "9",
        "hc:1",
        "sleep",
        "600",
    ]);
    let cfg = d.inspect("container", "merged")["Config"]["Healthcheck"].clone();
    assert_eq!(
        cfg["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /etc/passwd"]),
        "{cfg}"
    );
    assert_eq!(cfg["Retries"], 9, "{cfg}");
    assert_eq!(cfg["Interval"], 1_000_000_000u64, "{cfg}");
    wait_status(&d, "merged", "healthy");

    // --no-healthcheck turns the image's off.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "off",
        "--no-healthcheck",
        "hc:1",
        "sleep",
        "600",
    ]);
    let off = d.inspect("container", "off");
    assert_eq!(
        off["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(off["State"].get("Health").is_none(), "{}", off["State"]);
    assert_eq!(ps_names(&d, "health=none"), ["off"]);
    let status = ps_status(&d, "off");
    assert!(
        status.starts_with("Up ") && !status.contains("health"),
        "{status}"
    );

    // A committed container's healthcheck is the new image's.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "src",
        "--health-cmd",
        "exit 0",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "600",
    ]);
    d.docker_ok(&["commit", "src", "committed:1"]);
    let img = d.inspect("image", "committed:1");
    assert_eq!(
        img["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "exit 0"])
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fromcommit",
        "committed:1",
        "sleep",
        "600",
    ]);
    wait_status(&d, "fromcommit", "healthy");

    d.docker_ok(&["rm", "-f", "img", "merged", "off", "src", "fromcommit"]);
}

#[test]
fn api_start_interval_and_probes_that_cannot_start() {
    let d = Daemon::with_busybox();
    let body = r#"{"Image":"busybox","Cmd":["true"],"Healthcheck":{"Test":["CMD","true"],"StartInterval":2000000000}}"#;
    for (version, name, want) in [
        ("1.43", "old", None),
        ("1.44", "new", Some(2_000_000_000u64)),
    ] {
        let out = d.curl(&[
            "-f",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            &format!("http://localhost/v{version}/containers/create?name={name}"),
        ]);
        assert!(out.success(), "{}", out.stderr);
        let hc = d.inspect("container", name)["Config"]["Healthcheck"].clone();
        assert_eq!(hc["StartInterval"].as_u64(), want, "{version}: {hc}");
        assert_eq!(hc["Test"], serde_json::json!(["CMD", "true"]));
    }
    d.docker_ok(&["rm", "old", "new"]);

    // A probe that cannot start fails with the runtime's reason.
    let body = r#"{"Image":"busybox","Cmd":["sleep","600"],"Healthcheck":{"Test":["CMD","/nonexistent"],"Interval":1000000000,"Retries":1}}"#;
    let out = d.curl(&[
        "-f",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        "http://localhost/containers/create?name=nostart",
    ]);
    assert!(out.success(), "{}", out.stderr);
    d.docker_ok(&["start", "nostart"]);
    let h = wait_status(&d, "nostart", "unhealthy");
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    let why = h["Log"][0]["Output"].as_str().unwrap_or("");
    assert!(why.contains("/nonexistent"), "{h}");
    d.docker_ok(&["rm", "-f", "nostart"]);
}

#[test]
fn probes_resume_after_a_daemon_restart() {
    let mut d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "rs",
        "--health-cmd",
        "test ! -e /tmp/fail",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "600",
    ]);
    wait_status(&d, "rs", "healthy");
    d.kill9();
    d.start_again();
    // The status survived, and probes run again.
    assert_eq!(health(&d, "rs")["Status"], "healthy");
    d.docker_ok(&["exec", "rs", "touch", "/tmp/fail"]);
    wait_status(&d, "rs", "unhealthy");
    d.docker_ok(&["exec", "rs", "rm", "/tmp/fail"]);
    wait_status(&d, "rs", "healthy");
    // Paused: no probes, and unhealthy as dockerd says; probes go on after.
    d.docker_ok(&["pause", "rs"]);
    assert_eq!(health(&d, "rs")["Status"], "unhealthy");
    assert!(ps_status(&d, "rs").ends_with("(Paused)"));
    d.docker_ok(&["unpause", "rs"]);
    wait_status(&d, "rs", "healthy");
    d.docker_ok(&["rm", "-f", "rs"]);
}

/// docker-compose 1.29's `depends_on: condition: service_healthy` waits
/// for the dependency's health.
#[test]
fn compose_waits_for_a_healthy_dependency() {
    let d = Daemon::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        r#"version: "2.4"
services:
  web:
    image: busybox
    command: sh -c "sleep 2; touch /tmp/up; sleep 600"
    network_mode: none
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/up"]
      interval: 1s
      retries: 60
  worker:
    image: busybox
    command: sleep 600
    network_mode: none
    depends_on:
      web:
        condition: service_healthy
"#,
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = std::process::Command::new("docker-compose");
        cmd.current_dir(dir.path())
            .env("DOCKER_HOST", d.host())
            .args(["-p", "hc"])
            .args(args);
        let out = run_with_timeout(&mut cmd, None, Duration::from_secs(180));
        assert!(
            out.success(),
            "docker-compose {args:?}: {}\n{}",
            out.stdout,
            out.stderr
        );
    };
    let since = now_secs();
    compose(&["up", "-d"]);
    assert_eq!(health(&d, "hc_web_1")["Status"], "healthy");
    let until = (now_secs() + 1).to_string();
    let events = d.docker_ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--filter",
        "event=start",
        "--filter",
        "event=health_status",
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"name\"}}",
    ]);
    let lines: Vec<&str> = events.lines().collect();
    let at = |l: &str| lines.iter().position(|x| *x == l);
    let healthy = at("health_status: healthy hc_web_1").expect(&events);
    let worker = at("start hc_worker_1").expect(&events);
    assert!(
        at("start hc_web_1").unwrap() < healthy && healthy < worker,
        "{events}"
    );
    compose(&["down"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
}

#[test]
fn docker_py_reads_the_health() {
    let d = Daemon::with_busybox();
    let out = d.python(
        r#"
import time, docker
c = docker.from_env()
ct = c.containers.run("busybox", "sleep 600", detach=True, name="py",
    healthcheck={"test": ["CMD", "true"], "interval": 1_000_000_000, "retries": 2})
deadline = time.time() + 90
while time.time() < deadline:
    ct.reload()
    if ct.health == "healthy":
        break
    time.sleep(0.2)
assert ct.health == "healthy", ct.attrs["State"]
h = ct.attrs["State"]["Health"]
assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0, h
assert [x.name for x in c.containers.list(filters={"health": "healthy"})] == ["py"]
ct.remove(force=True)
print("ok")
"#,
    );
    assert_eq!(out.stdout.trim(), "ok", "{}\n{}", out.stdout, out.stderr);
}
