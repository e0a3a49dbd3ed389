use super::*;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    vol: std::path::PathBuf,
    host_secret: std::path::PathBuf,
}

/// A container root with a symlink to `/`, a `..` chain, a volume at
/// /data, and a host file outside that the escapes aim at.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("rootfs");
    let vol = tmp.path().join("volume");
    let host_secret = tmp.path().join("host-secret");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("data")).unwrap();
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::create_dir_all(&vol).unwrap();
    fs::write(root.join("etc/hostname"), "container\n").unwrap();
    fs::write(root.join("dir/sub/file"), "hello").unwrap();
    fs::write(vol.join("in-volume"), "volume data").unwrap();
    fs::write(&host_secret, "host").unwrap();
    symlink("/", root.join("rootlink")).unwrap();
    symlink("../../../../../../../..", root.join("dotdot")).unwrap();
    symlink(&host_secret, root.join("abs-host")).unwrap();
    symlink("/data/in-volume", root.join("to-volume")).unwrap();
    Fixture {
        _tmp: tmp,
        root,
        vol,
        host_secret,
    }
}

fn view(f: &Fixture) -> FsView {
    FsView::new(vec![
        ViewMount {
            destination: "/".into(),
            source: f.root.clone(),
            read_only: false,
        },
        ViewMount {
            destination: "/data".into(),
            source: f.vol.clone(),
            read_only: false,
        },
    ])
    .unwrap()
}

fn names_in(tar_bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar_bytes);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

#[test]
fn go_modes() {
    assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
    assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
    assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
    assert_eq!(
        go_file_mode(libc::S_IFCHR | 0o666),
        (1 << 26) | (1 << 21) | 0o666
    );
}

#[test]
fn requested_paths_like_dockerd() {
    let p = RequestedPath::parse("/etc/../etc/hostname");
    assert_eq!(p.base, "hostname");
    assert!(!p.follow_final);
    let p = RequestedPath::parse("/dir/.");
    assert_eq!(p.base, ".");
    assert!(p.follow_final);
    let p = RequestedPath::parse("/");
    assert_eq!(p.base, "/");
    assert!(p.follow_final);
    assert!(RequestedPath::parse("dir/").follow_final);
}

#[test]
fn stat_file_symlink_and_missing() {
    let f = fixture();
    let v = view(&f);
    let st = stat_path(&v, "/etc/hostname").unwrap();
    assert_eq!(st.name, "hostname");
    assert_eq!(st.size, 10);
    assert_eq!(st.link_target, "");
    let st = stat_path(&v, "/to-volume").unwrap();
    assert_eq!(st.mode & (1 << 27), 1 << 27);
    assert_eq!(st.link_target, "/data/in-volume");
    // The link to a host path resolves inside the container, where it is missing.
    assert_eq!(
        stat_path(&v, "/abs-host").unwrap().link_target,
        f.host_secret.to_string_lossy()
    );
    assert!(matches!(
        stat_path(&v, "/abs-host/"),
        Err(ArchiveError::NotFound)
    ));
    assert!(matches!(
        stat_path(&v, "/nope"),
        Err(ArchiveError::NotFound)
    ));
    assert!(matches!(
        stat_path(&v, "/etc/hostname/x"),
        Err(ArchiveError::NotFound)
    ));
}

#[test]
fn escapes_stay_inside() {
    let f = fixture();
    let v = view(&f);
    // `..` chains and links to / end at the container's root.
    let st = stat_path(&v, "/dotdot/etc/hostname").unwrap();
    assert_eq!(st.size, 10);
    let st = stat_path(&v, "/rootlink/../../../etc/hostname").unwrap();
    assert_eq!(st.size, 10);
    let host_name = f
        .host_secret
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let up = format!("/dotdot/{}", host_name);
    assert!(matches!(stat_path(&v, &up), Err(ArchiveError::NotFound)));
}

#[test]
fn pack_directory_with_volume_and_links() {
    let f = fixture();
    let v = view(&f);
    let (st, prepared) = prepare_archive(&v, "/").unwrap();
    assert_eq!(st.name, "/");
    let bytes = prepared.write(&v, Vec::new()).unwrap();
    let names = names_in(&bytes);
    assert!(names.contains(&"data/in-volume".to_string()), "{names:?}");
    assert!(names.contains(&"dir/sub/file".to_string()), "{names:?}");
    assert!(names.contains(&"rootlink".to_string()), "{names:?}");
    // The symlink is archived as a link, never followed to the host.
    assert!(
        !names.iter().any(|n| n.contains("host-secret")),
        "{names:?}"
    );

    let (_, prepared) = prepare_archive(&v, "/dir").unwrap();
    let names = names_in(&prepared.write(&v, Vec::new()).unwrap());
    assert_eq!(names, vec!["dir/", "dir/sub/", "dir/sub/file"]);

    // Through a symlink to the root: the container's /etc, not the host's.
    let (_, prepared) = prepare_archive(&v, "/rootlink/etc/hostname").unwrap();
    let bytes = prepared.write(&v, Vec::new()).unwrap();
    let mut a = tar::Archive::new(&bytes[..]);
    let mut e = a.entries().unwrap().next().unwrap().unwrap();
    let mut s = String::new();
    e.read_to_string(&mut s).unwrap();
    assert_eq!(s, "container\n");
}

fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o640);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_000_000_000);
        h.set_size(data.len() as u64);
        // Write names raw: the builder would refuse the hostile ones.
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn extract_files_dirs_and_into_volume() {
    let f = fixture();
    let v = view(&f);
    let dest = prepare_extract(&v, "/", false).unwrap();
    let t = tar_of(&[
        ("new/", tar::EntryType::Directory, b"", None),
        ("new/a.txt", tar::EntryType::Regular, b"abc", None),
        ("data/b.txt", tar::EntryType::Regular, b"vol", None),
        ("deep/er/c", tar::EntryType::Regular, b"c", None),
    ]);
    extract(&v, &dest, &t[..], ExtractOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(f.root.join("new/a.txt")).unwrap(), "abc");
    let md = fs::metadata(f.root.join("new/a.txt")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.permissions().mode() & 0o777),
        (1000, 1000, 0o640)
    );
    assert_eq!(md.mtime(), 1_000_000_000);
    assert_eq!(fs::read_to_string(f.vol.join("b.txt")).unwrap(), "vol");
    assert!(!f.root.join("data/b.txt").exists());
    assert_eq!(fs::read_to_string(f.root.join("deep/er/c")).unwrap(), "c");

    let opts = ExtractOptions {
        chown: Some((0, 0)),
        ..Default::default()
    };
    extract(
        &v,
        &dest,
        &tar_of(&[("new/a.txt", tar::EntryType::Regular, b"x", None)])[..],
        opts,
    )
    .unwrap();
    assert_eq!(fs::metadata(f.root.join("new/a.txt")).unwrap().uid(), 0);
}

#[test]
fn extract_escapes_change_nothing_on_the_host() {
    let f = fixture();
    let v = view(&f);
    let dest = prepare_extract(&v, "/", false).unwrap();
    let outside = f.root.parent().unwrap().to_path_buf();
    let before: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    // `..` names are refused outright.
    let t = tar_of(&[("../escaped", tar::EntryType::Regular, b"x", None)]);
    assert!(matches!(
        extract(&v, &dest, &t[..], ExtractOptions::default()),
        Err(ArchiveError::BadArchive(_))
    ));
    // Through pre-existing links to / and up the tree: lands in the container.
    let t = tar_of(&[
        ("rootlink/via-root", tar::EntryType::Regular, b"x", None),
        ("dotdot/via-dotdot", tar::EntryType::Regular, b"x", None),
    ]);
    extract(&v, &dest, &t[..], ExtractOptions::default()).unwrap();
    assert!(f.root.join("via-root").is_file());
    assert!(f.root.join("via-dotdot").is_file());
    // A link created by the archive itself, then written through.
    let outside_str = outside.to_string_lossy().into_owned();
    let t = tar_of(&[
        ("evil", tar::EntryType::Symlink, b"", Some(&outside_str)),
        ("evil/pwned", tar::EntryType::Regular, b"x", None),
    ]);
    // The link's target does not exist in the container: refused.
    assert!(matches!(
        extract(&v, &dest, &t[..], ExtractOptions::default()),
        Err(ArchiveError::BadArchive(_))
    ));
    let t = tar_of(&[
        (
            "evil2",
            tar::EntryType::Symlink,
            b"",
            Some("../../../../.."),
        ),
        ("evil2/pwned2", tar::EntryType::Regular, b"x", None),
        ("evil3", tar::EntryType::Symlink, b"", Some("/")),
        ("evil3/pwned3", tar::EntryType::Regular, b"x", None),
    ]);
    extract(&v, &dest, &t[..], ExtractOptions::default()).unwrap();
    assert!(f.root.join("pwned2").is_file());
    assert!(f.root.join("pwned3").is_file());
    // Overwriting the host file a link points at replaces the link instead.
    let t = tar_of(&[("abs-host", tar::EntryType::Regular, b"changed", None)]);
    extract(&v, &dest, &t[..], ExtractOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(&f.host_secret).unwrap(), "host");
    assert_eq!(
        fs::read_to_string(f.root.join("abs-host")).unwrap(),
        "changed"
    );

    let after: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    assert_eq!(fs::read_to_string(&f.host_secret).unwrap(), "host");
}

#[test]
fn extract_point_checks() {
    let f = fixture();
    let v = view(&f);
    assert!(matches!(
        prepare_extract(&v, "/etc/hostname", false),
        Err(ArchiveError::NotADirectory)
    ));
    assert!(matches!(
        prepare_extract(&v, "/missing", false),
        Err(ArchiveError::NotFound)
    ));
    assert!(matches!(
        prepare_extract(&v, "/etc", true),
        Err(ArchiveError::ReadOnly(_))
    ));
    // The volume is writable even with a read-only root.
    assert!(prepare_extract(&v, "/data", true).is_ok());
    let ro = FsView::new(vec![
        ViewMount {
            destination: "/".into(),
            source: f.root.clone(),
            read_only: false,
        },
        ViewMount {
            destination: "/data".into(),
            source: f.vol.clone(),
            read_only: true,
        },
    ])
    .unwrap();
    assert!(matches!(
        prepare_extract(&ro, "/data", false),
        Err(ArchiveError::ReadOnly(_))
    ));
    let t = tar_of(&[("data/x", tar::EntryType::Regular, b"x", None)]);
    let dest = prepare_extract(&ro, "/", false).unwrap();
    assert!(matches!(
        extract(&ro, &dest, &t[..], ExtractOptions::default()),
        Err(ArchiveError::ReadOnly(_))
    ));
    assert!(!f.vol.join("x").exists());
}

#[test]
fn no_overwrite_dir_non_dir() {
    let f = fixture();
    let v = view(&f);
    let dest = prepare_extract(&v, "/", false).unwrap();
    let t = tar_of(&[("dir", tar::EntryType::Regular, b"x", None)]);
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: true,
        ..Default::default()
    };
    assert!(matches!(
        extract(&v, &dest, &t[..], opts),
        Err(ArchiveError::BadArchive(_))
    ));
    assert!(f.root.join("dir/sub/file").is_file());
    extract(&v, &dest, &t[..], ExtractOptions::default()).unwrap();
    assert!(Path::new(&f.root.join("dir")).is_file());
}

#[test]
fn gzip_archives_extract() {
    use flate2::write::GzEncoder;
    let f = fixture();
    let v = view(&f);
    let dest = prepare_extract(&v, "/", false).unwrap();
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar_of(&[(
        "gz.txt",
        tar::EntryType::Regular,
        b"zipped",
        None,
    )]))
    .unwrap();
    let bytes = gz.finish().unwrap();
    extract(&v, &dest, &bytes[..], ExtractOptions::default()).unwrap();
    assert_eq!(fs::read_to_string(f.root.join("gz.txt")).unwrap(), "zipped");
}
