//! Terminal containers: the pty master arrives over --console-socket
//! (SCM_RIGHTS, as containerd's shim expects) and drives the container.

mod runtime_support;

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use runtime_support::Bundle;
use serde_json::json;

/// Accept one connection on the console socket and take the fd it sends.
fn receive_master(listener: &UnixListener) -> std::fs::File {
    let (conn, _) = listener.accept().expect("accept console socket");
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("recvmsg");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just gave us this fd.
            return std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    panic!("no fd received on the console socket");
}

/// Everything the pty says until the other side closes (EIO) or `marker`.
fn read_until(master: &mut std::fs::File, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if String::from_utf8_lossy(&out).contains(marker) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn terminal_container_through_console_socket() {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 31, "width": 101});
    b.set_args(&[
        "sh",
        "-c",
        "tty; stty size; [ -t 0 ] && echo stdin-is-tty; read line; echo got:$line; echo END",
    ]);
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = b.id("tty");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let out = b.rt_detached(&[
        "create",
        "--bundle",
        &bundle,
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    assert!(out.success(), "create: {}", out.stderr);
    let mut master = receive_master(&listener);
    assert!(b.rt(&["start", &id]).success());
    master.write_all(b"hello\n").unwrap();
    let text = read_until(&mut master, "END");
    assert!(text.contains("/dev/pts/0"), "{text}");
    assert!(text.contains("31 101"), "{text}");
    assert!(text.contains("stdin-is-tty"), "{text}");
    assert!(text.contains("got:hello"), "{text}");
    assert!(berth_tests::wait_until(Duration::from_secs(10), || b
        .state(&id)["status"]
        == "stopped"));
    assert!(b.rt(&["delete", &id]).success());
}

#[test]
fn exec_with_tty_through_console_socket() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("exectty");
    let sock = b.path().join("exec-console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let out = b.rt_detached(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; echo EXEC-END",
    ]);
    assert!(out.success(), "exec: {}", out.stderr);
    let mut master = receive_master(&listener);
    let text = read_until(&mut master, "EXEC-END");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("EXEC-END"), "{text}");
    assert!(b.rt(&["delete", "--force", &id]).success());
}

#[test]
fn foreground_terminal_without_console_socket_is_proxied() {
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.set_args(&["sh", "-c", "read x; echo got:$x; tty; exit 3"]);
    let id = b.id("fgtty");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let out = berth_tests::run_with_timeout(
        &mut b.command(&["run", "--bundle", &bundle, &id]),
        Some(b"hello\n"),
        runtime_support::TIMEOUT,
    );
    assert_eq!(out.code(), Some(3), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("got:hello"), "{}", out.stdout);
    assert!(out.stdout.contains("/dev/pts/0"), "{}", out.stdout);
    assert!(!b.container_dir(&id).exists());

    // The same for a foreground exec -t.
    b.config["process"]["terminal"] = json!(false);
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("fgtty-exec");
    let out = berth_tests::run_with_timeout(
        &mut b.command(&[
            "exec",
            "-t",
            &id,
            "sh",
            "-c",
            "read x; echo exec-got:$x; exit 4",
        ]),
        Some(b"there\n"),
        runtime_support::TIMEOUT,
    );
    assert_eq!(out.code(), Some(4), "stderr: {}", out.stderr);
    assert!(out.stdout.contains("exec-got:there"), "{}", out.stdout);
    assert!(b.rt(&["delete", "--force", &id]).success());
}
