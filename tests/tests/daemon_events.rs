//! GET /events: live streaming (each event flushed as it happens), since
//! replay, until, filters, and the dockerd JSON shape.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_tests::Daemon;

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A `docker events` process whose stdout lines arrive on a channel.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(d: &Daemon, args: &[&str]) -> Watcher {
        let mut cmd = d.docker_command();
        cmd.arg("events")
            .args(["--format", "{{json .}}"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn docker events");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    fn next(&self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(20))
            .expect("no event within 20s");
        json(&line)
    }

    fn nothing_more(&self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            panic!("unexpected event: {line}");
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `docker events --until 0s`: the CLI sends whole seconds, so (as with
/// dockerd) events of the current second are not included yet; callers
/// wait for the second to pass.
fn past_events(d: &Daemon, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["events", "--format", "{{json .}}", "--until", "0s"];
    all.extend_from_slice(args);
    d.docker_ok(&all).lines().map(json).collect()
}

#[test]
fn live_stream_with_filters() {
    let d = Daemon::start();
    // Headers arrive before any event: the CLI is connected once a ping
    // round trip has been made through the same daemon.
    let all = Watcher::start(&d, &["--filter", "type=volume"]);
    let creates = Watcher::start(&d, &["--filter", "event=create", "--filter", "volume=keep"]);
    std::thread::sleep(Duration::from_millis(500));

    d.docker_ok(&["volume", "create", "keep"]);
    let e = all.next();
    assert_eq!(e["Type"], "volume");
    assert_eq!(e["Action"], "create");
    assert_eq!(e["Actor"]["ID"], "keep");
    assert_eq!(e["scope"], "local");
    assert_eq!(e["Actor"]["Attributes"]["driver"], "local");
    let nanos = e["timeNano"].as_i64().unwrap();
    assert_eq!(e["time"].as_i64().unwrap(), nanos / 1_000_000_000);
    assert!((nanos as f64 / 1e9 - now_secs()).abs() < 60.0);
    berth_tests::assert_matches_spec("GET", "/events", &e.to_string());
    assert_eq!(creates.next()["Actor"]["ID"], "keep");

    d.docker_ok(&["volume", "create", "other"]);
    d.docker_ok(&["volume", "rm", "keep", "other"]);
    assert_eq!(all.next()["Actor"]["ID"], "other");
    let removed: Vec<String> = (0..2)
        .map(|_| {
            let e = all.next();
            assert_eq!(e["Action"], "destroy");
            e["Actor"]["ID"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(removed, vec!["keep", "other"]);
    creates.nothing_more();
}

#[test]
fn since_replays_history_and_until_ends_the_stream() {
    let d = Daemon::start();
    let before = now_secs();
    d.docker_ok(&["volume", "create", "va"]);
    d.docker_ok(&["volume", "rm", "va"]);
    std::thread::sleep(Duration::from_millis(1100));
    let middle = now_secs();
    d.docker_ok(&["volume", "create", "vb"]);
    std::thread::sleep(Duration::from_millis(1100));

    let ids = |evs: &[serde_json::Value]| -> Vec<String> {
        evs.iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["Action"].as_str().unwrap(),
                    e["Actor"]["ID"].as_str().unwrap()
                )
            })
            .collect()
    };
    let all = past_events(&d, &["--since", "1m", "--filter", "type=volume"]);
    assert_eq!(ids(&all), vec!["create va", "destroy va", "create vb"]);
    let since = format!("{middle:.9}");
    let late = past_events(&d, &["--since", &since, "--filter", "type=volume"]);
    assert_eq!(ids(&late), vec!["create vb"]);
    let filtered = past_events(&d, &["--since", "1m", "--filter", "event=destroy"]);
    assert_eq!(ids(&filtered), vec!["destroy va"]);
    let by_volume = past_events(&d, &["--since", "1m", "--filter", "volume=vb"]);
    assert_eq!(ids(&by_volume), vec!["create vb"]);
    let none = past_events(&d, &["--since", "1m", "--filter", "type=image"]);
    assert!(none.is_empty(), "{none:?}");

    // since + until window over the raw API, RFC 3339 accepted too.
    let until = format!("{:.9}", middle - 0.05);
    let raw = d
        .curl(&[&format!(
            "http://localhost/events?since={before:.3}&until={until}&filters=%7B%22type%22%3A%5B%22volume%22%5D%7D"
        )])
        .ok();
    let evs: Vec<serde_json::Value> = raw.lines().map(json).collect();
    assert_eq!(ids(&evs), vec!["create va", "destroy va"]);
    let rfc = chrono_like_rfc3339(before - 1.0);
    let raw = d
        .curl(&[&format!(
            "http://localhost/events?since={rfc}&until={until}"
        )])
        .ok();
    assert_eq!(raw.lines().count(), 2, "{raw}");

    // An until in the future keeps streaming live events until it passes.
    let started = std::time::Instant::now();
    let deadline = now_secs() + 2.0;
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-N", "--unix-socket"])
        .arg(&d.socket)
        .arg(format!("http://localhost/events?until={deadline:.3}&filters=%7B%22volume%22%3A%5B%22live%22%5D%7D"))
        .stdout(Stdio::piped());
    let child = curl.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    d.docker_ok(&["volume", "create", "live"]);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let evs: Vec<serde_json::Value> = text.lines().map(json).collect();
    assert_eq!(ids(&evs), vec!["create live"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
}

/// RFC 3339 (UTC) for Unix seconds, without pulling in a date crate.
fn chrono_like_rfc3339(secs: f64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs:.3}"), "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn image_events_and_legacy_fields() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker_ok(&["tag", "busybox", "berth-test/tagged:1"]);
    std::thread::sleep(Duration::from_millis(1100));
    let evs = past_events(&d, &["--since", "1m", "--filter", "type=image"]);
    assert!(!evs.is_empty());
    for e in &evs {
        berth_tests::assert_matches_spec("GET", "/events", &e.to_string());
        assert_eq!(e["Type"], "image");
        assert_eq!(e["status"], e["Action"], "legacy status field: {e}");
        assert_eq!(e["id"], e["Actor"]["ID"], "legacy id field: {e}");
    }
    let tags = past_events(&d, &["--since", "1m", "--filter", "event=tag"]);
    assert_eq!(tags.len(), 1, "{tags:?}");
    let by_image = past_events(
        &d,
        &[
            "--since",
            "1m",
            "--filter",
            "image=berth-test/tagged",
            "--filter",
            "event=tag",
        ],
    );
    assert_eq!(by_image.len(), 1, "{by_image:?}");
    let no_match = past_events(&d, &["--since", "1m", "--filter", "image=alpine"]);
    assert!(no_match.is_empty(), "{no_match:?}");
}

#[test]
fn stream_headers_arrive_before_any_event() {
    use std::io::{Read, Write};
    let d = Daemon::start();
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /v1.50/events HTTP/1.1\r\nHost: berth\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s
            .read(&mut byte)
            .expect("response headers did not arrive before the first event");
        assert_eq!(n, 1, "connection closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    // The first event then arrives as its own chunk.
    d.docker_ok(&["volume", "create", "flushed"]);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"flushed\"") {
        let n = s.read(&mut buf).expect("event not flushed within 5s");
        assert!(n > 0, "stream closed");
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn sigterm_ends_open_event_streams() {
    let mut d = Daemon::start();
    let watcher = Watcher::start(&d, &[]);
    std::thread::sleep(Duration::from_millis(500));
    d.docker_ok(&["volume", "create", "before-stop"]);
    assert_eq!(watcher.next()["Actor"]["ID"], "before-stop");
    let started = std::time::Instant::now();
    d.stop();
    let took = started.elapsed();
    // Streams end at once: no waiting out the shutdown grace period.
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?} with a stream open"
    );
    assert!(!d.socket.exists());
    let mut watcher = watcher;
    let ended = berth_tests::wait_until(Duration::from_secs(5), || {
        watcher.child.try_wait().ok().flatten().is_some()
    });
    assert!(
        ended,
        "docker events still running after the daemon stopped"
    );
}

#[test]
fn container_events_filter_by_name_label_and_image() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "evc",
        "--label",
        "team=berth",
        "busybox",
        "true",
    ]);
    d.docker_ok(&["run", "--name", "other", "busybox", "true"]);
    d.docker_ok(&["rm", "evc", "other"]);
    std::thread::sleep(Duration::from_millis(1100));

    let starts = past_events(
        &d,
        &[
            "--since",
            "1m",
            "--filter",
            "container=evc",
            "--filter",
            "event=start",
        ],
    );
    assert_eq!(starts.len(), 1, "{starts:?}");
    let e = &starts[0];
    assert_eq!(e["Type"], "container");
    assert_eq!(e["Actor"]["Attributes"]["name"], "evc");
    assert_eq!(e["from"], "busybox", "legacy from field: {e}");
    let id = e["Actor"]["ID"].as_str().unwrap();
    assert_eq!(e["id"], id);

    // By ID prefix, by label, by image: only evc's events.
    for filter in [&format!("container={}", &id[..12]), "label=team=berth"] {
        let evs = past_events(&d, &["--since", "1m", "--filter", filter]);
        assert!(!evs.is_empty(), "{filter}");
        assert!(
            evs.iter().all(|e| e["Actor"]["ID"] == id),
            "{filter}: {evs:?}"
        );
    }
    let by_image = past_events(
        &d,
        &[
            "--since",
            "1m",
            "--filter",
            "image=busybox",
            "--filter",
            "event=start",
        ],
    );
    assert_eq!(by_image.len(), 2, "{by_image:?}");
    let destroyed = past_events(
        &d,
        &[
            "--since",
            "1m",
            "--filter",
            "type=container",
            "--filter",
            "event=destroy",
        ],
    );
    assert_eq!(destroyed.len(), 2, "{destroyed:?}");
}
