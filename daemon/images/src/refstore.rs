//! Reference store: `name:tag` and `name@digest` → image ID, persisted as
//! one JSON file replaced atomically on every change.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;

#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    /// Fully qualified reference string → image ID.
    references: BTreeMap<String, Digest>,
}

pub struct RefStore {
    path: PathBuf,
    refs: BTreeMap<String, (Reference, Digest)>,
}

impl RefStore {
    pub fn open(path: PathBuf) -> Result<Self> {
        let disk: OnDisk = match fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => OnDisk::default(),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("read {}", path.display()),
                    source: e,
                })
            }
        };
        let mut refs = BTreeMap::new();
        for (s, id) in disk.references {
            let r = Reference::parse_normalized(&s).map_err(|e| Error::Corrupt {
                path: path.clone(),
                reason: format!("reference {s:?}: {e}"),
            })?;
            refs.insert(s, (r, id));
        }
        Ok(RefStore { path, refs })
    }

    fn save(&self) -> Result<()> {
        let disk = OnDisk {
            references: self
                .refs
                .iter()
                .map(|(k, (_, id))| (k.clone(), id.clone()))
                .collect(),
        };
        let data = serde_json::to_vec_pretty(&disk).map_err(|e| Error::invalid(e.to_string()))?;
        berth_common::atomic::write_file(&self.path, &data)
            .ctx(|| format!("write {}", self.path.display()))
    }

    /// Key used for a reference: digest references are stored by digest
    /// only (a tag next to a digest is ignored, as Docker does).
    fn key(r: &Reference) -> Reference {
        match r.digest() {
            Some(d) => r.with_digest(d.clone()),
            None => r.clone().with_default_tag(),
        }
    }

    pub fn get(&self, r: &Reference) -> Option<&Digest> {
        self.refs.get(&Self::key(r).to_string()).map(|(_, id)| id)
    }

    /// Point `r` at `id`; returns the image it pointed at before, if other.
    pub fn add(&mut self, r: &Reference, id: &Digest) -> Result<Option<Digest>> {
        let key = Self::key(r);
        // As dockerd's reference store: the same tag for the same image
        // again changes nothing, on disk either.
        if self
            .refs
            .get(&key.to_string())
            .is_some_and(|(_, o)| o == id)
        {
            return Ok(None);
        }
        let old = self.refs.insert(key.to_string(), (key, id.clone()));
        if let Err(e) = self.save() {
            // Keep memory and disk in agreement.
            match &old {
                Some(o) => {
                    let k = Self::key(r);
                    self.refs.insert(k.to_string(), (k, o.1.clone()));
                }
                None => {
                    self.refs.remove(&Self::key(r).to_string());
                }
            }
            return Err(e);
        }
        Ok(old.map(|(_, o)| o).filter(|o| o != id))
    }

    pub fn remove(&mut self, r: &Reference) -> Result<Option<Digest>> {
        let k = Self::key(r).to_string();
        let Some(old) = self.refs.remove(&k) else {
            return Ok(None);
        };
        if let Err(e) = self.save() {
            self.refs.insert(k, old);
            return Err(e);
        }
        Ok(Some(old.1))
    }

    /// Remove several references with one write.
    pub fn remove_all(&mut self, refs: &[Reference]) -> Result<()> {
        let backup = self.refs.clone();
        for r in refs {
            self.refs.remove(&Self::key(r).to_string());
        }
        if let Err(e) = self.save() {
            self.refs = backup;
            return Err(e);
        }
        Ok(())
    }

    /// References to `id`, in stable (sorted) order.
    pub fn references_to(&self, id: &Digest) -> Vec<Reference> {
        self.refs
            .values()
            .filter(|(_, i)| i == id)
            .map(|(r, _)| r.clone())
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Reference, &Digest)> {
        self.refs.values().map(|(r, d)| (r, d))
    }
}
