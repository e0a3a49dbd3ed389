//! Content store: immutable blobs addressed by their sha256 digest, under
//! `<root>/blobs/sha256/<hex>`. Writers stream into a temp file, the digest
//! is verified, the file fsynced and renamed into place, so a blob that
//! exists is always complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

pub struct ContentStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

pub(crate) fn unique_suffix() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl ContentStore {
    /// `root` is the store's own directory; `tmp` must be on the same
    /// filesystem (renames move finished blobs into place).
    pub fn open(root: &Path, tmp: &Path) -> Result<Self> {
        let blobs = root.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).ctx(|| format!("create {}", blobs.display()))?;
        fs::create_dir_all(tmp).ctx(|| format!("create {}", tmp.display()))?;
        Ok(ContentStore {
            blobs,
            tmp: tmp.to_owned(),
        })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(format!("blob {digest} not found"))
            } else {
                Error::Io {
                    context: format!("open blob {}", p.display()),
                    source: e,
                }
            }
        })
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .ctx(|| format!("read blob {digest}"))?;
        Ok(data)
    }

    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let p = self.path(digest);
        Ok(fs::metadata(&p)
            .ctx(|| format!("stat {}", p.display()))?
            .len())
    }

    /// Store `data`, returning its digest.
    pub fn put(&self, data: &[u8]) -> Result<Digest> {
        let mut w = self.writer()?;
        w.write_all(data).ctx(|| "write blob".to_owned())?;
        w.commit(None)
    }

    /// Start a streaming write; call `commit` to verify and publish it.
    pub fn writer(&self) -> Result<BlobWriter<'_>> {
        let path = self.tmp.join(format!("blob-{}", unique_suffix()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .ctx(|| format!("create {}", path.display()))?;
        Ok(BlobWriter {
            store: self,
            inner: Some(HashingWriter::new(io::BufWriter::with_capacity(
                1 << 20,
                file,
            ))),
            path,
        })
    }

    /// Move an already written file into the store under its digest (which
    /// the caller computed while writing it). The file is fsynced first
    /// unless the caller already made it durable (`synced`).
    pub fn adopt(&self, file_path: &Path, digest: &Digest, synced: bool) -> Result<()> {
        let target = self.path(digest);
        if target.exists() {
            let _ = fs::remove_file(file_path);
            return Ok(());
        }
        if !synced {
            File::open(file_path)
                .and_then(|f| f.sync_all())
                .ctx(|| format!("fsync {}", file_path.display()))?;
        }
        fs::rename(file_path, &target).ctx(|| format!("rename into {}", target.display()))?;
        sync_dir(&self.blobs)
    }

    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                context: format!("remove {}", p.display()),
                source: e,
            }),
        }
    }

    /// Every blob digest in the store.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).ctx(|| format!("list {}", self.blobs.display()))? {
            let entry = entry.ctx(|| format!("list {}", self.blobs.display()))?;
            if let Some(name) = entry.file_name().to_str() {
                if let Ok(d) = Digest::from_hex(name) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .ctx(|| format!("fsync {}", dir.display()))
}

pub struct BlobWriter<'a> {
    store: &'a ContentStore,
    inner: Option<HashingWriter<io::BufWriter<File>>>,
    path: PathBuf,
}

impl BlobWriter<'_> {
    /// Verify against `expected` (when given), fsync and publish the blob.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest> {
        let Some(inner) = self.inner.take() else {
            return Err(Error::invalid("blob writer already finished"));
        };
        let (buf, digest, _len) = inner.finish();
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("flush {}", self.path.display()))?;
        if let Some(exp) = expected {
            if exp != &digest {
                return Err(Error::DigestMismatch {
                    what: "blob".into(),
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let target = self.store.path(&digest);
        if !target.exists() {
            file.sync_all()
                .ctx(|| format!("fsync {}", self.path.display()))?;
            fs::rename(&self.path, &target).ctx(|| format!("rename into {}", target.display()))?;
            sync_dir(&self.store.blobs)?;
        }
        Ok(digest)
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // Either committed (renamed away) or abandoned: no temp file stays.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_verify() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path(), &dir.path().join("tmp")).unwrap();
        let d = cs.put(b"abc").unwrap();
        assert_eq!(d, Digest::of(b"abc"));
        assert_eq!(cs.read(&d).unwrap(), b"abc");
        assert_eq!(cs.list().unwrap(), vec![d.clone()]);

        let mut w = cs.writer().unwrap();
        w.write_all(b"xyz").unwrap();
        let err = w.commit(Some(&d)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }));
        assert!(!cs.exists(&Digest::of(b"xyz")));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        cs.delete(&d).unwrap();
        assert!(!cs.exists(&d));
    }
}
