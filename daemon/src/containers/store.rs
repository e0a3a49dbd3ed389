//! The in-memory index of containers (by ID and name) and their records on
//! disk. The index lock is only held for lookups and inserts; each
//! container has its own locks (see [`super::Container`]).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use berth_common::atomic::Swapped;

use super::error::ContainerError;
use super::record::ContainerRecord;
use super::Container;

pub const RECORD_FILE: &str = "config.json";

/// Where records live: `<data-root>/containers`.
#[derive(Debug, Clone)]
pub struct RecordDir {
    root: PathBuf,
}

impl RecordDir {
    pub fn new(root: PathBuf) -> Self {
        RecordDir { root }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Replace the record and force it to disk.
    pub fn save(&self, rec: &ContainerRecord) -> io::Result<()> {
        self.write(rec, true)
    }

    /// Replace the record (an exchange of names, see `Swapped`) without
    /// forcing it to disk: a killed berthd never leaves a torn record, and
    /// a host crash may lose the change (see `Containers::save_run_state`).
    pub fn save_unsynced(&self, rec: &ContainerRecord) -> io::Result<()> {
        self.write(rec, false)
    }

    fn write(&self, rec: &ContainerRecord, durable: bool) -> io::Result<()> {
        let dir = self.dir(&rec.id);
        fs::create_dir_all(&dir)?;
        let data = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
        let path = dir.join(RECORD_FILE);
        Swapped::new(&path).write(&data, 0o600, durable)
    }

    /// Every readable record, and the IDs of directories without a record
    /// (a create interrupted before its first record write, or a removal
    /// interrupted half-way through deleting the directory). Unreadable
    /// records are logged and skipped (they are never deleted
    /// automatically).
    pub fn load_all(&self) -> io::Result<(Vec<ContainerRecord>, Vec<String>)> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        let mut incomplete = Vec::new();
        for entry in entries {
            let entry = entry?;
            let path = entry.path().join(RECORD_FILE);
            match read_record(&path) {
                Ok(rec) => out.push(rec),
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && entry.file_type().is_ok_and(|t| t.is_dir())
                        && entry.file_name().to_str().is_some_and(is_container_id) =>
                {
                    incomplete.push(entry.file_name().to_string_lossy().into_owned());
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "skipping unreadable container record")
                }
            }
        }
        Ok((out, incomplete))
    }

    pub fn remove(&self, id: &str) -> io::Result<()> {
        berth_common::tree::remove_all(&self.dir(id))
    }
}

/// 64 lower-case hex digits, as generated at create.
pub(super) fn is_container_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn read_record(path: &Path) -> io::Result<ContainerRecord> {
    Swapped::new(path).read(|d| serde_json::from_slice::<ContainerRecord>(d))
}

#[derive(Default)]
pub struct Index {
    by_id: HashMap<String, Arc<Container>>,
    /// `/name` → ID.
    names: HashMap<String, String>,
}

impl Index {
    pub fn insert(&mut self, c: Arc<Container>, name: &str) {
        self.names.insert(name.to_string(), c.id.clone());
        self.by_id.insert(c.id.clone(), c);
    }

    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
        self.names.retain(|_, v| v != id);
    }

    /// Reserve `name` for `id`; the dockerd conflict error when taken.
    pub fn reserve_name(&mut self, name: &str, id: &str) -> Result<(), ContainerError> {
        match self.names.get(name) {
            Some(owner) if owner != id => Err(ContainerError::Conflict(format!(
                "Conflict. The container name \"{name}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name."
            ))),
            _ => {
                self.names.insert(name.to_string(), id.to_string());
                Ok(())
            }
        }
    }

    pub fn release_name(&mut self, name: &str, id: &str) {
        if self.names.get(name).is_some_and(|owner| owner == id) {
            self.names.remove(name);
        }
    }

    pub fn name_taken(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    pub fn all(&self) -> Vec<Arc<Container>> {
        self.by_id.values().cloned().collect()
    }

    /// Full ID, then exact name, then unique ID prefix, as dockerd resolves.
    pub fn resolve(&self, reference: &str) -> Result<Arc<Container>, ContainerError> {
        if reference.is_empty() {
            return Err(ContainerError::NotFound(reference.to_string()));
        }
        if let Some(c) = self.by_id.get(reference) {
            return Ok(c.clone());
        }
        let name = super::names::canonical(reference);
        if let Some(c) = self.names.get(&name).and_then(|id| self.by_id.get(id)) {
            return Ok(c.clone());
        }
        let mut found = self
            .by_id
            .iter()
            .filter(|(id, _)| id.starts_with(reference));
        match (found.next(), found.next()) {
            (Some((_, c)), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(ContainerError::InvalidParameter(format!(
                "multiple IDs found with provided prefix: {reference}"
            ))),
            _ => Err(ContainerError::NotFound(reference.to_string())),
        }
    }
}

/// The shared index. Poisoning cannot leave the maps inconsistent (every
/// update is a single insert/remove), so a poisoned lock is used as is.
#[derive(Default)]
pub struct SharedIndex(RwLock<Index>);

impl SharedIndex {
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_without_a_record_are_reported_not_loaded() {
        let root = tempfile::tempdir().unwrap();
        let dir = RecordDir::new(root.path().to_path_buf());
        let partial = "0a".repeat(32);
        fs::create_dir_all(dir.dir(&partial)).unwrap();
        fs::write(dir.dir(&partial).join("hostname"), "x").unwrap();
        // Not a container ID: left alone, reported as unreadable.
        fs::create_dir_all(root.path().join("lost+found")).unwrap();
        // A corrupt record is never treated as an unfinished create.
        let corrupt = "0b".repeat(32);
        fs::create_dir_all(dir.dir(&corrupt)).unwrap();
        fs::write(dir.dir(&corrupt).join(RECORD_FILE), "{").unwrap();
        let (records, incomplete) = dir.load_all().unwrap();
        assert!(records.is_empty());
        assert_eq!(incomplete, vec![partial]);
        assert!(!is_container_id(&"0A".repeat(32)));
        assert!(!is_container_id("abc"));
    }
}
