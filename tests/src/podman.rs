//! A private rootful podman (Debian's 4.3, with conmon) that runs
//! berth-runtime as its OCI runtime.
//!
//! Nothing touches the host's podman state: storage (`--root`,
//! `--runroot`), libpod's tmp dir, the events file, volumes and the CNI
//! config dir live in a temp dir; `CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF` and
//! `CONTAINERS_REGISTRIES_CONF` point at files there. No systemd here:
//! `--cgroup-manager cgroupfs` with a cgroup parent of the test's own, and
//! `--events-backend file`. Containers get `--network none` (no netavark or
//! CNI plugins are involved).
//!
//! berth-runtime keeps its state in its default root, `/run/berth-runtime`,
//! as runc does in `/run/runc` under podman: podman's `--runtime-flag
//! root=…` is not passed on to the `podman container cleanup` that conmon
//! runs at exit, so a private root would make that cleanup miss the
//! container. The directory is removed again when this podman created it.
//!
//! The default rlimits podman asks for as root (nofile/nproc raised to the
//! maximum) need CAP_SYS_RESOURCE, which this sandbox's root lacks: runc
//! and crun refuse them as berth-runtime does, so the config lowers them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{bin_path, cleanup, require_root, run_with_timeout, Output};

pub const PODMAN: &str = "/usr/bin/podman";

const TIMEOUT: Duration = Duration::from_secs(120);

/// berth-runtime's default `--root`.
pub const RUNTIME_ROOT: &str = "/run/berth-runtime";

pub struct PrivatePodman {
    dir: tempfile::TempDir,
    cgroup_parent: String,
    created_runtime_root: bool,
}

impl PrivatePodman {
    pub fn start() -> PrivatePodman {
        require_root();
        for tool in [PODMAN, "/usr/bin/conmon"] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: install Debian's podman package (scripts/deps.sh)"
            );
        }
        let created_runtime_root = !Path::new(RUNTIME_ROOT).exists();
        let dir = tempfile::Builder::new()
            .prefix("bpd-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let cgroup_parent = format!(
            "berth-podman-{}",
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .trim_start_matches("bpd-")
        );
        let p = dir.path();
        for sub in [
            "root", "runroot", "tmp", "volumes", "libpod", "net", "cni-bin", "runtime",
        ] {
            fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        let d = p.display();
        fs::write(
            p.join("containers.conf"),
            format!(
                r#"[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"
static_dir = "{d}/libpod"
lock_type = "file"

[network]
network_backend = "cni"
network_config_dir = "{d}/net"
cni_plugin_dirs = ["{d}/cni-bin"]
"#
            ),
        )
        .expect("containers.conf");
        fs::write(
            p.join("storage.conf"),
            format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n"),
        )
        .expect("storage.conf");
        fs::write(p.join("registries.conf"), "").expect("registries.conf");
        PrivatePodman {
            dir,
            cgroup_parent,
            created_runtime_root,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The cgroup parent passed to every `podman run` (`--cgroup-parent`):
    /// containers get `<parent>/libpod-<id>`, conmon `<parent>/conmon`.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// berth-runtime's `--root` (its state dir per container).
    pub fn runtime_root(&self) -> PathBuf {
        PathBuf::from(RUNTIME_ROOT)
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        let p = self.dir.path();
        let mut cmd = Command::new(PODMAN);
        cmd.env("CONTAINERS_CONF", p.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", p.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", p.join("registries.conf"))
            .arg("--root")
            .arg(p.join("root"))
            .arg("--runroot")
            .arg(p.join("runroot"))
            .arg("--tmpdir")
            .arg(p.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .arg("--runtime")
            .arg(bin_path("berth-runtime"))
            .args(args);
        run_with_timeout(&mut cmd, None, TIMEOUT)
    }

    #[track_caller]
    pub fn podman_ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.success(),
            "podman {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `podman run --network none --cgroup-parent <ours> <args…>`.
    pub fn run(&self, args: &[&str]) -> Output {
        let parent = format!("/{}", self.cgroup_parent);
        let all = [
            &[
                "run",
                "--network",
                "none",
                "--cgroup-parent",
                parent.as_str(),
            ][..],
            args,
        ]
        .concat();
        self.podman(&all)
    }
}

impl Drop for PrivatePodman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        // Storage keeps the image layers; overlay mounts of containers are
        // gone with them, the rest is plain files.
        cleanup::remove_everything_under(self.dir.path(), &self.cgroup_parent);
        if self.created_runtime_root {
            // rmdir only: other runtimes' users may have started meanwhile.
            let _ = fs::remove_dir(RUNTIME_ROOT);
        }
    }
}
