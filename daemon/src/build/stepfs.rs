//! A private overlay mount of an image's layers with a fresh upper
//! directory: the root file system COPY, ADD and WORKDIR write into, and
//! the read-only view of an earlier stage for `COPY --from`. Unmounted and
//! removed on drop, whatever happened.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::containers::archive::{FsView, ViewMount};
use crate::containers::rootfs;

use super::BuildError;

pub struct StepRoot {
    dir: PathBuf,
    merged: PathBuf,
}

impl StepRoot {
    /// Mounts `layers` (lowest first) under `dir` (created; must not exist).
    pub fn mount(dir: PathBuf, layers: &[PathBuf]) -> Result<StepRoot, BuildError> {
        let err = |e: io::Error| BuildError::Internal(format!("preparing a build step: {e}"));
        fs::create_dir_all(&dir).map_err(err)?;
        let root = StepRoot {
            merged: dir.join("merged"),
            dir,
        };
        let (upper, work, empty) = (root.upper(), root.dir.join("work"), root.dir.join("empty"));
        for d in [&upper, &work, &root.merged, &empty] {
            fs::create_dir_all(d).map_err(err)?;
        }
        let lowers: Vec<PathBuf> = if layers.is_empty() {
            vec![empty]
        } else {
            layers.to_vec()
        };
        let opts = rootfs::overlay_options(&lowers, &upper, &work);
        if opts.len() > 4000 {
            return Err(BuildError::Step(format!(
                "{} layers make overlay options longer than a page",
                lowers.len()
            )));
        }
        // `volatile` (Linux 5.10+): the unmount then skips overlayfs's
        // syncfs of the whole data-root file system, which costs tens of
        // milliseconds per step, a cached one too. Safe here: a step's upper
        // directory is scratch, committed to a layer by the image store with
        // its own syncs, and removed after a crash.
        let mount = |opts: &str| {
            nix::mount::mount(
                Some("overlay"),
                &root.merged,
                Some("overlay"),
                nix::mount::MsFlags::empty(),
                Some(opts),
            )
        };
        mount(&format!("{opts},volatile"))
            .or_else(|e| match e {
                nix::errno::Errno::EINVAL => mount(&opts),
                e => Err(e),
            })
            .map_err(|e| {
                BuildError::Internal(format!("mounting a build step's file system: {e}"))
            })?;
        Ok(root)
    }

    pub fn merged(&self) -> PathBuf {
        self.merged.clone()
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn view(&self) -> Result<FsView, BuildError> {
        FsView::new(vec![ViewMount {
            destination: "/".into(),
            source: self.merged.clone(),
            read_only: false,
        }])
        .map_err(|e| BuildError::Internal(e.to_string()))
    }

    /// Unmount now (before reading the upper directory).
    pub fn unmount(&self) -> Result<(), BuildError> {
        rootfs::unmount_rootfs(&self.merged)
            .map_err(|e| BuildError::Internal(format!("unmounting a build step: {e}")))
    }
}

impl Drop for StepRoot {
    fn drop(&mut self) {
        if let Err(e) = rootfs::unmount_rootfs(&self.merged) {
            tracing::error!(path = %self.merged.display(), error = %e, "unmounting a build step");
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(path = %self.dir.display(), error = %e, "removing a build step");
        }
    }
}

/// Unmounts whatever is mounted below `dir` (cleanup after a crash).
pub fn unmount_below(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut targets: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = rootfs::unmount_rootfs(Path::new(t));
    }
}
