//! Small helpers for reading and writing cgroupfs files with context.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use super::CgroupError;

pub fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    // cgroupfs wants the whole value in one write(2); no truncation needed.
    let result = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|source| CgroupError::Write {
        path,
        value: value.to_owned(),
        source,
    })
}

pub fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
}

pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Reads a file holding one number; "max" reads as u64::MAX.
pub fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let text = read(dir, file)?;
    parse_u64(text.trim()).ok_or_else(|| CgroupError::Parse {
        path: dir.join(file),
        reason: format!("expected a number, got {:?}", text.trim()),
    })
}

/// Like `read_u64`, but a missing file (controller feature absent) is 0.
pub fn read_u64_or_zero(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    match read_u64(dir, file) {
        Err(CgroupError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(0),
        other => other,
    }
}

pub fn parse_u64(s: &str) -> Option<u64> {
    if s == "max" {
        Some(u64::MAX)
    } else {
        s.parse().ok()
    }
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events, ...).
pub fn read_keyed(dir: &Path, file: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    let text = read(dir, file)?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(' ')?;
            Some((k.to_owned(), parse_u64(v.trim())?))
        })
        .collect())
}

/// An exclusive flock on the directory `dir` (a hierarchy's root), held
/// until the returned fd is dropped; shared by every berth-runtime on the
/// host.
pub fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<fs::File>, CgroupError> {
    let err = |source| CgroupError::Create {
        path: dir.to_path_buf(),
        source,
    };
    let file = fs::File::open(dir).map_err(err)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| err(io::Error::from(e)))
}

/// mkdir -p that reports which directories it created (top-down), so a
/// failed setup can remove exactly those.
///
/// Retries when a parent vanishes under us: another container's destroy may
/// remove an empty shared parent between our mkdirs.
pub fn create_dirs(dir: &Path, stop_at: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut attempt = 0;
    loop {
        match try_create_dirs(dir, stop_at) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < 5 => attempt += 1,
            Err(source) => {
                return Err(CgroupError::Create {
                    path: dir.to_path_buf(),
                    source,
                })
            }
            Ok(created) => return Ok(created),
        }
    }
}

fn try_create_dirs(dir: &Path, stop_at: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while cur != stop_at && !cur.exists() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                // Leave nothing half-made from this attempt.
                for c in created.iter().rev() {
                    let _ = fs::remove_dir(c);
                }
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// rmdir a cgroup directory. Exiting processes leave their cgroup a moment
/// after they are reaped, so EBUSY is retried for a short while. A missing
/// directory counts as removed.
pub fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut delay = Duration::from_millis(2);
    let mut waited = Duration::ZERO;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && waited < Duration::from_secs(2) => {
                thread::sleep(delay);
                waited += delay;
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dirs_reports_what_it_made() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("a")).unwrap();
        let created = create_dirs(&tmp.path().join("a/b/c"), tmp.path()).unwrap();
        assert_eq!(
            created,
            vec![tmp.path().join("a/b"), tmp.path().join("a/b/c")]
        );
        assert!(create_dirs(&tmp.path().join("a/b/c"), tmp.path())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn keyed_files_parse() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path().join("s"),
            "usage_usec 10\nnr_periods 3\nbogus\nmx max\n",
        )
        .unwrap();
        let m = read_keyed(tmp.path(), "s").unwrap();
        assert_eq!(m.get("usage_usec"), Some(&10));
        assert_eq!(m.get("nr_periods"), Some(&3));
        assert_eq!(m.get("mx"), Some(&u64::MAX));
        assert_eq!(m.len(), 3);
        assert_eq!(read_u64_or_zero(tmp.path(), "missing").unwrap(), 0);
    }
}
