//! Volumes as dockerd (≥ 23) has them: volumes made without a name are
//! anonymous (labelled), prune takes only those unless `all`, and
//! `VolumeOptions.Subpath` mounts a directory of a volume.

use berth_tests::Daemon;

const ANON: &str = "com.docker.volume.anonymous";

fn volumes(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .docker_ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn anonymous_volumes_and_prune() {
    let d = Daemon::with_busybox();
    let unnamed = d.docker_ok(&["volume", "create"]).trim().to_string();
    assert_eq!(unnamed.len(), 64, "{unnamed}");
    let v = d.inspect("volume", &unnamed);
    assert!(v["Labels"].get(ANON).is_some(), "{v}");
    d.docker_ok(&["volume", "create", "named"]);
    assert!(d.inspect("volume", "named")["Labels"].get(ANON).is_none());

    d.docker_ok(&["run", "--name", "ca", "-v", "/data", "busybox", "true"]);
    let anon = d.inspect("container", "ca")["Mounts"][0]["Name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(d.inspect("volume", &anon)["Labels"].get(ANON).is_some());
    // Mounted by name, a volume made anonymous is not removed by `rm -v`.
    d.docker_ok(&[
        "run",
        "--name",
        "cb",
        "-v",
        &format!("{unnamed}:/d"),
        "busybox",
        "true",
    ]);
    d.docker_ok(&["rm", "-v", "ca", "cb"]);
    assert_eq!(volumes(&d), {
        let mut v = vec![unnamed.clone(), "named".to_string()];
        v.sort();
        v
    });

    d.docker_ok(&["run", "--name", "cc", "-v", "/data", "busybox", "true"]);
    d.docker_ok(&["rm", "cc"]);
    assert_eq!(volumes(&d).len(), 3);
    let out = d.docker_ok(&["volume", "prune", "-f"]);
    assert!(out.contains(&unnamed), "{out}");
    assert_eq!(volumes(&d), ["named"]);
    d.docker_ok(&["volume", "prune", "-af"]);
    assert!(volumes(&d).is_empty());

    // Before API 1.42, prune takes named volumes too.
    d.docker_ok(&["volume", "create", "old"]);
    let out = d.curl(&["-X", "POST", "http://localhost/v1.41/volumes/prune"]);
    assert!(out.stdout.contains("\"old\""), "{}", out.stdout);
    assert!(volumes(&d).is_empty());
}

/// `--mount …,volume-subpath=…`: a directory or file of a volume, resolved
/// inside the volume (a symlink the container left there cannot lead out),
/// with dockerd's errors; no staging mount outlives the container.
#[test]
fn volume_subpath_mounts() {
    let d = Daemon::with_busybox();
    d.docker_ok(&["volume", "create", "data"]);
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo hi > /d/sub/f && ln -s / /d/escape && ln -s /etc /d/etclink",
    ]);
    let mnt = |sub: &str, dst: &str| format!("type=volume,src=data,dst={dst},volume-subpath={sub}");
    let run = |sub: &str, dst: &str, cmd: &[&str]| {
        let m = mnt(sub, dst);
        let mut args = vec!["run", "--rm", "--mount", m.as_str(), "busybox"];
        args.extend_from_slice(cmd);
        d.docker(&args)
    };
    assert_eq!(run("sub", "/m", &["cat", "/m/f"]).ok(), "hi\n");
    assert_eq!(run("sub/f", "/x", &["cat", "/x"]).ok(), "hi\n");
    // `escape` → `/` of the volume, not of the host.
    let ls = run("escape", "/m", &["ls", "/m"]).ok();
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, ["escape", "etclink", "sub"]);
    // `etclink` → the volume's /etc, which does not exist.
    let out = run("etclink", "/m", &["true"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("cannot access path ")
            && out
                .stderr
                .contains("/data/_data/etclink: no such file or directory"),
        "{}",
        out.stderr
    );
    let out = run("../up", "/m", &["true"]);
    assert!(
        out.stderr.contains(
            "invalid mount config for type \"volume\": subpath must be a relative path within the volume"
        ),
        "{}",
        out.stderr
    );
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,dst=/m,volume-subpath=sub",
        "busybox",
        "true",
    ]);
    assert!(
        out.stderr.contains(
            "invalid mount config for type \"volume\": must not set Subpath when using anonymous volumes"
        ),
        "{}",
        out.stderr
    );
    // A running container: its staging point goes with it.
    let m = mnt("sub", "/m");
    d.docker_ok(&[
        "run", "-d", "--name", "long", "--mount", &m, "busybox", "sleep", "100",
    ]);
    assert_eq!(d.docker_ok(&["exec", "long", "cat", "/m/f"]), "hi\n");
    d.docker_ok(&["rm", "-f", "long"]);
    assert_eq!(
        berth_tests::cleanup::mounts_under(d.dir.path()),
        Vec::<std::path::PathBuf>::new()
    );
}
