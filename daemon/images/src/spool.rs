//! Spool an incoming archive (docker-archive or OCI layout in a tar) into a
//! private temp directory, hashing every file on the way, so manifests can
//! be read in any order and layers unpacked without a second hash pass.
//! Files get flat numbered names on disk: archive paths never become
//! filesystem paths.
//!
//! Files that look like layers are also unpacked while they stream in
//! (staged, see [`LayerStore::stage`]), so the bytes are read once; the
//! load publishes a staged layer when its digest turns out to be the diff
//! ID the image config expects, and unpacks from the spooled file otherwise.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::error::{tar_error, Error, IoContext, Result};
use crate::layer::{Compression, LayerStore, StagedLayer};

/// Entries at least this large, under a layer-like name, are staged.
const STAGE_MIN_SIZE: u64 = 64 * 1024;

pub(crate) struct SpooledFile {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
    /// The file unpacked as a layer while it was spooled, if that worked.
    pub staged: RefCell<Option<StagedLayer>>,
}

fn looks_like_layer(name: &str, size: u64) -> bool {
    size >= STAGE_MIN_SIZE && (name.ends_with("/layer.tar") || name.starts_with("blobs/sha256/"))
}

/// Copies what is read into the spool file; remembers a failed write so
/// an incomplete spool file is never used.
struct Tee<'a, R, W> {
    inner: R,
    sink: &'a mut W,
    sink_error: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let kind = e.kind();
            self.sink_error = Some(e);
            return Err(io::Error::new(kind, "writing the spool file failed"));
        }
        Ok(n)
    }
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
    /// Spool `archive` into `dir`; with `layers`, stage layer-like files.
    pub fn read<R: Read>(archive: R, dir: &Path, layers: Option<&LayerStore>) -> Result<Spool> {
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
                    let mut w = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, file));
                    let mut staged = None;
                    let entry_size = entry.header().size().unwrap_or(0);
                    if let Some(layers) = layers.filter(|_| looks_like_layer(&name, entry_size)) {
                        let mut tee = Tee {
                            inner: &mut entry,
                            sink: &mut w,
                            sink_error: None,
                        };
                        // Not a layer after all, or a broken one: the load
                        // unpacks from the spooled file and reports why.
                        staged = layers.stage(&mut tee, false).ok();
                        io::copy(&mut tee, &mut io::sink()).map_err(|e| {
                            match tee.sink_error.take() {
                                Some(w) => Error::Io {
                                    context: format!("write {}", path.display()),
                                    source: w,
                                },
                                None => bad(e),
                            }
                        })?;
                        if let Some(e) = tee.sink_error.take() {
                            return Err(Error::Io {
                                context: format!("write {}", path.display()),
                                source: e,
                            });
                        }
                    } else {
                        loop {
                            let k = entry.read(&mut buf).map_err(bad)?;
                            if k == 0 {
                                break;
                            }
                            w.write_all(&buf[..k])
                                .ctx(|| format!("write {}", path.display()))?;
                        }
                    }
                    let (file, digest, size) = w.finish();
                    file.into_inner()
                        .map_err(|e| e.into_error())
                        .ctx(|| format!("write {}", path.display()))?;
                    if let Some(s) = staged.as_mut() {
                        // A plain tar's diff ID is the digest of its bytes.
                        if s.compression == Compression::None {
                            s.diff_id = Some(digest.clone());
                        }
                    }
                    entries.insert(
                        name,
                        Entry::File(SpooledFile {
                            path,
                            digest,
                            size,
                            staged: RefCell::new(staged),
                        }),
                    );
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
