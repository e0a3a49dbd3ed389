//! Host-side security of the data and exec roots (issue 9): a setuid file
//! made inside a container is out of reach for other host users (as
//! CVE-2021-41091 was not in dockerd), modes of older installs are repaired
//! at start, and trees nested deeper than any stack (commit, diff, export,
//! cp, archive upload, volume copy-up, rm) neither crash nor stall berthd.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_tests::{run_with_timeout, tarball, wait_until, Daemon};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Runs `path id -u` (a setuid busybox) as `nobody`; its stdout, or the
/// error when it could not be run. The exec happens in a shell that already
/// is `nobody` (setpriv's own exec of its argument is not a fair test).
fn run_as_nobody(path: &Path) -> Result<String, String> {
    let out = run_with_timeout(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["sh", "-c", r#"exec "$0" id -u"#])
            .arg(path),
        None,
        Duration::from_secs(20),
    );
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(out.stderr)
    }
}

#[test]
fn setuid_files_from_containers_are_out_of_reach_for_other_users() {
    let mut d = Daemon::with_busybox();
    for root in [&d.data_root, &d.exec_root] {
        assert_eq!(mode(root), 0o710, "{}", root.display());
    }
    let id = d
        .docker_ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "cp /bin/busybox /busybox && chmod 4755 /busybox && touch /ready && sleep 600",
        ])
        .trim()
        .to_string();
    let upper = d
        .data_root
        .join("overlay/containers")
        .join(&id)
        .join("upper");
    let mounted = d.exec_root.join("shims").join(&id).join("rootfs");
    assert!(
        wait_until(Duration::from_secs(20), || upper.join("ready").exists()),
        "the container never wrote its files"
    );
    // The file really is setuid root: root itself may run it.
    assert_eq!(mode(&upper.join("busybox")) & 0o4000, 0o4000);
    for path in [upper.join("busybox"), mounted.join("busybox")] {
        let res = run_as_nobody(&path);
        assert!(
            matches!(&res, Err(e) if e.contains("Permission denied")),
            "nobody could run {}: {res:?}",
            path.display()
        );
    }
    d.docker_ok(&["stop", "-t", "0", &id]);
    let res = run_as_nobody(&upper.join("busybox"));
    assert!(res.is_err(), "stopped container: {res:?}");

    // An older install with world-readable directories is repaired at start.
    d.stop();
    for p in [&d.data_root, &d.exec_root, &d.data_root.join("overlay")] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    d.start_again();
    for p in [&d.data_root, &d.exec_root, &d.data_root.join("overlay")] {
        assert_eq!(mode(p), 0o710, "{} not repaired", p.display());
    }
    let res = run_as_nobody(&upper.join("busybox"));
    assert!(res.is_err(), "after restart: {res:?}");
    d.docker_ok(&["rm", "-f", &id]);
}

const DEEP: usize = 1500;

/// A container whose file system holds a directory DEEP levels down with a
/// file at the bottom.
fn deep_container(d: &Daemon, name: &str) {
    let script = format!(
        "i=0; while [ $i -lt {DEEP} ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; \
         echo bottom > f"
    );
    d.docker_ok(&[
        "run", "--name", name, "-w", "/deep", "busybox", "sh", "-c", &script,
    ]);
}

#[test]
fn trees_deeper_than_the_stack_commit_diff_export_and_remove() {
    let d = Daemon::with_busybox();
    deep_container(&d, "deep");

    let image = d.docker_ok(&["commit", "deep", "deep:1"]);
    assert!(image.trim().starts_with("sha256:"), "{image}");
    assert!(d.ping(), "berthd died committing a deep tree");
    // The committed layer has the bottom file.
    let depth = d.docker_ok(&[
        "run",
        "--rm",
        "deep:1",
        "sh",
        "-c",
        "cd /deep && n=0; while cd d 2>/dev/null; do n=$((n+1)); done; echo $n $(cat f)",
    ]);
    assert_eq!(depth.trim(), format!("{DEEP} bottom"));

    let diff = d.docker_ok(&["diff", "deep"]);
    assert!(
        diff.lines()
            .any(|l| l.starts_with("A ") && l.ends_with("/d/f")),
        "diff lacks the deep file: {}",
        &diff[..diff.len().min(300)]
    );

    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export.tar");
    d.docker_ok(&["export", "-o", export.to_str().unwrap(), "deep"]);
    let list = run_with_timeout(
        Command::new("tar").arg("-tf").arg(&export),
        None,
        Duration::from_secs(60),
    )
    .ok();
    assert!(
        list.lines().any(|l| l.ends_with("/d/f")),
        "the export lacks the deep file"
    );
    let copied = tmp.path().join("copied");
    d.docker_ok(&["cp", "deep:/deep", copied.to_str().unwrap()]);
    let mut bottom = copied.clone();
    for _ in 0..DEEP {
        bottom.push("d");
    }
    assert_eq!(fs::read_to_string(bottom.join("f")).unwrap(), "bottom\n");

    // A volume on the deep directory is filled from the image (copy-up).
    let vol = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "deepvol:/deep",
        "deep:1",
        "sh",
        "-c",
        "cd /deep && n=0; while cd d 2>/dev/null; do n=$((n+1)); done; echo $n",
    ]);
    assert_eq!(vol.trim(), DEEP.to_string());

    d.docker_ok(&["rm", "deep"]);
    d.docker_ok(&["volume", "rm", "deepvol"]);
    d.docker_ok(&["rmi", "deep:1"]);
    assert!(d.ping());
}

/// A host directory tree `depth` levels deep with a file at the bottom.
fn host_tree(base: &Path, depth: usize) -> PathBuf {
    let mut p = base.join("up");
    for _ in 0..depth {
        p.push("d");
    }
    fs::create_dir_all(&p).unwrap();
    fs::write(p.join("f"), b"uploaded").unwrap();
    base.join("up")
}

#[test]
fn deep_archive_uploads_extract() {
    let d = Daemon::with_busybox();
    let id = d
        .docker_ok(&["run", "-d", "busybox", "sleep", "600"])
        .trim()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    host_tree(tmp.path(), 1000);
    let archive = tmp.path().join("up.tar");
    tarball::create(tmp.path(), &archive, "up");
    let out = d.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/x-tar",
        "--data-binary",
        &format!("@{}", archive.display()),
        &format!("http://berth/containers/{id}/archive?path=/tmp"),
    ]);
    assert_eq!(out.stdout.trim(), "200", "{}", out.stderr);
    let found = d.docker_ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cd /tmp/up && n=0; while cd d 2>/dev/null; do n=$((n+1)); done; echo $n $(cat f)",
    ]);
    assert_eq!(found.trim(), "1000 uploaded");
    d.docker_ok(&["rm", "-f", &id]);
}
