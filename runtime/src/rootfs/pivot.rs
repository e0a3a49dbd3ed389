//! Switching the process to the new root.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use crate::error::{Context, Result};

/// pivot_root into `rootfs` and detach the old root, using the
/// pivot_root(".", ".") trick so no directory for the old root is needed.
pub fn pivot(rootfs: &Path) -> Result<()> {
    let old = std::fs::File::open("/").ctx(|| "open old root")?;
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    pivot_root(".", ".").ctx(|| format!("pivot_root {}", rootfs.display()))?;
    fchdir(std::os::fd::AsRawFd::as_raw_fd(&old)).ctx(|| "fchdir old root")?;
    // Keep the unmount from propagating back to the host.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| "make old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "unmount old root")?;
    chdir("/").ctx(|| "chdir /")
}

/// `--no-pivot`: move the root mount over / and chroot into it.
pub fn move_root(rootfs: &Path) -> Result<()> {
    chdir(rootfs).ctx(|| format!("chdir {}", rootfs.display()))?;
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .ctx(|| "move rootfs to /")?;
    chroot(".").ctx(|| "chroot")?;
    chdir("/").ctx(|| "chdir /")
}
