//! Overlay upper dir → OCI layer tar (for `docker commit`), and back.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use berth_images::layer::diff::write_diff;
use berth_images::layer::unpack::unpack;

fn entries(tar_bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, String)> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        out.insert(name, (e.header().entry_type(), link));
    }
    out
}

#[test]
fn overlay_whiteouts_become_oci_whiteouts_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    // Build an "upper dir" the way overlayfs would: via our unpacker, which
    // turns OCI whiteouts into overlay ones.
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>,
               name: &str,
               kind: tar::EntryType,
               data: &[u8],
               link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_650_000_000);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => b.append_link(&mut h, name, l).unwrap(),
            None => b.append_data(&mut h, name, data).unwrap(),
        }
    };
    add(&mut b, "etc/", tar::EntryType::Directory, b"", None);
    add(&mut b, "etc/.wh.gone", tar::EntryType::Regular, b"", None);
    add(&mut b, "etc/new", tar::EntryType::Regular, b"new", None);
    add(
        &mut b,
        "etc/new-link",
        tar::EntryType::Link,
        b"",
        Some("etc/new"),
    );
    add(
        &mut b,
        "etc/sym",
        tar::EntryType::Symlink,
        b"",
        Some("/etc/new"),
    );
    add(&mut b, "var/", tar::EntryType::Directory, b"", None);
    add(
        &mut b,
        "var/.wh..wh..opq",
        tar::EntryType::Regular,
        b"",
        None,
    );
    add(&mut b, "var/only", tar::EntryType::Regular, b"1", None);
    fs::create_dir(&upper).unwrap();
    unpack(&b.into_inner().unwrap()[..], &upper).unwrap();
    assert!(fs::symlink_metadata(upper.join("etc/gone"))
        .unwrap()
        .file_type()
        .is_char_device());

    let diff = write_diff(&upper, Vec::new()).unwrap();
    let e = entries(&diff);
    assert_eq!(e["etc/.wh.gone"].0, tar::EntryType::Regular);
    assert!(
        !e.contains_key("etc/gone"),
        "no char device in the tar: {e:?}"
    );
    assert_eq!(e["var/.wh..wh..opq"].0, tar::EntryType::Regular);
    assert_eq!(e["etc/sym"], (tar::EntryType::Symlink, "/etc/new".into()));
    // One of the two links carries the data, the other points at it.
    let links: Vec<_> = e
        .values()
        .filter(|(k, _)| *k == tar::EntryType::Link)
        .collect();
    assert_eq!(links.len(), 1, "{e:?}");
    assert!(!e.keys().any(|k| k.contains("trusted.overlay")));

    // Unpacked again, it is the same overlay layer.
    let again = tmp.path().join("again");
    fs::create_dir(&again).unwrap();
    unpack(&diff[..], &again).unwrap();
    let wh = fs::symlink_metadata(again.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    let a = fs::metadata(again.join("etc/new")).unwrap();
    let b = fs::metadata(again.join("etc/new-link")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(fs::read_to_string(again.join("var/only")).unwrap(), "1");
    let opaque = {
        let path =
            std::ffi::CString::new(again.join("var").as_os_str().as_encoded_bytes()).unwrap();
        let mut buf = [0u8; 4];
        // SAFETY: valid C strings and buffer.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        (n == 1).then_some(buf[0])
    };
    assert_eq!(opaque, Some(b'y'));
}

#[test]
fn symlinks_in_the_upper_dir_are_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    let secret = tmp.path().join("secret");
    fs::create_dir_all(&secret).unwrap();
    fs::write(secret.join("key"), "host secret").unwrap();
    fs::create_dir(&upper).unwrap();
    std::os::unix::fs::symlink(&secret, upper.join("escape")).unwrap();
    let diff = write_diff(&upper, Vec::new()).unwrap();
    let e = entries(&diff);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e["escape"].0, tar::EntryType::Symlink);
    assert!(!String::from_utf8_lossy(&diff).contains("host secret"));
}
