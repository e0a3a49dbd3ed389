use super::*;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Writes entries like the shim: whole lines, rotation between entries.
struct Writer {
    path: PathBuf,
    max_size: u64,
    max_files: u32,
    file: fs::File,
    size: u64,
}

impl Writer {
    fn new(path: &Path, max_size: u64, max_files: u32) -> Writer {
        Writer {
            path: path.to_path_buf(),
            max_size,
            max_files,
            file: fs::File::create(path).unwrap(),
            size: 0,
        }
    }

    fn entry(&mut self, stream: &str, text: &str, nanos: i64) {
        let time = chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(nanos)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let line = format!(
            "{{\"log\":{},\"stream\":\"{stream}\",\"time\":\"{time}\"}}\n",
            serde_json::to_string(text).unwrap()
        );
        if self.max_size > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_size {
            for i in (1..self.max_files - 1).rev() {
                let _ = fs::rename(
                    files::numbered(&self.path, i),
                    files::numbered(&self.path, i + 1),
                );
            }
            fs::rename(&self.path, files::numbered(&self.path, 1)).unwrap();
            self.file = fs::File::create(&self.path).unwrap();
            self.size = 0;
        }
        self.file.write_all(line.as_bytes()).unwrap();
        self.size += line.len() as u64;
    }
}

struct Collect {
    out: Vec<u8>,
    closed: bool,
}

impl Sink for Collect {
    fn send(&mut self, chunk: Vec<u8>) -> bool {
        self.out.extend_from_slice(&chunk);
        !self.closed
    }
    fn is_closed(&self) -> bool {
        self.closed
    }
}

fn lines_of(raw: &[u8]) -> Vec<String> {
    String::from_utf8(raw.to_vec())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

const BASE: i64 = 1_790_000_000_000_000_000;

fn read(path: &Path, req: LogRequest) -> Vec<String> {
    let mut sink = Collect {
        out: Vec::new(),
        closed: false,
    };
    stream(path, &req, &mut sink, &|| false).unwrap();
    lines_of(&sink.out)
}

fn raw_all() -> LogRequest {
    LogRequest {
        selection: Selection {
            stdout: true,
            stderr: true,
            tty: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn rotated_log_reads_whole_in_order_with_tail_since_until() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c-json.log");
    let mut w = Writer::new(&p, 1024, 3);
    for i in 0..60 {
        w.entry(
            if i % 3 == 0 { "stderr" } else { "stdout" },
            &format!("line {i}\n"),
            BASE + i * 1_000_000,
        );
    }
    assert!(files::numbered(&p, 2).exists() && !files::numbered(&p, 3).exists());
    let all = read(&p, raw_all());
    // 3 files of <= 1 KiB keep the newest lines, contiguous, none split.
    let first: i64 = all[0].strip_prefix("line ").unwrap().parse().unwrap();
    let want: Vec<String> = (first..60).map(|i| format!("line {i}")).collect();
    assert_eq!(all, want);
    assert!(all.len() > 20);

    let tail = read(
        &p,
        LogRequest {
            tail: Some(5),
            ..raw_all()
        },
    );
    assert_eq!(
        tail,
        (55..60).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    assert!(read(
        &p,
        LogRequest {
            tail: Some(0),
            ..raw_all()
        }
    )
    .is_empty());
    assert_eq!(
        read(
            &p,
            LogRequest {
                tail: Some(1000),
                ..raw_all()
            }
        ),
        all
    );

    let mut req = raw_all();
    req.selection.since = Some(BASE + 50 * 1_000_000);
    req.selection.until = Some(BASE + 52 * 1_000_000);
    assert_eq!(read(&p, req), vec!["line 50", "line 51", "line 52"]);

    let mut req = raw_all();
    req.selection.stdout = false;
    req.tail = Some(6);
    // tail counts lines of both streams, as dockerd does.
    assert_eq!(read(&p, req), vec!["line 54", "line 57"]);
}

#[test]
fn timestamps_and_frames() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c-json.log");
    let mut w = Writer::new(&p, 0, 1);
    w.entry("stdout", "a\n", BASE + 120_000_000);
    w.entry("stderr", "b", BASE + 120_000_000);
    let req = LogRequest {
        selection: Selection {
            stdout: true,
            stderr: true,
            timestamps: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut sink = Collect {
        out: Vec::new(),
        closed: false,
    };
    stream(&p, &req, &mut sink, &|| false).unwrap();
    let ts = "2026-09-21T14:13:20.120000000Z";
    let mut want = Vec::new();
    want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, (ts.len() + 3) as u8]);
    want.extend_from_slice(format!("{ts} a\n").as_bytes());
    want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, (ts.len() + 2) as u8]);
    want.extend_from_slice(format!("{ts} b").as_bytes());
    assert_eq!(sink.out, want);
}

#[test]
fn missing_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read(&dir.path().join("nope"), raw_all()).is_empty());
}

/// A writer rotating every ~4 KiB while a follower reads: every line arrives
/// exactly once, in order, and follow ends after the writer "stops".
#[test]
fn follow_across_rotation_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c-json.log");
    let mut w = Writer::new(&p, 4096, 1000);
    w.entry("stdout", "line 0\n", BASE);
    let running = Arc::new(AtomicBool::new(true));
    let writer = {
        let running = running.clone();
        std::thread::spawn(move || {
            for i in 1..3000 {
                w.entry("stdout", &format!("line {i}\n"), BASE + i);
                if i % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(30));
                }
            }
            running.store(false, Ordering::SeqCst);
        })
    };
    let req = LogRequest {
        follow: true,
        ..raw_all()
    };
    let mut sink = Collect {
        out: Vec::new(),
        closed: false,
    };
    let r = running.clone();
    let started = Instant::now();
    stream(&p, &req, &mut sink, &move || r.load(Ordering::SeqCst)).unwrap();
    writer.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let got = lines_of(&sink.out);
    let want: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
}

#[test]
fn follow_ends_when_client_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c-json.log");
    let mut w = Writer::new(&p, 0, 1);
    w.entry("stdout", "x\n", BASE);
    let req = LogRequest {
        follow: true,
        ..raw_all()
    };
    let mut sink = Collect {
        out: Vec::new(),
        closed: true,
    };
    let started = Instant::now();
    // The container stays "running" forever; only the client leaving ends it.
    stream(&p, &req, &mut sink, &|| true).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn parse_tail_values() {
    assert_eq!(parse_tail(None), None);
    assert_eq!(parse_tail(Some("all")), None);
    assert_eq!(parse_tail(Some("-1")), None);
    assert_eq!(parse_tail(Some("10")), Some(10));
    assert_eq!(parse_tail(Some("0")), Some(0));
}

#[test]
fn follow_ends_at_until() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c-json.log");
    let mut w = Writer::new(&p, 0, 1);
    w.entry("stdout", "x\n", BASE);
    let mut req = LogRequest {
        follow: true,
        ..raw_all()
    };
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
        + 300_000_000;
    req.selection.until = Some(until);
    let mut sink = Collect {
        out: Vec::new(),
        closed: false,
    };
    let started = Instant::now();
    // The container keeps running; `until` ends the follow.
    stream(&p, &req, &mut sink, &|| true).unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(lines_of(&sink.out), vec!["x"]);
}
