//! `GET /containers/{id}/export`: the container's root file system as a
//! tar stream (without its volumes, as dockerd). A running container's
//! mounted rootfs is read; a stopped one's overlay is mounted privately
//! for the duration (the caller holds the container's operation lock so it
//! cannot start meanwhile).

use std::io::Write;

use super::archive::container::ContainerRootfs;
use super::archive::{self, ArchiveError, FsView, ViewMount};
use super::core::Containers;
use super::record::ContainerRecord;

/// Writes the tar of `rec`'s root file system to `out`.
pub fn export<W: Write>(
    containers: &Containers,
    rec: &ContainerRecord,
    live: bool,
    out: W,
) -> Result<W, ArchiveError> {
    // Dropped after the view (declared first): its fds close before the unmount.
    let root = ContainerRootfs::open(containers, rec, live, "export")?;
    let view = FsView::new(vec![ViewMount {
        destination: "/".into(),
        source: root.path.clone(),
        read_only: true,
    }])?;
    let (_, prepared) = archive::prepare_archive(&view, "/")?;
    prepared.write(&view, out)
}
