//! `docker logs` through the real docker CLI (and docker-py): stream
//! separation, --tail, --since/--until, -t, -f ending with the container,
//! rotation without lost lines, long lines, the `none` driver; and
//! `docker run --init`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_tests::{py, Daemon};

fn seq(range: std::ops::Range<u32>) -> String {
    range.map(|i| format!("line-{i}\n")).collect()
}

/// A busybox shell loop printing `line-0` .. `line-(n-1)`.
fn print_lines(n: u32) -> String {
    format!("i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); done")
}

/// `2026-11-22T06:31:00.123456789Z` as nanoseconds since the epoch.
fn rfc3339_utc_nanos(ts: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| ts[r].parse::<i64>().expect("a digit field");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    secs * 1_000_000_000 + n(20..29)
}

#[test]
fn stdout_and_stderr_are_kept_apart() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "two",
        "busybox",
        "sh",
        "-c",
        "echo out1; echo err1 >&2; echo out2",
    ]);
    let out = d.docker(&["logs", "two"]);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "out1\nout2\n");
    assert_eq!(out.stderr, "err1\n");
    // A TTY container's log comes back raw.
    d.docker_ok(&["run", "-t", "--name", "tty", "busybox", "echo", "with-tty"]);
    assert_eq!(d.docker_ok(&["logs", "tty"]), "with-tty\r\n");
}

#[test]
fn tail_timestamps_since_until() {
    let d = Daemon::with_busybox();
    let script = format!("{}; sleep 1.2; echo late", print_lines(50));
    d.docker_ok(&["run", "--name", "c1", "busybox", "sh", "-c", &script]);
    assert_eq!(
        d.docker_ok(&["logs", "--tail", "3", "c1"]),
        "line-48\nline-49\nlate\n"
    );
    assert_eq!(d.docker_ok(&["logs", "--tail", "0", "c1"]), "");
    assert_eq!(
        d.docker_ok(&["logs", "--tail", "all", "c1"]),
        seq(0..50) + "late\n"
    );

    let stamped = d.docker_ok(&["logs", "-t", "--tail", "1", "c1"]);
    let (ts, text) = stamped.split_once(' ').expect("timestamp prefix");
    assert_eq!(text, "late\n");
    // RFC 3339 with nine fraction digits, UTC, like dockerd.
    assert_eq!(ts.len(), "2026-11-22T06:31:00.123456789Z".len(), "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");

    // The `late` line is at least a second after the others.
    let cut = rfc3339_utc_nanos(ts) - 600_000_000;
    let cut = format!(
        "{}.{:09}",
        cut.div_euclid(1_000_000_000),
        cut.rem_euclid(1_000_000_000)
    );
    assert_eq!(d.docker_ok(&["logs", "--since", &cut, "c1"]), "late\n");
    assert_eq!(d.docker_ok(&["logs", "--until", &cut, "c1"]), seq(0..50));
    let future = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    assert_eq!(d.docker_ok(&["logs", "--since", &future, "c1"]), "");
}

#[test]
fn follow_streams_and_ends_when_the_container_stops() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fol",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4; do echo tick-$i; sleep 0.4; done; echo bye >&2",
    ]);
    let started = Instant::now();
    let out = d.docker(&["logs", "-f", "fol"]);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "tick-1\ntick-2\ntick-3\ntick-4\n");
    assert_eq!(out.stderr, "bye\n");
    assert!(started.elapsed() < Duration::from_secs(20));
    // On a stopped container -f returns at once. The tail counts lines of
    // both streams (as dockerd): the last two are tick-4 and bye.
    let started = Instant::now();
    assert_eq!(
        d.docker_ok(&["logs", "-f", "--tail", "2", "fol"]),
        "tick-4\n"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn rotation_loses_and_splits_no_line() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "rot",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        &print_lines(400),
    ]);
    let id = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "rot"])
        .trim()
        .to_string();
    let dir = d.data_root.join("containers").join(&id);
    let logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .collect();
    assert_eq!(logs.len(), 3, "expected the log and two rotated files");
    for f in &logs {
        assert!(f.metadata().unwrap().len() <= 1024);
    }
    let out = d.docker_ok(&["logs", "rot"]);
    let first: u32 = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("line-"))
        .and_then(|n| n.parse().ok())
        .expect("a numbered first line");
    // What the three files keep: contiguous, whole lines up to the last.
    assert_eq!(out, seq(first..400));
    assert!(400 - first >= 20, "too little kept: from {first}");

    // Following a container while it rotates gets every line once.
    d.docker_ok(&["run", "-d", "--name", "rotf", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
        "busybox", "sh", "-c",
        "sleep 1; i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); [ $((i % 10)) = 0 ] && sleep 0.05; done"]);
    let out = d.docker_ok(&["logs", "-f", "rotf"]);
    assert_eq!(out, seq(0..200));
}

#[test]
fn a_20k_line_comes_back_whole() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "long",
        "busybox",
        "sh",
        "-c",
        "head -c 20000 /dev/zero | tr '\\0' a; echo; echo next",
    ]);
    let out = d.docker_ok(&["logs", "long"]);
    assert_eq!(out, format!("{}\nnext\n", "a".repeat(20000)));
}

#[test]
fn none_driver_cannot_be_read() {
    let d = Daemon::with_busybox();
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--name",
            "quiet",
            "--log-driver",
            "none",
            "busybox",
            "echo",
            "hi"
        ]),
        "hi\n"
    );
    let out = d.docker(&["logs", "quiet"]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("configured logging driver does not support reading"),
        "{}",
        out.stderr
    );
    let out = d.docker(&["logs", "ghost"]);
    assert!(
        out.stderr.contains("No such container: ghost"),
        "{}",
        out.stderr
    );
}

/// Zombie processes (`ps` state Z) inside a running container.
fn zombies(d: &Daemon, name: &str) -> Vec<String> {
    let ps = d.docker_ok(&["exec", name, "ps", "-o", "pid,stat,comm"]);
    ps.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("Z"))
        .map(str::to_string)
        .collect()
}

#[test]
fn init_reaps_orphans_and_passes_the_exit_code() {
    let d = Daemon::with_busybox();
    // A subshell leaves an orphaned `sleep 0.2` behind; PID 1 (or the
    // command under the init) then becomes `sleep 100`, which never waits.
    let script = "(sh -c 'sleep 0.2 &'); exec sleep 100";
    d.docker_ok(&[
        "run", "-d", "--name", "noinit", "busybox", "sh", "-c", script,
    ]);
    d.docker_ok(&[
        "run", "-d", "--init", "--name", "withinit", "busybox", "sh", "-c", script,
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    // The control: without an init the orphan stays <defunct>.
    assert_eq!(
        zombies(&d, "noinit").len(),
        1,
        "no zombie without --init: the test proves nothing"
    );
    assert_eq!(
        zombies(&d, "withinit"),
        Vec::<String>::new(),
        "zombies with --init"
    );
    let pid1 = d.docker_ok(&["exec", "withinit", "ps", "-o", "pid,comm"]);
    assert!(
        pid1.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "docker-init"]),
        "PID 1 is not the init:\n{pid1}"
    );
    // Signals reach the command: stop ends it quickly with SIGTERM's code.
    let started = Instant::now();
    d.docker_ok(&["stop", "-t", "10", "withinit"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "SIGTERM was not forwarded"
    );
    let code = d.docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", "withinit"]);
    assert_eq!(code.trim(), "143");
    // The command's exit code passes through.
    let out = d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(out.code(), Some(7), "{}", out.stderr);
    d.docker_ok(&["rm", "-f", "noinit", "withinit"]);
}

#[test]
fn docker_py_streams_logs() {
    let d = Daemon::with_busybox();
    let out = py::run_ok(&d, "logs_stream.py");
    assert!(out.stdout.contains("ok"), "{}", out.stdout);
}
