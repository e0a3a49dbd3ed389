//! `docker cp` through the real docker CLI: both directions, running and
//! stopped containers, volumes, tar streams, and escape attempts that must
//! change nothing on the host.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use berth_tests::{py, run_with_timeout, Daemon, DEFAULT_TIMEOUT};

fn started(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["busybox", "sleep", "1000"]);
    d.docker_ok(&all).trim().to_string()
}

fn host_tar(dir: &Path) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar failed");
    out.stdout
}

#[test]
fn cp_both_ways_running_and_stopped_with_volume() {
    let d = Daemon::start();
    d.load_busybox();
    let work = tempfile::tempdir().unwrap();
    let c = started(&d, &["-v", "cpvol:/data"]);

    // Host → container: a file, then a directory tree, then into the volume.
    let file = work.path().join("hello.txt");
    fs::write(&file, "hello from the host\n").unwrap();
    d.docker_ok(&["cp", &file.display().to_string(), &format!("{c}:/tmp/")]);
    let tree = work.path().join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("sub/a"), "a").unwrap();
    symlink("sub/a", tree.join("link")).unwrap();
    d.docker_ok(&["cp", &tree.display().to_string(), &format!("{c}:/srv")]);
    d.docker_ok(&[
        "cp",
        &file.display().to_string(),
        &format!("{c}:/data/in-vol.txt"),
    ]);

    // The volume's directory on the host got it.
    let vol = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "cpvol"]);
    assert_eq!(
        fs::read_to_string(Path::new(vol.trim()).join("in-vol.txt")).unwrap(),
        "hello from the host\n"
    );

    // Container → host.
    let out = work.path().join("out");
    fs::create_dir(&out).unwrap();
    d.docker_ok(&[
        "cp",
        &format!("{c}:/tmp/hello.txt"),
        &out.display().to_string(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("hello.txt")).unwrap(),
        "hello from the host\n"
    );
    d.docker_ok(&[
        "cp",
        &format!("{c}:/srv"),
        &out.join("srv").display().to_string(),
    ]);
    assert_eq!(fs::read_to_string(out.join("srv/sub/a")).unwrap(), "a");
    assert_eq!(
        fs::read_link(out.join("srv/link")).unwrap(),
        Path::new("sub/a")
    );
    d.docker_ok(&[
        "cp",
        &format!("{c}:/data/in-vol.txt"),
        &out.join("from-vol").display().to_string(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("from-vol")).unwrap(),
        "hello from the host\n"
    );
    // The per-container /etc/hostname is the container's.
    d.docker_ok(&[
        "cp",
        &format!("{c}:/etc/hostname"),
        &out.join("hostname").display().to_string(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("hostname")).unwrap().trim(),
        &c[..12]
    );

    // Missing paths: dockerd's message.
    let miss = d.docker(&["cp", &format!("{c}:/nope"), &out.display().to_string()]);
    assert!(!miss.success());
    assert!(
        miss.stderr
            .contains("Could not find the file /nope in container"),
        "{}",
        miss.stderr
    );
    // Copying a directory onto a file's path inside the container fails.
    let bad = d.docker(&[
        "cp",
        &tree.display().to_string(),
        &format!("{c}:/tmp/hello.txt"),
    ]);
    assert!(!bad.success(), "{bad:?}");

    // Stopped container: both directions still work, rootfs unmounted after.
    d.docker_ok(&["stop", "-t", "0", &c]);
    fs::write(&file, "second\n").unwrap();
    d.docker_ok(&[
        "cp",
        &file.display().to_string(),
        &format!("{c}:/tmp/second.txt"),
    ]);
    d.docker_ok(&[
        "cp",
        &format!("{c}:/tmp/second.txt"),
        &out.join("second").display().to_string(),
    ]);
    assert_eq!(fs::read_to_string(out.join("second")).unwrap(), "second\n");
    d.docker_ok(&[
        "cp",
        &format!("{c}:/data/in-vol.txt"),
        &out.join("vol-stopped").display().to_string(),
    ]);
    assert!(out.join("vol-stopped").is_file());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("{}", d.exec_root.join("archive").display())),
        "temporary rootfs mount left behind"
    );

    // Started again, the file written while stopped is there.
    d.docker_ok(&["start", &c]);
    d.docker_ok(&[
        "cp",
        &format!("{c}:/tmp/second.txt"),
        &out.join("second-again").display().to_string(),
    ]);
    assert_eq!(
        fs::read_to_string(out.join("second-again")).unwrap(),
        "second\n"
    );
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn cp_tar_streams() {
    let d = Daemon::start();
    d.load_busybox();
    let c = started(&d, &[]);
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("streamed"), "via stdin").unwrap();
    let tar = host_tar(src.path());
    let out = d.docker_stdin(&["cp", "-", &format!("{c}:/tmp")], Some(&tar));
    assert!(out.success(), "{out:?}");
    // `docker cp C:path -` writes a tar to stdout.
    let mut cmd = d.docker_command();
    cmd.args(["cp", &format!("{c}:/tmp/streamed"), "-"]);
    let got = cmd.output().expect("docker cp to stdout");
    assert!(got.status.success());
    let dest = tempfile::tempdir().unwrap();
    let mut untar = Command::new("tar");
    untar.arg("-C").arg(dest.path()).args(["-xf", "-"]);
    let r = run_with_timeout(&mut untar, Some(&got.stdout), DEFAULT_TIMEOUT);
    assert!(r.success(), "{r:?}");
    assert_eq!(
        fs::read_to_string(dest.path().join("streamed")).unwrap(),
        "via stdin"
    );
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn cp_escape_attempts_change_nothing_on_the_host() {
    let d = Daemon::start();
    d.load_busybox();
    let c = started(&d, &[]);
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret");
    fs::write(&secret, "host secret").unwrap();

    // Plant hostile symlinks in the container through an archive.
    let evil = tempfile::tempdir().unwrap();
    symlink("/", evil.path().join("toroot")).unwrap();
    symlink("../../../../../../../../..", evil.path().join("up")).unwrap();
    symlink(&secret, evil.path().join("tosecret")).unwrap();
    symlink(host.path(), evil.path().join("tohostdir")).unwrap();
    let out = d.docker_stdin(
        &["cp", "-", &format!("{c}:/")],
        Some(&host_tar(evil.path())),
    );
    assert!(out.success(), "{out:?}");

    let work = tempfile::tempdir().unwrap();
    // Reading through them gives the container's files.
    d.docker_ok(&[
        "cp",
        &format!("{c}:/toroot/etc/passwd"),
        &work.path().join("p1").display().to_string(),
    ]);
    d.docker_ok(&[
        "cp",
        &format!("{c}:/up/etc/passwd"),
        &work.path().join("p2").display().to_string(),
    ]);
    let container_passwd = fs::read_to_string(work.path().join("p1")).unwrap();
    assert!(
        container_passwd.contains("user:x:1000"),
        "{container_passwd}"
    );
    assert_eq!(
        container_passwd,
        fs::read_to_string(work.path().join("p2")).unwrap()
    );
    assert_ne!(container_passwd, fs::read_to_string("/etc/passwd").unwrap());
    let leak = d.docker(&[
        "cp",
        &format!("{c}:/tosecret/"),
        &work.path().join("leak").display().to_string(),
    ]);
    assert!(!leak.success(), "{leak:?}");
    assert!(!work.path().join("leak").exists());

    // Writing through them lands in the container (or fails), never on the host.
    let payload = work.path().join("payload");
    fs::write(&payload, "pwned").unwrap();
    let p = payload.display().to_string();
    let _ = d.docker(&["cp", &p, &format!("{c}:/tohostdir/")]);
    let _ = d.docker(&["cp", &p, &format!("{c}:/up/tmp/")]);
    let _ = d.docker(&["cp", &p, &format!("{c}:/toroot/tmp/")]);
    let _ = d.docker(&["cp", &p, &format!("{c}:/tosecret")]);
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret");
    let names: Vec<_> = fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
    assert!(
        !Path::new("/tmp/payload").exists()
            || fs::read_to_string("/tmp/payload").unwrap() != "pwned"
    );
    // It did land in the container's /tmp.
    d.docker_ok(&[
        "cp",
        &format!("{c}:/tmp/payload"),
        &work.path().join("back").display().to_string(),
    ]);
    assert_eq!(
        fs::read_to_string(work.path().join("back")).unwrap(),
        "pwned"
    );
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn cp_docker_py_archive_api() {
    let d = Daemon::start();
    d.load_busybox();
    let out = py::run_ok(&d, "cp_docker_py.py");
    assert!(out.stdout.contains("cp_docker_py: ok"), "{}", out.stdout);
}

#[test]
fn cp_follow_links_and_archive_ownership() {
    let d = Daemon::start();
    d.load_busybox();
    let c = d
        .docker_ok(&["run", "-d", "-u", "user", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    // Without -L the link itself is copied; with -L its target.
    d.docker_ok(&[
        "cp",
        &format!("{c}:/bin/sh"),
        &work.path().join("link").display().to_string(),
    ]);
    assert_eq!(
        fs::read_link(work.path().join("link")).unwrap(),
        Path::new("busybox")
    );
    d.docker_ok(&[
        "cp",
        "-L",
        &format!("{c}:/bin/sh"),
        &work.path().join("file").display().to_string(),
    ]);
    let md = fs::symlink_metadata(work.path().join("file")).unwrap();
    assert!(md.is_file() && md.len() > 100_000, "{md:?}");

    // Plain cp keeps the archive's owner; -a gives the container's user.
    let src = work.path().join("owned");
    fs::write(&src, "x").unwrap();
    std::os::unix::fs::chown(&src, Some(4321), Some(4321)).unwrap();
    d.docker_ok(&["cp", &src.display().to_string(), &format!("{c}:/tmp/plain")]);
    d.docker_ok(&[
        "cp",
        "-a",
        &src.display().to_string(),
        &format!("{c}:/tmp/archived"),
    ]);
    let ids = d.docker_ok(&[
        "exec",
        &c,
        "stat",
        "-c",
        "%u:%g",
        "/tmp/plain",
        "/tmp/archived",
    ]);
    assert_eq!(ids, "4321:4321\n1000:1000\n");
    d.docker_ok(&["rm", "-f", &c]);
}

#[test]
fn cp_symlink_swapped_during_copy_stays_inside() {
    let d = Daemon::start();
    d.load_busybox();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("f"), "HOST").unwrap();
    let h = host.path().display().to_string();
    // The container flips /race/d between a real directory and a symlink to
    // a host path, as fast as it can (the dockerd symlink-race CVEs).
    let script = format!(
        "mkdir -p /race/real && echo inside > /race/real/f && \
         while :; do ln -sfn /race/real /race/d; ln -sfn {h} /race/d; rm -f /race/d; \
         mkdir -p /race/d; echo inside > /race/d/f; rm -rf /race/d; done"
    );
    let c = d
        .docker_ok(&["run", "-d", "busybox", "sh", "-c", &script])
        .trim()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let payload = work.path().join("pwned");
    fs::write(&payload, "pwned").unwrap();
    let mut read_inside = 0;
    for i in 0..40 {
        let out = work.path().join(format!("out{i}"));
        if d.docker(&["cp", &format!("{c}:/race/d/f"), &out.display().to_string()])
            .success()
        {
            let got = fs::read_to_string(&out).unwrap_or_default();
            assert_ne!(got, "HOST", "read a host file through a swapped symlink");
            read_inside += 1;
        }
        let _ = d.docker(&[
            "cp",
            &payload.display().to_string(),
            &format!("{c}:/race/d/"),
        ]);
    }
    assert_eq!(
        fs::read_dir(host.path()).unwrap().count(),
        1,
        "something was written into the host directory"
    );
    assert_eq!(fs::read_to_string(host.path().join("f")).unwrap(), "HOST");
    assert!(
        read_inside > 0,
        "no copy ever succeeded; the race test did not exercise anything"
    );
    d.docker_ok(&["rm", "-f", &c]);
}

/// `file` sent as a tar body with `method` to `path`; stdout is the status.
fn upload_tar(d: &Daemon, method: &str, file: &str, path: &str) -> berth_tests::Output {
    d.curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        method,
        "-H",
        "Content-Type: application/x-tar",
        "--data-binary",
        &format!("@{file}"),
        &format!("http://x{path}"),
    ])
}

#[test]
fn cp_into_read_only_places_is_refused() {
    let d = Daemon::start();
    d.load_busybox();
    let c = d
        .docker_ok(&[
            "run",
            "-d",
            "--read-only",
            "-v",
            "rovol:/ro:ro",
            "-v",
            "rwvol:/rw",
            "busybox",
            "sleep",
            "1000",
        ])
        .trim()
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    fs::write(&f, "x").unwrap();
    let f = f.display().to_string();
    let out = d.docker(&["cp", &f, &format!("{c}:/ro/")]);
    assert!(
        !out.success() && out.stderr.contains("mounted volume is marked read-only"),
        "{out:?}"
    );
    let out = d.docker(&["cp", &f, &format!("{c}:/tmp/")]);
    assert!(
        !out.success() && out.stderr.contains("container rootfs is marked read-only"),
        "{out:?}"
    );
    // A refused upload much larger than a socket buffer: the daemon reads
    // it before answering, so the CLI prints the error, not `broken pipe`.
    let big = work.path().join("big");
    fs::write(&big, vec![7u8; 32 << 20]).unwrap();
    let big = big.display().to_string();
    for file in [&f, &big, &f, &big, &f, &big, &f, &f, &f, &f] {
        let out = d.docker(&["cp", file, &format!("{c}:/ro/")]);
        assert!(
            !out.success() && out.stderr.contains("mounted volume is marked read-only"),
            "{out:?}"
        );
    }
    // The same for a route nobody implements.
    let out = upload_tar(&d, "POST", &big, "/v1.50/plugins/create?name=p");
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "501");
    // A writable volume in a read-only container still takes files.
    d.docker_ok(&["cp", &f, &format!("{c}:/rw/")]);
    assert_eq!(d.docker_ok(&["exec", &c, "cat", "/rw/f"]), "x");
    // An accepted upload with a long tail after the archive's end (padding
    // the tar reader never needs): read before the answer, so the client
    // sees its 200, not a reset connection.
    let padded = work.path().join("padded.tar");
    berth_tests::tarball::create(work.path(), &padded, "f");
    let mut bytes = fs::read(&padded).unwrap();
    bytes.resize(bytes.len() + (16 << 20), 0);
    fs::write(&padded, bytes).unwrap();
    let out = upload_tar(
        &d,
        "PUT",
        &padded.display().to_string(),
        &format!("/v1.50/containers/{c}/archive?path=/rw"),
    );
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "200");
    d.docker_ok(&["rm", "-f", &c]);
}
