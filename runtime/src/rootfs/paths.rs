//! maskedPaths, readonlyPaths and a read-only root: applied after
//! pivot_root, to paths as the container sees them.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::mounts::remount;
use crate::error::{Context, Result};

/// Hide a path: an empty read-only tmpfs over directories, /dev/null over files.
pub fn mask(path: &str) -> Result<()> {
    let p = Path::new(path);
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx(|| format!("stat masked path {path}")),
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            Some("size=0k"),
        )
        .ctx(|| format!("mask {path}"))
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("mask {path}"))
    }
}

pub fn make_readonly(path: &str) -> Result<()> {
    let p = Path::new(path);
    match mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Err(nix::Error::ENOENT) => return Ok(()),
        r => r.ctx(|| format!("bind readonly path {path}"))?,
    }
    remount(p, MsFlags::MS_RDONLY | MsFlags::MS_REC)
}

pub fn readonly_root() -> Result<()> {
    remount(Path::new("/"), MsFlags::MS_RDONLY)
}
