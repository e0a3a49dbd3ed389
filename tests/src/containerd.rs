//! A private Debian containerd for tests that drive berth-runtime through
//! containerd-shim-runc-v2 with `ctr`, as Kubernetes' CRI does.
//!
//! It gets its own root, state dir, sockets and config file, a CRI section
//! with a `berth` runtime (the RuntimeClass handler form) whose CNI paths
//! point into its directory, and a containerd namespace unique to the test,
//! which is also the cgroup parent of its containers (ctr's default cgroup
//! path is `/<namespace>/<id>`). `ctr` is always given private `--runc-root`
//! and `--fifo-dir`, so only the shim socket dir `/run/containerd/s`
//! (hard-wired in the shim) is shared with the host; it is removed again when
//! this containerd created it. `Drop` stops containerd, kills shims and
//! containers left over, unmounts and removes everything.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::{
    bin_path, cleanup, require_root, run_with_timeout, spawn_logged, tail, wait_until, Output,
};

pub const CONTAINERD: &str = "/usr/bin/containerd";
pub const CTR: &str = "/usr/bin/ctr";
pub const SHIM: &str = "/usr/bin/containerd-shim-runc-v2";
/// The runtime type a RuntimeClass handler names for runc-compatible
/// runtimes; berth-runtime is its `options.BinaryName`.
pub const RUNC_V2: &str = "io.containerd.runc.v2";

/// Host paths the shim and ctr create whatever containerd's roots are,
/// deepest first.
const HOST_PATHS: &[&str] = &["/run/containerd/s", "/run/containerd"];

const TIMEOUT: Duration = Duration::from_secs(120);

pub struct PrivateContainerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    namespace: String,
    created_host_paths: Vec<&'static str>,
}

impl PrivateContainerd {
    /// Starts containerd and waits until `ctr version` answers.
    pub fn start() -> PrivateContainerd {
        require_root();
        for tool in [CONTAINERD, CTR, SHIM] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: install Debian's containerd package (scripts/deps.sh)"
            );
        }
        let created_host_paths = HOST_PATHS
            .iter()
            .copied()
            .filter(|p| !Path::new(p).exists())
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("bct-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let namespace = format!(
            "berth-ctr-{}",
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .trim_start_matches("bct-")
        );
        let p = dir.path();
        for sub in ["root", "state", "runc", "fifo", "cni/net.d", "cni/bin"] {
            fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        fs::write(p.join("config.toml"), config_toml(p)).expect("config.toml");
        let child = spawn_logged(
            Command::new(CONTAINERD)
                .arg("--config")
                .arg(p.join("config.toml")),
            &p.join("containerd.log"),
        );
        let c = PrivateContainerd {
            dir,
            child: Some(child),
            namespace,
            created_host_paths,
        };
        let up = wait_until(Duration::from_secs(60), || c.ctr(&["version"]).success());
        assert!(
            up,
            "private containerd did not come up:\n{}",
            tail(&c.log(), 30)
        );
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The containerd namespace of this test, also its cgroup parent.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The runc-compatible root ctr hands the shim (`--runc-root`):
    /// berth-runtime's `--root`, where it keeps its state per container.
    pub fn runc_root(&self) -> PathBuf {
        self.dir.path().join("runc")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` on this containerd and namespace.
    pub fn ctr(&self, args: &[&str]) -> Output {
        run_with_timeout(&mut self.ctr_command(args), None, TIMEOUT)
    }

    /// The `ctr …` command line, not started (to wrap it, e.g. in
    /// `script` for a terminal).
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CTR);
        cmd.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .arg("--namespace")
            .arg(&self.namespace)
            .args(args);
        cmd
    }

    /// `ctr …`, which must succeed; returns its stdout.
    #[track_caller]
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.success(),
            "ctr {args:?} failed ({}):\nstdout: {}\nstderr: {}\ncontainerd log:\n{}",
            out.status,
            out.stdout,
            out.stderr,
            tail(&self.log(), 20)
        );
        out.stdout
    }

    /// The `ctr run` options that select berth-runtime under
    /// containerd-shim-runc-v2: the same runtime type and
    /// `options.BinaryName` as the `berth` runtime of the CRI config, plus
    /// the private runtime root and FIFO dir.
    pub fn berth_run_args(&self) -> Vec<String> {
        vec![
            "--runtime".into(),
            RUNC_V2.into(),
            "--runc-binary".into(),
            bin_path("berth-runtime").display().to_string(),
            "--runc-root".into(),
            self.runc_root().display().to_string(),
            "--fifo-dir".into(),
            self.dir.path().join("fifo").display().to_string(),
        ]
    }

    /// `--fifo-dir <private>` for `ctr task exec`.
    pub fn fifo_args(&self) -> Vec<String> {
        vec![
            "--fifo-dir".into(),
            self.dir.path().join("fifo").display().to_string(),
        ]
    }

    /// SIGTERM and wait (containerd leaves shims running: tests delete
    /// their tasks first). After 30 s, SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling the containerd we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let exited = wait_until(Duration::from_secs(30), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// containerd 1.6's config: everything below `dir`, and the CRI runtime
/// `berth` as a Kubernetes RuntimeClass handler names it.
fn config_toml(dir: &Path) -> String {
    let runtime = bin_path("berth-runtime");
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{d}/cni/bin"
  conf_dir = "{d}/cni/net.d"

[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "berth"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
  runtime_type = "{RUNC_V2}"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
  BinaryName = "{runtime}"
  Root = "{d}/runc"
"#,
        runtime = runtime.display()
    )
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        self.stop();
        cleanup::remove_everything_under(self.dir.path(), &self.namespace);
        for p in &self.created_host_paths {
            // rmdir only: another containerd started meanwhile may use them.
            let _ = fs::remove_dir(p);
        }
    }
}
