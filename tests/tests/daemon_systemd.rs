//! systemd integration without systemd as PID 1: the test passes a
//! listening socket the way systemd does (LISTEN_PID, LISTEN_FDS, fd 3) and
//! reads sd_notify messages on its own NOTIFY_SOCKET: READY=1 once the API
//! serves, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 at
//! shutdown, with STATUS= lines.

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_tests::{bin_path, run_with_timeout};

/// The next notification, or None after `timeout`.
fn next(sock: &UnixDatagram, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn socket_activation_and_notify() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&api).unwrap();
    let fd = listener.as_raw_fd();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let cgroup_parent = format!("berth-test-sd-{}", std::process::id());
    let cfg = dir.path().join("daemon.json");
    std::fs::write(&cfg, "{}").unwrap();
    let log = std::fs::File::create(dir.path().join("berthd.log")).unwrap();
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
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(log);
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
    let pid = child.id() as i32;
    let log_text = || std::fs::read_to_string(dir.path().join("berthd.log")).unwrap_or_default();

    let ready = next(&notify, Duration::from_secs(30));
    // Once READY=1 arrived, the API answers on the inherited socket
    // without retrying.
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--unix-socket"])
        .arg(&api)
        .arg("http://localhost/_ping");
    let ping = run_with_timeout(&mut curl, None, Duration::from_secs(20));

    std::fs::write(&cfg, r#"{"debug": true}"#).unwrap();
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloading = next(&notify, Duration::from_secs(30));
    let reloaded = next(&notify, Duration::from_secs(30));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let stopping = next(&notify, Duration::from_secs(30));
    let status = child.wait().unwrap();
    berth_tests::cleanup::remove_everything_under(dir.path(), &cgroup_parent);

    let ready = ready.unwrap_or_else(|| panic!("no READY=1:\n{}", log_text()));
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(
        ready.contains("STATUS=serving the API on unix (inherited fd)"),
        "{ready}"
    );
    assert_eq!(ping.stdout, "OK", "{}", ping.stderr);
    let reloading = reloading.unwrap_or_default();
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let reloaded = reloaded.unwrap_or_default();
    assert!(reloaded.lines().any(|l| l == "READY=1"), "{reloaded}");
    assert!(
        reloaded.contains("STATUS=configuration reloaded"),
        "{reloaded}"
    );
    let stopping = stopping.unwrap_or_default();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    assert!(
        status.success(),
        "berthd exited with {status}:\n{}",
        log_text()
    );
}
