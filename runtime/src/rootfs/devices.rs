//! Device nodes and the standard /dev symlinks of a container.

use std::path::Path;

use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::mounts::{bind, create_file, mkdir_all};
use super::resolve::secure_join;
use crate::error::{Context, Error, Result};

/// (path, major, minor): what every container gets, as in runc.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Create default and configured devices. In a user namespace mknod is not
/// allowed, so the host's node is bound in instead.
pub fn create_devices(
    rootfs: &Path,
    configured: &[LinuxDevice],
    defaults: bool,
    in_userns: bool,
) -> Result<()> {
    let old = nix::sys::stat::umask(Mode::empty());
    let result = (|| {
        for (path, major, minor) in DEFAULT_DEVICES {
            if !defaults || configured.iter().any(|d| d.path() == Path::new(path)) {
                continue;
            }
            make_node(
                rootfs,
                Path::new(path),
                SFlag::S_IFCHR,
                major,
                minor,
                0o666,
                None,
                None,
                in_userns,
            )?;
        }
        for d in configured {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
                LinuxDeviceType::B => SFlag::S_IFBLK,
                LinuxDeviceType::P => SFlag::S_IFIFO,
                LinuxDeviceType::A => {
                    return Err(Error::invalid(format!(
                        "device {}: type \"a\" is only valid in cgroup rules",
                        d.path().display()
                    )))
                }
            };
            make_node(
                rootfs,
                d.path(),
                kind,
                d.major() as u64,
                d.minor() as u64,
                d.file_mode().unwrap_or(0o666),
                d.uid(),
                d.gid(),
                in_userns,
            )?;
        }
        Ok(())
    })();
    nix::sys::stat::umask(old);
    result
}

#[allow(clippy::too_many_arguments)]
fn make_node(
    rootfs: &Path,
    path: &Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    in_userns: bool,
) -> Result<()> {
    if !path.starts_with("/dev") {
        return Err(Error::invalid(format!(
            "device {} is not under /dev",
            path.display()
        )));
    }
    let dest = secure_join(rootfs, path)?;
    if in_userns {
        create_file(&dest)?;
        return bind(path, &dest, nix::mount::MsFlags::empty());
    }
    if let Some(parent) = dest.parent() {
        mkdir_all(parent)?;
    }
    let _ = std::fs::remove_file(&dest);
    mknod(
        &dest,
        kind,
        Mode::from_bits_truncate(mode & 0o7777),
        makedev(major, minor),
    )
    .ctx(|| format!("mknod {}", path.display()))?;
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(
            &dest,
            uid.map(nix::unistd::Uid::from_raw),
            gid.map(nix::unistd::Gid::from_raw),
        )
        .ctx(|| format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx → pts/ptmx.
pub fn create_symlinks(rootfs: &Path, has_devpts: bool) -> Result<()> {
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "/dev/core"));
    }
    if has_devpts {
        let ptmx = secure_join(rootfs, Path::new("/dev/ptmx"))?;
        let _ = std::fs::remove_file(&ptmx);
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    for (target, link) in links {
        let dest = secure_join(rootfs, Path::new(link))?;
        match std::os::unix::fs::symlink(target, &dest) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).ctx(|| format!("symlink {link}"));
            }
            _ => {}
        }
    }
    Ok(())
}
