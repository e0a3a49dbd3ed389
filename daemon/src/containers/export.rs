//! `GET /containers/{id}/export`: the container's root file system as a
//! tar stream (without its volumes, as dockerd). A running container's
//! mounted rootfs is read; a stopped one's overlay is mounted privately
//! for the duration (the caller holds the container's operation lock so it
//! cannot start meanwhile).

use std::io::Write;
use std::path::PathBuf;

use super::archive::{self, ArchiveError, FsView, ViewMount};
use super::core::Containers;
use super::record::ContainerRecord;
use super::rootfs;

/// Writes the tar of `rec`'s root file system to `out`.
pub fn export<W: Write>(
    containers: &Containers,
    rec: &ContainerRecord,
    live: bool,
    out: W,
) -> Result<W, ArchiveError> {
    let bundle_rootfs = containers.settings.bundle_dir(&rec.id).join("rootfs");
    let (root, _temp) = if live && rootfs::is_mounted(&bundle_rootfs) {
        (bundle_rootfs, None)
    } else {
        let target = containers.settings.exec_root.join("export").join(format!(
            "{}-{}",
            &rec.id[..12.min(rec.id.len())],
            hex::encode(rand::random::<[u8; 4]>())
        ));
        let mounted = rootfs::mount_rootfs(
            &containers.settings.data_root,
            &rec.id,
            &rec.layers,
            &target,
        );
        let guard = TempMount(target.clone());
        mounted.map_err(ArchiveError::io("mounting the container's file system"))?;
        (target, Some(guard))
    };
    let view = FsView::new(vec![ViewMount {
        destination: "/".into(),
        source: root,
        read_only: true,
    }])?;
    let (_, prepared) = archive::prepare_archive(&view, "/")?;
    prepared.write(&view, out)
}

/// A private mount of a stopped container's rootfs, unmounted on drop.
struct TempMount(PathBuf);

impl Drop for TempMount {
    fn drop(&mut self) {
        if let Err(e) = rootfs::unmount_rootfs(&self.0) {
            tracing::error!(path = %self.0.display(), error = %e, "unmounting a container file system after export");
            return;
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}
