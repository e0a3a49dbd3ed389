//! Layer extraction: whiteouts, metadata, and tars that try to escape.
//! Needs root (device nodes, chown, trusted.* xattrs, overlay mounts).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use berth_images::layer::unpack::unpack;

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

/// Raw name bytes, bypassing the tar crate's own `..`/absolute checks.
fn set_raw_name(h: &mut tar::Header, name: &str) {
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
}

fn set_raw_link(h: &mut tar::Header, target: &str) {
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.linkname = [0; 100];
    gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
}

struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }
    fn dir(mut self, name: &str) -> Self {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        set_raw_name(&mut h, name);
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn file(mut self, name: &str, data: &[u8]) -> Self {
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        set_raw_name(&mut h, name);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn symlink(mut self, name: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        set_raw_name(&mut h, name);
        set_raw_link(&mut h, target);
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn hardlink(mut self, name: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Link, 0, 0o644);
        set_raw_name(&mut h, name);
        set_raw_link(&mut h, target);
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A scratch area with the layer dir and a sibling "outside" dir that must
/// stay untouched.
struct Scratch {
    _tmp: tempfile::TempDir,
    layer: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn scratch() -> Scratch {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer");
    let outside = tmp.path().join("outside");
    fs::create_dir(&layer).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"original").unwrap();
    Scratch {
        _tmp: tmp,
        layer,
        outside,
    }
}

fn outside_untouched(s: &Scratch) {
    let names: Vec<_> = fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("victim")],
        "files appeared outside the layer"
    );
    assert_eq!(fs::read(s.outside.join("victim")).unwrap(), b"original");
}

#[test]
fn dotdot_entry_is_rejected() {
    let s = scratch();
    let tar = TarBuilder::new().file("../outside/pwned", b"x").finish();
    let err = unpack(&tar[..], &s.layer).unwrap_err();
    assert!(err.to_string().contains("escapes"), "{err}");
    let tar = TarBuilder::new()
        .file("a/../../outside/pwned", b"x")
        .finish();
    assert!(unpack(&tar[..], &s.layer).is_err());
    outside_untouched(&s);
}

#[test]
fn absolute_names_are_confined() {
    let s = scratch();
    let abs = format!("{}/pwned", s.outside.display());
    let tar = TarBuilder::new().file(&abs, b"x").finish();
    unpack(&tar[..], &s.layer).unwrap();
    outside_untouched(&s);
    let inside = s.layer.join(abs.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"x");
}

#[test]
fn writes_through_escaping_symlinks_stay_inside() {
    let s = scratch();
    let out = s.outside.display().to_string();
    let tar = TarBuilder::new()
        .symlink("abs", &out)
        .symlink("rel", "../outside")
        .file("abs/pwned", b"x")
        .file("rel/pwned2", b"y")
        .finish();
    // Either rejected or confined; in no case written outside.
    let _ = unpack(&tar[..], &s.layer);
    outside_untouched(&s);
    // The symlinks themselves are kept as content.
    assert_eq!(
        fs::read_link(s.layer.join("abs"))
            .unwrap()
            .display()
            .to_string(),
        out
    );
}

#[test]
fn overwriting_a_symlink_replaces_the_link_not_its_target() {
    let s = scratch();
    let victim = format!("{}/victim", s.outside.display());
    let tar = TarBuilder::new()
        .symlink("f", &victim)
        .file("f", b"new")
        .finish();
    unpack(&tar[..], &s.layer).unwrap();
    outside_untouched(&s);
    assert_eq!(fs::read(s.layer.join("f")).unwrap(), b"new");
}

#[test]
fn hardlinks_to_outside_are_refused() {
    let s = scratch();
    let victim = format!("{}/victim", s.outside.display());
    let tar = TarBuilder::new().hardlink("h", &victim).finish();
    assert!(unpack(&tar[..], &s.layer).is_err());
    let tar = TarBuilder::new()
        .hardlink("h2", "../outside/victim")
        .finish();
    assert!(unpack(&tar[..], &s.layer).is_err());
    // Through a symlink to outside: resolved inside the root, so not found.
    let out = s.outside.display().to_string();
    let tar = TarBuilder::new()
        .symlink("o", &out)
        .hardlink("h3", "o/victim")
        .finish();
    assert!(unpack(&tar[..], &s.layer).is_err());
    outside_untouched(&s);
    assert_eq!(fs::metadata(s.outside.join("victim")).unwrap().nlink(), 1);
}

#[test]
fn hardlinks_inside_and_metadata_are_kept() {
    let s = scratch();
    let mut b = TarBuilder::new().dir("d").file("d/a", b"data");
    let mut h = header(tar::EntryType::Regular, 3, 0o4755);
    h.set_uid(1000);
    h.set_gid(1000);
    set_raw_name(&mut h, "d/suid");
    h.set_cksum();
    b.0.append(&h, &b"abc"[..]).unwrap();
    let mut dev = header(tar::EntryType::Char, 0, 0o666);
    set_raw_name(&mut dev, "null");
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    dev.set_cksum();
    b.0.append(&dev, &[][..]).unwrap();
    let tar = b.hardlink("d/b", "d/a").finish();
    let stats = unpack(&tar[..], &s.layer).unwrap();
    assert_eq!(stats.size, 7);
    let a = fs::metadata(s.layer.join("d/a")).unwrap();
    let b = fs::metadata(s.layer.join("d/b")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mtime(), 1_600_000_000);
    let suid = fs::metadata(s.layer.join("d/suid")).unwrap();
    assert_eq!(suid.uid(), 1000);
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    let d = fs::metadata(s.layer.join("d")).unwrap();
    assert_eq!(
        d.mtime(),
        1_600_000_000,
        "directory mtime restored after its children"
    );
    let null = fs::symlink_metadata(s.layer.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
}

fn mount_overlay(lower: &[&Path], target: &Path) {
    let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("lowerdir={}", lowers.join(":")))
        .arg(target)
        .status()
        .expect("run mount");
    assert!(st.success(), "overlay mount failed");
}

#[test]
fn whiteouts_give_the_right_merged_view() {
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2, merged) = (
        tmp.path().join("l1"),
        tmp.path().join("l2"),
        tmp.path().join("m"),
    );
    for d in [&l1, &l2, &merged] {
        fs::create_dir(d).unwrap();
    }
    let base = TarBuilder::new()
        .dir("a")
        .file("a/gone", b"1")
        .file("a/kept", b"2")
        .dir("d")
        .file("d/old1", b"3")
        .file("d/old2", b"4")
        .finish();
    let top = TarBuilder::new()
        .file("a/.wh.gone", b"")
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"5")
        .finish();
    unpack(&base[..], &l1).unwrap();
    unpack(&top[..], &l2).unwrap();
    let wh = fs::symlink_metadata(l2.join("a/gone")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "whiteout is a 0/0 char device"
    );
    let opaque = xattr(&l2.join("d"), "trusted.overlay.opaque");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));

    mount_overlay(&[&l2, &l1], &merged);
    let list = |p: &str| {
        let mut v: Vec<String> = fs::read_dir(merged.join(p))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let a = list("a");
    let d = list("d");
    let st = Command::new("umount")
        .arg(&merged)
        .status()
        .expect("umount");
    assert!(st.success());
    assert_eq!(a, vec!["kept"]);
    assert_eq!(d, vec!["new"]);
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let key = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 64];
    // SAFETY: valid C strings and buffer.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            key.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

#[test]
fn layer_content_cannot_set_overlay_xattrs() {
    let s = scratch();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    b.append_pax_extensions([
        ("SCHILY.xattr.trusted.overlay.redirect", &b"/elsewhere"[..]),
        ("SCHILY.xattr.user.kept", &b"v"[..]),
    ])
    .unwrap();
    set_raw_name(&mut h, "d");
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let tar = b.into_inner().unwrap();
    unpack(&tar[..], &s.layer).unwrap();
    let d = s.layer.join("d");
    assert_eq!(xattr(&d, "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&d, "user.kept").as_deref(), Some(&b"v"[..]));
}
