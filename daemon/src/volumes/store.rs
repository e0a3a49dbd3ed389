//! The local volume store: `<data-root>/volumes/<name>/_data` plus
//! `<name>/volume.json` (written atomically), which containers use each
//! volume, and the create/remove/prune operations with their events.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use super::error::{Result, VolumeError};
use super::{local_opts, name};
use crate::events::{Event, EventType, Events};

pub const LOCAL_DRIVER: &str = "local";
/// The label dockerd (≥ 23) puts on anonymous volumes; prune without
/// `all` only removes volumes carrying it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";
const META_FILE: &str = "volume.json";
const DATA_DIR: &str = "_data";

/// A volume's persisted metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// RFC 3339, seconds, UTC (dockerd's format).
    pub created_at: String,
    #[serde(default)]
    pub anonymous: bool,
}

/// What `create` is asked for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// None or empty: a random name.
    pub name: Option<String>,
    /// Empty means `local`.
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub anonymous: bool,
}

pub struct VolumeStore {
    root: PathBuf,
    events: Events,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    volumes: BTreeMap<String, Volume>,
    /// Volume name -> containers whose mounts reference it.
    users: BTreeMap<String, BTreeSet<String>>,
    /// Volume name -> running containers that have it mounted.
    active: BTreeMap<String, BTreeSet<String>>,
}

impl VolumeStore {
    /// Opens (creating) `<data_root>/volumes` and loads every volume.
    pub fn open(data_root: &Path, events: Events) -> Result<VolumeStore> {
        let root = data_root.join("volumes");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o701)
            .create(&root)
            .map_err(VolumeError::io(format!("creating {}", root.display())))?;
        let mut volumes = BTreeMap::new();
        let entries =
            fs::read_dir(&root).map_err(VolumeError::io(format!("reading {}", root.display())))?;
        for entry in entries {
            let entry = entry.map_err(VolumeError::io(format!("reading {}", root.display())))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !name::is_valid(&name) || !entry.path().join(DATA_DIR).is_dir() {
                continue;
            }
            match load_meta(&entry.path(), &name) {
                Ok(v) => {
                    volumes.insert(name, v);
                }
                Err(e) => tracing::warn!(volume = %name, error = %e, "skipping unreadable volume"),
            }
        }
        Ok(VolumeStore {
            root,
            events,
            state: Mutex::new(State {
                volumes,
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below leaves State consistent before it can panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<data-root>/volumes`
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/<name>/_data`
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.root.join(name).join(DATA_DIR)
    }

    /// Creates a volume, or returns the existing one of that name
    /// (dockerd's create is idempotent). The bool says whether it is new.
    pub fn create(&self, req: CreateRequest) -> Result<(Volume, bool)> {
        let driver = if req.driver.is_empty() {
            LOCAL_DRIVER
        } else {
            req.driver.as_str()
        };
        if driver != LOCAL_DRIVER {
            return Err(VolumeError::NotFound(format!(
                "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        // As dockerd: a volume created without a name is anonymous.
        let (name, anonymous) = match req.name.as_deref() {
            Some(n) if !n.is_empty() => {
                name::validate(n)?;
                (n.to_string(), req.anonymous)
            }
            _ => (name::random(), true),
        };
        local_opts::validate(&req.options)?;
        let mut state = self.lock();
        if let Some(existing) = state.volumes.get(&name) {
            if !req.options.is_empty() && req.options != existing.options {
                return Err(VolumeError::Conflict(format!(
                    "create {name}: a volume with the name {name} already exists with different options"
                )));
            }
            return Ok((existing.clone(), false));
        }
        let mut labels = req.labels;
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
        }
        let volume = Volume {
            name: name.clone(),
            driver: LOCAL_DRIVER.to_string(),
            labels,
            options: req.options,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            anonymous,
        };
        let dir = self.root.join(&name);
        let data = dir.join(DATA_DIR);
        let made = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&data)
            .and_then(|()| {
                let meta = serde_json::to_vec(&volume).map_err(io::Error::other)?;
                berth_common::atomic::write_file(&dir.join(META_FILE), &meta)
            });
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir);
            return Err(VolumeError::io(format!("create {name}"))(e));
        }
        state.volumes.insert(name.clone(), volume.clone());
        drop(state);
        self.events
            .publish(Event::new(EventType::Volume, "create", &name).attr("driver", LOCAL_DRIVER));
        Ok((volume, true))
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        self.lock()
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::NotFound(format!("get {name}: no such volume")))
    }

    pub fn list(&self) -> Vec<Volume> {
        self.lock().volumes.values().cloned().collect()
    }

    /// Containers using `name`, sorted.
    pub fn users(&self, name: &str) -> Vec<String> {
        self.lock()
            .users
            .get(name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn in_use(&self, name: &str) -> bool {
        self.lock().users.get(name).is_some_and(|s| !s.is_empty())
    }

    /// Removes a volume no container uses. `force` makes a missing volume
    /// a success (as dockerd).
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        // Taken out of the store under the lock, deleted outside it, so a
        // large volume does not hold up other volume operations.
        let volume = {
            let mut state = self.lock();
            let Some(volume) = state.volumes.get(name).cloned() else {
                if force {
                    return Ok(());
                }
                return Err(VolumeError::NotFound(format!("get {name}: no such volume")));
            };
            if let Some(users) = state.users.get(name).filter(|u| !u.is_empty()) {
                let ids: Vec<&str> = users.iter().map(String::as_str).collect();
                return Err(VolumeError::Conflict(format!(
                    "remove {name}: volume is in use - [{}]",
                    ids.join(" ")
                )));
            }
            state.volumes.remove(name);
            state.active.remove(name);
            volume
        };
        if let Err(e) = self.delete_files(&volume) {
            self.lock().volumes.insert(name.to_string(), volume);
            return Err(e);
        }
        self.events
            .publish(Event::new(EventType::Volume, "destroy", name).attr("driver", LOCAL_DRIVER));
        Ok(())
    }

    fn delete_files(&self, volume: &Volume) -> Result<()> {
        let dir = self.root.join(&volume.name);
        if local_opts::needs_mount(&volume.options) {
            local_opts::unmount_device(&dir.join(DATA_DIR))?;
        }
        // Metadata first: a crash half-way leaves a directory that is no
        // longer loaded as a volume rather than a volume with partial data.
        match fs::remove_file(dir.join(META_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(VolumeError::io(format!("remove {}", volume.name))(e))
            }
            _ => {}
        }
        berth_common::tree::remove_all(&dir)
            .map_err(VolumeError::io(format!("remove {}", volume.name)))
    }

    /// Removes every unused volume `select` accepts; returns the removed
    /// names and the bytes freed.
    pub fn prune(&self, select: impl Fn(&Volume) -> bool) -> Result<(Vec<String>, u64)> {
        let candidates: Vec<Volume> = {
            let state = self.lock();
            state
                .volumes
                .values()
                .filter(|v| state.users.get(&v.name).is_none_or(|u| u.is_empty()))
                .filter(|v| select(v))
                .cloned()
                .collect()
        };
        let mut removed = Vec::new();
        let mut reclaimed = 0u64;
        for v in candidates {
            let size = dir_size(&self.mountpoint(&v.name));
            match self.remove(&v.name, false) {
                Ok(()) => {
                    removed.push(v.name);
                    reclaimed += size;
                }
                // Taken into use meanwhile: not pruned.
                Err(VolumeError::Conflict(_)) | Err(VolumeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.events.publish(
            Event::new(EventType::Volume, "prune", "").attr("reclaimed", reclaimed.to_string()),
        );
        Ok((removed, reclaimed))
    }

    /// Records that `container` references `name` (at create, and for
    /// every existing container when the daemon starts).
    pub fn add_user(&self, name: &str, container: &str) {
        self.lock()
            .users
            .entry(name.to_string())
            .or_default()
            .insert(container.to_string());
    }

    /// Forgets every reference of `container` (its removal); returns the
    /// volumes it referenced.
    pub fn release(&self, container: &str) -> Vec<String> {
        let mut state = self.lock();
        let mut names = Vec::new();
        for (name, users) in state.users.iter_mut() {
            if users.remove(container) {
                names.push(name.clone());
            }
        }
        state.users.retain(|_, u| !u.is_empty());
        for users in state.active.values_mut() {
            users.remove(container);
        }
        names
    }

    /// Mounts `name` for a starting container: mounts the device of a
    /// volume with `type`/`device` options on first use, and emits the
    /// `mount` event.
    pub fn mount(
        &self,
        name: &str,
        container: &str,
        destination: &str,
        rw: bool,
    ) -> Result<PathBuf> {
        let volume = self.get(name)?;
        let path = self.mountpoint(name);
        {
            let mut state = self.lock();
            if local_opts::needs_mount(&volume.options) {
                local_opts::mount_device(&volume.options, &path)?;
            }
            state
                .active
                .entry(name.to_string())
                .or_default()
                .insert(container.to_string());
        }
        self.events.publish(
            Event::new(EventType::Volume, "mount", name)
                .attr("container", container)
                .attr("destination", destination)
                .attr("driver", LOCAL_DRIVER)
                .attr("propagation", "")
                .attr("read/write", rw.to_string()),
        );
        Ok(path)
    }

    /// The counterpart of [`Self::mount`] when the container stops; the
    /// device is unmounted once no running container has it.
    pub fn unmount(&self, name: &str, container: &str) -> Result<()> {
        let Ok(volume) = self.get(name) else {
            return Ok(());
        };
        {
            let mut state = self.lock();
            let last = match state.active.get_mut(name) {
                Some(users) => {
                    users.remove(container);
                    users.is_empty()
                }
                None => true,
            };
            if last {
                state.active.remove(name);
                if local_opts::needs_mount(&volume.options) {
                    local_opts::unmount_device(&self.mountpoint(name))?;
                }
            }
        }
        self.events.publish(
            Event::new(EventType::Volume, "unmount", name)
                .attr("container", container)
                .attr("driver", LOCAL_DRIVER),
        );
        Ok(())
    }

    /// The API's Volume object.
    pub fn to_json(&self, v: &Volume) -> Value {
        json!({
            "CreatedAt": v.created_at,
            "Driver": v.driver,
            "Labels": v.labels,
            "Mountpoint": self.mountpoint(&v.name),
            "Name": v.name,
            "Options": v.options,
            "Scope": "local",
        })
    }

    /// Volume objects with `UsageData` (`/system/df`).
    pub fn disk_usage(&self) -> Vec<Value> {
        self.list()
            .iter()
            .map(|v| {
                let mut obj = self.to_json(v);
                obj["UsageData"] = json!({
                    "Size": dir_size(&self.mountpoint(&v.name)),
                    "RefCount": self.users(&v.name).len(),
                });
                obj
            })
            .collect()
    }
}

impl crate::daemon::VolumeReport for VolumeStore {
    fn disk_usage(&self) -> Vec<Value> {
        VolumeStore::disk_usage(self)
    }
}

fn load_meta(dir: &Path, name: &str) -> io::Result<Volume> {
    match fs::read(dir.join(META_FILE)) {
        Ok(raw) => {
            let v: Volume = serde_json::from_slice(&raw).map_err(io::Error::other)?;
            if v.name != name {
                return Err(io::Error::other(format!("metadata names {:?}", v.name)));
            }
            Ok(v)
        }
        // Data without metadata (e.g. copied in by hand): a plain volume.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let created = fs::metadata(dir)?.mtime();
            Ok(Volume {
                name: name.to_string(),
                driver: LOCAL_DRIVER.to_string(),
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                created_at: chrono::DateTime::from_timestamp(created, 0)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                anonymous: false,
            })
        }
        Err(e) => Err(e),
    }
}

/// Bytes used by the files below `path` (not following symlinks, each
/// hard-linked inode counted once).
pub fn dir_size(path: &Path) -> u64 {
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if md.nlink() <= 1 || seen.insert((md.dev(), md.ino())) {
            total += md.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> VolumeStore {
        VolumeStore::open(dir, Events::new()).unwrap()
    }

    #[test]
    fn create_persist_inspect_remove() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut sub = s.events.subscribe(None);
        let (v, new) = s
            .create(CreateRequest {
                name: Some("data".into()),
                labels: [("a".to_string(), "b".to_string())].into(),
                ..Default::default()
            })
            .unwrap();
        assert!(new);
        assert_eq!(sub.live.try_recv().unwrap().action, "create");
        let (again, new) = s
            .create(CreateRequest {
                name: Some("data".into()),
                ..Default::default()
            })
            .unwrap();
        assert!(!new);
        assert_eq!(again, v);
        fs::write(s.mountpoint("data").join("f"), b"12345").unwrap();

        let j = s.to_json(&v);
        assert_eq!(j["Name"], "data");
        assert_eq!(j["Driver"], "local");
        assert_eq!(j["Scope"], "local");
        assert_eq!(j["Labels"]["a"], "b");
        assert_eq!(j["Options"], json!({}));
        assert!(j["Mountpoint"]
            .as_str()
            .unwrap()
            .ends_with("/volumes/data/_data"));
        assert!(j["CreatedAt"].as_str().unwrap().ends_with('Z'));

        // Reloaded from disk.
        let s2 = store(dir.path());
        assert_eq!(s2.get("data").unwrap(), v);
        assert_eq!(s2.disk_usage()[0]["UsageData"]["Size"], 5);

        s2.add_user("data", "c1");
        s2.add_user("data", "c0");
        let e = s2.remove("data", false).unwrap_err();
        assert_eq!(e.status(), 409);
        assert_eq!(e.to_string(), "remove data: volume is in use - [c0 c1]");
        assert_eq!(s2.release("c1"), vec!["data"]);
        s2.release("c0");
        s2.remove("data", false).unwrap();
        assert!(!dir.path().join("volumes/data").exists());
        assert_eq!(
            s2.get("data").unwrap_err().to_string(),
            "get data: no such volume"
        );
        assert_eq!(s2.remove("data", false).unwrap_err().status(), 404);
        s2.remove("data", true).unwrap();
    }

    #[test]
    fn bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let bad_name = CreateRequest {
            name: Some("a/b".into()),
            ..Default::default()
        };
        assert_eq!(s.create(bad_name).unwrap_err().status(), 400);
        let bad_driver = CreateRequest {
            driver: "nfs-plugin".into(),
            ..Default::default()
        };
        assert_eq!(s.create(bad_driver).unwrap_err().status(), 404);
        let bad_opt = CreateRequest {
            options: [("x".to_string(), "y".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(s.create(bad_opt).unwrap_err().status(), 400);
        assert!(s.list().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("volumes")).unwrap().count(), 0);
    }

    #[test]
    fn prune_only_unused_selected() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (anon, _) = s
            .create(CreateRequest {
                anonymous: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(anon.name.len(), 64);
        assert_eq!(
            anon.labels.get(ANONYMOUS_LABEL).map(String::as_str),
            Some("")
        );
        let (used, _) = s
            .create(CreateRequest {
                anonymous: true,
                ..Default::default()
            })
            .unwrap();
        s.create(CreateRequest {
            name: Some("named".into()),
            ..Default::default()
        })
        .unwrap();
        s.add_user(&used.name, "c");
        fs::write(s.mountpoint(&anon.name).join("f"), vec![0u8; 1000]).unwrap();
        let (removed, bytes) = s.prune(|v| v.anonymous).unwrap();
        assert_eq!(removed, vec![anon.name]);
        assert_eq!(bytes, 1000);
        let mut left: Vec<String> = s.list().into_iter().map(|v| v.name).collect();
        left.sort();
        let mut want = vec![used.name.clone(), "named".to_string()];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn tmpfs_option_volume_is_mounted_while_used() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let opts: BTreeMap<String, String> =
            [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        s.create(CreateRequest {
            name: Some("t1".into()),
            options: opts,
            ..Default::default()
        })
        .unwrap();
        let p = s.mount("t1", "c1", "/data", true).unwrap();
        s.mount("t1", "c2", "/data", true).unwrap();
        assert!(berth_common::mounts::is_mount_point(&p));
        s.unmount("t1", "c1").unwrap();
        assert!(berth_common::mounts::is_mount_point(&p));
        s.unmount("t1", "c2").unwrap();
        assert!(!berth_common::mounts::is_mount_point(&p));
        s.remove("t1", false).unwrap();
    }
}
