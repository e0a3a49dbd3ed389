//! Fetching from a repository: manifests and small blobs read whole and
//! verified, layers streamed into the unpacker while they download.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use tokio::sync::mpsc;

use berth_images::layer::StagedLayer;
use berth_images::{Digest, ImageStore};

use crate::client::{error_text, read_bounded, status_text, Session};
use crate::error::{transport, Error, Result};
use crate::manifest::{self, Descriptor};
use crate::progress::Progress;

/// A repository on a registry, with the token scopes its operations need.
pub(crate) struct Repo {
    pub sess: Session,
    /// Path inside the registry, e.g. `library/busybox`.
    pub path: String,
    pub scopes: Vec<String>,
}

/// A manifest as received.
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub digest: Digest,
}

impl Repo {
    /// GET a manifest by tag or digest. A digest reference is verified.
    /// `not_found` gives the message for a 404 from the registry's text.
    pub async fn manifest(
        &self,
        reference: &str,
        not_found: impl FnOnce(&str) -> Error,
    ) -> Result<Fetched> {
        let url = self
            .sess
            .url(&format!("/v2/{}/manifests/{reference}", self.path));
        let resp = self
            .sess
            .send(Method::GET, &url, &self.scopes, |r| {
                r.header(reqwest::header::ACCEPT, manifest::ACCEPT)
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Err(not_found(&error_text(resp).await));
        }
        if !status.is_success() {
            return Err(self.status_error(status, &url, resp).await);
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = read_bounded(resp, manifest::MANIFEST_MAX).await?;
        let digest = Digest::of(&bytes);
        if let Ok(want) = Digest::parse(reference) {
            if want != digest {
                return Err(Error::Upstream(format!(
                    "manifest verification failed for digest {want}"
                )));
            }
        }
        Ok(Fetched {
            bytes,
            content_type,
            digest,
        })
    }

    /// An error for an unexpected status, with the registry's own text.
    pub async fn status_error(
        &self,
        status: StatusCode,
        url: &str,
        resp: reqwest::Response,
    ) -> Error {
        let text = error_text(resp).await;
        let msg = if text.is_empty() {
            format!("{url}: {}", status_text(status))
        } else {
            text
        };
        match status {
            StatusCode::UNAUTHORIZED => Error::Unauthorized(msg),
            StatusCode::FORBIDDEN => Error::Forbidden(msg),
            StatusCode::NOT_FOUND => Error::NotFound(msg),
            _ => Error::Upstream(msg),
        }
    }

    async fn get_blob(&self, digest: &Digest) -> Result<reqwest::Response> {
        let url = self.sess.url(&format!("/v2/{}/blobs/{digest}", self.path));
        let resp = self
            .sess
            .send(Method::GET, &url, &self.scopes, |r| r)
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(status, &url, resp).await);
        }
        Ok(resp)
    }

    /// A small blob (image config) read whole, size and digest verified.
    pub async fn small_blob(&self, desc: &Descriptor, max: usize) -> Result<Vec<u8>> {
        let digest = desc.digest()?;
        let size = desc.size()?;
        if size > max as u64 {
            return Err(Error::Upstream(format!(
                "blob {digest} is too large ({size} bytes)"
            )));
        }
        let resp = self.get_blob(&digest).await?;
        let bytes = read_bounded(resp, size as usize).await?;
        if bytes.len() as u64 != size || Digest::of(&bytes) != digest {
            return Err(Error::Upstream(format!(
                "failed to verify content of blob {digest}"
            )));
        }
        Ok(bytes)
    }

    /// Download a layer blob while unpacking it into a staged layer; the
    /// blob is kept in the content store. Size, blob digest and diff ID are
    /// verified before the staged layer is returned.
    pub async fn layer(
        &self,
        store: &Arc<ImageStore>,
        desc: &Descriptor,
        diff_id: &Digest,
        id: &str,
        out: &Progress,
    ) -> Result<StagedLayer> {
        let digest = desc.digest()?;
        let size = desc.size()?;
        if store.content().exists(&digest) {
            // Same blob under another parent: unpack the local copy.
            let st = store.clone();
            let (d, want) = (digest.clone(), diff_id.clone());
            return tokio::task::spawn_blocking(move || -> Result<StagedLayer> {
                let f = st.content().open_blob(&d)?;
                let staged = st
                    .layer_store()
                    .stage(io::BufReader::with_capacity(1 << 20, f), true)?;
                check_diff_id(&staged, &want)?;
                Ok(staged)
            })
            .await
            .map_err(|e| Error::Internal(format!("unpack task: {e}")))?;
        }
        let resp = self.get_blob(&digest).await?;
        if let Some(len) = resp.content_length() {
            if len != size {
                return Err(Error::Upstream(format!(
                    "error pulling layer {digest}: the registry sent {len} bytes, the manifest says {size}"
                )));
            }
        }
        let url = resp.url().to_string();
        let (tx, rx) = mpsc::channel::<Piece>(32);
        let st = store.clone();
        let (d, want) = (digest.clone(), diff_id.clone());
        let job = tokio::task::spawn_blocking(move || unpack_stream(&st, rx, &d, &want));
        let mut stream = resp.bytes_stream();
        let mut got: u64 = 0;
        let mut reported: u64 = 0;
        let net: Result<()> = loop {
            match stream.next().await {
                None if got == size => break Ok(()),
                None => {
                    break Err(Error::Upstream(format!(
                        "error pulling layer {digest}: unexpected EOF after {got} of {size} bytes"
                    )))
                }
                Some(Err(e)) => {
                    break Err(Error::Upstream(format!(
                        "error pulling layer {digest}: {}",
                        transport("GET", &url, &e)
                    )))
                }
                Some(Ok(chunk)) => {
                    got += chunk.len() as u64;
                    if got > size {
                        break Err(Error::Upstream(format!(
                            "error pulling layer {digest}: more data than the {size} bytes the manifest says"
                        )));
                    }
                    if tx.send(Piece::Data(chunk)).await.is_err() {
                        // The unpacker stopped; its error says why.
                        break Ok(());
                    }
                    if got - reported >= 512 * 1024 || got == size {
                        reported = got;
                        out.bar(id, "Downloading", got, size).await;
                    }
                    if out.is_closed() {
                        break Err(Error::Upstream(
                            "pull cancelled: client disconnected".into(),
                        ));
                    }
                }
            }
        };
        let last = match &net {
            Ok(()) => Piece::End,
            Err(e) => Piece::Fail(e.to_string()),
        };
        let _ = tx.send(last).await;
        drop(tx);
        let staged = job
            .await
            .map_err(|e| Error::Internal(format!("unpack task: {e}")))?;
        net?;
        staged
    }
}

fn check_diff_id(staged: &StagedLayer, want: &Digest) -> Result<()> {
    match &staged.diff_id {
        Some(d) if d == want => Ok(()),
        got => Err(Error::Upstream(format!(
            "layer content does not match the image configuration: diff ID {} expected, got {}",
            want,
            got.as_ref().map(|d| d.to_string()).unwrap_or_default()
        ))),
    }
}

enum Piece {
    Data(Bytes),
    End,
    Fail(String),
}

/// A blocking reader of the chunks the download sends.
struct ChanReader {
    rx: mpsc::Receiver<Piece>,
    cur: Bytes,
    done: bool,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(b)) => self.cur = b,
                Some(Piece::End) => self.done = true,
                Some(Piece::Fail(e)) => return Err(io::Error::other(e)),
                None => return Err(io::Error::other("download interrupted")),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Copies what is read into the blob being written.
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

fn unpack_stream(
    store: &ImageStore,
    rx: mpsc::Receiver<Piece>,
    digest: &Digest,
    diff_id: &Digest,
) -> Result<StagedLayer> {
    let mut blob = store.content().writer()?;
    let mut reader = ChanReader {
        rx,
        cur: Bytes::new(),
        done: false,
    };
    let (staged, rest) = {
        let mut tee = Tee {
            inner: &mut reader,
            sink: &mut blob,
        };
        let staged = store.layer_store().stage(&mut tee, true);
        // Trailing bytes after the compressed stream, or the rest of a blob
        // the unpacker gave up on, so its digest tells corruption apart.
        let rest = io::copy(&mut tee, &mut io::sink());
        (staged, rest)
    };
    if let Err(e) = rest {
        return Err(Error::Upstream(format!(
            "error pulling layer {digest}: {e}"
        )));
    }
    match blob.commit(Some(digest)) {
        Ok(_) => {}
        Err(berth_images::Error::DigestMismatch { .. }) => {
            return Err(Error::Upstream(format!(
                "filesystem layer verification failed for digest {digest}"
            )))
        }
        Err(e) => return Err(e.into()),
    }
    let staged = staged?;
    check_diff_id(&staged, diff_id)?;
    Ok(staged)
}
