//! `docker pull`: resolve the manifest (list → platform), fetch the
//! config, download missing layers concurrently while unpacking each one,
//! publish layers in order, then the image and its references.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use berth_images::layer::{chain_ids, LayerBlob, Pin, StagedLayer};
use berth_images::{Digest, Image, Reference};

use crate::auth::{AuthConfig, Challenge};
use crate::client::Session;
use crate::error::{Error, Result};
use crate::fetch::Repo;
use crate::manifest::{self, Descriptor, Parsed, Platform};
use crate::progress::{short_id, Progress};
use crate::Distribution;

/// Largest image config accepted.
const CONFIG_MAX: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Normalised reference with a tag or a digest.
    pub reference: Reference,
    /// `--platform`; empty for this host's.
    pub platform: String,
    pub auth: AuthConfig,
}

#[derive(Debug, Clone)]
pub struct PullOutcome {
    pub image: Digest,
    /// The manifest (or manifest list) digest.
    pub digest: Digest,
    /// Whether the reference now points at another image than before.
    pub updated: bool,
}

/// What a reference names on one endpoint: its top manifest and the image
/// manifest chosen for the platform.
struct Resolved {
    repo: Arc<Repo>,
    tag_or_digest: String,
    top_digest: Digest,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

impl Distribution {
    /// Pull one reference. Errors before the first progress message are
    /// meant to become plain HTTP errors.
    ///
    /// Docker Hub images are looked up on each `registry-mirrors` entry
    /// first; as in dockerd, a mirror that cannot be reached or lacks the
    /// image is skipped, but once a download began its errors are final.
    pub async fn pull(&self, opts: &PullOptions, out: &Progress) -> Result<PullOutcome> {
        let r = &opts.reference;
        let want = Platform::parse(&opts.platform)?;
        if r.domain() == "docker.io" {
            for mirror in &self.config().mirrors {
                let resolved = match Session::connect_mirror(
                    &self.config(),
                    &self.endpoints,
                    mirror,
                    opts.auth.clone(),
                )
                .await
                {
                    Ok(sess) => self.resolve(sess, r, &want).await,
                    Err(e) => Err(e),
                };
                match resolved {
                    Ok(res) => return self.download(res, r, out).await,
                    Err(e) => {
                        tracing::info!(%mirror, reference = %r, error = %e, "pull from mirror failed, trying the next endpoint");
                    }
                }
            }
        }
        let sess = Session::connect(
            &self.config(),
            &self.endpoints,
            r.domain(),
            opts.auth.clone(),
        )
        .await?;
        let res = self.resolve(sess, r, &want).await?;
        self.download(res, r, out).await
    }

    /// Fetch the reference's manifest (and the platform's one from a list).
    async fn resolve(&self, sess: Session, r: &Reference, want: &Platform) -> Result<Resolved> {
        let repo = Arc::new(Repo {
            sess,
            path: r.path().to_owned(),
            scopes: vec![format!("repository:{}:pull", r.path())],
        });
        let tag_or_digest = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => "latest".to_owned(),
        };
        let familiar = r.familiar();
        let top = repo
            .manifest(&tag_or_digest, |text| {
                Error::NotFound(format!("manifest for {familiar} not found: {text}"))
            })
            .await
            .map_err(|e| access_error(e, r, &repo, &tag_or_digest))?;
        let (media_type, config, layers) = match manifest::parse(&top.bytes, &top.content_type)? {
            Parsed::Image {
                media_type,
                config,
                layers,
            } => (media_type, config, layers),
            Parsed::List { manifests } => {
                let chosen = manifest::select(&manifests, want)?;
                let d = chosen.digest()?.to_string();
                let m = repo
                    .manifest(&d, |text| {
                        Error::NotFound(format!("manifest for {familiar} not found: {text}"))
                    })
                    .await?;
                match manifest::parse(&m.bytes, &m.content_type)? {
                    Parsed::Image {
                        media_type,
                        config,
                        layers,
                    } => (media_type, config, layers),
                    Parsed::List { .. } => {
                        return Err(Error::Upstream(format!(
                            "manifest list {d} names another manifest list"
                        )))
                    }
                }
            }
        };
        tracing::debug!(reference = %r, endpoint = %repo.sess.base, %media_type, layers = layers.len(), "pulling");
        Ok(Resolved {
            repo,
            tag_or_digest,
            top_digest: top.digest,
            config,
            layers,
        })
    }

    async fn download(&self, res: Resolved, r: &Reference, out: &Progress) -> Result<PullOutcome> {
        out.message(&res.tag_or_digest, format!("Pulling from {}", r.path()))
            .await;
        let result = self
            .pull_image(&res.repo, r, &res.top_digest, &res.config, &res.layers, out)
            .await?;
        out.status(format!("Digest: {}", res.top_digest)).await;
        let status = if result.updated {
            "Downloaded newer image for"
        } else {
            "Image is up to date for"
        };
        out.status(format!("Status: {status} {}", r.familiar()))
            .await;
        Ok(result)
    }

    async fn pull_image(
        &self,
        repo: &Arc<Repo>,
        r: &Reference,
        manifest_digest: &Digest,
        config: &Descriptor,
        layers: &[Descriptor],
        out: &Progress,
    ) -> Result<PullOutcome> {
        let store = self.store.clone();
        let config_digest = config.digest()?;
        let tags: Vec<Reference> = match r.digest() {
            Some(_) => vec![r.clone()],
            None => vec![r.clone(), r.with_digest(manifest_digest.clone())],
        };
        let before = {
            let (st, name) = (store.clone(), r.to_string());
            blocking(move || Ok(st.resolve(&name).ok().map(|i| i.id.clone()))).await?
        };
        let have = {
            let (st, id) = (store.clone(), config_digest.to_string());
            blocking(move || Ok(st.resolve(&id).is_ok())).await?
        };
        if !have {
            let bytes = repo.small_blob(config, CONFIG_MAX).await?;
            let probe = Image::from_config(config_digest.clone(), &bytes, Default::default())?;
            if probe.diff_ids.len() != layers.len() {
                return Err(Error::Upstream(format!(
                    "invalid manifest: {} layers, but the image configuration names {}",
                    layers.len(),
                    probe.diff_ids.len()
                )));
            }
            let pins = self
                .fetch_layers(repo, &probe.diff_ids, layers, out)
                .await?;
            let st = store.clone();
            let tags = tags.clone();
            let (dir, host, path) = (
                self.config().data_dir.clone(),
                repo.sess.host.clone(),
                repo.path.clone(),
            );
            // The config too: a later push can mount it like the layers.
            let blobs: Vec<Digest> = layers
                .iter()
                .filter_map(|l| l.digest().ok())
                .chain(Some(config_digest.clone()))
                .collect();
            blocking(move || {
                st.publish_pulled(&bytes, &tags)?;
                drop(pins);
                for b in &blobs {
                    crate::sources::record(&dir, b, &host, &path);
                }
                Ok(())
            })
            .await?;
        } else {
            let st = store.clone();
            let tags = tags.clone();
            let id = config_digest.clone();
            blocking(move || {
                let bytes = st.content().read(&id)?;
                st.publish_pulled(&bytes, &tags)?;
                Ok(())
            })
            .await?;
        }
        Ok(PullOutcome {
            updated: before.as_ref() != Some(&config_digest),
            image: config_digest,
            digest: manifest_digest.clone(),
        })
    }

    /// Make every layer of the chain exist: the ones present are pinned,
    /// the others downloaded and unpacked concurrently and published in
    /// order. Returns pins that keep them until the image is recorded.
    async fn fetch_layers(
        &self,
        repo: &Arc<Repo>,
        diff_ids: &[Digest],
        layers: &[Descriptor],
        out: &Progress,
    ) -> Result<Vec<Pin>> {
        let store = self.store.clone();
        let chains = chain_ids(diff_ids);
        let mut pins: Vec<Pin> = Vec::new();
        let mut missing: Vec<bool> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        for (i, desc) in layers.iter().enumerate() {
            let d = desc.digest()?;
            desc.size()?;
            ids.push(short_id(&d));
            let pin = store.layer_store().pin(&chains[i]);
            let present = store.layer_store().get(&chains[i])?.is_some();
            if present {
                pins.push(pin);
            }
            missing.push(!present);
        }
        for (i, id) in ids.iter().enumerate() {
            out.layer(
                id,
                if missing[i] {
                    "Pulling fs layer"
                } else {
                    "Already exists"
                },
            )
            .await;
        }
        // One task per distinct missing blob, at most N downloading at once.
        let sem = Arc::new(Semaphore::new(
            self.config().max_concurrent_downloads.max(1),
        ));
        let mut handles: Vec<Option<JoinHandle<Result<StagedLayer>>>> = Vec::new();
        let mut waiting = Vec::new();
        for (i, desc) in layers.iter().enumerate() {
            if !missing[i] {
                handles.push(None);
                continue;
            }
            let permit = match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    waiting.push(ids[i].clone());
                    None
                }
            };
            let attempts = self.config().max_download_attempts;
            let (sem, st, desc, diff, id, out, repo) = (
                sem.clone(),
                store.clone(),
                desc.clone(),
                diff_ids[i].clone(),
                ids[i].clone(),
                out.clone(),
                repo.clone(),
            );
            handles.push(Some(tokio::spawn(async move {
                let _permit = match permit {
                    Some(p) => p,
                    None => sem
                        .acquire_owned()
                        .await
                        .map_err(|_| Error::Internal("download limiter closed".into()))?,
                };
                let staged = repo.layer(&st, &desc, &diff, &id, attempts, &out).await?;
                out.layer(&id, "Verifying Checksum").await;
                out.layer(&id, "Download complete").await;
                let size = desc.size().unwrap_or(0);
                out.bar(&id, "Extracting", size, size).await;
                Ok(staged)
            })));
        }
        // If this future is dropped (the pull was cancelled), so are the
        // downloads: their staged layers are removed as they stop.
        let _abort = AbortAll(
            handles
                .iter()
                .flatten()
                .map(JoinHandle::abort_handle)
                .collect(),
        );
        for id in &waiting {
            out.layer(id, "Waiting").await;
        }
        let res = self
            .publish_in_order(&chains, layers, &mut handles, &ids, &mut pins, out)
            .await;
        // On failure stop every download still running.
        for h in handles.iter_mut().flatten() {
            h.abort();
        }
        for h in handles.into_iter().flatten() {
            let _ = h.await;
        }
        res?;
        Ok(pins)
    }

    async fn publish_in_order(
        &self,
        chains: &[Digest],
        layers: &[Descriptor],
        handles: &mut [Option<JoinHandle<Result<StagedLayer>>>],
        ids: &[String],
        pins: &mut Vec<Pin>,
        out: &Progress,
    ) -> Result<()> {
        for i in 0..layers.len() {
            let Some(h) = handles[i].take() else {
                continue;
            };
            let staged = h
                .await
                .map_err(|e| Error::Internal(format!("download task: {e}")))??;
            let parent = if i == 0 {
                None
            } else {
                Some(chains[i - 1].clone())
            };
            let blob = layers[i].digest()?;
            let st = self.store.clone();
            let pin = blocking(move || {
                let (_, pin) =
                    st.layer_store()
                        .publish(staged, parent.as_ref(), LayerBlob::Stored(blob))?;
                Ok(pin)
            })
            .await?;
            pins.push(pin);
            out.layer(&ids[i], "Pull complete").await;
        }
        Ok(())
    }
}

/// Aborts tasks when dropped.
pub(crate) struct AbortAll(pub Vec<tokio::task::AbortHandle>);

impl Drop for AbortAll {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// dockerd's answer when the registry refuses a pull. Not a 401: the
/// docker CLI would take that for "log in first" and prompt for a password.
fn access_error(e: Error, r: &Reference, repo: &Repo, tag_or_digest: &str) -> Error {
    match e {
        Error::Unauthorized(_) if matches!(repo.sess.challenge(), Some(Challenge::Basic)) && !repo.sess.has_credentials() => {
            Error::Upstream(format!(
                "Head \"{}\": no basic auth credentials",
                repo.sess.url(&format!("/v2/{}/manifests/{tag_or_digest}", repo.path))
            ))
        }
        Error::Unauthorized(text) | Error::Forbidden(text) => Error::NotFound(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {text}",
            r.familiar_name()
        )),
        other => other,
    }
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking task: {e}")))?
}
