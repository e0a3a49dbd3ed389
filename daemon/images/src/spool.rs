//! Spool an incoming archive (docker-archive or OCI layout in a tar) into a
//! private temp directory, hashing every file on the way, so manifests can
//! be read in any order and layers unpacked without a second hash pass.
//! Files get flat numbered names on disk: archive paths never become
//! filesystem paths.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::error::{tar_error, Error, IoContext, Result};

pub(crate) struct SpooledFile {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

enum Entry {
    File(SpooledFile),
    Link(String),
}

pub(crate) struct Spool {
    entries: HashMap<String, Entry>,
}

/// Clean an archive path to `a/b/c` (no leading `/`, `.`, empty parts);
/// `..` pops, never above the top.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

fn parent_of(p: &str) -> &str {
    p.rsplit_once('/').map(|(a, _)| a).unwrap_or("")
}

impl Spool {
    pub fn read<R: Read>(archive: R, dir: &Path) -> Result<Spool> {
        let mut entries = HashMap::new();
        let mut ar = tar::Archive::new(archive);
        let bad = |e: io::Error| tar_error("invalid image archive", &e);
        let mut buf = vec![0u8; 1 << 20];
        for (n, entry) in ar.entries().map_err(bad)?.enumerate() {
            let mut entry = entry.map_err(bad)?;
            let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
            if name.is_empty() {
                continue;
            }
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let path = dir.join(n.to_string());
                    let file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&path)
                        .ctx(|| format!("create {}", path.display()))?;
                    let mut w = HashingWriter::new(file);
                    loop {
                        let k = entry.read(&mut buf).map_err(bad)?;
                        if k == 0 {
                            break;
                        }
                        w.write_all(&buf[..k])
                            .ctx(|| format!("write {}", path.display()))?;
                    }
                    let (_, digest, size) = w.finish();
                    entries.insert(name, Entry::File(SpooledFile { path, digest, size }));
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let resolved = if target.starts_with('/') {
                        clean(&target)
                    } else {
                        clean(&format!("{}/{}", parent_of(&name), target))
                    };
                    entries.insert(name, Entry::Link(resolved));
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| clean(&String::from_utf8_lossy(&t)))
                        .unwrap_or_default();
                    entries.insert(name, Entry::Link(target));
                }
                _ => {}
            }
        }
        Ok(Spool { entries })
    }

    pub fn get(&self, name: &str) -> Option<&SpooledFile> {
        let mut cur = clean(name);
        for _ in 0..16 {
            match self.entries.get(&cur)? {
                Entry::File(f) => return Some(f),
                Entry::Link(t) => cur = t.clone(),
            }
        }
        None
    }

    pub fn require(&self, name: &str) -> Result<&SpooledFile> {
        self.get(name).ok_or_else(|| {
            Error::invalid(format!(
                "invalid image archive: {name} not found in archive"
            ))
        })
    }

    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let f = self.require(name)?;
        if f.size > 64 << 20 {
            return Err(Error::invalid(format!(
                "invalid image archive: {name} is too large"
            )));
        }
        fs::read(&f.path).ctx(|| format!("read {}", f.path.display()))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}
