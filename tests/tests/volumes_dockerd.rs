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
