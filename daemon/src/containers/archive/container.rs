//! A container record's file system as an [`FsView`]: its root file system
//! (the running container's mount, or a private mount of a stopped one's
//! overlay for the duration of the copy), the per-container /etc files and
//! its volume and bind mounts. tmpfs mounts exist only inside the
//! container and are not visible here, as with dockerd.

use std::path::PathBuf;

use super::{ArchiveError, FsView, ViewMount};
use crate::containers::core::Containers;
use crate::containers::record::ContainerRecord;
use crate::containers::rootfs;

/// The view plus the temporary rootfs mount it may need; dropping it
/// unmounts. Use it on a blocking thread (it walks the file system).
pub struct ContainerFs {
    // Field order matters: the view's fds close before the unmount.
    pub view: FsView,
    _rootfs: ContainerRootfs,
}

/// A container's root file system to read from: the running container's
/// mount in its bundle, or a private mount of a stopped one's overlay
/// (under `<exec-root>/<purpose>/`), unmounted and removed on drop.
pub struct ContainerRootfs {
    pub path: PathBuf,
    _temp_mount: Option<TempMount>,
}

/// A private mount of a stopped container's rootfs, unmounted on drop.
struct TempMount {
    path: PathBuf,
    purpose: &'static str,
}

impl ContainerRootfs {
    /// `live`: the container is running (its rootfs mounted in the
    /// bundle). Otherwise the caller holds the container's op lock, so it
    /// cannot start while we have its layers mounted.
    pub fn open(
        containers: &Containers,
        rec: &ContainerRecord,
        live: bool,
        purpose: &'static str,
    ) -> Result<ContainerRootfs, ArchiveError> {
        let bundle_rootfs = containers.settings.bundle_dir(&rec.id).join("rootfs");
        if live && berth_common::mounts::is_mount_point(&bundle_rootfs) {
            return Ok(ContainerRootfs {
                path: bundle_rootfs,
                _temp_mount: None,
            });
        }
        let target = containers.settings.exec_root.join(purpose).join(format!(
            "{}-{}",
            &rec.id[..12.min(rec.id.len())],
            hex::encode(rand::random::<[u8; 4]>())
        ));
        let mounted = rootfs::mount_rootfs(
            &containers.settings.data_root,
            &rec.id,
            &rec.layers,
            &target,
            rootfs::Durability::Kept,
        );
        // Whatever happened, the guard cleans up the mount point.
        let guard = TempMount {
            path: target.clone(),
            purpose,
        };
        mounted.map_err(ArchiveError::io("mounting the container's file system"))?;
        Ok(ContainerRootfs {
            path: target,
            _temp_mount: Some(guard),
        })
    }
}

impl ContainerFs {
    /// `live`: the container is running (its rootfs mounted in the
    /// bundle). Otherwise the caller holds the container's op lock, so it
    /// cannot start while we have its layers mounted.
    pub fn open(
        containers: &Containers,
        rec: &ContainerRecord,
        live: bool,
    ) -> Result<ContainerFs, ArchiveError> {
        let root = ContainerRootfs::open(containers, rec, live, "archive")?;
        let ro = rec.host_config.readonly_rootfs;
        let mut mounts = vec![ViewMount {
            destination: "/".into(),
            source: root.path.clone(),
            read_only: ro,
        }];
        let dir = containers.container_dir(&rec.id);
        for (file, dest) in [
            ("hostname", "/etc/hostname"),
            ("hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
        ] {
            if dir.join(file).is_file() {
                mounts.push(ViewMount {
                    destination: dest.into(),
                    source: dir.join(file),
                    read_only: ro,
                });
            }
        }
        for m in rec
            .mounts
            .iter()
            .filter(|m| m.kind != "tmpfs" && !m.source.is_empty())
        {
            mounts.push(ViewMount {
                destination: m.destination.clone(),
                source: PathBuf::from(&m.source),
                read_only: !m.rw,
            });
        }
        Ok(ContainerFs {
            view: FsView::new(mounts)?,
            _rootfs: root,
        })
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        if let Err(e) = rootfs::unmount_rootfs(&self.path) {
            tracing::error!(path = %self.path.display(), error = %e, purpose = self.purpose, "unmounting a container file system after reading it");
            return;
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

impl ContainerFs {
    /// A text file of the container (e.g. /etc/passwd), empty when missing.
    pub fn read_text(&self, path: &str) -> Result<String, ArchiveError> {
        use std::io::Read;
        use std::os::fd::AsFd;
        let parts = match self.view.resolve(path.as_bytes(), true) {
            Ok(p) => p,
            Err(ArchiveError::NotFound) => return Ok(String::new()),
            Err(e) => return Err(e),
        };
        let fd = match self.view.open(&parts, libc::O_PATH) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(String::new()),
            Err(e) => return Err(ArchiveError::io("opening a file")(e)),
        };
        if super::sys::file_type(&super::sys::fstat(fd.as_fd()).map_err(ArchiveError::io("stat"))?)
            != libc::S_IFREG
        {
            return Ok(String::new());
        }
        let file = std::fs::File::from(
            super::sys::reopen(fd.as_fd(), libc::O_RDONLY)
                .map_err(ArchiveError::io("opening a file"))?,
        );
        let mut text = String::new();
        file.take(16 << 20)
            .read_to_string(&mut text)
            .map_err(ArchiveError::io("reading a file"))?;
        Ok(text)
    }

    /// uid and gid of `user` (`name`, `uid`, `name:group`, ...) in the
    /// container's /etc/passwd and /etc/group.
    pub fn lookup_user(&self, user: &str) -> Result<(u32, u32), ArchiveError> {
        let passwd = self.read_text("/etc/passwd")?;
        let group = self.read_text("/etc/group")?;
        let u = crate::containers::spec::user::resolve(user, &[], &passwd, &group)
            .map_err(|e| ArchiveError::BadArchive(e.to_string()))?;
        Ok((u.uid, u.gid))
    }
}
