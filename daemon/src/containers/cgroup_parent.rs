//! The containers' cgroup parent (`berth`, or `cgroup-parent`) stays in
//! every cgroup hierarchy while berthd runs, as dockerd keeps `docker`.
//! Left to the runtime, it is made with a container's cgroup and removed
//! again with the last one: for short-lived containers that is ten more
//! mkdirs, ten more rmdirs and a cpuset copy each time, about 1 ms of a
//! `run` on a hybrid host.
//!
//! Only the directories berthd made go when it stops (a parent an
//! administrator made, maybe with limits, stays), and only once empty.
//! They are listed in the exec root, so the berthd after a crash knows
//! them too.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use super::cgroupfs;
use super::core::Containers;

/// The list of directories berthd made, in the exec root.
const RECORD: &str = "cgroup-parent";

pub struct KeptParent {
    record: PathBuf,
    /// Made by this berthd or an earlier one, parents before children.
    made: Mutex<Vec<PathBuf>>,
}

impl KeptParent {
    /// Makes `parent` in every hierarchy where it is missing. Failures
    /// only cost speed (the runtime makes what is missing), so they are
    /// logged, not returned.
    pub fn keep(parent: &str, exec_root: &Path) -> KeptParent {
        let record = exec_root.join(RECORD);
        let mut made: Vec<PathBuf> = std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .collect();
        if let Some(rel) = relative(parent) {
            let mounts = cgroupfs::of_this_process();
            for m in mounts.v1.iter().chain(mounts.unified.iter()) {
                make_path(&m.mountpoint, &rel, &mut made);
            }
        }
        let kept = KeptParent {
            record,
            made: Mutex::new(made),
        };
        kept.write_record();
        kept
    }

    /// Removes the directories berthd made that are empty now, deepest
    /// first; those still in use (live-restore) stay listed.
    pub fn release(&self) {
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let mut order: Vec<PathBuf> = made.clone();
        order.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for dir in order {
            match std::fs::remove_dir(&dir) {
                Ok(()) => made.retain(|d| d != &dir),
                Err(e) if e.kind() == io::ErrorKind::NotFound => made.retain(|d| d != &dir),
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "cgroup parent kept"),
            }
        }
        drop(made);
        self.write_record();
    }

    fn write_record(&self) {
        let made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        let result = if made.is_empty() {
            match std::fs::remove_file(&self.record) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let text: String = made.iter().map(|p| format!("{}\n", p.display())).collect();
            // The exec root goes at a reboot, as the cgroups do.
            berth_common::atomic::write_file_volatile(&self.record, text.as_bytes(), 0o600)
        };
        if let Err(e) = result {
            tracing::warn!(path = %self.record.display(), error = %e, "recording the cgroup parent");
        }
    }
}

impl Containers {
    /// From now until [`Containers::release_cgroup_parent`].
    pub fn keep_cgroup_parent(&self) {
        self.kept_parent.get_or_init(|| {
            KeptParent::keep(&self.settings.cgroup_parent, &self.settings.exec_root)
        });
    }

    /// At berthd's stop, after the containers stopped.
    pub fn release_cgroup_parent(&self) {
        if let Some(kept) = self.kept_parent.get() {
            kept.release();
        }
    }
}

/// `parent` as a relative path of plain names; None for anything else
/// (empty, `..`, a systemd `slice:prefix:name`), which is left alone.
fn relative(parent: &str) -> Option<PathBuf> {
    let rel = PathBuf::from(parent.trim_matches('/'));
    let plain = rel
        .components()
        .all(|c| matches!(c, Component::Normal(n) if !n.to_string_lossy().contains(':')));
    (plain && rel.components().next().is_some()).then_some(rel)
}

/// mkdir of each level of `rel` below `mountpoint`, recording what it made.
fn make_path(mountpoint: &Path, rel: &Path, made: &mut Vec<PathBuf>) {
    let mut dir = mountpoint.to_path_buf();
    for part in rel.components() {
        dir.push(part);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                if !made.contains(&dir) {
                    made.push(dir.clone());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot keep the cgroup parent");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_parents() {
        assert_eq!(relative("/berth/"), Some(PathBuf::from("berth")));
        assert_eq!(relative("a/b"), Some(PathBuf::from("a/b")));
        assert_eq!(relative(""), None);
        assert_eq!(relative("/"), None);
        assert_eq!(relative("a/../b"), None);
        assert_eq!(relative("system.slice:berth:x"), None);
    }

    #[test]
    fn makes_missing_levels_and_removes_only_its_own() {
        let tmp = tempfile::tempdir().unwrap();
        let mount = tmp.path().join("cpu");
        std::fs::create_dir_all(mount.join("a")).unwrap();
        let mut made = Vec::new();
        make_path(&mount, Path::new("a/b"), &mut made);
        assert_eq!(made, vec![mount.join("a/b")]);
        let kept = KeptParent {
            record: tmp.path().join(RECORD),
            made: Mutex::new(made),
        };
        kept.write_record();
        let listed = std::fs::read_to_string(tmp.path().join(RECORD)).unwrap();
        assert_eq!(listed, format!("{}\n", mount.join("a/b").display()));
        // In use: stays, and stays listed.
        std::fs::create_dir(mount.join("a/b/ctr")).unwrap();
        kept.release();
        assert!(mount.join("a/b").is_dir());
        assert!(tmp.path().join(RECORD).exists());
        std::fs::remove_dir(mount.join("a/b/ctr")).unwrap();
        kept.release();
        assert!(!mount.join("a/b").exists());
        assert!(mount.join("a").is_dir(), "not berthd's: kept");
        assert!(!tmp.path().join(RECORD).exists());
    }
}
