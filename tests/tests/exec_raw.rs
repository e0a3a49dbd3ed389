//! Exec over a raw unix socket, the way any client library speaks it:
//! `Upgrade: tcp` hijack, 101 headers, the multiplexed frame format, stdin
//! half-close, raw TTY output, and resize.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use berth_tests::Daemon;

fn request(d: &Daemon, method: &str, path: &str, body: &str) -> (String, String) {
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.to_string(), body.to_string())
}

/// The JSON object in a response body (which may be chunked).
fn json_in(body: &str) -> serde_json::Value {
    let json = &body[body.find('{').unwrap()..=body.rfind('}').unwrap()];
    serde_json::from_str(json).unwrap()
}

/// A daemon with busybox loaded and a running `sleep 1000` container (its ID).
fn daemon_with_sleeper() -> (Daemon, String) {
    let d = Daemon::start();
    d.load_busybox();
    let c = d
        .docker_ok(&["run", "-d", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    (d, c)
}

fn create_exec(d: &Daemon, c: &str, body: &str) -> String {
    let (head, body) = request(d, "POST", &format!("/v1.50/containers/{c}/exec"), body);
    assert!(head.starts_with("HTTP/1.1 201"), "{head}\n{body}");
    json_in(&body)["Id"].as_str().unwrap().to_string()
}

/// Start with `Upgrade: tcp`; returns the 101 head and the hijacked stream.
fn start_hijacked(d: &Daemon, id: &str, tty: bool) -> (String, UnixStream) {
    start_hijacked_at(d, "v1.50", id, tty)
}

/// Start at API `version` (e.g. `v1.41`) with `Upgrade: tcp`.
fn start_hijacked_at(d: &Daemon, version: &str, id: &str, tty: bool) -> (String, UnixStream) {
    let mut s = UnixStream::connect(&d.socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = format!(r#"{{"Detach":false,"Tty":{tty}}}"#);
    write!(
        s,
        "POST /{version}/exec/{id}/start HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).unwrap(),
            1,
            "connection closed in the response head"
        );
        head.push(byte[0]);
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

fn frames(mut data: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        assert_eq!(&data[1..4], &[0, 0, 0], "bad frame header");
        out.push((data[0], data[8..8 + len].to_vec()));
        data = &data[8 + len..];
    }
    assert!(data.is_empty(), "trailing bytes after the last frame");
    out
}

#[test]
fn hijacked_exec_multiplexed_with_half_close() {
    let (d, c) = daemon_with_sleeper();
    let id = create_exec(
        &d,
        &c,
        r#"{"Cmd":["sh","-c","cat; echo to-stderr >&2; exit 9"],"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#,
    );
    let (head, mut s) = start_hijacked(&d, &id, false);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/vnd.docker.multiplexed-stream"),
        "{head}"
    );
    assert!(lower.contains("upgrade: tcp"), "{head}");
    s.write_all(b"line one\nline two\n").unwrap();
    // Half-close: cat sees EOF, the output keeps coming.
    s.shutdown(Shutdown::Write).unwrap();
    let mut data = Vec::new();
    s.read_to_end(&mut data).unwrap();
    let got = frames(&data);
    let stdout: Vec<u8> = got
        .iter()
        .filter(|(k, _)| *k == 1)
        .flat_map(|(_, p)| p.clone())
        .collect();
    let stderr: Vec<u8> = got
        .iter()
        .filter(|(k, _)| *k == 2)
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(stdout, b"line one\nline two\n");
    assert_eq!(stderr, b"to-stderr\n");
    // The exit code is recorded by the time the stream ends.
    let (_, body) = request(&d, "GET", &format!("/v1.50/exec/{id}/json"), "");
    let v = json_in(&body);
    assert_eq!(v["ExitCode"], 9, "{v}");
    assert_eq!(v["Running"], false);
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn hijacked_exec_tty_raw_and_resize() {
    let (d, c) = daemon_with_sleeper();
    let id = create_exec(
        &d,
        &c,
        r#"{"Cmd":["sh","-c","read x; stty size; echo got-$x"],"AttachStdin":true,"AttachStdout":true,"Tty":true,"ConsoleSize":[20,70]}"#,
    );
    let (head, mut s) = start_hijacked(&d, &id, true);
    assert!(
        head.to_ascii_lowercase()
            .contains("application/vnd.docker.raw-stream"),
        "{head}"
    );
    // Resize while it waits for input.
    std::thread::sleep(Duration::from_millis(300));
    let (rh, _) = request(
        &d,
        "POST",
        &format!("/v1.50/exec/{id}/resize?h=33&w=77"),
        "",
    );
    assert!(rh.starts_with("HTTP/1.1 200"), "{rh}");
    s.write_all(b"abc\n").unwrap();
    let mut data = Vec::new();
    let _ = s.read_to_end(&mut data);
    let text = String::from_utf8_lossy(&data);
    // Raw terminal output: no frame headers, CRLF line ends from the pty.
    assert!(text.contains("33 77\r\n"), "{text:?}");
    assert!(text.contains("got-abc\r\n"), "{text:?}");
    assert!(
        !data.starts_with(&[1, 0, 0, 0]),
        "TTY output must not be multiplexed"
    );
    let (rh, _) = request(&d, "POST", "/v1.50/exec/nope/resize?h=1&w=1", "");
    assert!(rh.starts_with("HTTP/1.1 404"), "{rh}");
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn detach_keys_sent_by_a_raw_client_detach_the_exec() {
    let (d, c) = daemon_with_sleeper();
    let id = create_exec(
        &d,
        &c,
        r#"{"Cmd":["sh"],"AttachStdin":true,"AttachStdout":true,"Tty":true,"DetachKeys":"ctrl-x,x"}"#,
    );
    let (head, mut s) = start_hijacked(&d, &id, true);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"echo before\n\x18x").unwrap();
    // The daemon ends the stream at the keys; the shell runs on.
    let mut data = Vec::new();
    let _ = s.read_to_end(&mut data);
    let (_, body) = request(&d, "GET", &format!("/v1.50/exec/{id}/json"), "");
    let v = json_in(&body);
    assert_eq!(v["Running"], true, "{v}");
    assert!(v["ExitCode"].is_null(), "{v}");
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let events = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until.to_string(),
        "--format",
        "{{.Action}}",
    ]);
    assert!(events.lines().any(|l| l == "exec_detach"), "{events}");
    d.docker_ok(&["rm", "-f", &c]);
}

fn content_type(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// Before API 1.42 dockerd labels every hijacked stream raw, though the
/// frames stay multiplexed without a TTY; from 1.42 it says multiplexed.
#[test]
fn stream_content_type_follows_the_api_version() {
    let (d, c) = daemon_with_sleeper();
    let exec_body =
        r#"{"Cmd":["sh","-c","echo out; echo err >&2"],"AttachStdout":true,"AttachStderr":true}"#;
    for (version, want) in [
        ("v1.41", "application/vnd.docker.raw-stream"),
        ("v1.44", "application/vnd.docker.multiplexed-stream"),
    ] {
        let id = create_exec(&d, &c, exec_body);
        let (head, mut s) = start_hijacked_at(&d, version, &id, false);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert_eq!(content_type(&head), want, "{version}: {head}");
        let mut data = Vec::new();
        s.read_to_end(&mut data).unwrap();
        let got = frames(&data);
        assert!(got.contains(&(1, b"out\n".to_vec())), "{version}: {got:?}");
        assert!(got.contains(&(2, b"err\n".to_vec())), "{version}: {got:?}");

        // With a TTY the stream is raw at every version.
        let id = create_exec(
            &d,
            &c,
            r#"{"Cmd":["echo","tty"],"AttachStdout":true,"Tty":true}"#,
        );
        let (head, mut s) = start_hijacked_at(&d, version, &id, true);
        assert_eq!(
            content_type(&head),
            "application/vnd.docker.raw-stream",
            "{version}: {head}"
        );
        let mut data = Vec::new();
        let _ = s.read_to_end(&mut data);
        assert!(
            String::from_utf8_lossy(&data).contains("tty\r\n"),
            "{data:?}"
        );

        // Logs of a non-TTY container follow the same rule.
        let (head, _) = request(
            &d,
            "GET",
            &format!("/{version}/containers/{c}/logs?stdout=1"),
            "",
        );
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(content_type(&head), want, "{version} logs: {head}");
    }
    // Without an upgrade request dockerd answers 200 raw-stream.
    let id = create_exec(&d, &c, exec_body);
    let (head, body) = request(
        &d,
        "POST",
        &format!("/v1.44/exec/{id}/start"),
        r#"{"Detach":false,"Tty":false}"#,
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(content_type(&head), "application/vnd.docker.raw-stream");
    assert!(body.contains("out"), "{body:?}");
    d.docker_ok(&["rm", "-f", &c]);
}
