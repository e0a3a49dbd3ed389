//! A container without a mount namespace of its own shares the runtime's
//! (the host's). Its mounts then sit on the host below the rootfs: one bind
//! of the rootfs on itself, made private so nothing mounted below it
//! propagates to the host's peers, with everything else mounted under that
//! bind. `delete` detaches the bind (and so all of it) again. Which mounts
//! at the rootfs are ours is told by counting: the mounts stacked there
//! before `create` (e.g. the engine's overlay) stay.

use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// What `delete` needs to undo the mounts of a host-mount-ns container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostNsRootfs {
    /// The rootfs as the kernel names it in mountinfo.
    pub path: PathBuf,
    /// Mounts stacked at `path` before the container was created.
    pub mounts_before: usize,
}

impl HostNsRootfs {
    pub fn record(rootfs: &Path) -> Result<HostNsRootfs> {
        let path =
            std::fs::canonicalize(rootfs).ctx(|| format!("resolve rootfs {}", rootfs.display()))?;
        let mounts_before = mounts_at(&path)?;
        Ok(HostNsRootfs {
            path,
            mounts_before,
        })
    }

    /// Detaches what this container stacked on its rootfs (with every
    /// mount below it). Idempotent.
    pub fn unmount(&self) -> Result<()> {
        for _ in 0..16 {
            if mounts_at(&self.path)? <= self.mounts_before {
                return Ok(());
            }
            umount2(&self.path, MntFlags::MNT_DETACH)
                .ctx(|| format!("unmount the container's rootfs {}", self.path.display()))?;
        }
        Err(Error::invalid(format!(
            "mounts keep reappearing on {}",
            self.path.display()
        )))
    }
}

/// How many mounts have `path` as their mount point.
fn mounts_at(path: &Path) -> Result<usize> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| unescape(p) == path.as_os_str().as_encoded_bytes())
        .count())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && s.is_char_boundary(i + 4) {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b\134c"), b"/a b\\c");
        assert_eq!(unescape(r"/plain"), b"/plain");
        assert_eq!(unescape(r"/short\04"), b"/short\\04");
    }
}
