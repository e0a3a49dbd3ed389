//! `docker save`: a docker-archive (manifest.json, repositories, one
//! directory per layer with layer.tar, config as `<hex>.json`) that both
//! berthd and dockerd load.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::{Error, IoContext, Result};
use crate::image::Image;
use crate::layer::decompress;
use crate::reference::{ImageRef, Reference};
use crate::store::ImageStore;

struct Selected {
    image: Arc<Image>,
    tags: Vec<Reference>,
}

impl ImageStore {
    /// Write the named images as one docker-archive tar to `out`.
    pub fn save<W: Write>(&self, names: &[String], out: W) -> Result<()> {
        let selected = self.select(names)?;
        let mut tar = tar::Builder::new(out);
        let mut written_layers: HashSet<String> = HashSet::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for sel in &selected {
            let img = &sel.image;
            let mtime = img
                .created
                .map(|c| c.timestamp().max(0) as u64)
                .unwrap_or(0);
            let layers = self.layers_of(img)?;
            let mut layer_paths = Vec::new();
            let mut parent_dir: Option<String> = None;
            for layer in &layers {
                let dir = layer.record.chain_id.hex().to_owned();
                if written_layers.insert(dir.clone()) {
                    append_dir(&mut tar, &dir, mtime)?;
                    append_bytes(&mut tar, &format!("{dir}/VERSION"), b"1.0", mtime)?;
                    let mut v1 = json!({"id": dir, "created": img.str_field("created")});
                    if let Some(p) = &parent_dir {
                        v1["parent"] = json!(p);
                    }
                    append_bytes(
                        &mut tar,
                        &format!("{dir}/json"),
                        v1.to_string().as_bytes(),
                        mtime,
                    )?;
                    self.append_layer_tar(
                        &mut tar,
                        &format!("{dir}/layer.tar"),
                        &layer.record,
                        mtime,
                    )?;
                }
                layer_paths.push(format!("{dir}/layer.tar"));
                parent_dir = Some(dir);
            }
            let config_name = format!("{}.json", img.id.hex());
            let config = self.content.read(&img.id)?;
            append_bytes(&mut tar, &config_name, &config, mtime)?;
            let tags: Vec<String> = sel.tags.iter().map(|t| t.familiar()).collect();
            if let Some(top) = &parent_dir {
                for t in &sel.tags {
                    if let Some(tag) = t.tag() {
                        repositories
                            .entry(t.familiar_name())
                            .or_default()
                            .insert(tag.to_owned(), top.clone());
                    }
                }
            }
            manifest.push(json!({
                "Config": config_name,
                "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
                "Layers": layer_paths,
            }));
        }
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        append_bytes(
            &mut tar,
            "manifest.json",
            Value::Array(manifest).to_string().as_bytes(),
            now,
        )?;
        if !repositories.is_empty() {
            let r = serde_json::to_vec(&repositories).map_err(|e| Error::invalid(e.to_string()))?;
            append_bytes(&mut tar, "repositories", &r, now)?;
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .ctx(|| "finish image archive".to_owned())?;
        for sel in &selected {
            self.emit("save", &sel.image.id, &sel.image.id.to_string());
        }
        Ok(())
    }

    /// Resolve names as dockerd's save does: `repo` alone means every tag
    /// of that repository, `repo:tag` that tag, an ID the untagged image.
    fn select(&self, names: &[String]) -> Result<Vec<Selected>> {
        let mut out: Vec<Selected> = Vec::new();
        for name in names {
            let parsed = ImageRef::parse(name)?;
            let mut picks: Vec<(Arc<Image>, Option<Reference>)> = Vec::new();
            if let ImageRef::Named(r) = &parsed {
                if r.tag().is_none() && r.digest().is_none() {
                    let st = self.lock()?;
                    for (rr, id) in st.refs.iter() {
                        if rr.name() == r.name() && rr.digest().is_none() {
                            if let Some(img) = st.images.get(id) {
                                picks.push((img.clone(), Some(rr.clone())));
                            }
                        }
                    }
                }
            }
            if picks.is_empty() {
                let img = self.resolve(name)?;
                let tag = match &parsed {
                    ImageRef::Named(r) if r.digest().is_none() => {
                        let t = r.clone().with_default_tag();
                        let st = self.lock()?;
                        (st.refs.get(&t) == Some(&img.id)).then_some(t)
                    }
                    _ => None,
                };
                picks.push((img, tag));
            }
            for (img, tag) in picks {
                match out.iter_mut().find(|s| s.image.id == img.id) {
                    Some(s) => {
                        if let Some(t) = tag {
                            if !s.tags.contains(&t) {
                                s.tags.push(t);
                            }
                        }
                    }
                    None => out.push(Selected {
                        image: img,
                        tags: tag.into_iter().collect(),
                    }),
                }
            }
        }
        Ok(out)
    }

    fn append_layer_tar<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        path: &str,
        record: &crate::layer::LayerRecord,
        mtime: u64,
    ) -> Result<()> {
        // The archive needs the uncompressed size up front.
        let size = match record.tar_size {
            Some(s) => s,
            None => {
                let (_, r) = decompress(self.content.open_blob(&record.blob)?)?;
                count(r).ctx(|| format!("read layer blob {}", record.blob))?
            }
        };
        let (_, reader) = decompress(self.content.open_blob(&record.blob)?)?;
        let mut h = file_header(size, mtime);
        tar.append_data(&mut h, path, reader.take(size))
            .ctx(|| format!("write {path} to archive"))
    }
}

fn count<R: Read>(mut r: R) -> io::Result<u64> {
    io::copy(&mut r, &mut io::sink())
}

fn file_header(size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
    mtime: u64,
) -> Result<()> {
    let mut h = file_header(data.len() as u64, mtime);
    tar.append_data(&mut h, path, data)
        .ctx(|| format!("write {path} to archive"))
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str, mtime: u64) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Directory);
    tar.append_data(&mut h, format!("{path}/"), io::empty())
        .ctx(|| format!("write {path}/ to archive"))
}
