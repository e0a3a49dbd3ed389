//! A private Debian dockerd (docker.io, with the containerd it starts) for
//! tests that compare berth with it or drive berth-runtime through it.
//!
//! It gets its own socket, data root, exec root, pidfile, config file and
//! cgroup parent, no networking setup (`--bridge=none`, no iptables), and
//! never touches `/var/run/docker.sock`. `Drop` stops dockerd (which stops its
//! containerd and shims), kills whatever is left, unmounts and removes its
//! directory and cgroups, and removes the host paths dockerd creates even
//! with private roots (`/run/docker`, `/etc/docker`) unless they existed.

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use crate::{
    cleanup, docker_cli, require_root, run_with_timeout, spawn_logged, tail, wait_until, Output,
    DEFAULT_TIMEOUT,
};

pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// Host paths dockerd creates whatever its roots are (plugin dir, trust
/// key dir), deepest first.
const DOCKERD_HOST_PATHS: &[&str] = &[
    "/run/docker/plugins",
    "/run/docker",
    "/etc/docker/key.json",
    "/etc/docker",
];

pub struct PrivateDockerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    cgroup_parent: String,
    /// Of DOCKERD_HOST_PATHS, those that did not exist before the start.
    created_host_paths: Vec<&'static str>,
}

impl PrivateDockerd {
    /// Starts dockerd and waits until `docker version` answers.
    pub fn start() -> PrivateDockerd {
        PrivateDockerd::start_with(&[])
    }

    /// Same, with more dockerd arguments (e.g. `--add-runtime=name=path`).
    pub fn start_with(extra_args: &[String]) -> PrivateDockerd {
        require_root();
        for tool in [
            DOCKERD,
            "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2",
        ] {
            assert!(
                Path::new(tool).is_file(),
                "{tool} is missing: install Debian's docker.io package (apt-get install docker.io)"
            );
        }
        let created_host_paths = DOCKERD_HOST_PATHS
            .iter()
            .copied()
            .filter(|p| !Path::new(p).exists())
            .collect();
        // Short path: containerd's sockets live below the exec root.
        let dir = tempfile::Builder::new()
            .prefix("bdk-")
            .tempdir_in("/var/tmp")
            .expect("tempdir");
        let cgroup_parent = format!(
            "berth-dockerd-{}",
            dir.path()
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
        );
        let p = dir.path();
        for sub in ["data", "exec", "cli"] {
            fs::create_dir_all(p.join(sub)).expect("mkdir");
        }
        // The trust key would otherwise be written to /etc/docker/key.json.
        let config = serde_json::json!({ "deprecated-key-path": p.join("key.json") });
        fs::write(p.join("daemon.json"), config.to_string()).expect("daemon.json");
        let child = spawn_logged(
            Command::new(DOCKERD)
                .arg("--host")
                .arg(format!("unix://{}", p.join("docker.sock").display()))
                .arg("--data-root")
                .arg(p.join("data"))
                .arg("--exec-root")
                .arg(p.join("exec"))
                .arg("--pidfile")
                .arg(p.join("dockerd.pid"))
                .arg("--config-file")
                .arg(p.join("daemon.json"))
                .args([
                    "--bridge=none",
                    "--iptables=false",
                    "--ip6tables=false",
                    "--ip-masq=false",
                    "--ip-forward=false",
                    "--userland-proxy=false",
                    "--storage-driver=overlay2",
                    "--exec-opt=native.cgroupdriver=cgroupfs",
                ])
                .arg(format!("--cgroup-parent={cgroup_parent}"))
                .args(extra_args),
            &p.join("dockerd.log"),
        );
        let d = PrivateDockerd {
            dir,
            child: Some(child),
            cgroup_parent,
            created_host_paths,
        };
        let up = wait_until(Duration::from_secs(60), || d.docker(&["version"]).success());
        assert!(
            up,
            "private dockerd did not come up:\n{}",
            tail(&d.log(), 30)
        );
        d
    }

    /// Its directory: `data/`, `exec/`, `docker.sock`, `dockerd.log`, …
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The cgroup parent its containers are created under (cgroupfs driver:
    /// `<parent>/<container id>` in each hierarchy).
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// The docker CLI pointed at this dockerd.
    pub fn docker(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(docker_cli());
        cmd.env(
            "DOCKER_HOST",
            format!("unix://{}", self.dir.path().join("docker.sock").display()),
        )
        .env("DOCKER_CONFIG", self.dir.path().join("cli"))
        .env_remove("DOCKER_CONTEXT")
        .args(args);
        run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT)
    }

    /// curl against its socket (URL paths as `http://localhost/...`).
    pub fn curl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("curl");
        cmd.arg("-sS")
            .arg("--unix-socket")
            .arg(self.dir.path().join("docker.sock"))
            .args(args);
        run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT)
    }

    /// `docker …`, which must succeed; returns its stdout.
    #[track_caller]
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.success(),
            "dockerd: docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndockerd log:\n{}",
            out.status,
            out.stdout,
            out.stderr,
            tail(&self.log(), 20)
        );
        out.stdout
    }

    /// SIGTERM and wait: dockerd stops its containerd, which stops shims.
    /// After 30 s, SIGKILL.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling the dockerd we spawned.
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

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        self.stop();
        cleanup::remove_everything_under(self.dir.path(), &self.cgroup_parent);
        for p in &self.created_host_paths {
            if p.ends_with(".json") {
                let _ = fs::remove_file(p);
            } else {
                // rmdir only: another dockerd started meanwhile may use them.
                let _ = fs::remove_dir(p);
            }
        }
    }
}
