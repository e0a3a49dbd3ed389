//! A read-only view of an executable, for programs that run where a
//! container can see them (CVE-2019-5736: a container that gets hold of
//! /proc/PID/exe of a runtime process must not be able to write through it
//! to the host's binary).
//!
//! The view is a detached bind mount of the one file (`open_tree` with
//! OPEN_TREE_CLONE), made read-only (`mount_setattr`) and held by an
//! O_PATH descriptor. It belongs to no mount namespace, so it costs no
//! namespace and shows up in no mount table; it lives as long as the
//! descriptor or a process executed from it. Needs CAP_SYS_ADMIN and
//! Linux 5.12; callers fall back to other means where it fails.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `struct mount_attr`, version 0.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// An O_PATH descriptor of `path` (followed if it is a link, so
/// "/proc/self/exe" names the running binary) on a private read-only
/// mount. Execute it with execveat(fd, "", AT_EMPTY_PATH) or through
/// /proc/self/fd/N.
pub fn open(path: &Path) -> io::Result<OwnedFd> {
    let c_path = crate::c_string(path.as_os_str())?;
    // SAFETY: open_tree with a valid C string; the result is a new fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let view = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on our fd with a valid, correctly sized struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd as libc::c_int,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(view)
}

/// Is the file `path` names on a read-only mount?
pub fn is_readonly(path: &Path) -> bool {
    let Ok(c_path) = crate::c_string(path.as_os_str()) else {
        return false;
    };
    // SAFETY: statvfs into a zeroed struct we own.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and out pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    rc == 0 && st.f_flag & libc::ST_RDONLY != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_view_is_the_same_file_and_cannot_be_written() {
        if !nix_is_root() {
            return;
        }
        let dir = std::env::temp_dir().join(format!("berth-roexe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("prog");
        std::fs::write(&file, b"#!/bin/sh\n").unwrap();
        let view = open(&file).expect("open_tree on a root-owned file");
        let via = std::path::PathBuf::from(format!("/proc/self/fd/{}", view.as_raw_fd()));
        assert!(is_readonly(&via), "the view is not read-only");
        assert!(!is_readonly(&file), "the original became read-only");
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&via)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        assert_eq!(std::fs::read(&via).unwrap(), b"#!/bin/sh\n");
        drop(view);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn nix_is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
}
