//! The build cache: one record per step, keyed by a digest of the parent
//! image, the instruction as evaluated, the build args it used and, for
//! COPY/ADD, the checksum of the sources. Records are small JSON files
//! under `<data-root>/build/cache/` (written atomically), so the cache
//! survives a daemon restart; a record whose image is gone is a miss.
//! A hit only counts its use in memory: the records it touched are
//! written once the build's answer has ended ([`Cache::flush_usage`]), so
//! a fully cached rebuild writes nothing while the client waits.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub image: String,
    pub parent: String,
    pub description: String,
    pub created: String,
    pub last_used: String,
    pub usage_count: u64,
}

pub struct Cache {
    dir: PathBuf,
    /// Usage figures of hits not written yet, by key; it also serialises
    /// record updates.
    touched: Mutex<HashMap<String, Record>>,
    flushing: AtomicBool,
    /// Serialises writing and removing record files (taken before
    /// `touched`), so a flush never brings back a removed record.
    io: Mutex<()>,
}

/// The key of a step from its parts.
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn now() -> String {
    crate::containers::timefmt::now()
}

impl Cache {
    pub fn open(dir: &Path) -> io::Result<Cache> {
        fs::create_dir_all(dir)?;
        Ok(Cache {
            dir: dir.to_owned(),
            touched: Mutex::new(HashMap::new()),
            flushing: AtomicBool::new(false),
            io: Mutex::new(()),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    fn read(&self, key: &str) -> Option<Record> {
        let data = fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// `durable`: fsynced. Usage figures of a hit are not: a crash that
    /// loses them (or the record: then a miss) costs nothing, and a cached
    /// rebuild would pay two fsyncs per step.
    fn write(&self, rec: &Record, durable: bool) {
        match serde_json::to_vec(rec) {
            Ok(data) => {
                let path = self.path(&rec.key);
                let written = if durable {
                    berth_common::atomic::write_file(&path, &data)
                } else {
                    berth_common::atomic::write_file_volatile(&path, &data, 0o600)
                };
                if let Err(e) = written {
                    tracing::warn!(error = %e, "writing a build cache record");
                }
            }
            Err(e) => tracing::warn!(error = %e, "encoding a build cache record"),
        }
    }

    fn touched(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.touched.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn io(&self) -> std::sync::MutexGuard<'_, ()> {
        self.io.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached image of `key`, if `exists` says it is still there.
    pub fn lookup(&self, key: &str, exists: impl Fn(&str) -> bool) -> Option<String> {
        let mut touched = self.touched();
        let mut rec = match touched.remove(key) {
            Some(rec) => rec,
            None => self.read(key)?,
        };
        if !exists(&rec.image) {
            drop(touched);
            self.remove(key);
            return None;
        }
        rec.last_used = now();
        rec.usage_count += 1;
        let image = rec.image.clone();
        touched.insert(key.to_owned(), rec);
        Some(image)
    }

    /// Writes the usage figures of the hits since the last flush. Not
    /// fsynced: a crash that loses them (or the record: then a miss) costs
    /// nothing. The lock is not held while writing, so the next build's
    /// lookups do not wait for the disk; a record used again meanwhile
    /// stays for the next flush.
    pub fn flush_usage(&self) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            // The running flush, or the next one, writes them.
            return;
        }
        let pending: Vec<Record> = self.touched().values().cloned().collect();
        for rec in &pending {
            let _io = self.io();
            if self.touched().contains_key(&rec.key) {
                self.write(rec, false);
            }
        }
        let mut touched = self.touched();
        for rec in pending {
            if touched
                .get(&rec.key)
                .is_some_and(|t| t.usage_count == rec.usage_count)
            {
                touched.remove(&rec.key);
            }
        }
        drop(touched);
        self.flushing.store(false, Ordering::Release);
    }

    pub fn store(&self, key: &str, image: &str, parent: &str, description: &str) {
        let _io = self.io();
        self.touched().remove(key);
        let t = now();
        self.write(
            &Record {
                key: key.to_owned(),
                image: image.to_owned(),
                parent: parent.to_owned(),
                description: description.to_owned(),
                created: t.clone(),
                last_used: t,
                usage_count: 0,
            },
            true,
        );
    }

    pub fn all(&self) -> Vec<Record> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<Record> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(".json")?.to_owned();
                self.read(&key)
            })
            .collect();
        let touched = self.touched();
        for r in out.iter_mut() {
            if let Some(t) = touched.get(&r.key) {
                *r = t.clone();
            }
        }
        drop(touched);
        out.sort_by(|a, b| a.created.cmp(&b.created));
        out
    }

    pub fn remove(&self, key: &str) {
        let _io = self.io();
        self.touched().remove(key);
        let _ = fs::remove_file(self.path(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_need_their_image() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(&["sha256:p", "RUN x"]);
        assert_ne!(k, key(&["sha256:p", "RUN y"]));
        assert_ne!(key(&["ab", "c"]), key(&["a", "bc"]));
        let c = Cache::open(dir.path()).unwrap();
        c.store(&k, "sha256:i", "sha256:p", "RUN x");
        let c = Cache::open(dir.path()).unwrap();
        assert_eq!(c.lookup(&k, |_| true).as_deref(), Some("sha256:i"));
        assert_eq!(c.all()[0].usage_count, 1);
        c.flush_usage();
        let c = Cache::open(dir.path()).unwrap();
        assert_eq!(c.all()[0].usage_count, 1);
        assert_eq!(c.lookup(&k, |_| false), None);
        assert!(c.all().is_empty());
    }
}
