//! Archives move between berthd and Debian's dockerd (docker.io) both ways
//! with the same image IDs and tags. dockerd runs on a private socket,
//! data root and exec root, without networking setup, and is stopped and
//! removed afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{docker_cli, run_with_timeout, Daemon, Output, DEFAULT_TIMEOUT};

struct PrivateDockerd {
    dir: tempfile::TempDir,
    child: Child,
    /// Host paths dockerd creates even with private roots (plugin dir, its
    /// trust key), removed again unless they existed before.
    created_host_dirs: Vec<&'static str>,
}

const DOCKERD_HOST_DIRS: &[&str] = &[
    "/run/docker/plugins",
    "/run/docker",
    "/etc/docker/key.json",
    "/etc/docker",
];

impl PrivateDockerd {
    fn start() -> PrivateDockerd {
        let created_host_dirs = DOCKERD_HOST_DIRS
            .iter()
            .copied()
            .filter(|d| !Path::new(d).exists())
            .collect();
        let dockerd = Path::new("/usr/sbin/dockerd");
        assert!(
            dockerd.is_file(),
            "dockerd (Debian docker.io) is needed at /usr/sbin/dockerd for this test"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd-")
            .tempdir()
            .expect("temp dir");
        let p = dir.path();
        std::fs::write(p.join("daemon.json"), "{}").expect("daemon.json");
        let log = std::fs::File::create(p.join("log")).expect("log");
        let child = Command::new(dockerd)
            .arg("-H")
            .arg(format!("unix://{}", p.join("docker.sock").display()))
            .arg("--data-root")
            .arg(p.join("data"))
            .arg("--exec-root")
            .arg(p.join("exec"))
            .arg("--pidfile")
            .arg(p.join("docker.pid"))
            .arg("--config-file")
            .arg(p.join("daemon.json"))
            .args([
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ])
            .args(["--storage-driver", "overlay2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let d = PrivateDockerd {
            dir,
            child,
            created_host_dirs,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !d.docker(&["version"]).success() {
            assert!(
                Instant::now() < deadline,
                "private dockerd did not start:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
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

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.success(),
            "dockerd: docker {args:?} failed: {}\n{}",
            out.stderr,
            self.log()
        );
        out.stdout
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the dockerd we spawned.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // dockerd's containerd leaves its state under our dirs; nothing is mounted.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("exec"))
            .stderr(Stdio::null())
            .status();
        for d in &self.created_host_dirs {
            if d.ends_with(".json") {
                let _ = std::fs::remove_file(d);
            } else {
                // remove_dir only removes empty directories.
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn archives_move_between_berthd_and_dockerd() {
    let berth = Daemon::start();
    berth.load_busybox();
    berth.docker_ok(&["tag", "busybox", "berth/made:1"]);
    let id = berth
        .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .trim()
        .to_owned();
    let from_berth: PathBuf = berth.dir.path().join("from-berth.tar");
    berth.docker_ok(&[
        "save",
        "-o",
        &path_str(&from_berth),
        "busybox",
        "berth/made:1",
    ]);

    let dockerd = PrivateDockerd::start();
    let out = dockerd.docker_ok(&["load", "-i", &path_str(&from_berth)]);
    assert!(
        out.contains("Loaded image: busybox:latest") && out.contains("Loaded image: berth/made:1"),
        "{out}"
    );
    assert_eq!(
        dockerd
            .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "berth/made:1"])
            .trim(),
        id
    );

    // And back: dockerd's own save of a retagged image loads into berthd.
    dockerd.docker_ok(&["tag", "busybox", "dockerd/made:2"]);
    let from_dockerd = berth.dir.path().join("from-dockerd.tar");
    dockerd.docker_ok(&["save", "-o", &path_str(&from_dockerd), "dockerd/made:2"]);
    berth.docker_ok(&["rmi", "-f", &id]);
    let out = berth.docker_ok(&["load", "-i", &path_str(&from_dockerd)]);
    assert_eq!(out.trim(), "Loaded image: dockerd/made:2");
    assert_eq!(
        berth
            .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "dockerd/made:2"])
            .trim(),
        id
    );
    let tags = berth.docker_ok(&["image", "inspect", "-f", "{{json .RepoTags}}", &id]);
    assert_eq!(tags.trim(), r#"["dockerd/made:2"]"#);
}
