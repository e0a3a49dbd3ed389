//! The `--init` binary (daemon/init/berth-init.rs, built static by
//! daemon/build.rs) embedded in berthd and installed into the exec root.
//!
//! A container with `HostConfig.Init` gets the installed binary
//! bind-mounted read-only at `/sbin/docker-init` and its process args
//! prefixed with `[/sbin/docker-init, "--"]` (see the spec builder), as
//! dockerd does with docker-init.

use std::io;
use std::path::{Path, PathBuf};

const BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// The installed binary's path under `exec_root`.
pub fn binary_path(exec_root: &Path) -> PathBuf {
    exec_root.join("berth-init")
}

/// Writes the embedded binary to [`binary_path`] (mode 0755, atomically, so
/// containers already bind-mounting an older copy keep theirs). Call once at
/// daemon start.
pub fn install(exec_root: &Path) -> io::Result<PathBuf> {
    let path = binary_path(exec_root);
    if std::fs::read(&path)
        .map(|cur| cur == BINARY)
        .unwrap_or(false)
    {
        return Ok(path);
    }
    std::fs::create_dir_all(exec_root)?;
    berth_common::atomic::write_file_mode(&path, BINARY, 0o755)
        .map_err(|e| io::Error::new(e.kind(), format!("installing {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn installs_a_runnable_init_that_passes_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        let path = install(dir.path()).unwrap();
        // A second install with identical content is a no-op.
        assert_eq!(install(dir.path()).unwrap(), path);
        let status = Command::new(&path)
            .args(["--", "/bin/sh", "-c", "exit 5"])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(5));
        let status = Command::new(&path)
            .args(["/bin/sh", "-c", "kill -TERM $$"])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(128 + 15));
    }
}
