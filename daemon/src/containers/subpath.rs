//! Volume mounts with `VolumeOptions.Subpath`. At each start the subpath is
//! opened inside the volume with `RESOLVE_IN_ROOT` (a symlink a container
//! left in the volume cannot lead out of it), and the opened file is bind
//! mounted onto a staging point in the bundle; the runtime mounts that, so
//! nothing can swap a path component between the check and the mount.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::error::{ContainerError, Result};
use super::record::MountPoint;

/// `<bundle>/subpaths`: staging points, one per subpath mount.
fn staging_dir(bundle: &Path) -> PathBuf {
    bundle.join("subpaths")
}

/// `mounts` with every subpath mount's source replaced by its staging
/// point (mounted here); None when no mount has a subpath.
pub fn stage(bundle: &Path, mounts: &[MountPoint]) -> Result<Option<Vec<MountPoint>>> {
    if mounts.iter().all(|m| m.subpath.is_empty()) {
        return Ok(None);
    }
    let dir = staging_dir(bundle);
    std::fs::create_dir_all(&dir)
        .map_err(|e| ContainerError::internal(format!("creating {}", dir.display()), e))?;
    let mut out = mounts.to_vec();
    for (i, m) in out.iter_mut().enumerate() {
        if m.subpath.is_empty() {
            continue;
        }
        let target = dir.join(i.to_string());
        if let Err(e) = stage_one(Path::new(&m.source), &m.subpath, &target) {
            unstage(bundle);
            return Err(e);
        }
        m.source = target.to_string_lossy().into_owned();
    }
    Ok(Some(out))
}

fn stage_one(volume: &Path, subpath: &str, target: &Path) -> Result<()> {
    let root = nix::fcntl::open(
        volume,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ContainerError::internal(format!("opening {}", volume.display()), e))?;
    // SAFETY: open returned a fresh fd that nothing else owns.
    let root = unsafe { OwnedFd::from_raw_fd(root) };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = nix::fcntl::openat2(root.as_raw_fd(), subpath, how).map_err(|e| {
        // dockerd's words and status (its safepath package).
        ContainerError::NotFoundOther(format!(
            "cannot access path {}: {}",
            volume.join(subpath).display(),
            e.desc().to_lowercase()
        ))
    })?;
    // SAFETY: openat2 returned a fresh fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(fd.as_raw_fd())
        .map_err(|e| ContainerError::internal("inspecting the volume subpath", e))?;
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let made = if is_dir {
        std::fs::create_dir(target)
    } else {
        std::fs::File::create(target).map(drop)
    };
    made.map_err(|e| ContainerError::internal(format!("creating {}", target.display()), e))?;
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| ContainerError::internal("mounting the volume subpath", e))
}

/// Unmounts and removes the staging points (after the container ran, or
/// what a crash left).
pub fn unstage(bundle: &Path) {
    let dir = staging_dir(bundle);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Until nothing is mounted there any more (a point may be stacked).
        while umount2(&path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW).is_ok() {}
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), error = %e, "removing a subpath staging point");
        }
    }
    let _ = std::fs::remove_dir(&dir);
}
