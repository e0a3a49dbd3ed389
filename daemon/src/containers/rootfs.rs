//! The container's root filesystem: an overlay of the image layers with a
//! per-container upper layer, mounted in the bundle while it runs.

use berth_common::mounts::is_mount_point;
use nix::mount::{mount, MsFlags};
use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `<data-root>/overlay/containers/<id>/{upper,work}`.
pub fn layer_dir(data_root: &Path, id: &str) -> PathBuf {
    data_root.join("overlay/containers").join(id)
}

pub fn create_layer(data_root: &Path, id: &str) -> io::Result<()> {
    let dir = layer_dir(data_root, id);
    fs::create_dir_all(dir.join("upper"))?;
    fs::create_dir_all(dir.join("work"))
}

pub fn remove_layer(data_root: &Path, id: &str) -> io::Result<()> {
    // Container-made content: any depth (see berth_common::tree).
    berth_common::tree::remove_all(&layer_dir(data_root, id))
}

/// The overlay mount options (top layer first in `lowerdir`).
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| escape(&l.to_string_lossy()))
        .collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        escape(&upper.to_string_lossy()),
        escape(&work.to_string_lossy())
    )
}

/// overlayfs splits on `:` and `,`; escape them.
fn escape(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// How a container's overlay is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Unmounting syncs the upper directory's file system (overlayfs
    /// does a syncfs of it), so a stopped container's files are on disk.
    Kept,
    /// `volatile` (Linux 5.10+): no sync at unmount. For containers whose
    /// files are thrown away when they exit (`--rm`): the syncfs of the
    /// whole data-root file system is the dearest part of their teardown.
    Throwaway,
}

/// Mount the overlay at `target` (created if missing); a no-op when
/// already mounted (e.g. after a daemon restart).
pub fn mount_rootfs(
    data_root: &Path,
    id: &str,
    layers: &[PathBuf],
    target: &Path,
    durability: Durability,
) -> io::Result<()> {
    fs::create_dir_all(target)?;
    if is_mount_point(target) {
        return Ok(());
    }
    let dir = layer_dir(data_root, id);
    let (upper, work) = (dir.join("upper"), dir.join("work"));
    fs::create_dir_all(&upper)?;
    fs::create_dir_all(&work)?;
    // An image without layers (FROM scratch imports) gets an empty lower.
    let empty = [dir.join("empty")];
    let layers = if layers.is_empty() {
        fs::create_dir_all(&empty[0])?;
        &empty[..]
    } else {
        layers
    };
    let opts = overlay_options(layers, &upper, &work);
    if opts.len() > 4000 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} layers make overlay options longer than a page",
                layers.len()
            ),
        ));
    }
    // A volatile mount leaves work/work/incompat/volatile behind, and
    // overlayfs refuses the directory until it is gone. The work directory
    // is scratch whenever the overlay is not mounted.
    let _ = fs::remove_dir_all(work.join("work").join("incompat"));
    let mount_with = |opts: &str| {
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts),
        )
    };
    let mounted = match durability {
        Durability::Kept => mount_with(&opts),
        Durability::Throwaway => mount_with(&format!("{opts},volatile")).or_else(|e| match e {
            // A kernel older than 5.10.
            nix::errno::Errno::EINVAL => mount_with(&opts),
            e => Err(e),
        }),
    };
    mounted.map_err(|e| io::Error::other(format!("mounting overlay at {}: {e}", target.display())))
}

/// Unmount the rootfs at `target` and return what keeps its overlay alive
/// (None when nothing was mounted there). Unmounting an overlay that is
/// not `volatile` syncs its upper file system, all of the data root's,
/// when the last reference goes: dropping the returned descriptor does
/// that, so a caller can do it off its answer's path. Until then the
/// upper and work directories are in use; mount them again only after.
pub fn detach_rootfs(target: &Path) -> io::Result<Option<OwnedFd>> {
    let held = if is_mount_point(target) {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(target)
            .ok()
            .map(OwnedFd::from)
    } else {
        None
    };
    unmount_rootfs(target)?;
    Ok(held)
}

/// Unmount whatever is at `target` (lazily, so a straggling process in
/// another namespace cannot make it fail). Not mounted is fine.
pub fn unmount_rootfs(target: &Path) -> io::Result<()> {
    berth_common::mounts::unmount_all(target)
        .map_err(|e| io::Error::new(e.kind(), format!("unmounting {}: {e}", target.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_is_top_first_and_escaped() {
        let o = overlay_options(
            &[PathBuf::from("/l/base"), PathBuf::from("/l/top:1")],
            Path::new("/u"),
            Path::new("/w"),
        );
        assert_eq!(o, "lowerdir=/l/top\\:1:/l/base,upperdir=/u,workdir=/w");
    }
}
