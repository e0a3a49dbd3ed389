//! One berthd per data root: an exclusive lock on DATA_ROOT/berthd.lock,
//! and the pid file.

use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for the daemon's lifetime; dropping it releases the lock and
/// removes the pid file.
pub struct Instance {
    _lock: Flock<File>,
    pidfile: PathBuf,
}

impl Instance {
    pub fn acquire(data_root: &Path, pidfile: &Path) -> Result<Instance> {
        let lock_path = data_root.join("berthd.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => bail!(
                "another berthd (pid {}) is already using data root {} (lock {})",
                holder.trim(),
                data_root.display(),
                lock_path.display()
            ),
            Err((_, e)) => {
                return Err(e).with_context(|| format!("locking {}", lock_path.display()))
            }
        };
        let pid = std::process::id();
        lock.set_len(0)
            .and_then(|_| lock.rewind())
            .and_then(|_| writeln!(lock, "{pid}"))
            .with_context(|| format!("writing {}", lock_path.display()))?;

        check_pidfile(pidfile)?;
        if let Some(dir) = pidfile.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        berth_common::atomic::write_file_mode(pidfile, format!("{pid}\n").as_bytes(), 0o644)
            .with_context(|| format!("writing pid file {}", pidfile.display()))?;
        Ok(Instance {
            _lock: lock,
            pidfile: pidfile.to_path_buf(),
        })
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.pidfile) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(pidfile = %self.pidfile.display(), error = %e, "removing pid file");
            }
        }
    }
}

/// A pid file naming a live process (another daemon with a different data
/// root but the same pid file) is an error, like dockerd's.
fn check_pidfile(pidfile: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(pidfile) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Ok(());
    };
    if pid as u32 == std::process::id() || pid <= 0 {
        return Ok(());
    }
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && Path::new(&format!("/proc/{pid}")).exists();
    if alive {
        bail!(
            "pid file found, ensure berthd is not running or delete {} (process {pid} is still running)",
            pidfile.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_instance_is_refused_and_pidfile_removed() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("run/berthd.pid");
        let first = Instance::acquire(dir.path(), &pidfile).unwrap();
        assert_eq!(
            std::fs::read_to_string(&pidfile).unwrap().trim(),
            std::process::id().to_string()
        );
        let err = Instance::acquire(dir.path(), &dir.path().join("other.pid"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("already using data root"), "{err}");
        drop(first);
        assert!(!pidfile.exists());
        let again = Instance::acquire(dir.path(), &pidfile).unwrap();
        drop(again);
    }
}
