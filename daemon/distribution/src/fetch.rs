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

    /// A small blob (image config) read whole, size and digest verified.
    pub async fn small_blob(&self, desc: &Descriptor, max: usize) -> Result<Vec<u8>> {
        let digest = desc.digest()?;
        let size = desc.size()?;
        if size > max as u64 {
            return Err(Error::Upstream(format!(
                "blob {digest} is too large ({size} bytes)"
            )));
        }
        let (resp, _) = self.blob_from(&digest, 0, size).await?;
        let bytes = read_bounded(resp, size as usize).await?;
        if bytes.len() as u64 != size || Digest::of(&bytes) != digest {
            return Err(Error::Upstream(format!(
                "failed to verify content of blob {digest}"
            )));
        }
        Ok(bytes)
    }

    /// Download a layer blob while unpacking it into a staged layer, in up
    /// to `attempts` tries; the blob is kept in the content store. Size, blob digest and diff ID are
    /// verified before the staged layer is returned.
    pub async fn layer(
        &self,
        store: &Arc<ImageStore>,
        desc: &Descriptor,
        diff_id: &Digest,
        id: &str,
        attempts: usize,
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
        let (tx, rx) = mpsc::channel::<Piece>(32);
        let st = store.clone();
        let (d, want) = (digest.clone(), diff_id.clone());
        let job = tokio::task::spawn_blocking(move || unpack_stream(&st, rx, &d, &want));
        let net = self.download(&digest, size, id, attempts, &tx, out).await;
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

    /// Send the blob's bytes to the unpacker, up to `attempts` tries. A
    /// retry asks for the rest only (`Range`), so the unpacker sees one
    /// uninterrupted stream; a registry that ignores the range resends it
    /// all and the part already sent is skipped.
    async fn download(
        &self,
        digest: &Digest,
        size: u64,
        id: &str,
        attempts: usize,
        tx: &mpsc::Sender<Piece>,
        out: &Progress,
    ) -> Result<()> {
        let mut got: u64 = 0;
        let mut attempt = 1;
        loop {
            let broken = match self.blob_from(digest, got, size).await {
                Ok((resp, skip)) => match self
                    .relay(resp, skip, digest, size, &mut got, id, tx, out)
                    .await
                {
                    Relayed::Done => return Ok(()),
                    Relayed::Final(e) => return Err(e),
                    Relayed::Broken(e) => e,
                },
                Err(e) if retryable(&e) => e,
                Err(e) => return Err(e),
            };
            if attempt >= attempts.max(1) {
                return Err(broken);
            }
            tracing::info!(%digest, attempt, error = %broken, "layer download failed, retrying");
            // dockerd's back-off: 5 s more before each new try, counted down.
            let mut left = attempt * 5;
            while left > 0 {
                let unit = if left == 1 { "second" } else { "seconds" };
                out.layer(id, &format!("Retrying in {left} {unit}")).await;
                if out.is_closed() {
                    return Err(Error::Upstream(
                        "pull cancelled: client disconnected".into(),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                left -= 1;
            }
            attempt += 1;
        }
    }

    /// GET the blob from byte `from` on; also how many leading bytes of
    /// the answer to skip (all of `from` when the range was ignored).
    async fn blob_from(
        &self,
        digest: &Digest,
        from: u64,
        size: u64,
    ) -> Result<(reqwest::Response, u64)> {
        let url = self.sess.url(&format!("/v2/{}/blobs/{digest}", self.path));
        let resp = self
            .sess
            .send(Method::GET, &url, &self.scopes, |r| {
                if from > 0 {
                    r.header(reqwest::header::RANGE, format!("bytes={from}-"))
                } else {
                    r
                }
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(self.status_error(status, &url, resp).await);
        }
        let partial = status == StatusCode::PARTIAL_CONTENT;
        let expected = if partial { size - from } else { size };
        if let Some(len) = resp.content_length() {
            if len != expected {
                // Not worth another try: the manifest and the blob disagree.
                return Err(Error::Invalid(format!(
                    "error pulling layer {digest}: the registry sent {len} bytes, the manifest says {size}"
                )));
            }
        }
        Ok((resp, if partial { 0 } else { from }))
    }

    /// Stream one answer's body to the unpacker, counting into `got`.
    #[allow(clippy::too_many_arguments)]
    async fn relay(
        &self,
        resp: reqwest::Response,
        mut skip: u64,
        digest: &Digest,
        size: u64,
        got: &mut u64,
        id: &str,
        tx: &mpsc::Sender<Piece>,
        out: &Progress,
    ) -> Relayed {
        let url = resp.url().to_string();
        let mut stream = resp.bytes_stream();
        let mut reported = *got;
        loop {
            match stream.next().await {
                None if *got == size => return Relayed::Done,
                None => {
                    return Relayed::Broken(Error::Upstream(format!(
                        "error pulling layer {digest}: unexpected EOF after {got} of {size} bytes"
                    )))
                }
                Some(Err(e)) => {
                    return Relayed::Broken(Error::Upstream(format!(
                        "error pulling layer {digest}: {}",
                        transport("GET", &url, &e)
                    )))
                }
                Some(Ok(mut chunk)) => {
                    if skip > 0 {
                        let n = skip.min(chunk.len() as u64);
                        skip -= n;
                        chunk = chunk.slice(n as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    *got += chunk.len() as u64;
                    crate::stats::pulled(chunk.len());
                    if *got > size {
                        return Relayed::Final(Error::Upstream(format!(
                            "error pulling layer {digest}: more data than the {size} bytes the manifest says"
                        )));
                    }
                    if tx.send(Piece::Data(chunk)).await.is_err() {
                        // The unpacker stopped; its error says why.
                        return Relayed::Done;
                    }
                    if *got - reported >= 512 * 1024 || *got == size {
                        reported = *got;
                        out.bar(id, "Downloading", *got, size).await;
                    }
                    if out.is_closed() {
                        return Relayed::Final(Error::Upstream(
                            "pull cancelled: client disconnected".into(),
                        ));
                    }
                }
            }
        }
    }
}

/// How one answer's body ended.
enum Relayed {
    Done,
    /// The connection broke: another try may succeed.
    Broken(Error),
    Final(Error),
}

/// Errors worth another try: the registry was unreachable or failed (5xx);
/// not a refusal or a missing blob.
fn retryable(e: &Error) -> bool {
    matches!(e, Error::Upstream(_))
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
