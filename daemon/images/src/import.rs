//! `docker import` (a root filesystem tar → one-layer image) and image
//! creation from a container diff (`docker commit`).

use std::io::{self, Read, Write};
use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Map, Value};

use crate::changes;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{format_time, Image};
use crate::layer::{decompress, LayerBlob, Pin};
use crate::reference::Reference;
use crate::store::ImageStore;

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Where the data came from, for the history comment (`-` for the body).
    pub source: String,
    pub reference: Option<Reference>,
    pub changes: Vec<String>,
    pub message: String,
    /// `os/arch[/variant]`; empty means this host.
    pub platform: String,
}

/// What `docker commit` needs: the container's diff and config.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The image the container was created from (None for scratch).
    pub parent: Option<Digest>,
    /// The container configuration to store as the image's `config`.
    pub config: Map<String, Value>,
    pub changes: Vec<String>,
    pub author: String,
    pub comment: String,
    /// History `created_by`, e.g. the container's command.
    pub created_by: String,
    pub reference: Option<Reference>,
}

fn host_platform() -> (String, String) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    ("linux".into(), arch.into())
}

/// Copies everything read into a writer (the layer's blob).
struct Tee<R, W> {
    inner: R,
    sink: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl ImageStore {
    /// Store an uncompressed copy of `tar` as a blob and unpack it as a
    /// layer on top of `parent`.
    fn add_layer<R: Read>(
        &self,
        parent: Option<&Digest>,
        tar: R,
    ) -> Result<(crate::layer::Layer, Pin)> {
        let (_, plain) = decompress(tar)?;
        let mut blob = self.content.writer()?;
        let (layer, pin) = {
            let tee = Tee {
                inner: plain,
                sink: &mut blob,
            };
            self.layers
                .register(parent, tee, None, LayerBlob::SameAsDiffId)?
        };
        blob.commit(Some(&layer.record.diff_id))?;
        Ok((layer, pin))
    }

    /// `POST /images/create?fromSrc=-`: one-layer image from a rootfs tar.
    pub fn import<R: Read>(&self, tar: R, opts: &ImportOptions) -> Result<Arc<Image>> {
        let (os, arch, variant) = parse_platform(&opts.platform)?;
        let mut config = Map::new();
        changes::apply(&mut config, &opts.changes)?;
        let (layer, pin) = self.add_layer(None, tar)?;
        let created = format_time(&Utc::now());
        let msg = if opts.message.is_empty() {
            format!(
                "Imported from {}",
                if opts.source.is_empty() {
                    "-"
                } else {
                    &opts.source
                }
            )
        } else {
            opts.message.clone()
        };
        let mut img = json!({
            "architecture": arch,
            "os": os,
            "created": created,
            "comment": msg,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer.record.diff_id.to_string()]},
            "history": [{"created": created, "comment": msg}],
        });
        if let Some(v) = variant {
            img["variant"] = json!(v);
        }
        let bytes = serde_json::to_vec(&img).map_err(|e| Error::invalid(e.to_string()))?;
        let tags: Vec<Reference> = opts.reference.iter().cloned().collect();
        let (image, _) = self.commit_image(&bytes, None, &tags, &[pin])?;
        self.emit("import", &image.id, &image.id.to_string());
        for t in &tags {
            self.emit("tag", &image.id, &t.familiar());
        }
        Ok(image)
    }

    /// Create an image from a container's filesystem diff (a layer tar with
    /// OCI whiteouts, see [`crate::layer::diff::write_diff`]) on top of its
    /// image: the basis of `docker commit`. Emits no event; the caller emits
    /// `commit`.
    pub fn create_from_diff<R: Read>(&self, diff: R, opts: &CommitOptions) -> Result<Arc<Image>> {
        self.create_child(Some(diff), opts)
    }

    /// A child of `opts.parent` with the same layers and a new config:
    /// the history entry is marked `empty_layer` (a Dockerfile step that
    /// changed no file). Emits no event.
    pub fn create_config_only(&self, opts: &CommitOptions) -> Result<Arc<Image>> {
        self.create_child(None::<std::io::Empty>, opts)
    }

    fn create_child<R: Read>(&self, diff: Option<R>, opts: &CommitOptions) -> Result<Arc<Image>> {
        let parent = match &opts.parent {
            Some(p) => Some(
                self.lock()?
                    .images
                    .get(p)
                    .cloned()
                    .ok_or_else(|| Error::no_such_image(&p.to_string()))?,
            ),
            None => None,
        };
        let _parent_pin = parent
            .as_ref()
            .and_then(|p| p.top_layer())
            .map(|t| self.layers.pin(t));
        let mut config = opts.config.clone();
        changes::apply(&mut config, &opts.changes)?;
        let added = match diff {
            Some(diff) => Some(self.add_layer(parent.as_ref().and_then(|p| p.top_layer()), diff)?),
            None => None,
        };
        berth_common::crashpoint::reached("image:after-layer");
        let created = format_time(&Utc::now());
        let (os, arch) = host_platform();
        let mut diff_ids: Vec<Value> = parent
            .as_ref()
            .map(|p| p.diff_ids.iter().map(|d| json!(d.to_string())).collect())
            .unwrap_or_default();
        if let Some((layer, _)) = &added {
            diff_ids.push(json!(layer.record.diff_id.to_string()));
        }
        let mut history = parent.as_ref().map(|p| p.history()).unwrap_or_default();
        let mut entry = json!({"created": created, "created_by": opts.created_by});
        if added.is_none() {
            entry["empty_layer"] = json!(true);
        }
        if !opts.author.is_empty() {
            entry["author"] = json!(opts.author);
        }
        if !opts.comment.is_empty() {
            entry["comment"] = json!(opts.comment);
        }
        history.push(entry);
        let field = |k: &str, default: &str| {
            parent
                .as_ref()
                .map(|p| p.str_field(k))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let img = json!({
            "architecture": field("architecture", &arch),
            "os": field("os", &os),
            "created": created,
            "author": opts.author,
            "comment": opts.comment,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        let bytes = serde_json::to_vec(&img).map_err(|e| Error::invalid(e.to_string()))?;
        let tags: Vec<Reference> = opts.reference.iter().cloned().collect();
        let pins: Vec<Pin> = added.into_iter().map(|(_, pin)| pin).collect();
        let (image, _) = self.commit_image(&bytes, opts.parent.clone(), &tags, &pins)?;
        Ok(image)
    }
}

impl ImageStore {
    /// The classic builder's `--cache-from`: if `source`'s history and
    /// layers continue `parent`'s (or start an image from scratch) and its
    /// next history entry was made by `created_by`, an image of `parent`
    /// plus that step (its layer, if any) with `config` as its container
    /// config; `None` when `source` does not continue this build.
    pub fn restore_from_cache_source(
        &self,
        parent: Option<&Image>,
        source: &Image,
        config: &Map<String, Value>,
        created_by: &str,
    ) -> Result<Option<Arc<Image>>> {
        let parent_history = parent.map(|p| p.history()).unwrap_or_default();
        let parent_diffs: &[Digest] = parent.map(|p| p.diff_ids.as_slice()).unwrap_or(&[]);
        let history = source.history();
        let n = parent_history.len();
        if n >= history.len() || parent_diffs.len() > source.diff_ids.len() {
            return Ok(None);
        }
        let same = |a: &Value, b: &Value| {
            ["created_by", "comment", "empty_layer"]
                .iter()
                .all(|k| a.get(k).unwrap_or(&Value::Null) == b.get(k).unwrap_or(&Value::Null))
        };
        if !parent_history.iter().zip(&history).all(|(a, b)| same(a, b))
            || source.diff_ids[..parent_diffs.len()] != *parent_diffs
        {
            return Ok(None);
        }
        let next = &history[n];
        if next.get("created_by").and_then(Value::as_str) != Some(created_by) {
            return Ok(None);
        }
        let empty = |h: &Value| h.get("empty_layer").and_then(Value::as_bool) == Some(true);
        let mut diff_ids: Vec<Value> = parent_diffs.iter().map(|d| json!(d.to_string())).collect();
        if !empty(next) {
            let index = history[..n].iter().filter(|h| !empty(h)).count();
            let Some(layer) = source.diff_ids.get(index) else {
                return Ok(None);
            };
            diff_ids.push(json!(layer.to_string()));
        }
        let mut new_history = parent_history;
        new_history.push(next.clone());
        let img = json!({
            "architecture": source.str_field("architecture"),
            "os": source.str_field("os"),
            "author": source.str_field("author"),
            "created": next.get("created").cloned().unwrap_or(Value::Null),
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": new_history,
        });
        let bytes = serde_json::to_vec(&img).map_err(|e| Error::invalid(e.to_string()))?;
        let (image, _) = self.commit_image(&bytes, parent.map(|p| p.id.clone()), &[], &[])?;
        Ok(Some(image))
    }
}

fn parse_platform(p: &str) -> Result<(String, String, Option<String>)> {
    if p.is_empty() {
        let (os, arch) = host_platform();
        return Ok((os, arch, None));
    }
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        ["linux"] => Ok(("linux".into(), host_platform().1, None)),
        ["linux", arch] => Ok(("linux".into(), (*arch).into(), None)),
        ["linux", arch, variant] => Ok(("linux".into(), (*arch).into(), Some((*variant).into()))),
        _ => Err(Error::invalid(format!(
            "\"{p}\": unsupported platform: only linux images can be imported"
        ))),
    }
}
