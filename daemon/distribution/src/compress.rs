//! The deterministic gzip of a layer stored uncompressed, made while it
//! is uploaded: a blocking producer compresses the layer, handing the
//! bytes to the upload as they come out and hashing them. The diff ID →
//! blob digest mapping is remembered on disk so later pushes (also after
//! a restart) find the blob on the registry without compressing again.
//! The gzip itself is not kept: the daemon's start-up clean-up would
//! remove it anyway (no layer names it), and making it again costs about
//! what writing and re-reading it would.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use berth_images::digest::Hasher;
use berth_images::layer::Layer;
use berth_images::{Digest, ImageStore};

use crate::error::{Error, Result};

/// Bytes handed to the upload at a time.
const PIECE: usize = 256 * 1024;

/// The file remembering the gzip blob of the layer with this diff ID.
fn map_path(dir: &Path, diff_id: &Digest) -> PathBuf {
    dir.join("gzip").join(diff_id.hex())
}

/// The digest and size of the gzip made earlier for this diff ID: a push
/// finds it on the registry with them.
pub(crate) fn known_gzip(dir: &Path, diff_id: &Digest) -> Option<(Digest, u64)> {
    let s = std::fs::read_to_string(map_path(dir, diff_id)).ok()?;
    let mut parts = s.split_whitespace();
    let d = Digest::parse(parts.next()?).ok()?;
    let size = parts.next()?.parse().ok()?;
    Some((d, size))
}

fn remember(dir: &Path, diff_id: &Digest, blob: &Digest, size: u64) -> Result<()> {
    let map = map_path(dir, diff_id);
    if let Some(parent) = map.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Internal(format!("create {}: {e}", parent.display())))?;
    }
    let tmp = map.with_extension("tmp");
    std::fs::write(&tmp, format!("{blob} {size}"))
        .and_then(|()| std::fs::rename(&tmp, &map))
        .map_err(|e| Error::Internal(format!("write {}: {e}", map.display())))
}

/// Sends what is written to the upload in pieces of [`PIECE`] bytes.
struct ToUpload {
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    buf: Vec<u8>,
}

impl ToUpload {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        match &self.tx {
            Some(tx) => tx
                .blocking_send(Ok(piece))
                .map_err(|_| io::Error::other("upload stopped")),
            None => Err(io::Error::other("upload already ended")),
        }
    }

    /// Send the rest and end the upload's body.
    fn close(&mut self) -> io::Result<()> {
        self.send_buf()?;
        self.tx = None;
        Ok(())
    }
}

impl Write for ToUpload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // The compressor writes a whole chunk at once; pieces stay small
        // so the queue to the upload holds little.
        let mut rest = data;
        while !rest.is_empty() {
            let n = rest.len().min(PIECE - self.buf.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            if self.buf.len() >= PIECE {
                self.send_buf()?;
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes and counts what goes to the upload.
struct Hashed<'a, W> {
    upload: &'a mut W,
    hasher: Hasher,
}

impl<W: Write> Write for Hashed<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.upload.write_all(data)?;
        self.hasher.update(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts the uncompressed bytes read, for the `Pushing` progress.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: io::Read> io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Compress `layer` deterministically (see [`crate::gzip`]), so every
/// push of it yields the same digest, sending the output on `tx`. Returns the blob's digest and size. On
/// failure `tx` gets the error, so the upload's body fails instead of looking complete.
pub(crate) fn gzip_layer(
    store: &ImageStore,
    layer: &Layer,
    dir: &Path,
    tx: mpsc::Sender<io::Result<Bytes>>,
    read: Arc<AtomicU64>,
) -> Result<(Digest, u64)> {
    let mut upload = ToUpload {
        tx: Some(tx),
        buf: Vec::with_capacity(PIECE),
    };
    let res = gzip_into(store, layer, dir, &mut upload, read);
    if let (Err(e), Some(tx)) = (&res, upload.tx.take()) {
        let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
    }
    res
}

fn gzip_into(
    store: &ImageStore,
    layer: &Layer,
    dir: &Path,
    upload: &mut ToUpload,
    read: Arc<AtomicU64>,
) -> Result<(Digest, u64)> {
    let src = store.content().open_blob(&layer.record.blob)?;
    let mut src = Counting { inner: src, read };
    let mut hashed = Hashed {
        upload: &mut *upload,
        hasher: Hasher::default(),
    };
    crate::gzip::encode(&mut src, &mut hashed)
        .map_err(|e| Error::Internal(format!("compress layer: {e}")))?;
    let len = hashed.hasher.len();
    let d = hashed.hasher.finish();
    upload
        .close()
        .map_err(|e| Error::Internal(format!("compress layer: {e}")))?;
    remember(dir, &layer.record.diff_id, &d, len)?;
    Ok((d, len))
}
