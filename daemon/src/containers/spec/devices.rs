//! Host devices: all of them for privileged containers (every char/block
//! device under /dev, as dockerd passes them), and `--device` mappings.

use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Directories under /dev that the container gets its own of.
const SKIP: &[&str] = &[
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/dev/console",
    "/dev/ptmx",
];

pub fn host_devices() -> Vec<Value> {
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out, 0);
    out
}

fn walk(dir: &Path, out: &mut Vec<Value>, depth: usize) {
    if depth > 4 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(p) = path.to_str() else { continue };
        if SKIP.contains(&p) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(&path, out, depth + 1);
            continue;
        }
        if let Some(d) = node(p, &meta) {
            out.push(d);
        }
    }
}

/// The OCI device entry of a device node, `None` for anything else.
fn node(path: &str, meta: &std::fs::Metadata) -> Option<Value> {
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(json!({
        "path": path,
        "type": kind,
        "major": libc::major(rdev),
        "minor": libc::minor(rdev),
        "fileMode": meta.mode() & 0o7777,
        "uid": meta.uid(),
        "gid": meta.gid(),
    }))
}

/// One `HostConfig.Devices` entry as the API sends it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// The OCI device entries and cgroup rules for a `--device` mapping,
/// checked as the docker CLI and dockerd check them. A directory maps every
/// device node below it.
pub fn from_mapping(raw: &Value) -> Result<(Vec<Value>, Vec<Value>), String> {
    let m: DeviceMapping =
        serde_json::from_value(raw.clone()).map_err(|e| format!("invalid device mapping: {e}"))?;
    let perms = if m.cgroup_permissions.is_empty() {
        "rwm"
    } else {
        m.cgroup_permissions.as_str()
    };
    if !valid_mode(perms) {
        return Err(format!("invalid device mode: {perms}"));
    }
    let host = m.path_on_host.as_str();
    let in_container = if m.path_in_container.is_empty() {
        host
    } else {
        m.path_in_container.as_str()
    };
    if host.is_empty() {
        return Err("invalid device mapping: PathOnHost is empty".into());
    }
    if !in_container.starts_with('/') {
        return Err(format!("{in_container} is not an absolute path"));
    }
    if host.contains('\0') || in_container.contains('\0') {
        return Err("invalid device mapping: path contains a NUL byte".into());
    }
    let gather_err = |reason: &dyn std::fmt::Display| {
        format!("error gathering device information while adding custom device {host:?}: {reason}")
    };
    // Symlinks (e.g. /dev/disk/by-id/…) are followed, as dockerd does.
    let meta = std::fs::metadata(host).map_err(|e| gather_err(&io_reason(&e)))?;
    let mut devices = Vec::new();
    if meta.is_dir() {
        let mut found = Vec::new();
        walk(Path::new(host), &mut found, 0);
        for mut d in found {
            let path = d["path"].as_str().unwrap_or_default().to_string();
            let rel = path.strip_prefix(host).unwrap_or(&path);
            d["path"] = json!(format!("{}{}", in_container.trim_end_matches('/'), rel));
            devices.push(d);
        }
        if devices.is_empty() {
            return Err(gather_err(&"not a device node"));
        }
    } else {
        let mut d = node(host, &meta).ok_or_else(|| gather_err(&"not a device node"))?;
        d["path"] = json!(in_container);
        devices.push(d);
    }
    let rules = devices
        .iter()
        .map(|d| {
            json!({
                "allow": true,
                "type": d["type"],
                "major": d["major"],
                "minor": d["minor"],
                "access": perms,
            })
        })
        .collect();
    Ok((devices, rules))
}

/// Go's wording for the usual errors, as dockerd's message shows them.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `r`, `w`, `m`, each at most once.
fn valid_mode(mode: &str) -> bool {
    let mut seen = [false; 3];
    !mode.is_empty()
        && mode.chars().all(|c| {
            let i = match c {
                'r' => 0,
                'w' => 1,
                'm' => 2,
                _ => return false,
            };
            !std::mem::replace(&mut seen[i], true)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_checked_as_dockerd() {
        let (devs, rules) = from_mapping(&json!({
            "PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"
        }))
        .unwrap();
        assert_eq!(devs[0]["path"], "/dev/mynull");
        assert_eq!(
            (devs[0]["major"].as_u64(), devs[0]["minor"].as_u64()),
            (Some(1), Some(3))
        );
        assert_eq!(rules[0]["access"], "rw");
        let err = |v: Value| from_mapping(&v).unwrap_err();
        assert_eq!(
            err(json!({"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"})),
            "invalid device mode: rwx"
        );
        assert_eq!(
            err(json!({"PathOnHost": "/dev/null", "CgroupPermissions": "rr"})),
            "invalid device mode: rr"
        );
        assert_eq!(
            err(json!({"PathOnHost": "/dev/nosuch"})),
            "error gathering device information while adding custom device \"/dev/nosuch\": no such file or directory"
        );
        assert!(err(json!({"PathOnHost": "/etc/hostname"})).ends_with("not a device node"));
        assert_eq!(
            err(json!({"PathOnHost": "/dev/null", "PathInContainer": "dev/n"})),
            "dev/n is not an absolute path"
        );
    }
}
