//! berth-shim driven directly over its protocol (common/src/shim.rs), with a
//! real OCI runtime: `$BERTH_TEST_RUNTIME` (e.g. /usr/sbin/runc) or the
//! workspace's berth-runtime.

use std::fs;
use std::io::{BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use berth_tests::{bin_path, copy_busybox_rootfs, require_root, run_with_timeout, wait_until};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(20);

fn runtime() -> PathBuf {
    match std::env::var_os("BERTH_TEST_RUNTIME").filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "BERTH_TEST_RUNTIME={} does not exist",
                p.display()
            );
            p
        }
        None => bin_path("berth-runtime"),
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A bundle, state dir and runtime root in a temp dir, plus the shim serving
/// it once `spawn` ran. Drop kills whatever is left and checks nothing else is.
struct Container {
    dir: tempfile::TempDir,
    id: String,
    cgroup: String,
    state: PathBuf,
    shim_pid: Option<i32>,
}

fn process_spec(args: &[&str], terminal: bool) -> Value {
    json!({
        "terminal": terminal,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": caps(), "effective": caps(), "permitted": caps()
        },
        "noNewPrivileges": true
    })
}

fn caps() -> Value {
    json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE"
    ])
}

impl Container {
    fn new(args: &[&str], terminal: bool) -> Container {
        require_root();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let id = format!("shimtest-{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("bshim")
            .tempdir()
            .expect("temp dir");
        let rootfs = dir.path().join("bundle/rootfs");
        fs::create_dir_all(&rootfs).expect("mkdir rootfs");
        fs::create_dir_all(dir.path().join("state")).expect("mkdir state");
        copy_busybox_rootfs(&rootfs);
        let cgroup = format!("berth-shim-test-{id}");
        let config = json!({
            "ociVersion": "1.0.2",
            "process": process_spec(args, terminal),
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "shimtest",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]}
            ],
            "linux": {
                "cgroupsPath": format!("/{cgroup}"),
                "namespaces": [
                    {"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
                    {"type": "mount"}, {"type": "network"}
                ],
                "maskedPaths": ["/proc/kcore", "/sys/firmware"],
                "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
            }
        });
        fs::write(
            dir.path().join("bundle/config.json"),
            serde_json::to_vec_pretty(&config).expect("encode config"),
        )
        .expect("write config.json");
        let state = dir.path().join("state");
        Container {
            dir,
            id,
            cgroup,
            state,
            shim_pid: None,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.state.clone()
    }

    /// Connects to the shim's socket, through /proc/self/fd when its path is
    /// too long for `sun_path` (as berthd does).
    fn socket(&self) -> std::io::Result<UnixStream> {
        let dir = fs::File::open(self.state_dir())?;
        use std::os::fd::AsRawFd;
        UnixStream::connect(format!("/proc/self/fd/{}/shim.sock", dir.as_raw_fd()))
    }

    fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("rtroot")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("container-json.log")
    }

    fn shim_command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(bin_path("berth-shim"));
        c.arg("--id")
            .arg(&self.id)
            .arg("--bundle")
            .arg(self.dir.path().join("bundle"))
            .arg("--state-dir")
            .arg(self.state_dir())
            .arg("--runtime")
            .arg(runtime())
            .arg("--runtime-root")
            .arg(self.runtime_root())
            .arg("--log-path")
            .arg(self.log_path())
            .args(extra);
        c
    }

    /// Runs berth-shim; on success the container is created and served.
    fn spawn(&mut self, extra: &[&str]) {
        let out = run_with_timeout(&mut self.shim_command(extra), None, TIMEOUT);
        assert!(out.success(), "berth-shim failed: {}", out.stderr);
        assert!(
            self.state_dir().join("shim.sock").exists(),
            "no socket after start-up"
        );
        let pid = fs::read_to_string(self.state_dir().join("shim.pid")).expect("shim.pid");
        self.shim_pid = Some(pid.trim().parse().expect("shim.pid holds a pid"));
    }

    fn send(&self, req: Value) -> UnixStream {
        let mut s = self.socket().expect("connect to shim");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut line = serde_json::to_vec(&req).expect("encode");
        line.push(b'\n');
        s.write_all(&line).expect("send request");
        s
    }

    fn connect(&self, req: Value) -> (UnixStream, Value) {
        let mut s = self.send(req);
        let resp = read_line(&mut s);
        (
            s,
            serde_json::from_slice(&resp).unwrap_or_else(|e| panic!("bad response {resp:?}: {e}")),
        )
    }

    fn request(&self, req: Value) -> Value {
        self.connect(req).1
    }

    fn ok(&self, req: Value) -> Value {
        let r = self.request(req.clone());
        assert_eq!(r["ok"], true, "{req} failed: {r}");
        r
    }

    /// How the container ended, as a daemon learns it: `wait` on the socket,
    /// or `exit.json` when the shim has already finished and gone.
    fn exit_status(&self) -> Value {
        if let Ok(mut s) = self.socket() {
            s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
            if s.write_all(b"{\"op\":\"wait\"}\n").is_ok() {
                let mut resp = Vec::new();
                let _ = s.read_to_end(&mut resp);
                if let Ok(v) = serde_json::from_slice::<Value>(resp.trim_ascii()) {
                    assert_eq!(v["ok"], true, "{v}");
                    return v["exit"].clone();
                }
            }
        }
        self.wait_shim_gone();
        self.exit_file()
    }

    fn shim_alive(&self) -> bool {
        self.shim_pid.is_some_and(|p| {
            fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains("berth-shim"))
        })
    }

    fn wait_shim_gone(&self) {
        assert!(
            wait_until(TIMEOUT, || !self.shim_alive()),
            "the shim did not exit"
        );
    }

    fn log_entries(&self) -> Vec<Value> {
        read_log_entries(&self.log_path())
    }

    /// The shim exited after the container: exit.json is there, nothing else
    /// of the shim's or the runtime's is left.
    fn assert_nothing_left(&self) {
        self.wait_shim_gone();
        let state = self.state_dir();
        for name in ["shim.sock", "shim.pid", "console.sock", "init.pid"] {
            assert!(!state.join(name).exists(), "{name} left in the state dir");
        }
        let leftover: Vec<_> = fs::read_dir(&state)
            .expect("state dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "exit.json" && n != "shim.log")
            .collect();
        assert!(leftover.is_empty(), "left in the state dir: {leftover:?}");
        let rt_state = self.runtime_root().join(&self.id);
        assert!(
            !rt_state.exists(),
            "runtime state {} left",
            rt_state.display()
        );
        for ctrl in ["memory", "pids", "cpu", "freezer"] {
            let p = Path::new("/sys/fs/cgroup").join(ctrl).join(&self.cgroup);
            assert!(!p.exists(), "cgroup {} left", p.display());
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.path().display().to_string();
        assert!(!mounts.contains(&dir), "mounts left under {dir}");
    }

    fn exit_file(&self) -> Value {
        let data = fs::read(self.state_dir().join("exit.json")).expect("exit.json");
        serde_json::from_slice(&data).expect("exit.json is JSON")
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.shim_alive() {
            if let Some(p) = self.shim_pid {
                // SAFETY: kill(2) on the shim this test started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        if let Ok(rt) = std::panic::catch_unwind(runtime) {
            let _ = Command::new(rt)
                .arg("--root")
                .arg(self.runtime_root())
                .args(["delete", "--force", &self.id])
                .output();
        }
        for ctrl in [
            "memory",
            "pids",
            "cpu",
            "cpuacct",
            "cpuset",
            "freezer",
            "blkio",
            "devices",
            "net_cls",
            "perf_event",
            "hugetlb",
            "systemd",
            "unified",
        ] {
            let _ = fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join(&self.cgroup));
        }
    }
}

fn read_line(s: &mut UnixStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => panic!("connection closed before a response line: {line:?}"),
            Ok(_) if b[0] == b'\n' => return line,
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading a response: {e}"),
        }
    }
}

/// Frames until the shim closes the connection: (stream, payload).
fn read_frames(s: &mut UnixStream) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let mut h = [0u8; 8];
        match s.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return frames,
            Err(e) => panic!("reading a frame header: {e}"),
        }
        assert_eq!(&h[1..4], &[0, 0, 0], "frame header {h:?}");
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).expect("frame payload");
        frames.push((h[0], payload));
    }
}

fn stream_text(frames: &[(u8, Vec<u8>)], stream: u8) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, p)| p.clone())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn read_log_entries(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l:?}: {e}")))
        .collect()
}

#[test]
fn shim_start_wait_exit_code_logs_and_clean_exit() {
    let mut c = Container::new(&["sh", "-c", "echo hello; echo oops >&2; exit 3"], false);
    c.spawn(&[]);
    let st = c.ok(json!({"op": "state"}));
    assert_eq!(st["status"], "created");
    assert_eq!(st["version"], 1);
    let init_pid = st["pid"].as_i64().expect("pid");
    assert!(init_pid > 0);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(c.state_dir().join("shim.sock"))
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode {mode:o}");

    // Registered before start; answered only at exit.
    let mut waiter = c.send(json!({"op": "wait"}));
    c.ok(json!({"op": "start"}));
    let resp: Value = serde_json::from_slice(&read_line(&mut waiter)).expect("wait response");
    assert_eq!(resp["ok"], true);
    assert_eq!(resp["exit"]["exit_code"], 3, "{resp}");
    assert!(resp["exit"]["exited_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(resp["exit"]["oom_killed"], false);

    c.assert_nothing_left();
    let exit = c.exit_file();
    assert_eq!(exit["exit_code"], 3);
    assert_eq!(exit["exited_at"], resp["exit"]["exited_at"]);

    let entries = c.log_entries();
    let out: Vec<_> = entries.iter().filter(|e| e["stream"] == "stdout").collect();
    let err: Vec<_> = entries.iter().filter(|e| e["stream"] == "stderr").collect();
    assert_eq!(out.len(), 1, "{entries:?}");
    assert_eq!(out[0]["log"], "hello\n");
    assert_eq!(err.len(), 1, "{entries:?}");
    assert_eq!(err[0]["log"], "oops\n");
    for e in &entries {
        let t = e["time"].as_str().expect("time");
        assert!(
            t.len() >= 20 && t.ends_with('Z') && t.contains('T'),
            "time {t}"
        );
        assert_eq!(e.as_object().map(|o| o.len()), Some(3), "{e}");
    }
}

#[test]
fn shim_log_rotation_keeps_every_line() {
    let script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done; printf tail";
    let mut c = Container::new(&["sh", "-c", script], false);
    c.spawn(&["--log-max-size", "2048", "--log-max-files", "100"]);
    c.ok(json!({"op": "start"}));
    let w = c.exit_status();
    assert_eq!(w["exit_code"], 0);
    c.assert_nothing_left();

    let mut files = vec![c.log_path()];
    for i in 1..100 {
        let p = PathBuf::from(format!("{}.{i}", c.log_path().display()));
        if p.exists() {
            files.push(p);
        }
    }
    assert!(
        files.len() > 3,
        "expected rotation, got {} files",
        files.len()
    );
    let mut lines = Vec::new();
    for f in files.iter().rev() {
        assert!(
            fs::metadata(f).expect("log file").len() <= 2048,
            "{} too big",
            f.display()
        );
        for e in read_log_entries(f) {
            lines.push(e["log"].as_str().expect("log").to_string());
        }
    }
    let mut want: Vec<String> = (0..300).map(|i| format!("line-{i}\n")).collect();
    // The final line had no newline: flushed at exit as a partial entry.
    want.push("tail".into());
    assert_eq!(lines, want);
}

#[test]
fn shim_log_driver_none_writes_nothing() {
    let mut c = Container::new(&["echo", "quiet"], false);
    c.spawn(&["--log-driver", "none"]);
    let (mut a, r) = c.connect(json!({"op": "attach", "stdout": true, "stderr": true}));
    assert_eq!(r["ok"], true);
    c.ok(json!({"op": "start"}));
    let frames = read_frames(&mut a);
    assert_eq!(stream_text(&frames, 1), "quiet\n");
    c.assert_nothing_left();
    assert!(
        !c.log_path().exists(),
        "a log was written with --log-driver none"
    );
}

#[test]
fn shim_attach_streams_to_several_clients() {
    let mut c = Container::new(&["sh", "-c", "echo out1; echo err1 >&2; echo out2"], false);
    c.spawn(&[]);
    let (mut a1, r1) = c.connect(json!({"op": "attach", "stdout": true, "stderr": true}));
    let (mut a2, r2) = c.connect(json!({"op": "attach", "stdout": true, "stderr": false}));
    assert_eq!(
        (r1["ok"].clone(), r2["ok"].clone()),
        (json!(true), json!(true))
    );
    c.ok(json!({"op": "start"}));
    let f1 = read_frames(&mut a1);
    let f2 = read_frames(&mut a2);
    assert_eq!(stream_text(&f1, 1), "out1\nout2\n");
    assert_eq!(stream_text(&f1, 2), "err1\n");
    assert_eq!(stream_text(&f2, 1), "out1\nout2\n");
    assert!(
        f2.iter().all(|(s, _)| *s == 1),
        "stderr sent to a stdout-only client"
    );
    c.assert_nothing_left();
}

#[test]
fn shim_attach_stdin_half_close_reaches_cat() {
    let mut c = Container::new(&["cat"], false);
    c.spawn(&["--stdin", "--stdin-once"]);
    let (mut a, r) =
        c.connect(json!({"op": "attach", "stdin": true, "stdout": true, "stderr": true}));
    assert_eq!(r["ok"], true);
    c.ok(json!({"op": "start"}));
    a.write_all(b"hello through stdin\n").expect("write stdin");
    a.write_all(b"second line").expect("write stdin");
    a.shutdown(std::net::Shutdown::Write).expect("half-close");
    let frames = read_frames(&mut a);
    assert_eq!(stream_text(&frames, 1), "hello through stdin\nsecond line");
    let w = c.exit_status();
    assert_eq!(w["exit_code"], 0);
    c.assert_nothing_left();
    let logged: String = c
        .log_entries()
        .iter()
        .map(|e| e["log"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(logged, "hello through stdin\nsecond line");
}

#[test]
fn shim_tty_console_socket_and_resize() {
    let mut c = Container::new(&["sh", "-c", "read x; stty size; echo got-$x"], true);
    c.spawn(&["--tty", "--stdin"]);
    let (mut a, r) =
        c.connect(json!({"op": "attach", "stdin": true, "stdout": true, "stderr": true}));
    assert_eq!(r["ok"], true);
    c.ok(json!({"op": "resize", "width": 123, "height": 45}));
    c.ok(json!({"op": "start"}));
    a.write_all(b"go\n").expect("write to tty");
    let frames = read_frames(&mut a);
    assert!(
        frames.iter().all(|(s, _)| *s == 1),
        "tty output must be stream 1"
    );
    let text = stream_text(&frames, 1);
    assert!(text.contains("45 123"), "stty size after resize: {text:?}");
    assert!(text.contains("got-go"), "{text:?}");
    // A terminal turns \n into \r\n.
    assert!(text.contains("\r\n"), "{text:?}");
    let w = c.exit_status();
    assert_eq!(w["exit_code"], 0);
    c.assert_nothing_left();
    let entries = c.log_entries();
    assert!(entries.iter().all(|e| e["stream"] == "stdout"));
    assert!(entries
        .iter()
        .any(|e| e["log"].as_str().is_some_and(|l| l.contains("45 123"))));
}

#[test]
fn shim_exec_output_exit_code_tty_and_kill() {
    let mut c = Container::new(&["sleep", "1000"], false);
    c.spawn(&[]);
    c.ok(json!({"op": "start"}));
    assert_eq!(c.ok(json!({"op": "state"}))["status"], "running");

    // Attached exec without a terminal: both streams, exit code.
    let p = process_spec(
        &["sh", "-c", "echo exec-out; echo exec-err >&2; exit 7"],
        false,
    );
    let (mut s, r) = c.connect(json!({"op": "exec", "exec_id": "e1", "process": p}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["pid"].as_i64().is_some_and(|p| p > 0));
    let frames = read_frames(&mut s);
    assert_eq!(stream_text(&frames, 1), "exec-out\n");
    assert_eq!(stream_text(&frames, 2), "exec-err\n");
    let w = c.ok(json!({"op": "exec_wait", "exec_id": "e1"}));
    assert_eq!(w["exit"]["exit_code"], 7);
    let st = c.ok(json!({"op": "exec_state", "exec_id": "e1"}));
    assert_eq!(st["status"], "stopped");
    assert_eq!(st["exit"]["exit_code"], 7);

    // Exec stdin: half-close gives the process EOF.
    let p = process_spec(&["cat"], false);
    let (mut s, r) = c.connect(json!({"op": "exec", "exec_id": "e2", "process": p}));
    assert_eq!(r["ok"], true, "{r}");
    s.write_all(b"piped").expect("stdin");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    assert_eq!(stream_text(&read_frames(&mut s), 1), "piped");
    assert_eq!(
        c.ok(json!({"op": "exec_wait", "exec_id": "e2"}))["exit"]["exit_code"],
        0
    );

    // Exec with a terminal and a resize.
    let p = process_spec(&["sh", "-c", "read x; stty size"], true);
    let (mut s, r) = c.connect(json!({"op": "exec", "exec_id": "e3", "process": p}));
    assert_eq!(r["ok"], true, "{r}");
    c.ok(json!({"op": "exec_resize", "exec_id": "e3", "width": 99, "height": 33}));
    s.write_all(b"\n").expect("tty input");
    let text = stream_text(&read_frames(&mut s), 1);
    assert!(text.contains("33 99"), "{text:?}");

    // Detached exec: runs, its exit is recorded.
    let p = process_spec(&["sh", "-c", "exit 4"], false);
    let r = c.ok(json!({"op": "exec", "exec_id": "e4", "process": p, "detach": true}));
    assert!(r["pid"].as_i64().is_some());
    assert_eq!(
        c.ok(json!({"op": "exec_wait", "exec_id": "e4"}))["exit"]["exit_code"],
        4
    );

    // A missing command fails with the runtime's message.
    let p = process_spec(&["/no/such/binary"], false);
    let r = c.request(json!({"op": "exec", "exec_id": "e5", "process": p}));
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()));
    let r = c.request(json!({"op": "exec_state", "exec_id": "nope"}));
    assert_eq!(r["ok"], false);

    // exec_kill signals a running exec (a health probe past its timeout),
    // and is refused once it has exited or for an unknown one.
    let p = process_spec(&["sleep", "1000"], false);
    let (_s, r) = c.connect(json!({"op": "exec", "exec_id": "e6", "process": p}));
    assert_eq!(r["ok"], true, "{r}");
    c.ok(json!({"op": "exec_kill", "exec_id": "e6", "signal": 9}));
    assert_eq!(
        c.ok(json!({"op": "exec_wait", "exec_id": "e6"}))["exit"]["exit_code"],
        137
    );
    let r = c.request(json!({"op": "exec_kill", "exec_id": "e6", "signal": 9}));
    assert_eq!(r["ok"], false, "{r}");
    let r = c.request(json!({"op": "exec_kill", "exec_id": "nope", "signal": 9}));
    assert_eq!(r["ok"], false, "{r}");

    // Kill: SIGTERM is ignored by PID 1 without a handler; SIGKILL is not.
    c.ok(json!({"op": "kill", "signal": 9}));
    let w = c.exit_status();
    assert_eq!(w["exit_code"], 137);
    c.assert_nothing_left();
}

#[test]
fn shim_pause_resume_and_state_errors() {
    let mut c = Container::new(&["sleep", "1000"], false);
    c.spawn(&[]);
    let r = c.request(json!({"op": "pause"}));
    assert_eq!(r["ok"], false, "pausing a created container must fail");
    let r = c.request(json!({"op": "shutdown"}));
    assert_eq!(
        r["ok"], false,
        "shutdown while the container lives must fail"
    );
    c.ok(json!({"op": "start"}));
    c.ok(json!({"op": "pause"}));
    assert_eq!(c.ok(json!({"op": "state"}))["status"], "paused");
    c.ok(json!({"op": "resume"}));
    assert_eq!(c.ok(json!({"op": "state"}))["status"], "running");
    let r = c.request(json!({"op": "bogus"}));
    assert_eq!(r["ok"], false);
    let r = c.request(json!({"op": "resize", "width": 10, "height": 10}));
    assert_eq!(r["ok"], false, "resize without a tty must fail");
    c.ok(json!({"op": "kill", "signal": 9, "all": true}));
    assert_eq!(c.exit_status()["exit_code"], 137);
    c.assert_nothing_left();
}

#[test]
fn shim_survives_sigkill_of_its_parent_and_keeps_logging() {
    let c = Container::new(
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.05; done",
        ],
        false,
    );
    // A stand-in daemon: spawns the shim, then lingers until killed.
    let cmd = c.shim_command(&[]);
    let mut script = format!("{:?}", cmd.get_program());
    for a in cmd.get_args() {
        script.push(' ');
        script.push_str(&format!("{a:?}"));
    }
    script.push_str(" && echo spawned && exec sleep 1000");
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn stand-in daemon");
    let mut out = std::io::BufReader::new(parent.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read the init's pid");
    let init_pid: i32 = line.trim().parse().expect("the shim prints the init's pid");
    line.clear();
    out.read_line(&mut line).expect("read");
    assert_eq!(line, "spawned\n");
    let mut c = c;
    let pid = fs::read_to_string(c.state_dir().join("shim.pid")).expect("shim.pid");
    c.shim_pid = Some(pid.trim().parse().expect("pid"));
    assert_eq!(c.ok(json!({"op": "state"}))["pid"], init_pid);
    c.ok(json!({"op": "start"}));
    assert!(wait_until(TIMEOUT, || c.log_entries().len() >= 3));

    parent.kill().expect("SIGKILL the stand-in daemon");
    parent.wait().expect("reap it");
    let before = c.log_entries().len();
    std::thread::sleep(Duration::from_millis(500));
    assert!(c.shim_alive(), "the shim died with its parent");
    assert!(c.log_entries().len() > before, "logging stopped");
    assert_eq!(c.ok(json!({"op": "state"}))["status"], "running");
    // The shim is in its own session.
    let stat = fs::read_to_string(format!("/proc/{}/stat", c.shim_pid.unwrap_or(0))).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        fields.get(3).copied(),
        Some(pid.trim()),
        "shim is not a session leader: {stat}"
    );

    c.ok(json!({"op": "kill", "signal": 9}));
    c.assert_nothing_left();
    assert_eq!(c.exit_file()["exit_code"], 137);
    let entries = c.log_entries();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(
            e["log"],
            format!("tick-{i}\n"),
            "log line {i} lost or split"
        );
    }
}

#[test]
fn shim_failed_create_leaves_nothing_behind() {
    let c = Container::new(&["true"], false);
    fs::remove_dir_all(c.dir.path().join("bundle/rootfs")).expect("remove rootfs");
    let out = run_with_timeout(&mut c.shim_command(&[]), None, TIMEOUT);
    assert!(!out.success(), "create must fail without a rootfs");
    assert!(!out.stderr.trim().is_empty(), "no error message");
    assert!(out.stderr.contains("create"), "{}", out.stderr);
    let left: Vec<_> = fs::read_dir(c.state_dir())
        .expect("state dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "shim.log")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        !c.runtime_root().join(&c.id).exists(),
        "runtime state left behind"
    );
    let procs = berth_tests::cleanup::processes_under(c.dir.path(), &c.cgroup);
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

#[test]
fn shim_rejects_bad_command_lines() {
    let out = run_with_timeout(
        Command::new(bin_path("berth-shim")).args(["--id", "x", "--bogus"]),
        None,
        TIMEOUT,
    );
    assert_eq!(out.code(), Some(2));
    assert!(out.stderr.contains("unknown argument"), "{}", out.stderr);
}

#[test]
fn shim_reports_oom_kill() {
    let mut c = Container::new(
        &[
            "sh",
            "-c",
            "echo start; dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived",
        ],
        false,
    );
    let config_path = c.dir.path().join("bundle/config.json");
    let mut config: Value =
        serde_json::from_slice(&fs::read(&config_path).expect("config")).expect("json");
    config["linux"]["resources"] = json!({"memory": {"limit": 16_777_216, "swap": 16_777_216}});
    fs::write(&config_path, serde_json::to_vec(&config).expect("encode")).expect("write config");
    c.spawn(&[]);
    c.ok(json!({"op": "start"}));
    let exit = c.exit_status();
    assert_eq!(exit["oom_killed"], true, "{exit}");
    c.assert_nothing_left();
    assert_eq!(c.exit_file()["oom_killed"], true);
}

#[test]
fn shim_handles_state_dirs_longer_than_sun_path() {
    let mut c = Container::new(&["sh", "-c", "read x; stty size"], true);
    c.state = c.dir.path().join("s".repeat(60)).join("t".repeat(60));
    fs::create_dir_all(&c.state).expect("long state dir");
    assert!(c.state.join("shim.sock").as_os_str().len() > 108);
    c.spawn(&["--tty", "--stdin"]);
    let (mut a, r) = c.connect(json!({"op": "attach", "stdin": true, "stdout": true}));
    assert_eq!(r["ok"], true);
    c.ok(json!({"op": "resize", "width": 77, "height": 22}));
    c.ok(json!({"op": "start"}));
    // An exec with a terminal needs a second console socket there.
    let p = process_spec(&["sh", "-c", "echo exec-ok"], true);
    let (mut e, r) = c.connect(json!({"op": "exec", "exec_id": "x1", "process": p}));
    assert_eq!(r["ok"], true, "{r}");
    assert!(stream_text(&read_frames(&mut e), 1).contains("exec-ok"));
    a.write_all(b"\n").expect("tty input");
    assert!(stream_text(&read_frames(&mut a), 1).contains("22 77"));
    assert_eq!(c.exit_status()["exit_code"], 0);
    c.assert_nothing_left();
}

#[test]
fn shim_does_not_keep_its_spawners_descriptors() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let mut c = Container::new(&["sleep", "1000"], false);
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) into a two-element array; without O_CLOEXEC on purpose,
    // so the shim inherits the write end like a careless spawner's pipe.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    c.spawn(&[]);
    drop(w);
    let pid = c.shim_pid.expect("shim pid");
    let held: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("shim fds")
        .flatten()
        .filter_map(|e| fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    let inode = fs::read_link(format!("/proc/self/fd/{}", r.as_raw_fd())).expect("our pipe");
    assert!(
        !held.contains(&inode.display().to_string()),
        "the shim kept the spawner's pipe: {held:?}"
    );
    let mut f = fs::File::from(r);
    let mut buf = [0u8; 1];
    assert_eq!(f.read(&mut buf).expect("read"), 0, "pipe still held open");
    c.ok(json!({"op": "kill", "signal": 9}));
    assert_eq!(c.exit_status()["exit_code"], 137);
    c.assert_nothing_left();
}

#[test]
fn shim_log_keeps_long_lines_whole() {
    let script = "head -c 40000 /dev/zero | tr '\\0' x; echo; echo short";
    let mut c = Container::new(&["sh", "-c", script], false);
    c.spawn(&[]);
    c.ok(json!({"op": "start"}));
    assert_eq!(c.exit_status()["exit_code"], 0);
    c.assert_nothing_left();
    let entries = c.log_entries();
    let logs: Vec<&str> = entries
        .iter()
        .map(|e| e["log"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(logs.len(), 2, "a 40 KB line must be one entry");
    assert_eq!(logs[0].len(), 40_001);
    assert!(logs[0].trim_end_matches('\n').bytes().all(|b| b == b'x'));
    assert_eq!(logs[1], "short\n");
}

#[test]
fn shim_exec_client_vanishing_closes_its_stdin() {
    let mut c = Container::new(&["sleep", "1000"], false);
    c.spawn(&[]);
    c.ok(json!({"op": "start"}));
    let p = process_spec(&["cat"], false);
    let (s, r) = c.connect(json!({"op": "exec", "exec_id": "gone", "process": p}));
    assert_eq!(r["ok"], true, "{r}");
    drop(s);
    let w = c.ok(json!({"op": "exec_wait", "exec_id": "gone"}));
    assert_eq!(w["exit"]["exit_code"], 0, "cat must see EOF: {w}");
    assert_eq!(c.ok(json!({"op": "state"}))["status"], "running");
    c.ok(json!({"op": "kill", "signal": 9}));
    assert_eq!(c.exit_status()["exit_code"], 137);
    c.assert_nothing_left();
}

/// Reads frames until their text contains `needle`.
fn read_until(s: &mut UnixStream, needle: &str) -> String {
    let mut text = String::new();
    while !text.contains(needle) {
        let mut h = [0u8; 8];
        if let Err(e) = s.read_exact(&mut h) {
            panic!("waiting for {needle:?}, got {text:?}: {e}");
        }
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).expect("frame payload");
        text.push_str(&String::from_utf8_lossy(&payload));
    }
    text
}

#[test]
fn shim_tty_stays_usable_after_a_client_leaves() {
    let mut c = Container::new(&["sh"], true);
    c.spawn(&["--tty", "--stdin", "--stdin-once"]);
    c.ok(json!({"op": "start"}));
    let (mut first, r) = c.connect(json!({"op": "attach", "stdin": true, "stdout": true}));
    assert_eq!(r["ok"], true);
    first.write_all(b"echo fir$((1+1))st\n").expect("type");
    read_until(&mut first, "fir2st");
    // The first client half-closes, as `docker run -it` detaching does.
    first
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    drop(first);
    let (mut second, r) = c.connect(json!({"op": "attach", "stdin": true, "stdout": true}));
    assert_eq!(r["ok"], true);
    second.write_all(b"echo sec$((2+2))ond\n").expect("type");
    read_until(&mut second, "sec4ond");
    second.write_all(b"exit 5\n").expect("type");
    assert_eq!(c.exit_status()["exit_code"], 5);
    c.assert_nothing_left();
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based).
    let f = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    f(14) + f(15)
}

#[test]
fn shim_out_of_descriptors_neither_spins_nor_dies() {
    use std::os::unix::process::CommandExt;
    let mut c = Container::new(&["sleep", "1000"], false);
    let mut cmd = c.shim_command(&[]);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 40,
                rlim_max: 40,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_with_timeout(&mut cmd, None, TIMEOUT);
    assert!(out.success(), "berth-shim failed: {}", out.stderr);
    let pid: i32 = fs::read_to_string(c.state_dir().join("shim.pid"))
        .expect("shim.pid")
        .trim()
        .parse()
        .expect("pid");
    c.shim_pid = Some(pid);
    c.ok(json!({"op": "start"}));
    // More idle clients than the shim has descriptors for.
    let clients: Vec<UnixStream> = (0..60).filter_map(|_| c.socket().ok()).collect();
    assert!(clients.len() >= 40, "could not queue clients");
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    // Spinning on a readable listener burns tens of ticks a second even on
    // a loaded machine; backing off costs about none.
    assert!(
        used < 10,
        "shim used {used} ticks in 1 s with descriptors exhausted"
    );
    drop(clients);
    assert!(
        wait_until(TIMEOUT, || c.socket().is_ok_and(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).is_ok()
                && s.write_all(b"{\"op\":\"state\"}\n").is_ok()
                && {
                    let mut buf = [0u8; 256];
                    s.read(&mut buf)
                        .is_ok_and(|n| n > 0 && buf[..n].starts_with(b"{\"ok\":true"))
                }
        })),
        "the shim no longer answers"
    );
    c.ok(json!({"op": "kill", "signal": 9}));
    assert_eq!(c.exit_status()["exit_code"], 137);
    c.assert_nothing_left();
}
