//! A busybox OCI bundle plus a private `--root` for driving berth-runtime
//! directly. Drop kills, unmounts and removes everything it made.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_tests::{bin_path, cleanup, copy_busybox_rootfs, require_root, run_with_timeout, Output};
use serde_json::{json, Value};

pub const TIMEOUT: Duration = Duration::from_secs(60);

pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub cgroup_parent: String,
    pub config: Value,
    counter: std::sync::atomic::AtomicU32,
}

pub fn runtime() -> PathBuf {
    bin_path("berth-runtime")
}

impl Bundle {
    /// A bundle whose config is `berth-runtime spec`'s template with
    /// terminal off and a private cgroup parent.
    pub fn new() -> Bundle {
        require_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-rt-")
            .tempdir()
            .expect("tempdir");
        let bundle = dir.path().join("bundle");
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("mkdir rootfs");
        copy_busybox_rootfs(&rootfs);
        let out = run_with_timeout(
            Command::new(runtime())
                .arg("spec")
                .arg("--bundle")
                .arg(&bundle),
            None,
            TIMEOUT,
        );
        assert!(out.success(), "berth-runtime spec failed: {}", out.stderr);
        let config: Value = serde_json::from_slice(
            &std::fs::read(bundle.join("config.json")).expect("read config.json"),
        )
        .expect("parse template config.json");
        let name = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("berth-rt")
            .to_string();
        let mut b = Bundle {
            root: dir.path().join("state"),
            bundle,
            cgroup_parent: name,
            config,
            dir,
            counter: std::sync::atomic::AtomicU32::new(0),
        };
        b.config["process"]["terminal"] = json!(false);
        b
    }

    /// A fresh container id for this bundle.
    pub fn id(&self, what: &str) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        format!("{what}-{}-{n}", std::process::id())
    }

    pub fn set_args(&mut self, args: &[&str]) {
        self.config["process"]["args"] = json!(args);
    }

    /// Drops the namespace of this type (e.g. "pid") from the config: the
    /// container shares the host's.
    pub fn remove_namespace(&mut self, kind: &str) {
        let ns: Vec<serde_json::Value> = self.config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] != kind)
            .cloned()
            .collect();
        self.config["linux"]["namespaces"] = json!(ns);
    }

    /// Write config.json, with a cgroupsPath below our private parent.
    pub fn write_config(&self, id: &str) {
        let mut c = self.config.clone();
        if c["linux"]["cgroupsPath"].is_null() {
            c["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", self.cgroup_parent));
        }
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&c).expect("encode config"),
        )
        .expect("write config.json");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(runtime());
        cmd.arg("--root").arg(&self.root).args(args);
        cmd
    }

    /// berth-runtime --root <ours> <args>.
    pub fn rt(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.command(args), None, TIMEOUT)
    }

    /// For commands that leave a container process behind (create, run -d,
    /// exec -d): its stdio goes to files, so nothing waits on pipes the
    /// container keeps open.
    pub fn rt_detached(&self, args: &[&str]) -> Output {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let out_path = self.dir.path().join(format!("detached-{n}.out"));
        let err_path = self.dir.path().join(format!("detached-{n}.err"));
        let mut cmd = self.command(args);
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out_path).expect("stdout file"))
            .stderr(std::fs::File::create(&err_path).expect("stderr file"));
        let mut child = cmd.spawn().expect("spawn berth-runtime");
        let deadline = std::time::Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("berth-runtime {args:?} did not finish within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Output {
            status,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        }
    }

    /// Foreground `run` of the current config under a new id.
    pub fn run(&self, what: &str) -> Output {
        let id = self.id(what);
        self.write_config(&id);
        let b = self.bundle.display().to_string();
        self.rt(&["run", "--bundle", &b, &id])
    }

    /// Foreground run that must succeed; its stdout.
    #[track_caller]
    pub fn run_ok(&self, what: &str) -> String {
        let out = self.run(what);
        assert!(
            out.success(),
            "run failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `run --detach` a long-running container; returns its id.
    pub fn start_detached(&mut self, what: &str) -> String {
        let id = self.id(what);
        self.write_config(&id);
        let b = self.bundle.display().to_string();
        let out = self.rt_detached(&["run", "--detach", "--bundle", &b, &id]);
        assert!(out.success(), "run -d failed: {}", out.stderr);
        id
    }

    pub fn state(&self, id: &str) -> Value {
        let out = self.rt(&["state", id]);
        assert!(out.success(), "state {id} failed: {}", out.stderr);
        serde_json::from_str(&out.stdout).expect("state is JSON")
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Cgroup directories left for `id` in any hierarchy.
    pub fn cgroup_leftovers(&self, id: &str) -> Vec<PathBuf> {
        cleanup::cgroup_dirs(&self.cgroup_parent)
            .into_iter()
            .filter(|p| p.ends_with(id))
            .collect()
    }

    pub fn mounts_under_bundle(&self) -> Vec<PathBuf> {
        cleanup::mounts_under(self.dir.path())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if let Some(id) = e.file_name().to_str() {
                    let _ = run_with_timeout(
                        &mut self.command(&["delete", "--force", id]),
                        None,
                        TIMEOUT,
                    );
                }
            }
        }
        cleanup::remove_everything_under(self.dir.path(), &self.cgroup_parent);
    }
}

/// Capability set from a /proc/<pid>/status line like "CapEff:\t00000000a80425fb".
pub fn cap_line(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    let hex = line.split_whitespace().nth(1).expect("cap value");
    u64::from_str_radix(hex, 16).expect("hex caps")
}
