//! A container's file system endpoints that sit beside volumes: `docker
//! diff` (changes from the overlay upper layer) and `docker export` (tar of
//! the root file system, volumes excluded) of stopped and running
//! containers; and volume references surviving a daemon restart.

use std::process::Command;

use berth_tests::cleanup::mounts_under;
use berth_tests::{assert_matches_spec, Daemon};

#[test]
fn diff_shows_added_changed_and_deleted_paths() {
    let d = Daemon::with_busybox();
    d.docker_ok(&["run", "--name", "chg", "-v", "/vol", "busybox", "sh", "-c",
        "echo x > /tmp/new; rm /bin/ls; echo y >> /etc/passwd; mkdir -p /srv/a; echo z > /vol/in-volume"]);
    let out = d.docker_ok(&["diff", "chg"]);
    let want = "C /bin\nD /bin/ls\nC /etc\nC /etc/passwd\nA /srv\nA /srv/a\nC /tmp\nA /tmp/new\n";
    assert_eq!(out, want);
    let json = d
        .curl(&["http://localhost/v1.50/containers/chg/changes"])
        .ok();
    assert_matches_spec("GET", "/containers/{id}/changes", &json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"Path": "/bin/ls", "Kind": 2})));
    // An unchanged container has no changes.
    d.docker_ok(&["run", "--name", "same", "busybox", "true"]);
    assert_eq!(d.docker_ok(&["diff", "same"]), "");
    let out = d.docker(&["diff", "ghost"]);
    assert!(
        out.stderr.contains("No such container: ghost"),
        "{}",
        out.stderr
    );
}

fn tar_list(d: &Daemon, container: &str) -> (Vec<String>, String) {
    let dir = d.dir.path().join(format!("export-{container}"));
    std::fs::create_dir_all(&dir).unwrap();
    let tarball = dir.join("fs.tar");
    d.docker_ok(&["export", "-o", &tarball.display().to_string(), container]);
    let list = Command::new("tar")
        .arg("tf")
        .arg(&tarball)
        .output()
        .expect("tar");
    assert!(list.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let passwd = Command::new("tar")
        .arg("xOf")
        .arg(&tarball)
        .arg("etc/passwd")
        .output()
        .expect("tar");
    assert!(
        passwd.status.success(),
        "{}",
        String::from_utf8_lossy(&passwd.stderr)
    );
    (names, String::from_utf8_lossy(&passwd.stdout).into_owned())
}

#[test]
fn export_stopped_and_running_containers() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "stopped",
        "-v",
        "/vol",
        "busybox",
        "sh",
        "-c",
        "echo marker >> /etc/passwd; echo v > /vol/f; rm /bin/ls",
    ]);
    let (names, passwd) = tar_list(&d, "stopped");
    assert!(passwd.ends_with("marker\n"), "{passwd}");
    assert!(
        names.iter().any(|n| n == "bin/sh"),
        "no bin/sh in the export"
    );
    assert!(
        !names.iter().any(|n| n == "bin/ls"),
        "a deleted file was exported"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("vol/") && n.len() > 4),
        "volume content was exported"
    );
    // The temporary rootfs mount is gone again.
    assert_eq!(mounts_under(d.dir.path()), Vec::<std::path::PathBuf>::new());

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "running",
        "busybox",
        "sh",
        "-c",
        "echo live >> /etc/passwd; sleep 100",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (_, passwd) = tar_list(&d, "running");
    assert!(passwd.ends_with("live\n"), "{passwd}");
    d.docker_ok(&["rm", "-f", "running"]);
}

#[test]
fn volume_users_survive_a_daemon_restart() {
    let mut d = Daemon::with_busybox();
    d.docker_ok(&[
        "create", "--name", "user", "-v", "kept:/d", "busybox", "true",
    ]);
    d.stop();
    d.start_again();
    let out = d.docker(&["volume", "rm", "kept"]);
    assert!(
        !out.success(),
        "a volume in use was removed after a restart"
    );
    assert!(out.stderr.contains("volume is in use"), "{}", out.stderr);
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "kept"]);
}
