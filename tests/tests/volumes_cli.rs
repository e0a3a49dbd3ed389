//! Volumes and mounts through the real docker CLI: every kind persists (or
//! not) as dockerd's do, image content fills new volumes, `docker volume`
//! commands, in-use conflicts, `rm -v`, inspect's Mounts and bad specs.

use std::fs;
use std::path::Path;

use berth_tests::cleanup::mounts_under;
use berth_tests::{assert_matches_spec, Daemon};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn volume_names(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[track_caller]
fn assert_no_mounts_left(d: &Daemon) {
    assert_eq!(
        mounts_under(d.dir.path()),
        Vec::<std::path::PathBuf>::new(),
        "mounts left"
    );
}

#[test]
fn every_kind_of_mount_persists_as_dockerd() {
    let d = Daemon::with_busybox();
    // Named volume, created on demand.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "named:/d",
        "busybox",
        "sh",
        "-c",
        "echo named > /d/f",
    ]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-v", "named:/x", "busybox", "cat", "/x/f"]),
        "named\n"
    );

    // Anonymous volume, then --volumes-from (read-only) in another container.
    d.docker_ok(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo anon > /data/f",
    ]);
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "anon:ro",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "anon\n"
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "anon:ro",
        "busybox",
        "touch",
        "/data/g",
    ]);
    assert!(
        !out.success(),
        "a read-only --volumes-from mount was writable"
    );

    // Bind mount; the missing host directory is created like dockerd does.
    let host = d.dir.path().join("host/sub");
    let spec = format!("{}:/h", host.display());
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "echo bind > /h/f",
    ]);
    assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "bind\n");
    let ro = format!("{}:/h:ro", host.display());
    assert!(!d
        .docker(&["run", "--rm", "-v", &ro, "busybox", "touch", "/h/x"])
        .success());
    let mount = format!("type=bind,source={},target=/m", host.display());
    assert_eq!(
        d.docker_ok(&["run", "--rm", "--mount", &mount, "busybox", "cat", "/m/f"]),
        "bind\n"
    );

    // tmpfs: sized as asked, and empty again when the container restarts.
    d.docker_ok(&[
        "run",
        "--name",
        "tmp",
        "--tmpfs",
        "/t:size=2m",
        "busybox",
        "sh",
        "-c",
        "ls /t; df -k /t | tail -1 | awk '{print $2}'; echo x > /t/f",
    ]);
    let first = d.docker_ok(&["logs", "tmp"]);
    assert_eq!(first, "2048\n");
    d.docker_ok(&["start", "-a", "tmp"]);
    assert_eq!(
        d.docker_ok(&["logs", "tmp"]),
        "2048\n2048\n",
        "tmpfs content survived a restart"
    );
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1048576",
        "busybox",
        "sh",
        "-c",
        "df -k /t | tail -1 | awk '{print $2}'",
    ]);
    assert_eq!(out, "1024\n");

    d.docker_ok(&["rm", "-v", "anon", "tmp"]);
    assert_no_mounts_left(&d);
}

#[test]
fn new_volumes_are_filled_from_the_image() {
    let d = Daemon::with_busybox();
    d.docker_ok(&["run", "--rm", "-v", "etc:/etc", "busybox", "true"]);
    let passwd = d.docker_ok(&["run", "--rm", "-v", "etc:/x", "busybox", "cat", "/x/passwd"]);
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    // Ownership and modes are kept.
    let ls = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "etc:/x",
        "busybox",
        "stat",
        "-c",
        "%u %a",
        "/x/passwd",
    ]);
    let image = d.docker_ok(&[
        "run",
        "--rm",
        "busybox",
        "stat",
        "-c",
        "%u %a",
        "/etc/passwd",
    ]);
    assert_eq!(ls, image);
    // A volume that has content is not filled again.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "mine:/d",
        "busybox",
        "sh",
        "-c",
        "echo keep > /d/k",
    ]);
    assert_eq!(
        d.docker_ok(&["run", "--rm", "-v", "mine:/etc", "busybox", "ls", "/etc"]),
        "k\n"
    );
    // nocopy leaves it empty.
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "-v",
            "empty:/etc:nocopy",
            "busybox",
            "ls",
            "-A",
            "/etc"
        ]),
        ""
    );
}

#[test]
fn volume_commands_and_conflicts() {
    let d = Daemon::with_busybox();
    assert_eq!(
        d.docker_ok(&["volume", "create", "--label", "team=a", "v1"]),
        "v1\n"
    );
    // Creating it again is fine (idempotent).
    d.docker_ok(&["volume", "create", "v1"]);
    d.docker_ok(&["volume", "create", "v2"]);
    let out = d.docker(&["volume", "create", "bad/name"]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("includes invalid characters for a local volume name"),
        "{}",
        out.stderr
    );

    let v = json(&d.docker_ok(&["volume", "inspect", "v1"]))[0].clone();
    assert_eq!(v["Name"], "v1");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["team"], "a");
    assert!(v["Options"].is_object());
    let mp = v["Mountpoint"].as_str().unwrap();
    assert_eq!(Path::new(mp), d.data_root.join("volumes/v1/_data"));
    assert!(Path::new(mp).is_dir());
    assert_matches_spec("GET", "/volumes/{name}", &v.to_string());
    let list = d.curl(&["http://localhost/v1.50/volumes"]).ok();
    assert_matches_spec("GET", "/volumes", &list);

    assert_eq!(
        d.docker_ok(&["volume", "ls", "-q", "--filter", "label=team=a"]),
        "v1\n"
    );
    assert_eq!(
        d.docker_ok(&["volume", "ls", "-q", "--filter", "name=v2"]),
        "v2\n"
    );

    d.docker_ok(&["create", "--name", "user", "-v", "v1:/d", "busybox", "true"]);
    let id = d
        .docker_ok(&["inspect", "-f", "{{.Id}}", "user"])
        .trim()
        .to_string();
    assert_eq!(
        d.docker_ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        "v2\n"
    );
    let out = d.docker(&["volume", "rm", "v1"]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains(&format!("remove v1: volume is in use - [{id}]")),
        "{}",
        out.stderr
    );
    let code = d
        .curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
            "http://localhost/volumes/v1",
        ])
        .ok();
    assert_eq!(code, "409");
    let out = d.docker(&["volume", "inspect", "nope"]);
    assert!(out.stderr.contains("no such volume"), "{}", out.stderr);

    // prune: named volumes only with --all, never one in use.
    d.docker_ok(&["run", "--name", "anon", "-v", "/a", "busybox", "true"]);
    d.docker_ok(&["rm", "anon"]);
    assert_eq!(volume_names(&d).len(), 3);
    d.docker_ok(&["volume", "prune", "-f"]);
    assert_eq!(volume_names(&d), vec!["v1", "v2"]);
    d.docker_ok(&["volume", "prune", "-af"]);
    assert_eq!(volume_names(&d), vec!["v1"]);
    d.docker_ok(&["rm", "user"]);
    d.docker_ok(&["volume", "rm", "v1"]);
    assert!(volume_names(&d).is_empty());
    assert!(!d.data_root.join("volumes/v1").exists());
}

#[test]
fn rm_v_removes_only_anonymous_volumes() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "--name",
        "ctr",
        "-v",
        "/anon",
        "-v",
        "keep:/keep",
        "busybox",
        "true",
    ]);
    let mounts = json(&d.docker_ok(&["inspect", "-f", "{{json .Mounts}}", "ctr"]));
    let anon = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .unwrap()["Name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(anon.len(), 64);
    assert_eq!(volume_names(&d).len(), 2);
    d.docker_ok(&["rm", "-v", "ctr"]);
    assert_eq!(volume_names(&d), vec!["keep"]);
    assert!(!d.data_root.join("volumes").join(&anon).exists());
}

#[test]
fn inspect_mounts_shape() {
    let d = Daemon::with_busybox();
    let host = d.dir.path().join("h");
    fs::create_dir_all(&host).unwrap();
    let bind = format!("{}:/b:ro", host.display());
    d.docker_ok(&[
        "create", "--name", "ctr", "-v", "named:/n", "-v", &bind, "-v", "/anon", "busybox", "true",
    ]);
    let c = json(&d.docker_ok(&["inspect", "ctr"]))[0].clone();
    let mounts = c["Mounts"].as_array().unwrap().clone();
    assert_eq!(mounts.len(), 3);
    let by = |dest: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap()
            .clone()
    };
    let n = by("/n");
    assert_eq!(n["Type"], "volume");
    assert_eq!(n["Name"], "named");
    assert_eq!(n["Driver"], "local");
    assert_eq!(n["RW"], true);
    assert_eq!(
        Path::new(n["Source"].as_str().unwrap()),
        d.data_root.join("volumes/named/_data")
    );
    let b = by("/b");
    assert_eq!(b["Type"], "bind");
    assert_eq!(b["Source"], host.display().to_string());
    assert_eq!(b["RW"], false);
    assert_eq!(b["Mode"], "ro");
    assert_eq!(b["Propagation"], "rprivate");
    assert_eq!(by("/anon")["Type"], "volume");
    d.docker_ok(&["rm", "-v", "ctr"]);
}

#[test]
fn bad_mount_specs_get_dockerds_errors() {
    let d = Daemon::with_busybox();
    let cases: [(&[&str], &str); 4] = [
        (
            &["-v", "/x:rel"],
            "invalid mount path: 'rel' mount path must be absolute",
        ),
        (
            &["-v", "va:/d", "-v", "/tmp:/d"],
            "Duplicate mount point: /d",
        ),
        (&["-v", "/tmp:/d:bogus"], "invalid mode: bogus"),
        (
            &["--mount", "type=bind,source=/nonexistent-berth,target=/d"],
            "bind source path does not exist: /nonexistent-berth",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let out = d.docker(&args);
        assert!(!out.success(), "{flags:?} was accepted");
        assert!(out.stderr.contains(want), "{flags:?}: {}", out.stderr);
    }
    // Through the API (the CLI would try to pull on a 404 from create).
    let out = d
        .curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"Image":"busybox","HostConfig":{"VolumesFrom":["ghost"]}}"#,
            "-w",
            "\n%{http_code}",
            "http://localhost/v1.50/containers/create",
        ])
        .ok();
    assert!(out.ends_with("\n404"), "{out}");
    assert!(out.contains("No such container: ghost"), "{out}");
    // Nothing was left behind by the failed creates.
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    assert!(volume_names(&d).is_empty(), "{:?}", volume_names(&d));
}

#[test]
fn volume_events() {
    let d = Daemon::with_busybox();
    d.docker_ok(&["volume", "create", "ev"]);
    d.docker_ok(&["volume", "rm", "ev"]);
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let until = until.to_string();
    let out = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"create ev"), "{out}");
    assert!(lines.contains(&"destroy ev"), "{out}");
}

#[test]
fn docker_py_volumes() {
    let d = Daemon::with_busybox();
    let script = berth_tests::workspace_root().join("tests/py/volumes_dockerpy.py");
    let out = d.python_file(&script, &[]);
    assert!(
        out.success(),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("ok"), "{}", out.stdout);
}
