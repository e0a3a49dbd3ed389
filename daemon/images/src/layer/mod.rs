//! Layer store: each layer is unpacked once, keyed by its chain ID, under
//! `<root>/layers/<chain-hex>/diff`, with a short symlink `<root>/l/<id>`
//! pointing at it so overlay `lowerdir=` options stay short. A layer is
//! unpacked into `<root>/tmp/` and renamed into place only when complete,
//! so a layer directory that exists is whole.
//!
//! Layers carry no stored reference count (a count can drift on a crash);
//! instead `collect_garbage` removes every layer that no image, hold or
//! in-flight operation needs, computed from the records themselves.

mod compression;
pub mod diff;
mod sys;
pub mod unpack;

pub use compression::{decompress, Compression};

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::content::{sync_dir, unique_suffix};
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};

const SHORT_LINK_LEN: usize = 26;

/// What is recorded about one unpacked layer (`layer.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes of regular-file content in this layer alone.
    pub size: u64,
    /// Content-store digest of the layer tar as it was received.
    pub blob: Digest,
    /// Short name of the `l/` symlink to `diff`.
    pub link: String,
    /// Length of the uncompressed layer tar (what `docker save` writes).
    #[serde(default)]
    pub tar_size: Option<u64>,
}

/// A layer on disk, with the paths the container side needs.
#[derive(Debug, Clone)]
pub struct Layer {
    pub record: LayerRecord,
    /// `<root>/layers/<chain-hex>`
    pub dir: PathBuf,
    /// `<root>/layers/<chain-hex>/diff`: the layer's files, with overlay whiteouts.
    pub diff_dir: PathBuf,
    /// `l/<short>`, relative to the layer store root: usable in `lowerdir=`
    /// when the mount is made with the store root as working directory.
    pub short_link: String,
}

pub struct LayerStore {
    root: PathBuf,
    pins: Arc<Mutex<HashMap<Digest, usize>>>,
    /// Layer records read so far; records never change once written.
    cache: RwLock<HashMap<Digest, LayerRecord>>,
    /// Directories of collected layers, removed by [`LayerStore::reap`]
    /// outside the image store's lock (they can be large).
    graveyard: Mutex<Vec<PathBuf>>,
}

/// Keeps a layer safe from garbage collection while an operation that will
/// reference it is in flight.
pub struct Pin {
    pins: Arc<Mutex<HashMap<Digest, usize>>>,
    chain: Digest,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Ok(mut p) = self.pins.lock() {
            if let Some(n) = p.get_mut(&self.chain) {
                *n -= 1;
                if *n == 0 {
                    p.remove(&self.chain);
                }
            }
        }
    }
}

/// Where the stored blob of a newly registered layer is.
pub enum LayerBlob {
    /// The uncompressed tar was stored; its digest is the diff ID.
    SameAsDiffId,
    Stored(Digest),
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// A layer unpacked in the store's temp area, not yet published. Dropping
/// it removes the directory.
pub struct StagedLayer {
    dir: Option<PathBuf>,
    /// sha256 of the uncompressed tar, when known.
    pub diff_id: Option<Digest>,
    pub compression: Compression,
    /// Length of the uncompressed tar.
    pub tar_size: u64,
    /// Bytes of regular-file content.
    pub size: u64,
}

impl Drop for StagedLayer {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = remove_tree(&d);
        }
    }
}

/// Removes a path when dropped (after a rename it no longer exists).
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = remove_tree(&self.0);
    }
}

/// `chain(0) = diff(0)`, `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// Chain IDs of every prefix of `diff_ids`, lowest first.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let c = chain_id(out.last(), d);
        out.push(c);
    }
    out
}

impl LayerStore {
    pub fn open(root: &Path) -> Result<Self> {
        for sub in ["layers", "l", "tmp", "holds"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        }
        let store = LayerStore {
            root: root.to_owned(),
            pins: Arc::default(),
            cache: RwLock::default(),
            graveyard: Mutex::default(),
        };
        store.clear_tmp()?;
        store.remove_dangling_links()?;
        Ok(store)
    }

    /// Short links whose layer is gone (a crash between removing a layer
    /// and its link, or between publishing one and linking it).
    fn remove_dangling_links(&self) -> Result<()> {
        let dir = self.root.join("l");
        for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            if fs::metadata(entry.path()).is_err() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex())
    }

    /// Leftovers of unpacks interrupted by a crash.
    fn clear_tmp(&self) -> Result<()> {
        let tmp = self.root.join("tmp");
        for entry in fs::read_dir(&tmp).ctx(|| format!("list {}", tmp.display()))? {
            let entry = entry.ctx(|| format!("list {}", tmp.display()))?;
            remove_tree(&entry.path())?;
        }
        Ok(())
    }

    pub fn pin(&self, chain: &Digest) -> Pin {
        if let Ok(mut p) = self.pins.lock() {
            *p.entry(chain.clone()).or_insert(0) += 1;
        }
        Pin {
            pins: self.pins.clone(),
            chain: chain.clone(),
        }
    }

    pub fn get(&self, chain: &Digest) -> Result<Option<Layer>> {
        if let Ok(cache) = self.cache.read() {
            if let Some(r) = cache.get(chain) {
                return Ok(Some(self.layer_from(r.clone())));
            }
        }
        let dir = self.layer_dir(chain);
        let meta = dir.join("layer.json");
        let data = match fs::read(&meta) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("read {}", meta.display()),
                    source: e,
                })
            }
        };
        let record: LayerRecord = serde_json::from_slice(&data).map_err(|e| Error::Corrupt {
            path: meta.clone(),
            reason: e.to_string(),
        })?;
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(chain.clone(), record.clone());
        }
        Ok(Some(self.layer_from(record)))
    }

    pub fn require(&self, chain: &Digest) -> Result<Layer> {
        self.get(chain)?.ok_or_else(|| Error::Corrupt {
            path: self.layer_dir(chain),
            reason: format!("layer {chain} is missing"),
        })
    }

    fn layer_from(&self, record: LayerRecord) -> Layer {
        let dir = self.layer_dir(&record.chain_id);
        Layer {
            diff_dir: dir.join("diff"),
            short_link: format!("l/{}", record.link),
            dir,
            record,
        }
    }

    /// Unpack a layer tar (plain, gzip or zstd) on top of `parent`. The
    /// caller must hold a pin on `parent`. Returns the layer and a pin on it.
    /// When `expected_diff_id` is given the content must match it.
    pub fn register<R: Read>(
        &self,
        parent: Option<&Digest>,
        tar: R,
        expected_diff_id: Option<&Digest>,
        blob: LayerBlob,
    ) -> Result<(Layer, Pin)> {
        if let Some(p) = parent {
            self.require(p)?;
        }
        // Fast path: the caller knows the diff ID and the layer exists.
        if let Some(diff) = expected_diff_id {
            let chain = chain_id(parent, diff);
            let pin = self.pin(&chain);
            if let Some(layer) = self.get(&chain)? {
                return Ok((layer, pin));
            }
        }
        // A stored blob whose digest is the expected diff ID was hashed when
        // it was written: it is the uncompressed tar, no need to hash again.
        let preverified = match (&blob, expected_diff_id) {
            (LayerBlob::Stored(b), Some(exp)) => b == exp,
            _ => false,
        };
        let mut staged = self.stage(tar, !preverified)?;
        if staged.diff_id.is_none() && preverified {
            staged.diff_id = expected_diff_id.cloned();
        }
        let diff_id = staged
            .diff_id
            .clone()
            .ok_or_else(|| Error::invalid("layer diff ID unknown"))?;
        if let Some(exp) = expected_diff_id {
            if exp != &diff_id {
                return Err(Error::DigestMismatch {
                    what: "layer diff ID".into(),
                    expected: exp.to_string(),
                    actual: diff_id.to_string(),
                });
            }
        }
        self.publish(staged, parent, blob)
    }

    /// Unpack a layer tar into a private temp directory without publishing
    /// it. The diff ID is computed when the stream is compressed or `hash`
    /// is set; for a plain tar read without hashing the caller sets
    /// [`StagedLayer::diff_id`] from its own digest of the same bytes.
    pub fn stage<R: Read>(&self, tar: R, hash: bool) -> Result<StagedLayer> {
        let dir = self
            .root
            .join("tmp")
            .join(format!("layer-{}", unique_suffix()));
        let mut staged = StagedLayer {
            dir: Some(dir.clone()),
            diff_id: None,
            compression: Compression::None,
            tar_size: 0,
            size: 0,
        };
        let diff = dir.join("diff");
        fs::create_dir_all(&diff).ctx(|| format!("create {}", diff.display()))?;
        let (compression, plain) = decompress(tar)?;
        staged.compression = compression;
        if hash || compression != Compression::None {
            let mut hashing = HashingReader::new(plain);
            staged.size = unpack::unpack(&mut hashing, &diff)?.size;
            let (diff_id, tar_size) = hashing
                .drain_and_finish()
                .map_err(|e| Error::invalid(format!("read layer: {e}")))?;
            staged.diff_id = Some(diff_id);
            staged.tar_size = tar_size;
        } else {
            let mut counting = CountingReader { inner: plain, n: 0 };
            staged.size = unpack::unpack(&mut counting, &diff)?.size;
            io::copy(&mut counting, &mut io::sink())
                .map_err(|e| Error::invalid(format!("read layer: {e}")))?;
            staged.tar_size = counting.n;
        }
        Ok(staged)
    }

    /// Make a staged layer (whose `diff_id` is set and verified) the layer
    /// on top of `parent`: sync it, record it and rename it into place. The
    /// caller must hold a pin on `parent`.
    pub fn publish(
        &self,
        mut staged: StagedLayer,
        parent: Option<&Digest>,
        blob: LayerBlob,
    ) -> Result<(Layer, Pin)> {
        let diff_id = staged
            .diff_id
            .clone()
            .ok_or_else(|| Error::invalid("staged layer without a diff ID"))?;
        let tmp = staged
            .dir
            .clone()
            .ok_or_else(|| Error::invalid("staged layer already published"))?;
        let chain = chain_id(parent, &diff_id);
        let pin = self.pin(&chain);
        if let Some(existing) = self.get(&chain)? {
            return Ok((existing, pin));
        }
        let link = chain.hex()[..SHORT_LINK_LEN].to_owned();
        let record = LayerRecord {
            chain_id: chain.clone(),
            diff_id: diff_id.clone(),
            parent: parent.cloned(),
            size: staged.size,
            blob: match blob {
                LayerBlob::SameAsDiffId => diff_id,
                LayerBlob::Stored(d) => d,
            },
            link: link.clone(),
            tar_size: Some(staged.tar_size),
        };
        let json = serde_json::to_vec(&record).map_err(|e| Error::invalid(e.to_string()))?;
        fs::write(tmp.join("layer.json"), json)
            .ctx(|| format!("write {}/layer.json", tmp.display()))?;
        unpack::sync_tree(&tmp)?;
        // From here the directory is either renamed into place or removed.
        staged.dir = None;
        let tmp = TempPath(tmp);
        let tmp = &tmp.0;
        let target = self.layer_dir(&chain);
        match fs::rename(tmp, &target) {
            Ok(()) => {}
            // Another unpack of the same layer won the race; use its copy.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                remove_tree(tmp)?;
                return Ok((self.require(&chain)?, pin));
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("rename layer into {}", target.display()),
                    source: e,
                })
            }
        }
        sync_dir(&self.root.join("layers"))?;
        self.ensure_link(&link, &chain)?;
        Ok((self.layer_from(record), pin))
    }

    fn ensure_link(&self, link: &str, chain: &Digest) -> Result<()> {
        let l = self.root.join("l").join(link);
        let target = format!("../layers/{}/diff", chain.hex());
        match std::os::unix::fs::symlink(&target, &l) {
            Ok(()) => sync_dir(&self.root.join("l")),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::Io {
                context: format!("symlink {}", l.display()),
                source: e,
            }),
        }
    }

    /// The layers of a chain, lowest first.
    pub fn chain(&self, top: &Digest) -> Result<Vec<Layer>> {
        let mut out = Vec::new();
        let mut cur = Some(top.clone());
        while let Some(c) = cur {
            let layer = self.require(&c)?;
            cur = layer.record.parent.clone();
            out.push(layer);
        }
        out.reverse();
        Ok(out)
    }

    /// Every layer on disk.
    pub fn list(&self) -> Result<Vec<Layer>> {
        let dir = self.root.join("layers");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(chain) = Digest::from_hex(&name) else {
                continue;
            };
            if let Some(l) = self.get(&chain)? {
                out.push(l);
            }
        }
        Ok(out)
    }

    /// Record that `owner` (a container) needs the chain ending at `top`
    /// even if every image using it is deleted. Not forced to disk: the
    /// owner holds again after a reboot (a container's record is durable
    /// and restore holds its layers again before anything can be
    /// collected, and an image is removed only once the holds are on
    /// disk). A hold that is there already is left alone.
    pub fn hold(&self, owner: &str, top: &Digest) -> Result<()> {
        check_owner(owner)?;
        self.require(top)?;
        let p = self.root.join("holds").join(owner);
        let data = top.to_string();
        if fs::read(&p).is_ok_and(|held| held == data.as_bytes()) {
            return Ok(());
        }
        berth_common::atomic::write_file_volatile(&p, data.as_bytes(), 0o600)
            .ctx(|| format!("write {}", p.display()))
    }

    pub fn release(&self, owner: &str) -> Result<()> {
        check_owner(owner)?;
        let p = self.root.join("holds").join(owner);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                context: format!("remove {}", p.display()),
                source: e,
            }),
        }
    }

    /// Holds are not forced to disk when made (see `hold`); before an
    /// image goes, they are: after a host crash the image must not be gone
    /// while a hold on its layers is, or the collection at the next start
    /// would take layers a container needs.
    pub(crate) fn sync_holds(&self) -> Result<()> {
        let dir = self.root.join("holds");
        if fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none()) {
            return Ok(());
        }
        let f = fs::File::open(&dir).ctx(|| format!("open {}", dir.display()))?;
        // SAFETY: a valid open descriptor.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)) } != 0 {
            return Err(io::Error::last_os_error()).ctx(|| format!("syncfs {}", dir.display()));
        }
        Ok(())
    }

    fn held_tops(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("holds");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).ctx(|| format!("list {}", dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", dir.display()))?;
            let data = fs::read_to_string(entry.path())
                .ctx(|| format!("read {}", entry.path().display()))?;
            out.push(Digest::parse(data.trim()).map_err(|_| Error::Corrupt {
                path: entry.path(),
                reason: "not a chain ID".into(),
            })?);
        }
        Ok(out)
    }

    /// Remove every layer that is not in the chains of `image_tops`, not
    /// held and not pinned. Returns the removed layers.
    pub fn collect_garbage(&self, image_tops: &[Digest]) -> Result<Vec<LayerRecord>> {
        let all = self.list()?;
        let by_chain: HashMap<Digest, &Layer> =
            all.iter().map(|l| (l.record.chain_id.clone(), l)).collect();
        let mut needed: HashSet<Digest> = HashSet::new();
        let mut tops: Vec<Digest> = image_tops.to_vec();
        tops.extend(self.held_tops()?);
        for top in tops {
            let mut cur = Some(top);
            while let Some(c) = cur {
                if !needed.insert(c.clone()) {
                    break;
                }
                cur = by_chain.get(&c).and_then(|l| l.record.parent.clone());
            }
        }
        let mut removed = Vec::new();
        for layer in &all {
            let chain = &layer.record.chain_id;
            if needed.contains(chain) {
                continue;
            }
            let graveyard = self
                .root
                .join("tmp")
                .join(format!("del-{}", unique_suffix()));
            {
                let pins = self
                    .pins
                    .lock()
                    .map_err(|_| Error::invalid("layer pin table poisoned"))?;
                if pins.contains_key(chain) {
                    continue;
                }
                fs::rename(&layer.dir, &graveyard)
                    .ctx(|| format!("remove layer {}", layer.dir.display()))?;
                if let Ok(mut cache) = self.cache.write() {
                    cache.remove(chain);
                }
            }
            let _ = fs::remove_file(self.root.join("l").join(&layer.record.link));
            if let Ok(mut g) = self.graveyard.lock() {
                g.push(graveyard);
            }
            removed.push(layer.record.clone());
        }
        Ok(removed)
    }
}

impl LayerStore {
    /// Delete the directories of layers collected since the last call.
    pub fn reap(&self) -> Result<()> {
        let dirs = match self.graveyard.lock() {
            Ok(mut g) => std::mem::take(&mut *g),
            Err(_) => return Err(Error::invalid("layer graveyard lock poisoned")),
        };
        for d in dirs {
            remove_tree(&d)?;
        }
        Ok(())
    }
}

fn check_owner(owner: &str) -> Result<()> {
    if owner.is_empty()
        || owner.len() > 128
        || !owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::invalid(format!(
            "invalid layer holder name {owner:?}"
        )));
    }
    Ok(())
}

pub(crate) fn remove_tree(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            context: format!("stat {}", p.display()),
            source: e,
        }),
        // Image-made content: any depth (see berth_common::tree).
        Ok(m) if m.is_dir() => {
            berth_common::tree::remove_all(p).ctx(|| format!("remove {}", p.display()))
        }
        Ok(_) => fs::remove_file(p).ctx(|| format!("remove {}", p.display())),
    }
}
