//! Helpers shared by berth's integration tests: where the built binaries and
//! fixtures are, a private `berthd` per test, and the real clients (docker
//! CLI, docker-py, curl) pointed at it.
//!
//! Every test gets its own data root, exec root, socket and cgroup parent, and
//! `Daemon`'s `Drop` removes all of it: shims and containers, mounts, cgroups,
//! files. Tests need root; anything missing is a failure with a clear message.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod cleanup;
pub mod containerd;
pub mod dockerd;
pub mod host_cmd;
pub mod image_store;
pub mod podman;
pub mod py;
pub mod registry;
pub mod server_thread;
pub mod tarball;

/// The workspace checkout.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The directory the workspace's binaries were built into: the profile dir
/// of the running test (`target/<profile>/deps/test-xxx` → `target/<profile>`),
/// or `$BERTH_BIN_DIR`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("test binary has a dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A built binary of the workspace (berthd, berth-shim, berth-runtime).
pub fn bin_path(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is not built: run `cargo build --workspace` (same profile as the tests) first",
        p.display()
    );
    p
}

/// Built test images (see rootfs-fixtures/build.sh): `busybox/rootfs/` and
/// `busybox.tar`. Built once per machine into `target/fixtures`, or taken from
/// `$BERTH_FIXTURES`.
pub fn fixtures_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("BERTH_FIXTURES") {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join("busybox.tar").is_file(),
                "BERTH_FIXTURES={} has no busybox.tar",
                dir.display()
            );
            return dir;
        }
        let dir = workspace_root().join("target/fixtures");
        fs::create_dir_all(&dir).expect("create target/fixtures");
        // Several test binaries may ask at once: build under a lock.
        let lock = fs::File::create(dir.join(".lock")).expect("fixtures lock");
        flock(&lock);
        if !dir.join("busybox.tar").is_file() {
            let status = Command::new(workspace_root().join("rootfs-fixtures/build.sh"))
                .arg(&dir)
                .status()
                .expect("run rootfs-fixtures/build.sh");
            assert!(status.success(), "rootfs-fixtures/build.sh failed");
        }
        dir
    })
    .clone()
}

fn flock(f: &fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a valid, open file descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
}

/// The busybox image archive.
pub fn busybox_tar() -> PathBuf {
    fixtures_dir().join("busybox.tar")
}

/// The Python image of SCENARIOS.md §3 (rootfs-fixtures/build-python.sh:
/// Debian's python3, pip and Flask), built on first use.
pub fn python_tar() -> PathBuf {
    let dir = fixtures_dir();
    let tar = dir.join("python.tar");
    let lock = fs::File::create(dir.join(".lock")).expect("fixtures lock");
    flock(&lock);
    if !tar.is_file() {
        let status = Command::new(workspace_root().join("rootfs-fixtures/build-python.sh"))
            .arg(&dir)
            .status()
            .expect("run rootfs-fixtures/build-python.sh");
        assert!(status.success(), "rootfs-fixtures/build-python.sh failed");
    }
    tar
}

/// A fresh copy of the busybox root filesystem in `dest`.
pub fn copy_busybox_rootfs(dest: &Path) {
    let src = fixtures_dir().join("busybox/rootfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dest)
        .status()
        .expect("cp");
    assert!(status.success(), "copying the busybox rootfs failed");
}

/// The docker CLI under test: /usr/local/bin/docker (28.x) when present.
pub fn docker_cli() -> PathBuf {
    let preferred = Path::new("/usr/local/bin/docker");
    if preferred.is_file() {
        preferred.to_path_buf()
    } else {
        PathBuf::from("docker")
    }
}

/// The Python with docker-py: `$BERTH_VENV/bin/python` or `.venv/bin/python`.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("BERTH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/deps.sh to create the docker-py venv",
        py.display()
    );
    py
}

/// What a finished command gave.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout, or a panic showing everything when the command failed.
    #[track_caller]
    pub fn ok(self) -> String {
        assert!(
            self.status.success(),
            "command failed ({}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }
}

/// Runs `cmd` with `stdin` fed to it, killing it after `timeout`.
/// Start a server in the background: stdin from /dev/null, stdout and
/// stderr appended to `log` (made if missing).
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup log"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()))
}

pub fn run_with_timeout(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{:?} {:?} did not finish within {:?}",
                cmd.get_program(),
                cmd.get_args().collect::<Vec<_>>(),
                timeout
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned(),
    }
}

/// How to start a test daemon.
#[derive(Default, Clone)]
pub struct DaemonOptions {
    /// Written as the daemon.json passed with --config-file.
    pub config: Option<serde_json::Value>,
    /// Extra berthd flags.
    pub args: Vec<String>,
}

/// A private berthd with its own directories, socket and cgroup parent.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub pidfile: PathBuf,
    pub config_file: PathBuf,
    pub cgroup_parent: String,
    pub log_file: PathBuf,
    /// This daemon's own default bridge, unless the options name one.
    pub network: Option<TestNetwork>,
    docker_config: PathBuf,
    options: DaemonOptions,
    /// Extra environment of berthd (see `set_env`).
    env: Vec<(String, String)>,
    child: Option<Child>,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl Daemon {
    /// Starts berthd and waits until `/_ping` answers.
    pub fn start() -> Daemon {
        Self::start_with(DaemonOptions::default())
    }

    pub fn start_with(options: DaemonOptions) -> Daemon {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("temp dir");
        // Other users' processes (the shim runs as root anyway) must be able to
        // traverse it; tempdir makes it 0700.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let base = dir.path().to_path_buf();
        let suffix = base
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("x")
            .trim_start_matches("berth-test-")
            .to_string();
        let docker_config = base.join("docker-config");
        fs::create_dir_all(&docker_config).expect("docker config dir");
        let names_network = |key: &str| {
            options
                .args
                .iter()
                .any(|a| a.starts_with(&format!("--{key}")))
                || options
                    .config
                    .as_ref()
                    .is_some_and(|c| c.get(key).is_some())
        };
        let network = (!names_network("bridge") && !names_network("bip")).then(TestNetwork::claim);
        let mut d = Daemon {
            network,
            socket: base.join("berth.sock"),
            data_root: base.join("data"),
            exec_root: base.join("exec"),
            pidfile: base.join("berthd.pid"),
            config_file: base.join("daemon.json"),
            log_file: base.join("berthd.log"),
            cgroup_parent: format!("berth-test-{suffix}"),
            docker_config,
            options,
            env: Vec::new(),
            child: None,
            dir,
        };
        let config = d
            .options
            .config
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        fs::write(&d.config_file, config.to_string()).expect("write daemon.json");
        d.spawn();
        d
    }

    /// A daemon with the busybox fixture image loaded.
    pub fn with_busybox() -> Daemon {
        let d = Self::start();
        d.load_busybox();
        d
    }

    /// `docker inspect --type KIND NAME` (container, image, volume,
    /// network): the one object.
    #[track_caller]
    pub fn inspect(&self, kind: &str, name: &str) -> serde_json::Value {
        let out = self.docker_ok(&["inspect", "--type", kind, name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
        v[0].clone()
    }

    /// The arguments berthd is started with.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "-H".to_string(),
            format!("unix://{}", self.socket.display()),
            "--data-root".into(),
            self.data_root.display().to_string(),
            "--exec-root".into(),
            self.exec_root.display().to_string(),
            "--pidfile".into(),
            self.pidfile.display().to_string(),
            "--config-file".into(),
            self.config_file.display().to_string(),
            "--cgroup-parent".into(),
            self.cgroup_parent.clone(),
        ];
        if let Some(net) = &self.network {
            args.extend([
                "--bridge".into(),
                net.bridge.clone(),
                "--bip".into(),
                net.bip(),
            ]);
        }
        args.extend(self.options.args.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        let child = spawn_logged(
            Command::new(bin_path("berthd"))
                .args(self.args())
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "debug".into()),
                )
                .envs(self.env.iter().map(|(k, v)| (k, v))),
            &self.log_file,
        );
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!("berthd exited during start-up ({st}):\n{}", self.log());
                }
            }
            if self.ping() {
                return;
            }
            if Instant::now() > deadline {
                panic!("berthd did not answer /_ping within 30s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True when `GET /_ping` answers 200 OK.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.1 200")
    }

    /// berthd's own log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `unix://…` for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn client_env(&self, cmd: &mut Command) {
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.docker_config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_TLS_VERIFY")
            .env("DOCKER_CLI_HINTS", "false");
    }

    /// The real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_stdin(args, None)
    }

    /// `docker` with bytes on its stdin.
    pub fn docker_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(docker_cli());
        self.client_env(&mut cmd);
        cmd.args(args);
        run_with_timeout(&mut cmd, stdin, DEFAULT_TIMEOUT)
    }

    /// `docker …`, which must succeed; returns its stdout.
    #[track_caller]
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        if !out.success() {
            panic!(
                "docker {} failed ({}):\nstdout: {}\nstderr: {}\nberthd log tail:\n{}",
                args.join(" "),
                out.status,
                out.stdout,
                out.stderr,
                tail(&self.log(), 40)
            );
        }
        out.stdout
    }

    /// A `docker` command to run some other way (pty, tmux, pipes).
    pub fn docker_command(&self) -> Command {
        let mut cmd = Command::new(docker_cli());
        self.client_env(&mut cmd);
        cmd
    }

    /// `docker load` of the busybox fixture.
    pub fn load_busybox(&self) {
        let tar = busybox_tar();
        self.docker_ok(&["load", "-i", &tar.display().to_string()]);
    }

    /// curl against the socket; `args` are curl's (URL paths as
    /// `http://localhost/...`).
    pub fn curl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("curl");
        cmd.arg("-sS")
            .arg("--unix-socket")
            .arg(&self.socket)
            .args(args);
        run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT)
    }

    /// Runs a Python script with docker-py, DOCKER_HOST pointing here.
    pub fn python(&self, script: &str) -> Output {
        let mut cmd = Command::new(venv_python());
        self.client_env(&mut cmd);
        cmd.arg("-c").arg(script);
        run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT)
    }

    /// Runs a Python script file (e.g. tests/py/x.py) with docker-py.
    pub fn python_file(&self, path: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(venv_python());
        self.client_env(&mut cmd);
        cmd.env("BERTH_FIXTURES", fixtures_dir());
        cmd.arg(path).args(args);
        run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT)
    }

    /// SIGTERM and wait; the daemon's directories stay for `start_again`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id() as i32, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("berthd did not stop within 20s of SIGTERM:\n{}", self.log());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Set (or with `None` unset) an environment variable of berthd for
    /// its next start (`start_again`).
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_string(), v.to_string()));
        }
    }

    /// True once the berthd process has exited (e.g. crashed); it is then
    /// reaped, so `start_again` can follow.
    pub fn exited(&mut self) -> bool {
        let done = self
            .child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some());
        if done {
            self.child = None;
        }
        done
    }

    /// Starts berthd again on the same directories.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "berthd is still running");
        self.spawn();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGKILL: a graceful stop would first stop every running container
        // with its stop timeout, and the clean-up below removes them anyway.
        self.kill9();
        // User networks a test left (or made through a fuzzer): their
        // bridges and NAT rules outlive berthd, as with dockerd.
        for bridge in cleanup::user_network_bridges(&self.data_root) {
            cleanup::remove_network(&bridge);
        }
        cleanup::remove_everything_under(self.dir.path(), &self.cgroup_parent);
        if let Some(net) = &self.network {
            cleanup::remove_network(&net.bridge);
        }
    }
}

/// A bridge name and /24 subnet that no other test daemon on this machine
/// holds: slot N is claimed by an exclusive lock on a file, held for the
/// daemon's lifetime, so parallel tests and test binaries never share one.
pub struct TestNetwork {
    pub bridge: String,
    /// The third octet of 10.123.N.0/24.
    pub slot: u8,
    _lock: fs::File,
}

impl TestNetwork {
    fn claim() -> TestNetwork {
        use std::os::fd::AsRawFd;
        let dir = Path::new("/run/berth-test-networks");
        fs::create_dir_all(dir).expect("create /run/berth-test-networks");
        for slot in 1..=254u8 {
            let f = fs::File::create(dir.join(format!("{slot}.lock"))).expect("network slot lock");
            // SAFETY: flock on a valid, open file descriptor.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                let bridge = format!("bt{slot}");
                // A previous run that crashed may have left it behind.
                cleanup::remove_network(&bridge);
                return TestNetwork {
                    bridge,
                    slot,
                    _lock: f,
                };
            }
        }
        panic!("all 254 test network slots are in use");
    }

    /// The bridge's address and prefix, as `--bip` takes it.
    pub fn bip(&self) -> String {
        format!("10.123.{}.1/24", self.slot)
    }

    /// The subnet, e.g. `10.123.7.0/24`.
    pub fn subnet(&self) -> String {
        format!("10.123.{}.0/24", self.slot)
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Fails the test with a clear message unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "berth's integration tests need root (CI runs them as root)"
    );
}

/// Where the reliability tests (crash loop, leak soak, API fuzzer) leave
/// their figures: `$BERTH_FIGURES_FILE`, or target/reliability-figures.txt.
/// scripts/test.sh and scripts/reliability.sh print it at the end.
pub fn figures_file() -> PathBuf {
    std::env::var_os("BERTH_FIGURES_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/reliability-figures.txt"))
}

/// Prints a line of figures and appends it to [`figures_file`].
pub fn report_figures(line: &str) {
    eprintln!("{line}");
    let appended = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(figures_file())
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = appended {
        eprintln!("(figures not recorded: {e})");
    }
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The Engine API spec: `$BERTH_API_SPEC`, or `shared/reference/` beside the
/// checkout (where CI and developers have it).
pub fn api_spec() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_API_SPEC") {
        return PathBuf::from(p);
    }
    let p = workspace_root()
        .parent()
        .map(|d| d.join("shared/reference/engine-api-v1.50.yaml"))
        .unwrap_or_default();
    assert!(
        p.is_file(),
        "the API spec is not at {} (set BERTH_API_SPEC)",
        p.display()
    );
    p
}

/// Fails unless `json` conforms to the spec's response schema for
/// `method spec_path` (e.g. "GET", "/containers/{id}/json") and its 2xx status.
#[track_caller]
pub fn assert_matches_spec(method: &str, spec_path: &str, json: &str) {
    let mut cmd = Command::new(venv_python());
    cmd.arg(workspace_root().join("tests/py/schema_check.py"))
        .arg(api_spec())
        .arg(method)
        .arg(spec_path);
    let out = run_with_timeout(&mut cmd, Some(json.as_bytes()), DEFAULT_TIMEOUT);
    assert!(
        out.success(),
        "{method} {spec_path} does not match the spec:\n{}{}\ndocument: {}",
        out.stdout,
        out.stderr,
        &json[..json.len().min(2000)]
    );
}
