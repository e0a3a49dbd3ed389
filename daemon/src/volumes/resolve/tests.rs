use super::*;
use crate::events::Events;
use serde_json::json;

fn store(dir: &Path) -> VolumeStore {
    VolumeStore::open(dir, Events::new()).unwrap()
}

fn no_containers(_: &str) -> Option<Vec<MountPoint>> {
    None
}

#[test]
fn every_kind_with_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let host = dir.path().join("host/sub");
    let binds = vec![
        format!("{}:/bind:ro", host.display()),
        "named:/named".to_string(),
    ];
    let mounts =
        vec![json!({"Type":"tmpfs","Target":"/scratch","TmpfsOptions":{"SizeBytes":2048}})];
    let tmpfs: BTreeMap<String, String> = [("/run".to_string(), "size=1m".to_string())].into();
    let anonymous = vec!["/anon".to_string(), "/named".to_string()];
    let req = MountRequest {
        container_id: "c1",
        binds: &binds,
        mounts: &mounts,
        tmpfs: Some(&tmpfs),
        volumes_from: &[],
        anonymous: &anonymous,
    };
    let r = s.resolve(&req, &no_containers).unwrap();
    // The missing -v host path was created.
    assert!(host.is_dir());
    let by_dest = |d: &str| {
        r.mounts
            .iter()
            .find(|m| m.destination == d)
            .unwrap()
            .clone()
    };
    let b = by_dest("/bind");
    assert_eq!(
        (b.kind.as_str(), b.rw, b.mode.as_str()),
        ("bind", false, "ro")
    );
    assert_eq!(b.options, vec!["rbind", "rprivate", "ro"]);
    assert_eq!(b.propagation, "rprivate");
    let n = by_dest("/named");
    assert_eq!(
        (n.kind.as_str(), n.name.as_str(), n.driver.as_str()),
        ("volume", "named", "local")
    );
    assert!(n.source.ends_with("/volumes/named/_data"));
    assert!(!n.anonymous);
    let a = by_dest("/anon");
    assert!(a.anonymous && a.name.len() == 64 && a.rw);
    let t = by_dest("/scratch");
    assert_eq!(t.kind, "tmpfs");
    assert_eq!(t.options, vec!["nosuid", "nodev", "noexec", "size=2k"]);
    assert_eq!(r.mounts.len(), 4);
    assert_eq!(r.tmpfs.len(), 1);
    assert_eq!(r.tmpfs[0].destination, "/run");
    assert_eq!(s.users("named"), vec!["c1"]);
    assert_eq!(s.users(&a.name), vec!["c1"]);

    // A second container takes them with --volumes-from, read-only.
    let from = r.mounts.clone();
    let lookup = move |c: &str| (c == "c1").then(|| from.clone());
    let vf = vec!["c1:ro".to_string()];
    let req2 = MountRequest {
        container_id: "c2",
        volumes_from: &vf,
        ..Default::default()
    };
    let r2 = s.resolve(&req2, &lookup).unwrap();
    assert_eq!(r2.mounts.len(), 4);
    assert!(r2
        .mounts
        .iter()
        .all(|m| !m.rw && m.options.iter().any(|o| o == "ro")));
    assert_eq!(s.users(&a.name), vec!["c1", "c2"]);

    // rm -v of c1: its anonymous volume stays while c2 uses it.
    s.release_container("c1", &r.mounts, true);
    assert!(s.get(&a.name).is_ok());
    s.release_container("c2", &r2.mounts, true);
    assert!(
        s.get(&a.name).is_err(),
        "anonymous volume removed with the last user"
    );
    assert!(s.get("named").is_ok(), "named volumes survive rm -v");
}

#[test]
fn conflicts_and_errors_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let err = |binds: &[&str], mounts: &[serde_json::Value]| {
        let binds: Vec<String> = binds.iter().map(|b| b.to_string()).collect();
        let req = MountRequest {
            container_id: "c",
            binds: &binds,
            mounts,
            ..Default::default()
        };
        s.resolve(&req, &no_containers).unwrap_err()
    };
    let e = err(&["v1:/data", "/tmp:/data"], &[]);
    assert_eq!(e.to_string(), "Duplicate mount point: /data");
    assert_eq!(e.status(), 400);
    let e = err(
        &["v1:/data"],
        &[json!({"Type":"volume","Source":"v2","Target":"/data/"})],
    );
    assert_eq!(e.to_string(), "Duplicate mount point: /data");
    let e = err(
        &["v1:/a"],
        &[json!({"Type":"bind","Source":"/nonexistent/berth-x","Target":"/b"})],
    );
    assert_eq!(
        e.to_string(),
        "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent/berth-x"
    );
    // v1 was created for the failed request and removed again.
    assert!(s.list().is_empty());
    let vf = vec!["ghost".to_string()];
    let req = MountRequest {
        container_id: "c",
        volumes_from: &vf,
        ..Default::default()
    };
    let e = s.resolve(&req, &no_containers).unwrap_err();
    assert_eq!(
        (e.status(), e.to_string()),
        (404, "No such container: ghost".to_string())
    );
    assert!(s.users("v1").is_empty());
}

#[test]
fn populate_copies_image_content_once() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir.path().join("root"));
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("real/sub")).unwrap();
    std::fs::write(rootfs.join("real/sub/f"), b"image data").unwrap();
    std::fs::set_permissions(
        rootfs.join("real/sub/f"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::os::unix::fs::chown(rootfs.join("real/sub/f"), Some(1000), Some(1000)).unwrap();
    std::os::unix::fs::symlink("/real", rootfs.join("link")).unwrap();
    // An absolute symlink in the image must resolve inside the rootfs.
    let anon = vec!["/link".to_string(), "/missing".to_string()];
    let req = MountRequest {
        container_id: "c",
        anonymous: &anon,
        ..Default::default()
    };
    let r = s.resolve(&req, &no_containers).unwrap();
    for m in &r.mounts {
        s.populate(m, &rootfs).unwrap();
    }
    let link = r.mounts.iter().find(|m| m.destination == "/link").unwrap();
    let copied = Path::new(&link.source).join("sub/f");
    assert_eq!(std::fs::read(&copied).unwrap(), b"image data");
    let md = std::fs::metadata(&copied).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (1000, 0o640));
    let missing = r
        .mounts
        .iter()
        .find(|m| m.destination == "/missing")
        .unwrap();
    assert_eq!(std::fs::read_dir(&missing.source).unwrap().count(), 0);
    // Not again once the volume has content.
    std::fs::write(rootfs.join("real/new"), b"x").unwrap();
    s.populate(link, &rootfs).unwrap();
    assert!(!Path::new(&link.source).join("new").exists());
    s.release_container("c", &r.mounts, true);
    assert!(s.list().is_empty());
}
