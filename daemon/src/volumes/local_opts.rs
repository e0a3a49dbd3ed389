//! The local driver's `type`/`device`/`o` options (`docker volume create
//! --opt type=tmpfs --opt device=tmpfs --opt o=size=64m`): the volume's
//! `_data` gets `device` mounted on it while a container uses it, as
//! dockerd's local driver does.

use berth_common::mounts::is_mount_point;
use nix::mount::{mount, MsFlags};
use std::collections::BTreeMap;
use std::path::Path;

use super::error::{Result, VolumeError};

/// Options the local driver accepts (dockerd's list, less quota `size`
/// which needs an xfs/ext4 project-quota backing store).
const VALID: [&str; 3] = ["type", "device", "o"];

pub fn validate(opts: &BTreeMap<String, String>) -> Result<()> {
    if let Some(bad) = opts.keys().find(|k| !VALID.contains(&k.as_str())) {
        return Err(VolumeError::invalid(format!("invalid option key: {bad:?}")));
    }
    let has = |k: &str| opts.get(k).is_some_and(|v| !v.is_empty());
    if has("type") && !has("device") {
        return Err(VolumeError::invalid("missing required option: \"device\""));
    }
    if has("device") && !has("type") {
        return Err(VolumeError::invalid("missing required option: \"type\""));
    }
    if has("o") && !has("type") {
        return Err(VolumeError::invalid("missing required option: \"type\""));
    }
    // A tmpfs's options can be checked now rather than when it is mounted.
    if opts.get("type").is_some_and(|t| t == "tmpfs") {
        let o = opts.get("o").map(String::as_str).unwrap_or("");
        super::tmpfs_opts::check(o.split(',').filter(|s| !s.is_empty()))
            .map_err(VolumeError::invalid)?;
    }
    Ok(())
}

/// True when the options ask for a mount (otherwise `_data` is a plain dir).
pub fn needs_mount(opts: &BTreeMap<String, String>) -> bool {
    opts.get("type").is_some_and(|t| !t.is_empty())
}

/// Splits `o` into mount flags and the filesystem's data string.
fn parse_o(o: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        match opt {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "strictatime" => flags |= MsFlags::MS_STRICTATIME,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "dirsync" => flags |= MsFlags::MS_DIRSYNC,
            "suid" | "dev" | "exec" | "async" | "atime" | "diratime" => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

pub fn mount_device(opts: &BTreeMap<String, String>, target: &Path) -> Result<()> {
    if is_mount_point(target) {
        return Ok(());
    }
    let fstype = opts.get("type").map(String::as_str).unwrap_or("");
    let device = opts.get("device").map(String::as_str).unwrap_or("");
    let (flags, data) = parse_o(opts.get("o").map(String::as_str).unwrap_or(""));
    // `type=none,o=bind` is a bind mount; the kernel ignores the type then.
    let fstype = (fstype != "none").then_some(fstype);
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(Some(device), target, fstype, flags, data).map_err(|e| VolumeError::Io {
        context: format!("error while mounting volume '{}'", target.display()),
        source: e.into(),
    })
}

pub fn unmount_device(target: &Path) -> Result<()> {
    berth_common::mounts::unmount_all(target).map_err(VolumeError::io(format!(
        "unmounting volume '{}'",
        target.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation() {
        assert!(validate(&opts(&[])).is_ok());
        assert!(validate(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m")
        ]))
        .is_ok());
        assert_eq!(
            validate(&opts(&[("foo", "x")])).unwrap_err().to_string(),
            "invalid option key: \"foo\""
        );
        assert!(validate(&opts(&[("type", "tmpfs")])).is_err());
        assert!(validate(&opts(&[("o", "size=1m")])).is_err());
    }

    #[test]
    fn o_splits_flags_from_data() {
        let (f, d) = parse_o("size=64m,ro,uid=1000,nosuid");
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(d, "size=64m,uid=1000");
        let (f, d) = parse_o("bind");
        assert_eq!(f, MsFlags::MS_BIND);
        assert_eq!(d, "");
    }

    #[test]
    fn tmpfs_volume_mounts_and_unmounts() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("_data");
        std::fs::create_dir(&target).unwrap();
        let o = opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]);
        mount_device(&o, &target).unwrap();
        assert!(is_mount_point(&target));
        // Idempotent.
        mount_device(&o, &target).unwrap();
        std::fs::write(target.join("f"), b"x").unwrap();
        unmount_device(&target).unwrap();
        assert!(!is_mount_point(&target));
        assert!(!target.join("f").exists());
    }
}
