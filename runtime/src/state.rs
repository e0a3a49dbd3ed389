//! The on-disk record of a container (`<root>/<id>/state.json`, written
//! atomically) and how its status is derived from it and the live system.

use std::collections::HashMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub const OCI_VERSION: &str = "1.2.0";
const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What we persist about a container.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// Host pid of the container's init; 0 while creating.
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/pid/stat) to detect pid reuse.
    pub pid_start_time: u64,
    pub created: String,
    pub owner: String,
    pub cgroup_path: Option<String>,
    /// The cgroup directories `create` made (parents included): `delete`
    /// removes those and the leaf, nothing an admin made beforehand. `None`
    /// in state written before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_created: Option<Vec<PathBuf>>,
    /// Set when the container shares the runtime's mount namespace: its
    /// mounts on the host, for `delete` to take down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ns_rootfs: Option<crate::rootfs::hostns::HostNsRootfs>,
    pub paused: bool,
    /// Set once `create` finished; without it the container is "creating".
    pub created_done: bool,
    pub spec: Spec,
}

/// Where the containers of one `--root` live.
#[derive(Clone, Debug)]
pub struct Root {
    pub dir: PathBuf,
}

impl Root {
    pub fn new(dir: &Path) -> Root {
        Root {
            dir: dir.to_path_buf(),
        }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Make `<root>/<id>`; fails if the container exists.
    pub fn create_dir(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        // Traversable (a user-namespaced init opens its fifo through it),
        // not listable.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.dir)
            .ctx(|| format!("create {}", self.dir.display()))?;
        let dir = self.container_dir(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::Exists(id.to_string()))
            }
            Err(e) => Err(Error::Io {
                context: format!("create {}", dir.display()),
                err: e,
            }),
        }
    }

    pub fn load(&self, id: &str) -> Result<Container> {
        validate_id(id)?;
        let path = self.container_dir(id).join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotExist(id.to_string()))
            }
            Err(e) => return Err(e).ctx(|| format!("read {}", path.display())),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::invalid(format!("corrupt state {}: {e}", path.display())))
    }

    /// The state root is volatile (/run by default): replaced through a
    /// rename, never torn, but not forced to disk.
    pub fn save(&self, c: &Container) -> Result<()> {
        let path = self.container_dir(&c.id).join(STATE_FILE);
        let data = serde_json::to_vec(c)
            .map_err(|e| Error::invalid(format!("encode state of {}: {e}", c.id)))?;
        berth_common::atomic::write_file_volatile(&path, &data, 0o600)
            .ctx(|| format!("write {}", path.display()))
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// Ids of all containers under this root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx(|| format!("read {}", self.dir.display())),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Ids become directory names: no separators, no dot-dot, nothing odd.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("invalid container id {id:?}")))
    }
}

impl Container {
    pub fn fifo_path(&self, root: &Root) -> PathBuf {
        root.container_dir(&self.id).join(EXEC_FIFO)
    }

    pub fn annotations(&self) -> HashMap<String, String> {
        self.spec.annotations().clone().unwrap_or_default()
    }

    /// Is the recorded init still the same live, non-zombie process?
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.pid_start_time)
    }

    pub fn status(&self, root: &Root) -> Status {
        if !self.created_done {
            return if self.pid == 0 || self.init_alive() {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.fifo_path(root).exists() {
            Status::Created
        } else if self.paused {
            Status::Paused
        } else {
            Status::Running
        }
    }

    /// The OCI state as `state` prints it (runc's shape: the OCI fields plus
    /// rootfs, created and owner).
    pub fn oci_state(&self, root: &Root) -> serde_json::Value {
        let status = self.status(root);
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status.to_string(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations(),
        })
    }

    /// The state given to hooks on stdin (exactly the OCI fields).
    pub fn hook_state(&self, status: Status) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status.to_string(),
            "pid": self.pid,
            "bundle": self.bundle,
            "annotations": self.annotations(),
        })
    }
}

/// Start time in clock ticks of a live, non-zombie process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); start time is field 22.
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1_2.3").is_ok());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("").is_err());
        assert!(validate_id("..").is_err());
    }

    #[test]
    fn own_start_time_is_read() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }
}
