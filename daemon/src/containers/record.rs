//! The persisted container record (`<data-root>/containers/<id>/config.json`).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::config::{ContainerConfig, HostConfig};

/// dockerd's zero time, what it prints for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Running or paused: a live process exists.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Set once a container with a healthcheck has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            health: None,
        }
    }
}

/// One entry of inspect's `Mounts`, also what C2's resolver hands back for
/// the spec (`source` on the host, `destination` in the container).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MountPoint {
    /// bind, volume, tmpfs.
    pub kind: String,
    pub name: String,
    pub source: String,
    pub destination: String,
    pub driver: String,
    pub mode: String,
    pub rw: bool,
    pub propagation: String,
    /// OCI mount options for the spec (e.g. rbind, ro, size=…).
    #[serde(default)]
    pub options: Vec<String>,
    /// An anonymous volume, removed by `docker rm -v`.
    #[serde(default)]
    pub anonymous: bool,
    /// `VolumeOptions.Subpath`: the part of the volume mounted, resolved
    /// inside the volume at each start.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    /// With the leading `/`.
    pub name: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub networking_config: serde_json::Value,
    /// `sha256:…` of the image.
    pub image_id: String,
    /// Image layer directories, lowest first, resolved at create time.
    pub layers: Vec<PathBuf>,
    /// Chain ID of the top image layer, which the image store holds for
    /// the container (see `ImageSource::hold`): restore holds it again,
    /// as the hold itself is not forced to disk. Absent in records of
    /// berthds before it, whose holds were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_layer: Option<String>,
    pub state: State,
    pub restart_count: u64,
    pub has_been_started: bool,
    /// Stopped or killed by its user (not by berthd's shutdown): an
    /// `unless-stopped` policy does not bring it back at the next start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manually_stopped: bool,
    #[serde(default)]
    pub mounts: Vec<MountPoint>,
    pub platform: String,
    /// Which runtime binary runs it (name from the daemon's `runtimes`).
    pub runtime: String,
    /// An operation whose side effects a crash could leave half done;
    /// written before the first of them, cleared when it completes, so
    /// restore knows what to finish or undo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// See [`ContainerRecord::pending`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "op")]
pub enum Pending {
    /// Create has resolved the mounts and goes on with the host files,
    /// the container layer and the image hold; restore removes it all.
    Creating,
    /// Start may have mounted the rootfs, spawned the shim, created and
    /// started the runtime container; restore tears that down.
    Starting,
    /// Removal has begun; restore finishes it.
    Removing { volumes: bool },
    /// `docker commit` paused the running container; restore resumes it.
    Committing,
}

impl ContainerRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    pub fn image_name(&self) -> &str {
        &self.config.image
    }

    pub fn labels(&self) -> impl Iterator<Item = (&String, &String)> {
        self.config.labels.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_marker_round_trips_and_defaults_to_none() {
        let v = serde_json::to_value(Pending::Removing { volumes: true }).unwrap();
        assert_eq!(v, serde_json::json!({"op": "removing", "volumes": true}));
        let back: Pending = serde_json::from_value(v).unwrap();
        assert_eq!(back, Pending::Removing { volumes: true });
        assert_eq!(
            serde_json::to_value(Pending::Starting).unwrap(),
            serde_json::json!({"op": "starting"})
        );
        // Records written before the marker existed load without one.
        let rec: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "c", "name": "/c", "created": "", "path": "", "args": [], "config": {},
            "host_config": {}, "networking_config": {}, "image_id": "", "layers": [],
            "state": {"status":"created","pid":0,"exit_code":0,"error":"","oom_killed":false,
                      "started_at":"","finished_at":""},
            "restart_count": 0, "has_been_started": false, "platform": "linux", "runtime": "berth"
        }))
        .unwrap();
        assert_eq!(rec.pending, None);
        assert!(!serde_json::to_string(&rec).unwrap().contains("pending"));
    }
}
