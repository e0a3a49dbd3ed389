//! Mount points on the host side: is something mounted here, and take it
//! all off.
//!
//! statx's mount-root attribute (Linux 5.8+) answers without reading the
//! mount table, which grows with every running container and used to be
//! read several times per container run; older kernels fall back to it.

use std::io;
use std::path::Path;

/// How many mounts stacked on one point an unmount takes off at most, so
/// one that keeps coming back cannot hang the caller.
const MAX_STACKED: usize = 64;

/// Whether a file system is mounted at `path` (not just below it).
pub fn is_mount_point(path: &Path) -> bool {
    mount_root_attribute(path).unwrap_or_else(|| in_mount_table(path))
}

/// Lazily unmount everything stacked at `path`; nothing mounted (or no
/// such path) is fine. Errors carry no path: callers say what it was.
pub fn unmount_all(path: &Path) -> io::Result<()> {
    let c = crate::c_string(path.as_os_str())?;
    for _ in 0..MAX_STACKED {
        // SAFETY: a NUL-terminated path; umount2 reads nothing else.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            continue;
        }
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            // Not (or no longer) a mount point / not there at all.
            Some(libc::EINVAL | libc::ENOENT) => Ok(()),
            _ => Err(e),
        };
    }
    Err(io::Error::other(format!(
        "still mounted after {MAX_STACKED} unmounts"
    )))
}

/// None when the kernel does not report the attribute.
fn mount_root_attribute(path: &Path) -> Option<bool> {
    let c = crate::c_string(path.as_os_str()).ok()?;
    // SAFETY: plain data; statx fills it.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a buffer of statx's own type.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            0,
            &mut stx,
        )
    };
    if rc != 0 {
        return (io::Error::last_os_error().kind() == io::ErrorKind::NotFound).then_some(false);
    }
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (stx.stx_attributes_mask & bit != 0).then_some(stx.stx_attributes & bit != 0)
}

fn in_mount_table(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.to_string_lossy();
    table.lines().any(|l| l.split(' ').nth(4) == Some(&*p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpfs(at: &Path) {
        let src = std::ffi::CString::new("tmpfs").unwrap();
        let target = crate::c_string(at.as_os_str()).unwrap();
        // SAFETY: NUL-terminated strings; no data argument.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                src.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", io::Error::last_os_error());
    }

    #[test]
    fn stacked_mounts_are_seen_and_all_taken_off() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to mount");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("m");
        std::fs::create_dir(&point).unwrap();
        assert!(!is_mount_point(&point));
        assert!(!in_mount_table(&point));
        tmpfs(&point);
        tmpfs(&point);
        assert!(is_mount_point(&point));
        assert!(in_mount_table(&point));
        // A directory inside a mount is not a mount point itself.
        std::fs::create_dir(point.join("inner")).unwrap();
        assert!(!is_mount_point(&point.join("inner")));
        unmount_all(&point).unwrap();
        assert!(!is_mount_point(&point));
        assert!(!in_mount_table(&point));
        unmount_all(&point).unwrap();
        assert!(!is_mount_point(&dir.path().join("absent")));
        unmount_all(&dir.path().join("absent")).unwrap();
    }
}
