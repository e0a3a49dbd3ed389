//! Where a removed container's directories go: a removal renames its
//! record and rw-layer directories into `DATA_ROOT/trash` and answers; a
//! thread of its own deletes them there. Deleting is the dear part of a
//! removal (every freed block of an ext4 mounted with `discard` is a
//! device round trip), and nothing refers to a directory once it is in
//! the trash, so nothing has to wait for it.
//!
//! Crash safety: a rename is whole or not done, so a killed berthd leaves
//! each directory either where restore finishes the removal (the durable
//! `Removing` marker) or in the trash, which the next berthd empties.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};

pub struct Trash {
    dir: PathBuf,
    /// The deleting thread's queue; `None` when the thread could not start
    /// (then whatever comes is deleted on the spot).
    queue: Option<Sender<PathBuf>>,
}

impl Trash {
    /// The trash under `data_root`, with a thread that deletes whatever is
    /// in it already (left by a berthd that stopped before it was done)
    /// and whatever comes.
    pub fn open(data_root: &Path) -> Trash {
        let dir = data_root.join("trash");
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&dir) {
            if e.kind() != io::ErrorKind::AlreadyExists {
                tracing::warn!(dir = %dir.display(), error = %e, "creating the trash directory");
            }
        }
        let (tx, rx) = channel::<PathBuf>();
        for leftover in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let _ = tx.send(leftover.path());
        }
        let worker = std::thread::Builder::new()
            .name("berthd-trash".into())
            .spawn(move || {
                for p in rx {
                    if let Err(e) = berth_common::tree::remove_all(&p) {
                        tracing::warn!(path = %p.display(), error = %e, "emptying the trash");
                    }
                }
            });
        let queue = match worker {
            Ok(_) => Some(tx),
            Err(e) => {
                tracing::warn!(error = %e, "no trash thread: removals delete in place");
                None
            }
        };
        Trash { dir, queue }
    }

    /// Move `path` (a directory of a removed container) into the trash to
    /// be deleted there, or delete it here when it cannot be moved (another
    /// file system). A missing `path` is fine.
    pub fn take(&self, path: &Path) -> io::Result<()> {
        let Some(queue) = &self.queue else {
            return berth_common::tree::remove_all(path);
        };
        let dest = self.dir.join(Self::entry_name(path));
        match fs::rename(path, &dest) {
            Ok(()) => {
                if queue.send(dest.clone()).is_err() {
                    return berth_common::tree::remove_all(&dest);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "not moved to the trash; deleting in place");
                berth_common::tree::remove_all(path)
            }
        }
    }

    /// `<name>-<random>`: unique, so a leftover of an earlier berthd never
    /// stands in the way of a rename.
    fn entry_name(path: &Path) -> OsString {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(format!("-{:016x}", rand::random::<u64>()));
        name
    }

    /// Entries not deleted yet.
    #[cfg(test)]
    fn pending(&self) -> usize {
        fs::read_dir(&self.dir).map(|r| r.count()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn settles(t: &Trash) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if t.pending() == 0 {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn a_taken_tree_leaves_its_place_at_once_and_the_trash_soon() {
        let root = tempfile::tempdir().unwrap();
        let t = Trash::open(root.path());
        let victim = root.path().join("containers").join("abc");
        fs::create_dir_all(victim.join("upper/deep/er")).unwrap();
        fs::write(victim.join("upper/deep/er/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", victim.join("upper/link")).unwrap();
        t.take(&victim).unwrap();
        assert!(!victim.exists());
        assert!(settles(&t), "the trash was not emptied");
        assert!(Path::new("/etc/passwd").exists(), "a symlink was followed");
        // Gone already: nothing to do.
        t.take(&victim).unwrap();
    }

    #[test]
    fn leftovers_of_an_earlier_daemon_are_deleted_at_open() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("trash/old-1/x")).unwrap();
        fs::write(root.path().join("trash/old-1/x/f"), "x").unwrap();
        let t = Trash::open(root.path());
        assert!(settles(&t), "leftovers kept");
    }
}
