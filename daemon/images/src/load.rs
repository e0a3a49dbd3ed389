//! `docker load`: docker-archive (manifest.json) and OCI image layouts
//! (index.json + oci-layout).

use std::fs::File;
use std::io;

use serde::Deserialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{LayerBlob, Pin};
use crate::reference::Reference;
use crate::spool::Spool;
use crate::store::ImageStore;

/// Progress of a load, for the API's JSON message stream.
#[derive(Debug, Clone)]
pub enum LoadProgress {
    /// A layer is being unpacked (`current` of `total` bytes done).
    Layer {
        id: String,
        current: u64,
        total: u64,
    },
    /// A line for the user, newline-terminated, e.g. `Loaded image: busybox:latest\n`.
    Message(String),
}

#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub images: Vec<Digest>,
    pub messages: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
    #[serde(default)]
    parent: Option<String>,
}

/// One image to import from the archive.
struct Candidate {
    config_path: String,
    layer_paths: Vec<String>,
    tags: Vec<Reference>,
    parent: Option<Digest>,
}

impl ImageStore {
    /// Load every image in a tar archive; `progress` sees each step.
    pub fn load<R: std::io::Read>(
        &self,
        archive: R,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<LoadReport> {
        let tmp = self.new_tmp_dir("load")?;
        let spool = Spool::read(archive, &tmp.0, Some(&self.layers))?;
        berth_common::crashpoint::reached("load:after-spool");
        let candidates = if spool.contains("manifest.json") {
            docker_archive_candidates(&spool)?
        } else if spool.contains("index.json") {
            oci_candidates(&spool)?
        } else {
            return Err(Error::invalid(
                "invalid image archive: neither manifest.json (docker save) nor index.json (OCI layout) found",
            ));
        };
        let mut report = LoadReport::default();
        for c in candidates {
            let id = self.load_one(&spool, &c, progress, &mut report)?;
            report.images.push(id);
        }
        Ok(report)
    }

    fn load_one(
        &self,
        spool: &Spool,
        c: &Candidate,
        progress: &mut dyn FnMut(LoadProgress),
        report: &mut LoadReport,
    ) -> Result<Digest> {
        let config = spool.read_small(&c.config_path)?;
        let probe =
            crate::image::Image::from_config(Digest::of(&config), &config, Default::default())?;
        if probe.diff_ids.len() != c.layer_paths.len() {
            return Err(Error::invalid(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                c.layer_paths.len(),
                probe.diff_ids.len()
            )));
        }
        let mut pins: Vec<Pin> = Vec::new();
        let mut parent: Option<Digest> = None;
        for (path, diff_id) in c.layer_paths.iter().zip(&probe.diff_ids) {
            let spooled = spool.require(path)?;
            let short = diff_id.hex()[..12].to_owned();
            progress(LoadProgress::Layer {
                id: short.clone(),
                current: 0,
                total: spooled.size,
            });
            let (layer, pin) = match spooled.staged.borrow_mut().take() {
                // Unpacked while spooling, and it is the layer the config names.
                Some(staged) if staged.diff_id.as_ref() == Some(diff_id) => {
                    if let Some(p) = parent.as_ref() {
                        self.layers.require(p)?;
                    }
                    self.layers.publish(
                        staged,
                        parent.as_ref(),
                        LayerBlob::Stored(spooled.digest.clone()),
                    )?
                }
                // Otherwise unpack from the spooled file. The layer store
                // syncs the filesystem before publishing, which also makes
                // the spooled bytes durable before they become the blob.
                _ => {
                    let blob = File::open(&spooled.path)
                        .ctx(|| format!("open {}", spooled.path.display()))?;
                    self.layers.register(
                        parent.as_ref(),
                        io::BufReader::with_capacity(1 << 20, blob),
                        Some(diff_id),
                        LayerBlob::Stored(spooled.digest.clone()),
                    )?
                }
            };
            // An fsync here is nearly free after the layer store's syncfs.
            if layer.record.blob == spooled.digest && !self.content.exists(&spooled.digest) {
                self.content.adopt(&spooled.path, &spooled.digest, false)?;
            }
            progress(LoadProgress::Layer {
                id: short,
                current: spooled.size,
                total: spooled.size,
            });
            parent = Some(layer.record.chain_id.clone());
            pins.push(pin);
            berth_common::crashpoint::reached("image:after-layer");
        }
        let (img, replaced) = self.commit_image(&config, c.parent.clone(), &c.tags, &pins)?;
        for (r, old) in &replaced {
            let m = format!(
                "The image {} already exists, renaming the old one with ID {old} to empty string\n",
                r.familiar()
            );
            progress(LoadProgress::Message(m.clone()));
            report.messages.push(m);
        }
        if c.tags.is_empty() {
            let m = format!("Loaded image ID: {}\n", img.id);
            progress(LoadProgress::Message(m.clone()));
            report.messages.push(m);
        }
        for t in &c.tags {
            let m = format!("Loaded image: {}\n", t.familiar());
            progress(LoadProgress::Message(m.clone()));
            report.messages.push(m);
        }
        self.emit("load", &img.id, &img.id.to_string());
        Ok(img.id.clone())
    }
}

fn parse_tags(tags: &[String]) -> Result<Vec<Reference>> {
    tags.iter()
        .map(|t| {
            let r = Reference::parse_normalized(t)?;
            if r.digest().is_some() {
                return Err(Error::invalid(format!(
                    "invalid tag {t:?} in archive: digest references cannot be loaded"
                )));
            }
            Ok(r.with_default_tag())
        })
        .collect()
}

fn docker_archive_candidates(spool: &Spool) -> Result<Vec<Candidate>> {
    let data = spool.read_small("manifest.json")?;
    let entries: Vec<ManifestEntry> = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("invalid manifest.json: {e}")))?;
    entries
        .into_iter()
        .map(|e| {
            let parent = match e.parent.as_deref() {
                Some(p) if !p.is_empty() => Some(Digest::parse(p)?),
                _ => None,
            };
            Ok(Candidate {
                config_path: e.config,
                layer_paths: e.layers,
                tags: parse_tags(&e.repo_tags.unwrap_or_default())?,
                parent,
            })
        })
        .collect()
}

fn blob_path(desc: &Value) -> Result<String> {
    let d = desc
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid("invalid OCI layout: descriptor without digest"))?;
    let (alg, hex) = d
        .split_once(':')
        .ok_or_else(|| Error::invalid(format!("invalid OCI layout: bad digest {d:?}")))?;
    if alg != "sha256" {
        return Err(Error::invalid(format!(
            "invalid OCI layout: unsupported digest algorithm {alg}"
        )));
    }
    Digest::from_hex(hex)?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn read_verified(spool: &Spool, desc: &Value) -> Result<Value> {
    let path = blob_path(desc)?;
    let f = spool.require(&path)?;
    let want = desc
        .get("digest")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if f.digest.to_string() != want {
        return Err(Error::DigestMismatch {
            what: path,
            expected: want.to_owned(),
            actual: f.digest.to_string(),
        });
    }
    let data = spool.read_small(&path)?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("invalid OCI layout: {path}: {e}")))
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn oci_candidates(spool: &Spool) -> Result<Vec<Candidate>> {
    let data = spool.read_small("index.json")?;
    let index: Value = serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(format!("invalid index.json: {e}")))?;
    let mut out = Vec::new();
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for desc in manifests {
        let ann = desc.get("annotations");
        let name = ann
            .and_then(|a| a.get("io.containerd.image.name"))
            .and_then(Value::as_str)
            .or_else(|| {
                ann.and_then(|a| a.get("org.opencontainers.image.ref.name"))
                    .and_then(Value::as_str)
                    .filter(|n| n.contains('/') || n.contains(':'))
            });
        let tags = match name {
            Some(n) => parse_tags(&[n.to_owned()])?,
            None => Vec::new(),
        };
        let manifest = resolve_manifest(spool, &desc, 0)?;
        let config_path = blob_path(manifest.get("config").unwrap_or(&Value::Null))?;
        let layer_paths = manifest
            .get("layers")
            .and_then(Value::as_array)
            .map(|ls| ls.iter().map(blob_path).collect::<Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default();
        out.push(Candidate {
            config_path,
            layer_paths,
            tags,
            parent: None,
        });
    }
    if out.is_empty() {
        return Err(Error::invalid(
            "invalid OCI layout: index.json lists no manifests",
        ));
    }
    Ok(out)
}

/// Follow nested indexes to the manifest for this host's platform.
fn resolve_manifest(spool: &Spool, desc: &Value, depth: usize) -> Result<Value> {
    if depth > 4 {
        return Err(Error::invalid(
            "invalid OCI layout: indexes nested too deeply",
        ));
    }
    let doc = read_verified(spool, desc)?;
    let is_index = doc.get("manifests").is_some();
    if !is_index {
        return Ok(doc);
    }
    let list = doc
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let chosen = list
        .iter()
        .find(|m| {
            let p = m.get("platform");
            p.and_then(|p| p.get("os")).and_then(Value::as_str) == Some("linux")
                && p.and_then(|p| p.get("architecture"))
                    .and_then(Value::as_str)
                    == Some(host_arch())
                && spool.contains(&blob_path(m).unwrap_or_default())
        })
        .or_else(|| {
            list.iter()
                .find(|m| spool.contains(&blob_path(m).unwrap_or_default()))
        })
        .ok_or_else(|| {
            Error::invalid("invalid OCI layout: no manifest for this platform in the archive")
        })?;
    resolve_manifest(spool, chosen, depth + 1)
}
