//! Keeps container and layer contents out of other host users' reach.
//!
//! A process in a container can create a setuid-root file; if any host user
//! can walk to it through the overlay upper dir or the mounted rootfs, that
//! user runs it as root (CVE-2021-41091 in dockerd). The data and exec roots
//! and every directory leading to container contents are therefore 0710
//! owned by root: the group bit stays so an administrator may grant a group
//! traversal, nobody else gets in. Modes are fixed at every start, so
//! installs made by older versions with 0755 directories are repaired.

use std::fs::{self, DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Mode of the roots and of the directories that lead to container contents.
pub const MODE: u32 = 0o710;

/// Under the data root: layers, container rw layers, image content, volumes,
/// container records (logs, hostfiles).
const DATA_CHILDREN: &[&str] = &["overlay", "image", "containers", "volumes"];
/// Under the exec root: bundles with the mounted rootfs, runtime state,
/// private mounts of stopped containers for archive/export.
const EXEC_CHILDREN: &[&str] = &["shims", "runtime", "archive", "export"];

/// Creates the data and exec roots (and their content directories) with
/// [`MODE`], and tightens them where they already exist with looser modes.
pub fn prepare(data_root: &Path, exec_root: &Path) -> Result<()> {
    for (root, children) in [(data_root, DATA_CHILDREN), (exec_root, EXEC_CHILDREN)] {
        ensure_private_dir(root)?;
        for child in children {
            ensure_private_dir(&root.join(child))?;
        }
    }
    Ok(())
}

fn ensure_private_dir(dir: &Path) -> Result<()> {
    match DirBuilder::new().mode(MODE).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Parents missing: they are ordinary host directories (e.g.
            // /var/lib), created with the usual mode; only the leaf is ours.
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            match DirBuilder::new().mode(MODE).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
            }
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta =
        fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    anyhow::ensure!(meta.is_dir(), "{} is not a directory", dir.display());
    if meta.permissions().mode() & 0o7777 != MODE {
        fs::set_permissions(dir, Permissions::from_mode(MODE))
            .with_context(|| format!("chmod {:o} {}", MODE, dir.display()))?;
        tracing::info!(dir = %dir.display(), "made private (0{MODE:o})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_and_repairs_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("lib/berth");
        let exec = tmp.path().join("run/berth");
        fs::create_dir_all(data.join("overlay")).unwrap();
        fs::set_permissions(&data, Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(data.join("overlay"), Permissions::from_mode(0o777)).unwrap();
        prepare(&data, &exec).unwrap();
        for p in [&data, &exec, &data.join("overlay"), &exec.join("shims")] {
            assert_eq!(mode(p), MODE, "{}", p.display());
        }
    }

    #[test]
    fn refuses_a_root_that_is_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(prepare(&file, &tmp.path().join("x")).is_err());
    }
}
