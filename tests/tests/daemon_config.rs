//! berthd start-up: daemon.json validation, flag/file conflicts, one daemon
//! per data root, SIGTERM clean-up, TCP and socket-file listeners.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::{bin_path, run_with_timeout, Daemon, DaemonOptions, Output};

/// Runs berthd to completion (it must fail at start) with private dirs.
fn berthd_fails(dir: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(bin_path("berthd"));
    cmd.arg("-H")
        .arg(format!("unix://{}", dir.join("s.sock").display()))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("berthd.pid"))
        .args(extra);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    assert!(
        !out.success(),
        "berthd started but should not have:\n{}",
        out.stderr
    );
    assert!(
        !dir.join("s.sock").exists(),
        "a failed start left its socket"
    );
    out
}

#[test]
fn unknown_daemon_json_key_fails_at_start() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"log-level":"info","colour":"red","bogus-key":1}"#).unwrap();
    let data = dir.path().join("data").display().to_string();
    let out = berthd_fails(
        dir.path(),
        &["--config-file", cfg.to_str().unwrap(), "--data-root", &data],
    );
    assert!(
        out.stderr.contains(
            "the following directives don't match any configuration option: bogus-key, colour"
        ),
        "{}",
        out.stderr
    );

    std::fs::write(&cfg, r#"{"log-level":"info""#).unwrap();
    let out = berthd_fails(
        dir.path(),
        &["--config-file", cfg.to_str().unwrap(), "--data-root", &data],
    );
    assert!(out.stderr.contains("invalid JSON"), "{}", out.stderr);
}

#[test]
fn flag_and_file_conflict_fails_at_start() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.json");
    let file_root = dir.path().join("from-file");
    std::fs::write(
        &cfg,
        serde_json::json!({ "data-root": file_root, "log-level": "warn" }).to_string(),
    )
    .unwrap();
    let flag_root = dir.path().join("from-flag").display().to_string();
    let out = berthd_fails(
        dir.path(),
        &[
            "--config-file",
            cfg.to_str().unwrap(),
            "--data-root",
            &flag_root,
            "--log-level",
            "debug",
        ],
    );
    let expected = format!(
        "the following directives are specified both as a flag and in the configuration file: data-root: (from flag: {flag_root}, from file: {}), log-level: (from flag: debug, from file: warn)",
        file_root.display()
    );
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(!file_root.exists() && !Path::new(&flag_root).exists());
}

#[test]
fn missing_explicit_config_file_fails() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let missing = dir.path().join("nope.json").display().to_string();
    let out = berthd_fails(
        dir.path(),
        &["--config-file", &missing, "--data-root", &data],
    );
    assert!(out.stderr.contains("nope.json"), "{}", out.stderr);
    assert!(out.stderr.contains("No such file"), "{}", out.stderr);
}

#[test]
fn daemon_json_values_are_used() {
    let d = Daemon::start_with(DaemonOptions {
        config: Some(serde_json::json!({
            "labels": ["env=test", "team=berth"],
            "runtimes": { "runc": { "path": "/usr/sbin/runc" } },
            "log-driver": "none",
        })),
        ..Default::default()
    });
    let info: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).unwrap();
    assert_eq!(
        info["Labels"],
        serde_json::json!(["env=test", "team=berth"])
    );
    assert_eq!(info["Runtimes"]["runc"]["path"], "/usr/sbin/runc");
    assert_eq!(info["LoggingDriver"], "none");
}

#[test]
fn second_daemon_on_the_same_data_root_refuses() {
    let d = Daemon::start();
    let other = tempfile::tempdir().unwrap();
    let out = berthd_fails(
        other.path(),
        &[
            "--data-root",
            d.data_root.to_str().unwrap(),
            "--config-file",
            d.config_file.to_str().unwrap(),
        ],
    );
    let pid = d.pid().unwrap();
    assert!(
        out.stderr.contains(&format!(
            "another berthd (pid {pid}) is already using data root {}",
            d.data_root.display()
        )),
        "{}",
        out.stderr
    );
    // The first one is unaffected.
    assert!(d.ping());
    assert!(d.socket.exists());
}

#[test]
fn sigterm_removes_socket_and_pidfile() {
    let mut d = Daemon::start();
    let pid = d.pid().unwrap();
    assert_eq!(
        std::fs::read_to_string(&d.pidfile).unwrap().trim(),
        pid.to_string()
    );
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode");
    d.stop();
    assert!(!d.socket.exists(), "socket left after SIGTERM");
    assert!(!d.pidfile.exists(), "pid file left after SIGTERM");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    assert!(d.log().contains("shutting down"), "{}", d.log());
    // And it starts again on the same directories.
    d.start_again();
    assert!(d.ping());
}

#[test]
fn tcp_listener_on_loopback() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with(DaemonOptions {
        args: vec!["-H".into(), addr.clone()],
        ..Default::default()
    });
    let mut cmd = d.docker_command();
    cmd.env("DOCKER_HOST", &addr)
        .args(["version", "--format", "{{.Server.APIVersion}}"]);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "1.50");
    let mut curl = Command::new("curl");
    curl.args(["-sS", &format!("http://127.0.0.1:{port}/_ping")]);
    let out = run_with_timeout(&mut curl, None, Duration::from_secs(30));
    assert_eq!(out.stdout, "OK");
    // Both listeners serve the same daemon.
    assert!(d.ping());
}

/// fd:// with a socket passed the systemd way (LISTEN_PID, LISTEN_FDS, fd 3).
#[test]
fn socket_activation_fd() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let fd = listener.as_raw_fd();
    let cgroup_parent = format!("berth-test-fd-{}", std::process::id());
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, "{}").unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
        .arg(bin_path("berthd"))
        .args(["-H", "fd://", "--cgroup-parent", &cgroup_parent])
        .arg("--data-root")
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("--pidfile")
        .arg(dir.path().join("berthd.pid"))
        .arg("--config-file")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    let mut curl = Command::new("curl");
    curl.args([
        "-sS",
        "--retry",
        "50",
        "--retry-connrefused",
        "--retry-delay",
        "0",
        "--unix-socket",
    ])
    .arg(&sock)
    .arg("http://localhost/_ping");
    let ok = berth_tests::wait_until(Duration::from_secs(20), || {
        run_with_timeout(&mut curl, None, Duration::from_secs(5)).stdout == "OK"
    });
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    berth_tests::cleanup::remove_everything_under(dir.path(), &cgroup_parent);
    assert!(ok, "no answer on the activated socket:\n{stderr}");
    assert!(status.success(), "berthd exited with {status}:\n{stderr}");
}

#[test]
fn socket_group_from_flag() {
    use std::os::unix::fs::MetadataExt;
    let gid = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .expect("group 'daemon' (Debian base) is missing")
        .gid
        .as_raw();
    let d = Daemon::start_with(DaemonOptions {
        args: vec!["--group".into(), "daemon".into()],
        ..Default::default()
    });
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.gid(), gid);
    assert_eq!(meta.uid(), 0);
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}

#[test]
fn unknown_socket_group_fails_at_start() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, r#"{"group":"no-such-group-berth"}"#).unwrap();
    let data = dir.path().join("data").display().to_string();
    let out = berthd_fails(
        dir.path(),
        &["--config-file", cfg.to_str().unwrap(), "--data-root", &data],
    );
    assert!(
        out.stderr
            .contains("group \"no-such-group-berth\" not found for the API socket"),
        "{}",
        out.stderr
    );
}

#[test]
fn failure_after_binding_leaves_no_socket_or_pidfile() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, "{}").unwrap();
    let data = dir.path().join("data");
    // An unreadable engine ID makes start-up fail once the socket is bound.
    std::fs::create_dir_all(data.join("engine-id")).unwrap();
    let out = berthd_fails(
        dir.path(),
        &[
            "--config-file",
            cfg.to_str().unwrap(),
            "--data-root",
            data.to_str().unwrap(),
        ],
    );
    assert!(out.stderr.contains("engine-id"), "{}", out.stderr);
    assert!(!dir.path().join("berthd.pid").exists(), "pid file left");
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let d = Daemon::start();
    let pid = d.pid().unwrap() as i32;
    // SAFETY: kill(2) on the berthd this test started.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let gone = berth_tests::wait_until(Duration::from_secs(10), || {
        !d.socket.exists() && !d.pidfile.exists()
    });
    assert!(gone, "socket or pid file left after SIGINT:\n{}", d.log());
    assert!(d.log().contains("signal=\"SIGINT\""), "{}", d.log());
}

#[test]
fn log_format_json_and_requests_logged_at_debug() {
    // The harness runs berthd with RUST_LOG=debug.
    let d = Daemon::start_with(DaemonOptions {
        config: Some(serde_json::json!({ "log-format": "json" })),
        ..Default::default()
    });
    d.docker_ok(&["ps", "-a"]);
    let log = d.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "berthd started"),
        "{log}"
    );
    let request = lines
        .iter()
        .find(|l| {
            l["message"] == "request"
                && l["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/containers/json"))
        })
        .unwrap_or_else(|| panic!("no request line:\n{log}"));
    assert_eq!(request["level"], "DEBUG", "{request}");
    assert_eq!(request["method"], "GET", "{request}");
    assert_eq!(request["status"], 200, "{request}");
    assert!(request["ms"].as_f64().is_some(), "{request}");
    assert!(request["timestamp"].is_string(), "{request}");

    // Text, the default: the same fields as key=value.
    let d = Daemon::start();
    d.docker_ok(&["ps", "-a"]);
    let log = d.log();
    assert!(
        log.lines().any(|l| l.contains("DEBUG")
            && l.contains("request")
            && l.contains("method=GET")
            && l.contains("/containers/json")
            && l.contains("status=200")
            && l.contains("ms=")),
        "{log}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(log.lines().next().unwrap_or("")).is_err());

    // Anything else is refused at start.
    let dir = tempfile::tempdir().unwrap();
    let out = berthd_fails(dir.path(), &["--log-format", "xml"]);
    assert!(
        out.stderr
            .contains("invalid log format \"xml\": expected text or json"),
        "{}",
        out.stderr
    );
}
