//! Filling a new, empty volume with what the image has at the mount's
//! destination (dockerd's copy-on-first-mount), unless `nocopy`.
//!
//! The image side is read through the container-view resolution of the
//! archive module (symlinks resolved inside the root file system, nothing
//! followed out of it), streamed as tar into the volume, so ownership,
//! modes, times, links and special files are kept.

use std::path::Path;

use super::error::{Result, VolumeError};
use super::store::VolumeStore;
use crate::containers::archive::{self, ArchiveError, ExtractOptions, FsView, ViewMount};
use crate::containers::record::MountPoint;

impl VolumeStore {
    /// Copies `rootfs`'s content at `mount.destination` into the volume if
    /// the volume is empty. Call with the container's root file system
    /// mounted and the volume mounted (see `mount_container`), before the
    /// container runs. Binds, tmpfs and `nocopy` mounts are left alone.
    pub fn populate(&self, mount: &MountPoint, rootfs: &Path) -> Result<()> {
        if mount.kind != "volume" || mount.mode.split(',').any(|m| m == "nocopy") {
            return Ok(());
        }
        let data = self.mountpoint(&mount.name);
        let mut entries = std::fs::read_dir(&data)
            .map_err(VolumeError::io(format!("reading volume {}", mount.name)))?;
        if entries.next().is_some() {
            return Ok(());
        }
        copy_tree(rootfs, &mount.destination, &data).map_err(|e| VolumeError::Io {
            context: format!(
                "copying the image's {} into volume {}",
                mount.destination, mount.name
            ),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

fn copy_tree(rootfs: &Path, path: &str, dest: &Path) -> std::result::Result<(), ArchiveError> {
    let source = FsView::new(vec![ViewMount {
        destination: "/".into(),
        source: rootfs.to_path_buf(),
        read_only: true,
    }])?;
    // `/.` at the end: archive the directory's content as `./...`.
    let (stat, prepared) = match archive::prepare_archive(&source, &format!("{path}/.")) {
        Ok(p) => p,
        // Nothing at that path in the image: nothing to copy.
        Err(ArchiveError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    // Only a directory's content is copied (as dockerd).
    if stat.mode & (1 << 31) == 0 {
        return Ok(());
    }
    let target = FsView::new(vec![ViewMount {
        destination: "/".into(),
        source: dest.to_path_buf(),
        read_only: false,
    }])?;
    let (reader, writer) = std::io::pipe().map_err(ArchiveError::io("creating a pipe"))?;
    let packer = std::thread::spawn(move || prepared.write(&source, writer).map(drop));
    let extracted = archive::extract(&target, &[], reader, ExtractOptions::default());
    let packed = packer
        .join()
        .map_err(|_| ArchiveError::Internal("the archive writer panicked".into()))?;
    // An extraction error makes the writer fail with a broken pipe; report
    // the extraction's reason first.
    extracted?;
    packed
}
