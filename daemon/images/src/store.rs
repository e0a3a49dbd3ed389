//! The image store facade: content store + reference store + layer store
//! + image records, with the operations the Engine API exposes.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::Utc;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{Image, ImageMeta};
use crate::layer::{Layer, LayerStore, Pin};
use crate::reference::{ImageRef, Reference};
use crate::refstore::RefStore;

/// A container that uses an image (reported by the container side).
#[derive(Debug, Clone)]
pub struct ContainerUse {
    pub id: String,
    pub running: bool,
}

/// Lets the container side veto image deletion ("image is being used by
/// running container X").
pub trait ImageUsage: Send + Sync {
    fn containers_using(&self, image: &Digest) -> Vec<ContainerUse>;
}

/// Receives the image events dockerd emits (`load`, `tag`, `untag`,
/// `delete`, `import`, `save`, `prune` is the caller's).
pub trait ImageEvents: Send + Sync {
    /// `id` is the image ID; `name` the `name` attribute dockerd sets (the
    /// familiar reference for tag, otherwise the image ID).
    fn image_event(&self, action: &str, id: &Digest, name: &str);
}

pub(crate) struct State {
    pub images: HashMap<Digest, Arc<Image>>,
    pub refs: RefStore,
}

pub struct ImageStore {
    pub(crate) content: ContentStore,
    pub(crate) layers: LayerStore,
    images_dir: PathBuf,
    pub(crate) tmp_dir: PathBuf,
    state: Mutex<State>,
    usage: RwLock<Option<Arc<dyn ImageUsage>>>,
    events: RwLock<Option<Arc<dyn ImageEvents>>>,
}

/// One line of a delete response (`{"Untagged": ...}` or `{"Deleted": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum DeleteItem {
    Untagged(String),
    Deleted(String),
}

impl ImageStore {
    /// Open (creating) the store under a daemon data root: blobs and
    /// records in `<root>/image`, layers in `<root>/overlay`. Leftovers of a
    /// crash (temp files, layers and blobs no image needs) are removed.
    pub fn open(data_root: &Path) -> Result<Self> {
        let image_root = data_root.join("image");
        let tmp_dir = image_root.join("tmp");
        let images_dir = image_root.join("images");
        fs::create_dir_all(&images_dir).ctx(|| format!("create {}", images_dir.display()))?;
        let content = ContentStore::open(&image_root, &tmp_dir)?;
        for entry in fs::read_dir(&tmp_dir).ctx(|| format!("list {}", tmp_dir.display()))? {
            let entry = entry.ctx(|| format!("list {}", tmp_dir.display()))?;
            crate::layer::remove_tree(&entry.path())?;
        }
        let layers = LayerStore::open(&data_root.join("overlay"))?;
        let refs = RefStore::open(image_root.join("references.json"))?;
        let store = ImageStore {
            content,
            layers,
            images_dir,
            tmp_dir,
            state: Mutex::new(State {
                images: HashMap::new(),
                refs,
            }),
            usage: RwLock::new(None),
            events: RwLock::new(None),
        };
        store.load_records()?;
        store.collect_garbage()?;
        Ok(store)
    }

    fn load_records(&self) -> Result<()> {
        let mut st = self.lock()?;
        for entry in
            fs::read_dir(&self.images_dir).ctx(|| format!("list {}", self.images_dir.display()))?
        {
            let entry = entry.ctx(|| format!("list {}", self.images_dir.display()))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(id) = Digest::from_hex(hex) else {
                continue;
            };
            let mut meta: ImageMeta = read_json(&entry.path())?;
            let bytes = self.content.read(&id)?;
            let pending = std::mem::take(&mut meta.pending_tags);
            let img = Image::from_config(id.clone(), &bytes, meta)?;
            for chain in &img.chain_ids {
                self.layers.require(chain)?;
            }
            if !pending.is_empty() {
                // A load or commit stopped between its record and its tags.
                for t in &pending {
                    let r = Reference::parse_normalized(t).map_err(|e| Error::Corrupt {
                        path: entry.path(),
                        reason: format!("pending tag {t:?}: {e}"),
                    })?;
                    st.refs.add(&r, &id)?;
                }
                self.write_meta(&id, &img.meta)?;
            }
            st.images.insert(id, Arc::new(img));
        }
        // References to images that are gone (crash mid-delete) are dropped.
        let dangling: Vec<Reference> = st
            .refs
            .iter()
            .filter(|(_, id)| !st.images.contains_key(*id))
            .map(|(r, _)| r.clone())
            .collect();
        if !dangling.is_empty() {
            st.refs.remove_all(&dangling)?;
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::invalid("image store lock poisoned"))
    }

    pub fn set_usage(&self, usage: Arc<dyn ImageUsage>) {
        if let Ok(mut u) = self.usage.write() {
            *u = Some(usage);
        }
    }

    pub fn set_events(&self, events: Arc<dyn ImageEvents>) {
        if let Ok(mut e) = self.events.write() {
            *e = Some(events);
        }
    }

    pub(crate) fn emit(&self, action: &str, id: &Digest, name: &str) {
        if let Ok(e) = self.events.read() {
            if let Some(e) = e.as_ref() {
                e.image_event(action, id, name);
            }
        }
    }

    pub(crate) fn containers_using(&self, id: &Digest) -> Vec<ContainerUse> {
        match self.usage.read() {
            Ok(u) => u
                .as_ref()
                .map(|u| u.containers_using(id))
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Resolve what a user typed (`name[:tag]`, `name@digest`, full ID, ID
    /// prefix) to an image, with dockerd's errors: 400 for an invalid
    /// reference, 404 `No such image: name:tag` otherwise.
    pub fn resolve(&self, name: &str) -> Result<Arc<Image>> {
        let parsed = ImageRef::parse(name)?;
        let st = self.lock()?;
        Self::resolve_in(&st, name, &parsed)
    }

    pub(crate) fn resolve_in(st: &State, name: &str, parsed: &ImageRef) -> Result<Arc<Image>> {
        match parsed {
            ImageRef::Id(id) => st
                .images
                .get(id)
                .cloned()
                .ok_or_else(|| Error::no_such_image(name)),
            ImageRef::Named(r) => {
                if let Some(id) = st.refs.get(r) {
                    if let Some(img) = st.images.get(id) {
                        return Ok(img.clone());
                    }
                }
                if let Some(img) = Self::search_prefix(st, name) {
                    return Ok(img);
                }
                Err(Error::no_such_image(
                    &r.clone().with_default_tag().familiar(),
                ))
            }
        }
    }

    /// A unique ID prefix (with or without `sha256:`).
    fn search_prefix(st: &State, s: &str) -> Option<Arc<Image>> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.is_empty() || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut found = st.images.values().filter(|i| i.id.hex().starts_with(hex));
        let first = found.next()?;
        if found.next().is_some() {
            return None;
        }
        Some(first.clone())
    }

    /// Every image record.
    pub fn all_images(&self) -> Result<Vec<Arc<Image>>> {
        Ok(self.lock()?.images.values().cloned().collect())
    }

    /// The unpacked layers of an image, lowest first: mount them as overlay
    /// lower dirs in reverse order (`lowerdir=top:...:bottom`).
    pub fn layers_of(&self, image: &Image) -> Result<Vec<Layer>> {
        match image.top_layer() {
            Some(top) => self.layers.chain(top),
            None => Ok(Vec::new()),
        }
    }

    /// The layer store, for container root filesystems (holds, paths).
    pub fn layer_store(&self) -> &LayerStore {
        &self.layers
    }

    /// Total size of an image's layers (dockerd's `Size`).
    pub fn image_size(&self, image: &Image) -> Result<u64> {
        Ok(self.layers_of(image)?.iter().map(|l| l.record.size).sum())
    }

    /// Bytes used by every unpacked layer, shared ones once (`LayersSize`
    /// of `/system/df`).
    pub fn layers_size(&self) -> Result<u64> {
        Ok(self.layers.list()?.iter().map(|l| l.record.size).sum())
    }

    /// The content store (blobs by digest), for the registry client.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// Publish an image a registry pull brought in: its layers are already
    /// in the layer store (the caller holds pins on them). The config blob
    /// is stored and `tags` (tag and digest references) point at it.
    pub fn publish_pulled(&self, config_bytes: &[u8], tags: &[Reference]) -> Result<Arc<Image>> {
        let (img, _) = self.commit_image(config_bytes, None, tags, &[])?;
        Ok(img)
    }

    /// Every tag reference of the repository `name` (tag and digest ignored).
    pub fn repository_tags(&self, name: &Reference) -> Result<Vec<Reference>> {
        let st = self.lock()?;
        let mut out: Vec<Reference> = st
            .refs
            .iter()
            .map(|(r, _)| r)
            .filter(|r| r.tag().is_some() && r.domain() == name.domain() && r.path() == name.path())
            .cloned()
            .collect();
        out.sort();
        Ok(out)
    }

    /// Point a digest reference (`name@sha256:…`) at an image, as a push
    /// records the manifest digest it produced.
    pub fn add_digest_reference(&self, r: &Reference, id: &Digest) -> Result<()> {
        if r.digest().is_none() {
            return Err(Error::invalid(format!(
                "{} is not a digest reference",
                r.familiar()
            )));
        }
        let mut st = self.lock()?;
        if !st.images.contains_key(id) {
            return Err(Error::no_such_image(&id.to_string()));
        }
        st.refs.add(r, id)?;
        Ok(())
    }

    /// Familiar tag and digest references of an image.
    pub fn repo_tags_digests(&self, id: &Digest) -> Result<(Vec<String>, Vec<String>)> {
        let st = self.lock()?;
        Ok(split_refs(&st.refs.references_to(id)))
    }

    pub(crate) fn children_in(st: &State, id: &Digest) -> Vec<Digest> {
        st.images
            .values()
            .filter(|i| i.meta.parent.as_ref() == Some(id))
            .map(|i| i.id.clone())
            .collect()
    }

    /// Publish an image whose config blob and layers are already stored:
    /// writes the record, then points `tags` at it. Returns the IDs that
    /// lost a tag to this image (for "renaming the old one" messages).
    pub(crate) fn commit_image(
        &self,
        config_bytes: &[u8],
        parent: Option<Digest>,
        tags: &[Reference],
        _pins: &[Pin],
    ) -> Result<(Arc<Image>, Vec<MovedTag>)> {
        let id = self.content.put(config_bytes)?;
        let mut st = self.lock()?;
        let existing_meta = st.images.get(&id).map(|i| i.meta.clone());
        let mut meta = existing_meta.clone().unwrap_or(ImageMeta {
            parent,
            last_tag_time: None,
            pending_tags: Vec::new(),
        });
        if !tags.is_empty() {
            meta.last_tag_time = Some(Utc::now());
        }
        let img = Arc::new(Image::from_config(id.clone(), config_bytes, meta.clone())?);
        for chain in &img.chain_ids {
            self.layers.require(chain)?;
        }
        let pending = ImageMeta {
            pending_tags: tags.iter().map(|t| t.to_string()).collect(),
            ..meta
        };
        self.write_meta(&id, &pending)?;
        berth_common::crashpoint::reached("image:after-record");
        st.images.insert(id.clone(), img.clone());
        let mut replaced = Vec::new();
        for t in tags {
            if let Some(old) = st.refs.add(t, &id)? {
                replaced.push((t.clone(), old));
            }
        }
        if !tags.is_empty() {
            self.write_meta(&id, &img.meta)?;
        }
        Ok((img, replaced))
    }

    fn write_meta(&self, id: &Digest, meta: &ImageMeta) -> Result<()> {
        let meta_path = self.images_dir.join(format!("{}.json", id.hex()));
        let data = serde_json::to_vec(meta).map_err(|e| Error::invalid(e.to_string()))?;
        berth_common::atomic::write_file(&meta_path, &data)
            .ctx(|| format!("write {}", meta_path.display()))
    }

    pub(crate) fn touch_last_tag_time(st: &mut State, id: &Digest) {
        if let Some(img) = st.images.get(id).cloned() {
            let mut new = (*img).clone();
            new.meta.last_tag_time = Some(Utc::now());
            st.images.insert(id.clone(), Arc::new(new));
        }
    }

    pub(crate) fn set_last_tag_time(&self, st: &mut State, id: &Digest) -> Result<()> {
        let Some(img) = st.images.get(id).cloned() else {
            return Ok(());
        };
        let mut new = (*img).clone();
        new.meta.last_tag_time = Some(Utc::now());
        let meta_path = self.images_dir.join(format!("{}.json", id.hex()));
        let data = serde_json::to_vec(&new.meta).map_err(|e| Error::invalid(e.to_string()))?;
        berth_common::atomic::write_file(&meta_path, &data)
            .ctx(|| format!("write {}", meta_path.display()))?;
        st.images.insert(id.clone(), Arc::new(new));
        Ok(())
    }

    /// Remove an image record (references must already be gone) and then
    /// every layer and blob no other image needs. Returns removed layers'
    /// chain IDs.
    pub(crate) fn remove_image(&self, st: &mut State, id: &Digest) -> Result<Vec<Digest>> {
        let meta_path = self.images_dir.join(format!("{}.json", id.hex()));
        match fs::remove_file(&meta_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Io {
                    context: format!("remove {}", meta_path.display()),
                    source: e,
                })
            }
        }
        st.images.remove(id);
        self.content.delete(id)?;
        let tops: Vec<Digest> = st
            .images
            .values()
            .filter_map(|i| i.top_layer().cloned())
            .collect();
        let removed = self.layers.collect_garbage(&tops)?;
        let still_needed: HashSet<Digest> = self
            .layers
            .list()?
            .into_iter()
            .map(|l| l.record.blob)
            .collect();
        for l in &removed {
            if !still_needed.contains(&l.blob) {
                self.content.delete(&l.blob)?;
            }
        }
        Ok(removed.into_iter().map(|l| l.chain_id).collect())
    }

    /// Startup clean-up after a crash: layers no image or holder needs and
    /// blobs nothing refers to.
    fn collect_garbage(&self) -> Result<()> {
        let st = self.lock()?;
        let tops: Vec<Digest> = st
            .images
            .values()
            .filter_map(|i| i.top_layer().cloned())
            .collect();
        self.layers.collect_garbage(&tops)?;
        let mut needed: HashSet<Digest> = st.images.keys().cloned().collect();
        needed.extend(self.layers.list()?.into_iter().map(|l| l.record.blob));
        for blob in self.content.list()? {
            if !needed.contains(&blob) {
                self.content.delete(&blob)?;
            }
        }
        drop(st);
        self.layers.reap()?;
        Ok(())
    }

    pub(crate) fn new_tmp_dir(&self, what: &str) -> Result<TempDir> {
        let p = self
            .tmp_dir
            .join(format!("{what}-{}", crate::content::unique_suffix()));
        fs::create_dir(&p).ctx(|| format!("create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

/// A tag that pointed at another image before (reference, old image ID).
pub(crate) type MovedTag = (Reference, Digest);

/// A directory removed when dropped.
pub(crate) struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = crate::layer::remove_tree(&self.0);
    }
}

pub(crate) fn split_refs(refs: &[Reference]) -> (Vec<String>, Vec<String>) {
    let mut tags = Vec::new();
    let mut digests = Vec::new();
    for r in refs {
        if r.digest().is_some() {
            digests.push(r.familiar());
        } else {
            tags.push(r.familiar());
        }
    }
    (tags, digests)
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let data = fs::read(p).ctx(|| format!("read {}", p.display()))?;
    serde_json::from_slice(&data).map_err(|e| Error::Corrupt {
        path: p.to_owned(),
        reason: e.to_string(),
    })
}
