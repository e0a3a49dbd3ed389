//! `docker exec` through the real docker CLI, the raw API and docker-py:
//! exit codes, user, working directory, environment, detached execs,
//! stdin, inspect, events, and clients that go away mid-stream.

use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::{py, Daemon};

fn started(d: &Daemon, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sleep", "1000"]);
    d.docker_ok(&args).trim().to_string()
}

#[test]
fn exec_exit_codes_user_workdir_env() {
    let d = Daemon::start();
    d.load_busybox();
    let c = started(&d, &["-e", "FROM_RUN=run-value", "-w", "/etc"]);

    assert_eq!(d.docker_ok(&["exec", &c, "echo", "hi"]), "hi\n");
    assert_eq!(
        d.docker(&["exec", &c, "sh", "-c", "exit 3"]).code(),
        Some(3)
    );
    assert_eq!(d.docker(&["exec", &c, "false"]).code(), Some(1));
    // stdout and stderr stay apart.
    let out = d.docker(&["exec", &c, "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("out\n", "err\n")
    );

    let missing = d.docker(&["exec", &c, "nope"]);
    assert_eq!(missing.code(), Some(127), "{missing:?}");
    let text = format!("{}{}", missing.stdout, missing.stderr);
    assert!(
        text.contains("OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH: unknown"),
        "{text}"
    );

    // A working directory that does not exist: the runtime's reason, in
    // dockerd's wrapping, without our internals.
    let bad_wd = d.docker(&["exec", "-w", "/no/such/dir", &c, "true"]);
    let text = format!("{}{}", bad_wd.stdout, bad_wd.stderr);
    assert!(matches!(bad_wd.code(), Some(126) | Some(127)), "{bad_wd:?}");
    assert!(
        text.starts_with(
            "OCI runtime exec failed: exec failed: unable to start container process: "
        ),
        "{text}"
    );
    assert!(!text.contains("exec failed (exit status"), "{text}");

    // The container's environment and working directory, unless overridden.
    assert_eq!(
        d.docker_ok(&["exec", &c, "sh", "-c", "echo $FROM_RUN"]),
        "run-value\n"
    );
    assert_eq!(d.docker_ok(&["exec", &c, "pwd"]), "/etc\n");
    assert_eq!(d.docker_ok(&["exec", "-w", "/tmp", &c, "pwd"]), "/tmp\n");
    assert_eq!(
        d.docker_ok(&[
            "exec",
            "-e",
            "FROM_RUN=exec",
            "-e",
            "NEW=1",
            &c,
            "sh",
            "-c",
            "echo $FROM_RUN$NEW"
        ]),
        "exec1\n"
    );
    // -u by uid, by name, with a group.
    assert_eq!(d.docker_ok(&["exec", &c, "id", "-u"]), "0\n");
    assert_eq!(
        d.docker_ok(&["exec", "-u", "1000", &c, "id", "-u"]),
        "1000\n"
    );
    assert_eq!(
        d.docker_ok(&["exec", "-u", "user", &c, "id", "-u"]),
        "1000\n"
    );
    assert_eq!(
        d.docker_ok(&["exec", "-u", "nobody:nogroup", &c, "id", "-g"]),
        "65534\n"
    );
    // Privileged execs get every capability; default ones do not.
    let plain = d.docker_ok(&["exec", &c, "sh", "-c", "grep CapEff /proc/self/status"]);
    let privileged = d.docker_ok(&[
        "exec",
        "--privileged",
        &c,
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    assert_ne!(plain, privileged);
    // Every capability the daemon holds (this test runs as the same root).
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(privileged.trim(), format!("CapEff:\t{bounding}"));

    // stdin, with EOF reaching the process.
    let out = d.docker_stdin(&["exec", "-i", &c, "cat"], Some(b"piped in\n"));
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "piped in\n");
    let out = d.docker_stdin(&["exec", "-i", &c, "wc", "-l"], Some(b"a\nb\nc\n"));
    assert_eq!(out.stdout.trim(), "3");

    // Detached: runs without a client.
    d.docker_ok(&[
        "exec",
        "-d",
        &c,
        "sh",
        "-c",
        "sleep 0.2; echo done > /tmp/detached",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = d.docker(&["exec", &c, "cat", "/tmp/detached"]);
        if out.success() {
            assert_eq!(out.stdout, "done\n");
            break;
        }
        assert!(Instant::now() < deadline, "detached exec never ran");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Paused and stopped containers refuse with dockerd's 409s.
    d.docker_ok(&["pause", &c]);
    let out = d.docker(&["exec", &c, "true"]);
    assert!(
        out.stderr
            .contains("is paused, unpause the container before exec"),
        "{out:?}"
    );
    d.docker_ok(&["unpause", &c]);
    d.docker_ok(&["stop", "-t", "0", &c]);
    let out = d.docker(&["exec", &c, "true"]);
    assert!(!out.success());
    assert!(out.stderr.contains("is not running"), "{}", out.stderr);
    d.docker_ok(&["rm", &c]);
}

#[test]
fn exec_api_inspect_and_events() {
    let d = Daemon::start();
    d.load_busybox();
    let c = started(&d, &[]);
    let since = d.docker_ok(&["version", "-f", "{{.Server.Version}}"]);
    drop(since);
    let t0 = chrono_now(&d);
    let created = d.curl(&[
        "-X", "POST", "-H", "Content-Type: application/json",
        "-d", r#"{"Cmd":["sh","-c","exit 7"],"AttachStdout":true,"AttachStderr":true,"User":"1000","Env":["A=b"]}"#,
        &format!("http://localhost/v1.50/containers/{c}/exec"),
    ]);
    let id = serde_json::from_str::<serde_json::Value>(&created.stdout).expect("exec create JSON")
        ["Id"]
        .as_str()
        .expect("Id")
        .to_string();
    assert_eq!(id.len(), 64);
    let before = inspect(&d, &id);
    assert_eq!(before["Running"], false);
    assert!(before["ExitCode"].is_null());
    assert_eq!(before["ContainerID"].as_str(), Some(c.as_str()));
    assert_eq!(before["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(
        before["ProcessConfig"]["arguments"],
        serde_json::json!(["-c", "exit 7"])
    );
    assert_eq!(before["ProcessConfig"]["user"], "1000");
    // (ExitCode is null until it exits, as dockerd sends it, though the
    // spec types it integer: validated below once it is set.)
    // Start it (no upgrade: the stream is the response body).
    let started = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Detach":false,"Tty":false}"#,
        &format!("http://localhost/v1.50/exec/{id}/start"),
    ]);
    assert!(started.success(), "{started:?}");
    let after = inspect(&d, &id);
    assert_eq!(after["ExitCode"], 7);
    assert_eq!(after["Running"], false);
    assert!(after["Pid"].as_i64().unwrap_or(0) > 0);
    berth_tests::assert_matches_spec("GET", "/exec/{id}/json", &after.to_string());
    // Starting twice is a conflict.
    let again = d.curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        "-w",
        "%{http_code}",
        &format!("http://localhost/v1.50/exec/{id}/start"),
    ]);
    assert!(again.stdout.ends_with("409"), "{again:?}");
    // Unknown exec: 404 with dockerd's message.
    let missing = d.curl(&["http://localhost/v1.50/exec/0000/json"]);
    assert!(
        missing.stdout.contains("No such exec instance: 0000"),
        "{missing:?}"
    );

    let events = d.docker_ok(&[
        "events", "--since", &t0, "--until", &chrono_now(&d), "--filter", "type=container",
        "--format", "{{.Action}} {{index .Actor.Attributes \"execID\"}} {{index .Actor.Attributes \"exitCode\"}}",
    ]);
    assert!(
        events.contains(&format!("exec_create: sh -c exit 7 {id}")),
        "{events}"
    );
    assert!(
        events.contains(&format!("exec_start: sh -c exit 7 {id}")),
        "{events}"
    );
    assert!(events.contains(&format!("exec_die {id} 7")), "{events}");
    d.docker_ok(&["rm", "-f", &c]);
    // The container's execs go with it.
    let gone = d.curl(&[
        "-w",
        "%{http_code}",
        &format!("http://localhost/v1.50/exec/{id}/json"),
    ]);
    assert!(
        gone.stdout.ends_with("404") && gone.stdout.contains("No such exec instance"),
        "{gone:?}"
    );
}

fn inspect(d: &Daemon, id: &str) -> serde_json::Value {
    let out = d.curl(&[&format!("http://localhost/v1.50/exec/{id}/json")]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("exec inspect {id}: {e}: {out:?}"))
}

/// The daemon's clock as a unix timestamp with fractions, for --since.
fn chrono_now(_d: &Daemon) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

#[test]
fn client_disconnect_mid_stream_leaves_container_running() {
    let d = Daemon::start();
    d.load_busybox();
    let c = started(&d, &[]);
    let mut child = d
        .docker_command()
        .args([
            "exec",
            &c,
            "sh",
            "-c",
            "while :; do echo tick; sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker exec");
    std::thread::sleep(Duration::from_millis(700));
    child.kill().expect("kill the client");
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
    assert!(d.ping(), "the daemon stopped answering");
    let state = d.docker_ok(&["inspect", "-f", "{{.State.Status}}", &c]);
    assert_eq!(state.trim(), "running");
    assert_eq!(
        d.docker_ok(&["exec", &c, "echo", "still here"]),
        "still here\n"
    );
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn docker_py_exec_run() {
    let d = Daemon::start();
    d.load_busybox();
    let out = py::run_ok(&d, "exec_docker_py.py");
    assert!(out.stdout.contains("exec_docker_py: ok"), "{}", out.stdout);
}
