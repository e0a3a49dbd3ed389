//! The deterministic gzip of a layer stored uncompressed, made while it
//! is uploaded: a blocking producer compresses the layer once, keeping the
//! result in the content store and handing the same bytes to the upload
//! as they come out. The diff ID → blob mapping is remembered on disk so
//! later pushes (also after a restart) reuse the blob instead of
//! compressing again.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use berth_images::layer::Layer;
use berth_images::{Digest, ImageStore};

use crate::error::{Error, Result};

/// Bytes handed to the upload at a time.
const PIECE: usize = 256 * 1024;

/// The file remembering the gzip blob of the layer with this diff ID.
fn map_path(dir: &Path, diff_id: &Digest) -> PathBuf {
    dir.join("gzip").join(diff_id.hex())
}

/// The gzip blob made earlier for this diff ID and its size. The blob
/// itself may be gone (a restart's clean-up removes blobs no layer names),
/// but its digest still lets a push find it on the registry.
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
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.send_buf()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes to both the stored blob and the upload.
struct Both<'a, A, B> {
    blob: &'a mut A,
    upload: &'a mut B,
    len: u64,
}

impl<A: Write, B: Write> Write for Both<'_, A, B> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.blob.write_all(data)?;
        self.upload.write_all(data)?;
        self.len += data.len() as u64;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.blob.flush()
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

/// Compress `layer` with a fixed gzip header (mtime 0, no name), so every
/// push of it yields the same digest, sending the output on `tx` and
/// storing it. Returns the blob's digest and size. On failure `tx` gets
/// the error, so the upload's body fails instead of looking complete.
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
    let content = store.content();
    let src = content.open_blob(&layer.record.blob)?;
    let mut src = io::BufReader::with_capacity(1 << 20, Counting { inner: src, read });
    let mut blob = content.writer()?;
    let len = {
        let mut both = Both {
            blob: &mut blob,
            upload: &mut *upload,
            len: 0,
        };
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(&mut both, flate2::Compression::fast());
        io::copy(&mut src, &mut gz).map_err(|e| Error::Internal(format!("compress layer: {e}")))?;
        let both = gz
            .finish()
            .map_err(|e| Error::Internal(format!("compress layer: {e}")))?;
        both.len
    };
    upload
        .close()
        .map_err(|e| Error::Internal(format!("compress layer: {e}")))?;
    // The upload's last request goes out while the blob is made durable.
    let d = blob.commit(None)?;
    remember(dir, &layer.record.diff_id, &d, len)?;
    Ok((d, len))
}
