//! `docker push`: every layer as a compressed blob (layers stored
//! uncompressed are gzipped deterministically, so the same image always
//! gives the same manifest digest), existence check, upload, then the
//! config and the manifest.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;

use berth_images::layer::Layer;
use berth_images::{Digest, ImageStore, Reference};

use crate::auth::AuthConfig;
use crate::client::Session;
use crate::compress;
use crate::error::{Error, Result};
use crate::fetch::Repo;
use crate::manifest::{self, Descriptor};
use crate::progress::{short_id, Progress};
use crate::pull::{blocking, AbortAll};
use crate::Distribution;

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The repository, with the tag to push; without a tag every tag of
    /// the repository is pushed.
    pub reference: Reference,
    pub auth: AuthConfig,
}

#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// (tag, manifest digest, manifest size) per pushed tag.
    pub pushed: Vec<(String, Digest, usize)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zstd,
}

/// A layer blob ready to upload.
struct Prepared {
    digest: Digest,
    size: u64,
    kind: Kind,
    /// The local copy; `None` for a gzip made while pushing, which is
    /// not kept.
    path: Option<PathBuf>,
}

impl Distribution {
    /// The tags a push would send, checked before anything is streamed.
    pub fn push_tags(&self, r: &Reference) -> Result<Vec<Reference>> {
        tags_to_push(&self.store, r)
    }

    pub async fn push(&self, opts: &PushOptions, out: &Progress) -> Result<PushOutcome> {
        let r = &opts.reference;
        let tags = {
            let (st, r) = (self.store.clone(), r.clone());
            blocking(move || tags_to_push(&st, &r))
        };
        let cfg = self.config();
        let sess = Session::connect(&cfg, &self.endpoints, r.domain(), opts.auth.clone());
        // The registry is reached while the tags are looked up; a missing
        // image is still the error reported first, as dockerd does.
        let (tags, sess) = tokio::join!(tags, sess);
        let (tags, sess) = (tags?, sess?);
        let repo = Arc::new(Repo {
            sess,
            path: r.path().to_owned(),
            scopes: vec![format!("repository:{}:pull,push", r.path())],
        });
        out.status(format!("The push refers to repository [{}]", r.name()))
            .await;
        let mut pushed = Vec::new();
        for t in &tags {
            let tag = t.tag().unwrap_or("latest").to_owned();
            let (digest, size) = self.push_tag(&repo, t, &tag, out).await?;
            out.status(format!("{tag}: digest: {digest} size: {size}"))
                .await;
            out.json(json!({
                "progressDetail": {},
                "aux": {"Tag": tag, "Digest": digest.to_string(), "Size": size},
            }))
            .await;
            pushed.push((tag, digest, size));
        }
        Ok(PushOutcome { pushed })
    }

    async fn push_tag(
        &self,
        repo: &Arc<Repo>,
        t: &Reference,
        tag: &str,
        out: &Progress,
    ) -> Result<(Digest, usize)> {
        let st = self.store.clone();
        let name = t.to_string();
        let (image, layers) = blocking(move || {
            let img = st.resolve(&name)?;
            let layers = st.layers_of(&img)?;
            Ok((img, layers))
        })
        .await?;
        let ids: Vec<String> = layers.iter().map(|l| short_id(&l.record.diff_id)).collect();
        // Top layer first, as dockerd lists them.
        for id in ids.iter().rev() {
            out.layer(id, "Preparing").await;
        }
        // The config blob goes up alongside the layers: only the manifest
        // has to wait for all of them.
        let config_job = {
            let (st, repo, id) = (self.store.clone(), repo.clone(), image.id.clone());
            let dir = self.config().data_dir.clone();
            tokio::spawn(async move {
                let config = {
                    let (st, id) = (st.clone(), id.clone());
                    blocking(move || Ok(st.content().read(&id)?)).await?
                };
                if repo.place_known(&dir, &id).await?.is_none() {
                    repo.upload_bytes(config.clone(), &id).await?;
                }
                Ok::<_, Error>(config.len())
            })
        };
        let sem = Arc::new(Semaphore::new(self.config().max_concurrent_uploads.max(1)));
        let mut handles = Vec::new();
        for (layer, id) in layers.iter().zip(&ids).rev() {
            let permit = sem.clone().try_acquire_owned().ok();
            if permit.is_none() {
                out.layer(id, "Waiting").await;
            }
            let (sem, st, repo, out, layer, id, dir) = (
                sem.clone(),
                self.store.clone(),
                repo.clone(),
                out.clone(),
                layer.clone(),
                id.clone(),
                self.config().data_dir.clone(),
            );
            handles.push(tokio::spawn(async move {
                let _permit = match permit {
                    Some(p) => p,
                    None => sem
                        .acquire_owned()
                        .await
                        .map_err(|_| Error::Internal("upload limiter closed".into()))?,
                };
                repo.push_layer(&st, &layer, &dir, &id, &out).await
            }));
        }
        // A cancelled push (this future dropped) stops its uploads too.
        let _abort = AbortAll(
            handles
                .iter()
                .map(|h| h.abort_handle())
                .chain([config_job.abort_handle()])
                .collect(),
        );
        let mut prepared = Vec::new();
        let mut first_err = None;
        for h in handles {
            match h.await {
                Ok(Ok(p)) => prepared.push(p),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(Error::Internal(format!("upload task: {e}")));
                }
            }
        }
        let config_len = match config_job.await {
            Ok(r) => r,
            Err(e) => Err(Error::Internal(format!("config upload task: {e}"))),
        };
        if let Some(e) = first_err {
            return Err(e);
        }
        let config_len = config_len?;
        prepared.reverse();
        let oci = prepared.iter().any(|p| p.kind == Kind::Zstd);
        let layer_type = |k: Kind| match (oci, k) {
            (false, _) => manifest::DOCKER_LAYER_GZIP,
            (true, Kind::Gzip) => manifest::OCI_LAYER_GZIP,
            (true, Kind::Zstd) => manifest::OCI_LAYER_ZSTD,
        };
        let doc = ManifestDoc {
            schema_version: 2,
            media_type: if oci {
                manifest::OCI_MANIFEST
            } else {
                manifest::DOCKER_MANIFEST
            },
            config: Descriptor {
                media_type: if oci {
                    manifest::OCI_CONFIG
                } else {
                    manifest::DOCKER_CONFIG
                }
                .into(),
                digest: image.id.to_string(),
                size: config_len as i64,
                platform: None,
                urls: None,
            },
            layers: prepared
                .iter()
                .map(|p| Descriptor {
                    media_type: layer_type(p.kind).into(),
                    digest: p.digest.to_string(),
                    size: p.size as i64,
                    platform: None,
                    urls: None,
                })
                .collect(),
        };
        let bytes = to_indented_json(&doc)?;
        let digest = Digest::of(&bytes);
        // The blobs are in the repository now, manifest or not: noted for
        // later mounts while the manifest goes up.
        let blobs: Vec<Digest> = prepared
            .iter()
            .map(|p| p.digest.clone())
            .chain([image.id.clone()])
            .collect();
        let dir = self.config().data_dir.clone();
        let (put, ()) = tokio::join!(
            repo.put_manifest(tag, doc.media_type, bytes.clone()),
            repo.remember(&dir, blobs),
        );
        put?;
        let st = self.store.clone();
        let (r, id) = (t.with_digest(digest.clone()), image.id.clone());
        blocking(move || Ok(st.add_digest_reference(&r, &id)?)).await?;
        Ok((digest, bytes.len()))
    }
}

fn tags_to_push(store: &ImageStore, r: &Reference) -> Result<Vec<Reference>> {
    let tags = match r.tag() {
        Some(_) => vec![r.clone()],
        None => store.repository_tags(r)?,
    };
    let missing = tags.is_empty() || tags.iter().any(|t| store.resolve(&t.to_string()).is_err());
    if missing {
        return Err(Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            r.familiar_name()
        )));
    }
    Ok(tags)
}

#[derive(Serialize)]
struct ManifestDoc {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// JSON indented with three spaces, as dockerd writes manifests.
fn to_indented_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)
        .map_err(|e| Error::Internal(format!("encode manifest: {e}")))?;
    Ok(out)
}

fn sniff(path: &Path) -> Result<Option<Kind>> {
    let mut head = [0u8; 4];
    let mut f =
        File::open(path).map_err(|e| Error::Internal(format!("open {}: {e}", path.display())))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::Internal(format!("read {}: {e}", path.display()))),
        }
    }
    Ok(if head[..n].starts_with(&[0x1f, 0x8b]) {
        Some(Kind::Gzip)
    } else if head[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Kind::Zstd)
    } else {
        None
    })
}

/// The compressed blob to push for a layer without compressing anything:
/// the stored blob when it is compressed, or the digest of the gzip of it
/// an earlier push made (to be found on the registry). `None` when it has yet to be compressed.
fn ready_blob(store: &ImageStore, layer: &Layer, dir: &Path) -> Result<Option<Prepared>> {
    let content = store.content();
    let blob = &layer.record.blob;
    let path = content.path(blob);
    if let Some(kind) = sniff(&path)? {
        return Ok(Some(Prepared {
            digest: blob.clone(),
            size: content.size(blob)?,
            kind,
            path: Some(path),
        }));
    }
    Ok(
        compress::known_gzip(dir, &layer.record.diff_id).map(|(digest, size)| Prepared {
            digest,
            size,
            kind: Kind::Gzip,
            path: None,
        }),
    )
}

/// How a blob came to be on the registry without an upload.
enum Placed {
    Exists,
    Mounted(String),
}

impl Repo {
    pub async fn blob_exists(&self, d: &Digest) -> Result<bool> {
        let url = self.sess.url(&format!("/v2/{}/blobs/{d}", self.path));
        let resp = self
            .sess
            .send(Method::HEAD, &url, &self.scopes, |r| r)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(self.status_error(s, &url, resp).await),
        }
    }

    /// Note that this repository now holds `blobs`, for later mounts.
    async fn remember(&self, dir: &Path, blobs: Vec<Digest>) {
        let (dir, h, p) = (dir.to_owned(), self.sess.host.clone(), self.path.clone());
        let _ = blocking(move || {
            for d in &blobs {
                crate::sources::record(&dir, d, &h, &p);
            }
            Ok(())
        })
        .await;
    }

    /// Is `d` on the registry already, or can it be mounted there from
    /// another repository known to hold it? A blob known only elsewhere is
    /// mounted straight away (the registry answers a mount of a blob the
    /// repository has with 201 too), saving the HEAD's round trip.
    async fn place_known(&self, dir: &Path, d: &Digest) -> Result<Option<Placed>> {
        let (dir, d2, host, path) = (
            dir.to_owned(),
            d.clone(),
            self.sess.host.clone(),
            self.path.clone(),
        );
        let (here, others) =
            blocking(move || Ok(crate::sources::on_host(&dir, &d2, &host, &path))).await?;
        let mount_first = !here && !others.is_empty();
        if mount_first {
            if let Some(from) = self.mount_from(&others, d).await? {
                return Ok(Some(Placed::Mounted(from)));
            }
        }
        if self.blob_exists(d).await? {
            return Ok(Some(Placed::Exists));
        }
        if !mount_first {
            if let Some(from) = self.mount_from(&others, d).await? {
                return Ok(Some(Placed::Mounted(from)));
            }
        }
        Ok(None)
    }

    /// Ask the registry to mount `d` from one of `candidates`. Returns the
    /// one it worked from.
    async fn mount_from(&self, candidates: &[String], d: &Digest) -> Result<Option<String>> {
        for from in candidates {
            let url = self.sess.url(&format!(
                "/v2/{}/blobs/uploads/?mount={}&from={from}",
                self.path,
                d.to_string().replace(':', "%3A")
            ));
            let mut scopes = self.scopes.clone();
            scopes.push(format!("repository:{from}:pull"));
            let resp = self
                .sess
                .send(Method::POST, &url, &scopes, |r| {
                    r.header(reqwest::header::CONTENT_LENGTH, 0)
                })
                .await?;
            if resp.status() == StatusCode::CREATED {
                return Ok(Some(from.clone()));
            }
        }
        Ok(None)
    }

    /// Start an upload session; returns the absolute upload URL.
    async fn start_upload(&self) -> Result<String> {
        let url = self.sess.url(&format!("/v2/{}/blobs/uploads/", self.path));
        let resp = self
            .sess
            .send(Method::POST, &url, &self.scopes, |r| {
                r.header(reqwest::header::CONTENT_LENGTH, 0)
            })
            .await?;
        let status = resp.status();
        if status != StatusCode::ACCEPTED {
            return Err(self.status_error(status, &url, resp).await);
        }
        next_location(&resp, &url)
    }

    fn finish_url(loc: &str, d: &Digest) -> String {
        let sep = if loc.contains('?') { '&' } else { '?' };
        format!("{loc}{sep}digest={}", d.to_string().replace(':', "%3A"))
    }

    async fn finish(&self, resp: reqwest::Response, url: &str) -> Result<()> {
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        Err(self.status_error(status, url, resp).await)
    }

    /// Upload a blob file, reporting `Pushing` progress: in one PUT up to
    /// [`CHUNK`], else in PATCH chunks of that size (the OCI chunked
    /// upload; proxies in front of registries often cap one request's
    /// body) closed by an empty PUT.
    async fn upload_file(
        &self,
        path: &Path,
        d: &Digest,
        size: u64,
        id: &str,
        out: &Progress,
    ) -> Result<()> {
        let mut loc = self.start_upload().await?;
        let open = |at: u64| async move {
            let mut f = tokio::fs::File::open(path)
                .await
                .map_err(|e| Error::Internal(format!("open {}: {e}", path.display())))?;
            tokio::io::AsyncSeekExt::seek(&mut f, io::SeekFrom::Start(at))
                .await
                .map_err(|e| Error::Internal(format!("seek {}: {e}", path.display())))?;
            Ok::<_, Error>(f)
        };
        if size <= CHUNK {
            let file = open(0).await?;
            let url = Self::finish_url(&loc, d);
            let body = progress_body(file, 0, size, size, id, out);
            let resp = self
                .sess
                .send(Method::PUT, &url, &self.scopes, |r| {
                    r.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_LENGTH, size)
                        .body(body)
                })
                .await?;
            return self.finish(resp, &url).await;
        }
        let mut start = 0u64;
        while start < size {
            let len = CHUNK.min(size - start);
            let part = tokio::io::AsyncReadExt::take(open(start).await?, len);
            let body = progress_body(part, start, len, size, id, out);
            let url = loc.clone();
            let resp = self
                .sess
                .send(Method::PATCH, &url, &self.scopes, |r| {
                    r.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_LENGTH, len)
                        .header(
                            reqwest::header::CONTENT_RANGE,
                            format!("{start}-{}", start + len - 1),
                        )
                        .body(body)
                })
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                let status = resp.status();
                return Err(self.status_error(status, &url, resp).await);
            }
            loc = next_location(&resp, &url)?;
            start += len;
        }
        let url = Self::finish_url(&loc, d);
        let resp = self
            .sess
            .send(Method::PUT, &url, &self.scopes, |r| {
                r.header(reqwest::header::CONTENT_LENGTH, 0)
            })
            .await?;
        self.finish(resp, &url).await
    }

    /// Gets one layer onto the registry: nothing to send when it is there
    /// already or can be mounted, else the stored compressed blob, else its
    /// gzip made while it goes out.
    async fn push_layer(
        &self,
        store: &Arc<ImageStore>,
        layer: &Layer,
        dir: &Path,
        id: &str,
        out: &Progress,
    ) -> Result<Prepared> {
        let ready = {
            let (st, layer, dir) = (store.clone(), layer.clone(), dir.to_owned());
            blocking(move || ready_blob(&st, &layer, &dir)).await?
        };
        if let Some(prepared) = ready {
            match self.place_known(dir, &prepared.digest).await? {
                Some(Placed::Exists) => {
                    out.layer(id, "Layer already exists").await;
                    return Ok(prepared);
                }
                Some(Placed::Mounted(from)) => {
                    out.layer(id, &format!("Mounted from {from}")).await;
                    return Ok(prepared);
                }
                None => {}
            }
            if let Some(path) = &prepared.path {
                self.upload_file(path, &prepared.digest, prepared.size, id, out)
                    .await?;
                out.layer(id, "Pushed").await;
                return Ok(prepared);
            }
        }
        // Not compressed yet, or its gzip is not on this registry: compressed
        // while it goes out, so its digest is known only at the end and
        // there is nothing to check first.
        let prepared = self.upload_gzipped(store, layer, dir, id, out).await?;
        out.layer(id, "Pushed").await;
        Ok(prepared)
    }

    /// Upload the deterministic gzip of a layer stored uncompressed while
    /// it is being made: one streamed PATCH, then the PUT with the digest
    /// the compression computed. `Pushing` counts the layer's tar bytes
    /// read, of its tar size, as dockerd's compressing push does.
    async fn upload_gzipped(
        &self,
        store: &Arc<ImageStore>,
        layer: &Layer,
        dir: &Path,
        id: &str,
        out: &Progress,
    ) -> Result<Prepared> {
        let loc = self.start_upload().await?;
        let total = match layer.record.tar_size {
            Some(n) => n,
            None => {
                let (st, b) = (store.clone(), layer.record.blob.clone());
                blocking(move || Ok(st.content().size(&b)?)).await?
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(8);
        let read = Arc::new(AtomicU64::new(0));
        let job = {
            let (st, layer, dir, read) =
                (store.clone(), layer.clone(), dir.to_owned(), read.clone());
            tokio::task::spawn_blocking(move || compress::gzip_layer(&st, &layer, &dir, tx, read))
        };
        let body = {
            let (out, id) = (out.clone(), id.to_owned());
            let mut reported = 0u64;
            let stream = tokio_stream_of(rx).then(move |piece| {
                let (out, id) = (out.clone(), id.clone());
                if let Ok(p) = &piece {
                    crate::stats::pushed(p.len());
                }
                let now = read.load(Ordering::Relaxed);
                let report = now - reported >= 512 * 1024 || (now == total && reported != now);
                if report {
                    reported = now;
                }
                async move {
                    if report {
                        out.bar(&id, "Pushing", now, total).await;
                    }
                    piece
                }
            });
            reqwest::Body::wrap_stream(stream)
        };
        let sent = self
            .sess
            .send(Method::PATCH, &loc, &self.scopes, |r| {
                r.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body)
            })
            .await;
        // The compression's own error says more than the broken request.
        let made = job
            .await
            .map_err(|e| Error::Internal(format!("compress task: {e}")))?;
        let resp = sent?;
        let (digest, size) = made?;
        if resp.status() != StatusCode::ACCEPTED {
            let status = resp.status();
            return Err(self.status_error(status, &loc, resp).await);
        }
        let loc = next_location(&resp, &loc)?;
        let url = Self::finish_url(&loc, &digest);
        let resp = self
            .sess
            .send(Method::PUT, &url, &self.scopes, |r| {
                r.header(reqwest::header::CONTENT_LENGTH, 0)
            })
            .await?;
        self.finish(resp, &url).await?;
        Ok(Prepared {
            digest,
            size,
            kind: Kind::Gzip,
            path: None,
        })
    }

    async fn upload_bytes(&self, data: Vec<u8>, d: &Digest) -> Result<()> {
        let loc = self.start_upload().await?;
        let url = Self::finish_url(&loc, d);
        let resp = self
            .sess
            .send(Method::PUT, &url, &self.scopes, |r| {
                r.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(data)
            })
            .await?;
        self.finish(resp, &url).await
    }

    async fn put_manifest(&self, tag: &str, media_type: &str, bytes: Vec<u8>) -> Result<()> {
        let url = self.sess.url(&format!("/v2/{}/manifests/{tag}", self.path));
        let resp = self
            .sess
            .send(Method::PUT, &url, &self.scopes, |r| {
                r.header(reqwest::header::CONTENT_TYPE, media_type)
                    .body(bytes)
            })
            .await?;
        self.finish(resp, &url).await
    }
}

/// Largest blob sent in one request; larger ones go in chunks of this size.
const CHUNK: u64 = 16 << 20;

/// Where an upload session continues: the answer's `Location`, resolved
/// against the request URL.
fn next_location(resp: &reqwest::Response, url: &str) -> Result<String> {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Upstream(format!("{url}: upload session without a Location")))?;
    resp.url()
        .join(loc)
        .map(|u| u.to_string())
        .map_err(|e| Error::Upstream(format!("{url}: bad upload Location {loc:?}: {e}")))
}

/// A request body streaming `len` bytes of `reader`, reporting `Pushing`
/// progress of the whole blob (`offset` bytes of it already sent).
fn progress_body<R>(
    reader: R,
    offset: u64,
    len: u64,
    size: u64,
    id: &str,
    out: &Progress,
) -> reqwest::Body
where
    R: tokio::io::AsyncRead + Send + 'static,
{
    let (out, id) = (out.clone(), id.to_owned());
    let mut sent = offset;
    let mut reported = offset;
    let end = offset + len;
    let stream =
        tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024).then(move |chunk| {
            let (out, id) = (out.clone(), id.clone());
            if let Ok(c) = &chunk {
                sent += c.len() as u64;
                crate::stats::pushed(c.len());
            }
            let report = sent - reported >= 512 * 1024 || sent == end;
            if report {
                reported = sent;
            }
            let now = sent;
            async move {
                if report {
                    out.bar(&id, "Pushing", now, size).await;
                }
                chunk
            }
        });
    reqwest::Body::wrap_stream(stream)
}

/// The pieces received on `rx`, as a stream.
fn tokio_stream_of<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}
