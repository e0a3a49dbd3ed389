//! The container store: the index, per-container state and the settings
//! every operation needs. Operations live in `lifecycle`, `attach`, `query`.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::error::{ContainerError, Result};
use super::hooks::{ImageSource, MountResolver};
use super::record::{ContainerRecord, Status};
use super::shim::Shim;
use super::store::{RecordDir, SharedIndex};
use crate::events::{Event, EventType, Events};

/// What the container store needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub shim_path: PathBuf,
    /// Runtime name → binary.
    pub runtimes: BTreeMap<String, PathBuf>,
    pub default_runtime: String,
    /// Default cgroup parent (`berth`).
    pub cgroup_parent: String,
    /// The `--init` binary.
    pub init_binary: Option<PathBuf>,
    pub log_driver: String,
    pub log_opts: BTreeMap<String, String>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `default-ulimits`: for containers that do not set that ulimit.
    pub default_ulimits: Vec<super::config::Ulimit>,
}

/// What a reload (SIGHUP) changes for the containers created or started
/// from then on.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Runtime name → binary.
    pub runtimes: BTreeMap<String, PathBuf>,
    pub default_runtime: String,
    pub default_ulimits: Vec<super::config::Ulimit>,
}

impl Live {
    fn of(settings: &Settings) -> Live {
        Live {
            runtimes: settings.runtimes.clone(),
            default_runtime: settings.default_runtime.clone(),
            default_ulimits: settings.default_ulimits.clone(),
        }
    }
}

impl Settings {
    pub fn from_config(config: &crate::config::Config) -> Settings {
        Settings {
            data_root: config.data_root.clone(),
            exec_root: config.exec_root.clone(),
            shim_path: config.shim_path.clone(),
            runtimes: config
                .runtimes
                .iter()
                .map(|(k, v)| (k.clone(), v.path.clone()))
                .collect(),
            default_runtime: config.default_runtime.clone(),
            cgroup_parent: config.cgroup_parent.clone(),
            init_binary: None,
            log_driver: config.log_driver.clone(),
            log_opts: config.log_opts.clone(),
            dns: config.dns.clone(),
            dns_search: config.dns_search.clone(),
            dns_options: config.dns_opts.clone(),
            default_ulimits: config.default_ulimits.clone(),
        }
    }

    /// `<exec-root>/shims/<id>`: the bundle and the shim's state.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("shims").join(id)
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.data_root
            .join("containers")
            .join(id)
            .join(format!("{id}-json.log"))
    }
}

/// Progress other tasks wait on: exits so far, and removal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub exits: u64,
    pub removed: bool,
    pub exit_code: i32,
    pub error: String,
}

/// A client attached before the container started; connected to the shim
/// by `start`. The slot is taken while the attach request is answered, so a
/// `start` right after it cannot miss the client; the connection itself
/// arrives once the upgrade completes.
pub struct PendingAttach {
    pub request: super::attach::AttachRequest,
    pub io: tokio::sync::oneshot::Receiver<crate::api::stream::HijackedIo>,
}

/// One container: its record (short critical sections only) and a lock
/// that serialises lifecycle operations on it alone.
pub struct Container {
    pub id: String,
    record: Mutex<ContainerRecord>,
    /// Bumped by every mutable access to the record (see [`RecordGuard`]):
    /// the kept list and inspect answers are valid for one version.
    version: AtomicU64,
    /// Those answers, built on demand (see `views`).
    pub(super) views: super::views::Views,
    /// Held across the state changes of this container (start, the
    /// signalling part of stop, pause, remove); never across a stop's
    /// grace period, so a force removal or a shorter stop is not held up.
    /// Shared so restore can hold it from a background task.
    pub op: Arc<tokio::sync::Mutex<()>>,
    pub progress: watch::Sender<Progress>,
    pub pending_attach: Mutex<Vec<PendingAttach>>,
    /// Set by `docker stop` and `docker kill`: the restart policy must not
    /// bring it back until the next start.
    pub manually_stopped: std::sync::atomic::AtomicBool,
    /// The restart policy's current back-off (zero: none yet), as
    /// dockerd's restart manager keeps it: in memory, reset by a start.
    pub restart_backoff: Mutex<std::time::Duration>,
    /// The `process` of the bundle's config.json as the last start wrote
    /// it: what an exec starts from, without reading the file each time.
    pub exec_base: Mutex<Option<Arc<serde_json::Value>>>,
    /// The part of the last exit's clean-up that runs after the waiters
    /// were answered (see `Containers::handle_exit`); whatever reuses or
    /// removes the bundle waits for it first, with `op` held.
    pub(super) exit_cleanup: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Container {
    pub fn new(rec: ContainerRecord) -> Arc<Container> {
        let (progress, _) = watch::channel(Progress {
            exit_code: rec.state.exit_code,
            error: rec.state.error.clone(),
            ..Default::default()
        });
        let manually_stopped = rec.manually_stopped;
        Arc::new(Container {
            id: rec.id.clone(),
            record: Mutex::new(rec),
            version: AtomicU64::new(0),
            views: Default::default(),
            op: Arc::new(tokio::sync::Mutex::new(())),
            progress,
            pending_attach: Mutex::new(Vec::new()),
            manually_stopped: std::sync::atomic::AtomicBool::new(manually_stopped),
            restart_backoff: Mutex::new(std::time::Duration::ZERO),
            exec_base: Mutex::new(None),
            exit_cleanup: Mutex::new(None),
        })
    }

    /// Short, never across an await or I/O other than the record write.
    pub fn lock(&self) -> RecordGuard<'_> {
        RecordGuard {
            record: self.record.lock().unwrap_or_else(|p| p.into_inner()),
            version: &self.version,
        }
    }

    /// The record's version (see `version`); read under the record lock
    /// it belongs to what the lock holder sees.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> ContainerRecord {
        self.lock().clone()
    }

    pub fn status(&self) -> Status {
        self.lock().state.status
    }
}

/// The record, locked. Any mutable access bumps the container's version,
/// so views built from an older version are rebuilt; the bump happens
/// under the lock, before the change, so a reader holding the lock never
/// pairs new data with an old version.
pub struct RecordGuard<'a> {
    record: MutexGuard<'a, ContainerRecord>,
    version: &'a AtomicU64,
}

impl Deref for RecordGuard<'_> {
    type Target = ContainerRecord;

    fn deref(&self) -> &ContainerRecord {
        &self.record
    }
}

impl DerefMut for RecordGuard<'_> {
    fn deref_mut(&mut self) -> &mut ContainerRecord {
        self.version.fetch_add(1, Ordering::AcqRel);
        &mut self.record
    }
}

pub struct Containers {
    pub settings: Settings,
    pub records: RecordDir,
    pub index: SharedIndex,
    pub events: Events,
    pub images: Arc<dyn ImageSource>,
    pub mounts: Arc<dyn MountResolver>,
    /// Networking (set once at start-up): endpoints, ports, DNS.
    pub networks: std::sync::OnceLock<Arc<crate::network::Networks>>,
    /// Healthcheck monitors of the running containers.
    pub health: crate::health::Monitors,
    /// berthd is going down: restart policies wait for the next start.
    pub shutting_down: std::sync::atomic::AtomicBool,
    /// The cgroup parent while berthd runs (see `cgroup_parent`).
    pub(super) kept_parent: std::sync::OnceLock<super::cgroup_parent::KeptParent>,
    /// Where removed containers' directories are deleted (see `trash`).
    pub(super) trash: super::trash::Trash,
    /// Clean-ups that finish after their request was answered (exits,
    /// removals); a graceful shutdown waits for them.
    pub(super) background: tokio_util::task::TaskTracker,
    live: std::sync::RwLock<Arc<Live>>,
}

impl Containers {
    pub fn new(
        settings: Settings,
        events: Events,
        images: Arc<dyn ImageSource>,
        mounts: Arc<dyn MountResolver>,
    ) -> Arc<Containers> {
        Arc::new(Containers {
            live: std::sync::RwLock::new(Arc::new(Live::of(&settings))),
            records: RecordDir::new(settings.data_root.join("containers")),
            trash: super::trash::Trash::open(&settings.data_root),
            settings,
            index: SharedIndex::default(),
            events,
            images,
            mounts,
            networks: std::sync::OnceLock::new(),
            health: Default::default(),
            shutting_down: Default::default(),
            kept_parent: std::sync::OnceLock::new(),
            background: tokio_util::task::TaskTracker::new(),
        })
    }

    pub fn get(&self, reference: &str) -> Result<Arc<Container>> {
        self.index.read().resolve(reference)
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.index.read().all()
    }

    pub fn shim(&self, id: &str) -> Shim {
        Shim::new(self.settings.bundle_dir(id))
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.records.dir(id)
    }

    /// Persist `rec` (call with the record lock held, so writes of one
    /// container are ordered).
    pub fn save(&self, rec: &ContainerRecord) -> Result<()> {
        self.records
            .save(rec)
            .map_err(|e| ContainerError::internal(format!("saving container {}", rec.id), e))
    }

    /// Persist a change that only matters while the host is up, without
    /// forcing it to disk (call with the record lock held): the start
    /// marker, a run's start and its exit, and the create marker. A killed
    /// berthd loses nothing (the rename is atomic and the page cache
    /// survives it); a host crash may lose the change, and the next daemon
    /// repairs what that leaves, as nothing of a run survives a reboot:
    /// a record still saying `running` gets its exit recorded (255), one
    /// from before the start is settled, and a container directory whose
    /// create never reached the durable record is removed (see `restore`).
    pub fn save_run_state(&self, rec: &ContainerRecord) -> Result<()> {
        self.records
            .save_unsynced(rec)
            .map_err(|e| ContainerError::internal(format!("saving container {}", rec.id), e))
    }

    /// A container event with dockerd's attributes (name, image, labels).
    pub fn event(&self, rec: &ContainerRecord, action: &str) -> Event {
        Event::new(EventType::Container, action, &rec.id)
            .attrs(rec.labels().map(|(k, v)| (k.clone(), v.clone())))
            .attr("image", rec.image_name())
            .attr("name", rec.name.trim_start_matches('/'))
    }

    pub fn publish(&self, rec: &ContainerRecord, action: &str) {
        self.events.publish(self.event(rec, action));
    }

    /// The reloadable settings in force.
    pub fn live(&self) -> Arc<Live> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// New runtimes, default runtime and default ulimits (a reload).
    pub fn set_live(&self, settings: &Settings) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Live::of(settings));
    }

    /// The binary of runtime `name` (empty: the default). Unless configured
    /// otherwise, dockerd's names for its default runtime (`runc`,
    /// `io.containerd.runc.v2`) name berth's default, so scripts written
    /// for dockerd work.
    pub fn runtime_path(&self, name: &str) -> Result<PathBuf> {
        let live = self.live();
        let runtimes = &live.runtimes;
        let default = || runtimes.get(&live.default_runtime);
        let found = match name {
            "" => default(),
            name => runtimes.get(name).or_else(|| {
                matches!(name, "runc" | "io.containerd.runc.v2")
                    .then(default)
                    .flatten()
            }),
        };
        found.cloned().ok_or_else(|| {
            ContainerError::InvalidParameter(format!("unknown or invalid runtime name: {name}"))
        })
    }
}

impl crate::daemon::ContainerReport for Containers {
    fn counts(&self) -> crate::daemon::ContainerCounts {
        let (running, paused, stopped) = Containers::counts(self);
        crate::daemon::ContainerCounts {
            running,
            paused,
            stopped,
        }
    }

    fn disk_usage(&self) -> Vec<serde_json::Value> {
        Containers::disk_usage(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ContainerRecord {
        serde_json::from_value(serde_json::json!({
            "id": "c", "name": "/c", "created": "", "path": "", "args": [], "config": {},
            "host_config": {}, "networking_config": {}, "image_id": "", "layers": [],
            "state": {"status":"created","pid":0,"exit_code":0,"error":"","oom_killed":false,
                      "started_at":"","finished_at":""},
            "restart_count": 0, "has_been_started": false, "platform": "linux", "runtime": "berth"
        }))
        .unwrap()
    }

    #[test]
    fn only_mutable_access_moves_the_record_version() {
        let c = Container::new(record());
        let v0 = c.version();
        let _ = c.lock().state.status;
        let _ = c.snapshot();
        assert_eq!(c.version(), v0, "reads keep the kept views valid");
        c.lock().state.status = Status::Running;
        let v1 = c.version();
        assert!(v1 > v0, "a change invalidates them");
        assert_eq!(c.status(), Status::Running);
    }
}
