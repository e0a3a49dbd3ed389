//! The build context: the request body (a tar, plain or compressed) is
//! kept in memory when small and written to a file as it arrives when
//! not (memory stays bounded), then extracted with the same in-root
//! extraction as `docker cp` into a private directory that is removed
//! with the build: for a small plain tar one on a tmpfs ([`MemoryDirs`]),
//! else one on disk.

use std::path::{Path, PathBuf};

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::ignore::Ignore;
use super::BuildError;
use crate::containers::archive::{self, ExtractOptions, FsView, ViewMount};

/// A build's private directories: the extracted context, and scratch
/// space for its steps (on disk, made when a step first needs it).
/// Removed on drop.
pub struct BuildContext {
    pub dir: PathBuf,
    /// `dir/ctx`, or for a small plain context a directory of
    /// [`MemoryDirs`].
    ctx: PathBuf,
}

impl BuildContext {
    fn new(tmp: &Path) -> BuildContext {
        let dir = tmp.join(hex::encode(rand::random::<[u8; 8]>()));
        BuildContext {
            ctx: dir.join("ctx"),
            dir,
        }
    }

    pub fn ctx(&self) -> PathBuf {
        self.ctx.clone()
    }

    /// The scratch directory, made if it is not there yet.
    pub fn scratch(&self) -> Result<PathBuf, BuildError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| BuildError::Internal(format!("creating the build directory: {e}")))?;
        Ok(self.dir.clone())
    }

    pub fn view(&self) -> Result<FsView, BuildError> {
        FsView::new(vec![ViewMount {
            destination: "/".into(),
            source: self.ctx(),
            read_only: true,
        }])
        .map_err(|e| BuildError::Internal(e.to_string()))
    }

    /// `.dockerignore` of the context, if any.
    pub fn ignore(&self) -> Ignore {
        match read_small(&self.view(), ".dockerignore") {
            Ok(Some(text)) => Ignore::parse(&text),
            _ => Ignore::default(),
        }
    }

    /// The Dockerfile at `name` in the context.
    pub fn dockerfile(&self, name: &str) -> Result<String, BuildError> {
        match read_small(&self.view(), name)? {
            Some(text) => Ok(text),
            None => Err(BuildError::Missing(format!(
                "Cannot locate specified Dockerfile: {name}"
            ))),
        }
    }
}

impl Drop for BuildContext {
    fn drop(&mut self) {
        if !self.ctx.starts_with(&self.dir) {
            remove_dir(&self.ctx);
        }
        // Step roots are mounted in step directories next to `ctx`: a
        // build that made none (a fully cached one) has nothing to unmount.
        let steps = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd.flatten().any(|e| e.file_name() != "ctx"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => true,
        };
        if steps {
            super::stepfs::unmount_below(&self.dir);
        }
        remove_dir(&self.dir);
    }
}

fn remove_dir(dir: &Path) {
    if let Err(e) = berth_common::tree::remove_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "removing a build directory");
    }
}

/// Where small plain contexts are extracted: directories on the tmpfs of
/// `/dev/shm`, where making a file costs microseconds, not a wait for the
/// journal of a busy disk (a cached rebuild's largest cost). Their names
/// start with a digest of the data root, so the daemon's next start
/// removes what a crash left.
pub struct MemoryDirs {
    prefix: PathBuf,
}

const SHM: &str = "/dev/shm";
const TMPFS_MAGIC: i64 = 0x0102_1994;

impl MemoryDirs {
    /// `None` when `/dev/shm` is not a tmpfs.
    pub fn open(data_root: &Path) -> Option<MemoryDirs> {
        use sha2::Digest as _;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let shm = std::ffi::CString::new(SHM).ok()?;
        // SAFETY: statfs on a NUL-terminated path into a zeroed struct.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(shm.as_ptr(), &mut st) } != 0 || st.f_type as i64 != TMPFS_MAGIC {
            return None;
        }
        let hash = sha2::Sha256::digest(data_root.as_os_str().as_bytes());
        let name = format!("berthd-build-{}-", hex::encode(&hash[..8]));
        let euid = unsafe { libc::geteuid() };
        for e in std::fs::read_dir(SHM).ok()?.flatten() {
            let ours = e.file_name().as_bytes().starts_with(name.as_bytes())
                && e.path()
                    .symlink_metadata()
                    .is_ok_and(|m| m.is_dir() && m.uid() == euid);
            if ours {
                remove_dir(&e.path());
            }
        }
        Some(MemoryDirs {
            prefix: Path::new(SHM).join(name),
        })
    }

    /// A new private directory; `None` if it cannot be made.
    fn create(&self) -> Option<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        let mut path = self.prefix.clone().into_os_string();
        path.push(hex::encode(rand::random::<[u8; 8]>()));
        let path = PathBuf::from(path);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .ok()
            .map(|()| path)
    }
}

/// A regular file of the context, read whole (bounded), in-root.
fn read_small(view: &Result<FsView, BuildError>, name: &str) -> Result<Option<String>, BuildError> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let view = view
        .as_ref()
        .map_err(|e| BuildError::Internal(e.to_string()))?;
    let Ok(parts) = view.resolve(name.as_bytes(), true) else {
        return Ok(None);
    };
    let Ok(fd) = view.open(&parts, libc::O_PATH) else {
        return Ok(None);
    };
    let st = archive::sys::fstat(fd.as_fd()).map_err(|e| BuildError::Internal(e.to_string()))?;
    if archive::sys::file_type(&st) != libc::S_IFREG {
        return Ok(None);
    }
    if st.st_size as u64 > super::parser::MAX_DOCKERFILE {
        return Err(BuildError::Invalid(format!("{name} is too large")));
    }
    let fd = archive::sys::reopen(fd.as_fd(), libc::O_RDONLY)
        .map_err(|e| BuildError::Internal(e.to_string()))?;
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(super::parser::MAX_DOCKERFILE)
        .read_to_string(&mut text)
        .map_err(|e| BuildError::Invalid(format!("reading {name}: {e}")))?;
    Ok(Some(text))
}

/// A new build directory under `tmp`, with an empty `ctx/`.
pub fn new_build_dir(tmp: &Path) -> Result<BuildContext, BuildError> {
    let bc = BuildContext::new(tmp);
    std::fs::create_dir_all(&bc.ctx)
        .map_err(|e| BuildError::Internal(format!("creating the build directory: {e}")))?;
    Ok(bc)
}

/// Contexts up to this size are received in memory (a cached rebuild of a
/// small app then touches the disk only to extract it); larger ones spill
/// to a file as they arrive, so memory stays bounded whatever the size.
const MEMORY_SPOOL: usize = 4 << 20;
/// Writes to the spill file go out in chunks this large.
const SPILL_CHUNK: usize = 1 << 20;

/// A received context archive: in memory, or in a file of the build
/// directory.
pub enum Spool {
    Memory(bytes::Bytes),
    File(PathBuf),
}

/// Receives the context tar of a request into a new build directory
/// under `tmp` (a small plain tar into one of `memory`, if given).
pub async fn receive_context(
    body: Body,
    tmp: &Path,
    memory: Option<&MemoryDirs>,
) -> Result<BuildContext, BuildError> {
    let mut bc = BuildContext::new(tmp);
    let spill_err = |e: std::io::Error| BuildError::Internal(format!("spooling the context: {e}"));
    let mut buf = Vec::new();
    let mut file: Option<(PathBuf, tokio::io::BufWriter<tokio::fs::File>)> = None;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| BuildError::Invalid(format!("reading the build context: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match &mut file {
            Some((_, w)) => w.write_all(&data).await.map_err(spill_err)?,
            None if buf.len() + data.len() <= MEMORY_SPOOL => buf.extend_from_slice(&data),
            None => {
                let path = bc.scratch()?.join("context.tar");
                let f = tokio::fs::File::create(&path).await.map_err(spill_err)?;
                let mut w = tokio::io::BufWriter::with_capacity(SPILL_CHUNK, f);
                w.write_all(&buf).await.map_err(spill_err)?;
                w.write_all(&data).await.map_err(spill_err)?;
                buf = Vec::new();
                file = Some((path, w));
            }
        }
    }
    let spool = match file {
        Some((path, mut w)) => {
            w.flush().await.map_err(spill_err)?;
            drop(w);
            Spool::File(path)
        }
        None => Spool::Memory(bytes::Bytes::from(buf)),
    };
    if let Spool::Memory(data) = &spool {
        // Uncompressed, so what it extracts to is no larger than itself.
        let plain = !is_compressed(data);
        if let Some(dir) = memory.filter(|_| plain).and_then(MemoryDirs::create) {
            match extract_to(dir.clone(), Spool::Memory(data.clone())).await {
                Ok(()) => {
                    bc.ctx = dir;
                    return Ok(bc);
                }
                Err(e) => {
                    // Full, or a bad archive: the disk has the last word.
                    tracing::debug!(error = %e, "extracting the context in memory");
                    remove_dir(&dir);
                }
            }
        }
    }
    extract_spool(&bc, spool).await?;
    Ok(bc)
}

fn is_compressed(head: &[u8]) -> bool {
    head.starts_with(b"BZh")
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00])
        || head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Extracts a spooled context archive (any compression) into the
/// context directory, then removes a spool file. An empty archive is an
/// empty context.
pub async fn extract_spool(bc: &BuildContext, spool: Spool) -> Result<(), BuildError> {
    extract_to(bc.ctx(), spool).await
}

async fn extract_to(ctx: PathBuf, spool: Spool) -> Result<(), BuildError> {
    tokio::task::spawn_blocking(move || -> Result<(), BuildError> {
        let read_err =
            |e: std::io::Error| BuildError::Internal(format!("reading the context: {e}"));
        let (reader, empty, path): (Box<dyn std::io::Read + Send>, bool, Option<PathBuf>) =
            match spool {
                Spool::Memory(data) => {
                    let empty = data.is_empty();
                    (Box::new(std::io::Cursor::new(data)), empty, None)
                }
                Spool::File(path) => {
                    let file = std::fs::File::open(&path).map_err(read_err)?;
                    let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
                    (Box::new(file), empty, Some(path))
                }
            };
        let result = std::fs::create_dir_all(&ctx)
            .map_err(|e| BuildError::Internal(format!("creating the build directory: {e}")))
            .and_then(|()| {
                if empty {
                    Ok(())
                } else {
                    extract_into(ctx, reader)
                }
            });
        if let Some(path) = path {
            let _ = std::fs::remove_file(path);
        }
        result
    })
    .await
    .map_err(|e| BuildError::Internal(format!("context task: {e}")))?
}

fn extract_into(ctx: PathBuf, reader: Box<dyn std::io::Read + Send>) -> Result<(), BuildError> {
    let view = FsView::new(vec![ViewMount {
        destination: "/".into(),
        source: ctx,
        read_only: false,
    }])
    .map_err(|e| BuildError::Internal(e.to_string()))?;
    let root = archive::prepare_extract(&view, "/", false)
        .map_err(|e| BuildError::Internal(e.to_string()))?;
    let reader = decompress(reader)?;
    archive::extract(&view, &root, reader, ExtractOptions::default())
        .map_err(|e| BuildError::Invalid(format!("failed to read the build context: {e}")))
}

/// bzip2 and xz streams are decompressed here; gzip, zstd and plain tars
/// pass through to the archive extraction, which knows them.
fn decompress(file: Box<dyn std::io::Read + Send>) -> Result<Box<dyn std::io::Read>, BuildError> {
    use std::io::{BufRead, BufReader};
    let mut buf = BufReader::with_capacity(64 * 1024, file);
    let head = buf
        .fill_buf()
        .map_err(|e| BuildError::Internal(format!("reading the context: {e}")))?;
    let plain: Box<dyn std::io::Read> = if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(buf))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(buf))
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(buf)
                .map_err(|e| BuildError::Invalid(format!("reading the context: {e}")))?,
        )
    } else {
        Box::new(buf)
    };
    Ok(Box::new(PadToBlocks {
        inner: plain,
        total: 0,
        pad: None,
    }))
}

/// The docker CLI's `-f -` context ends right after the last file's data,
/// without the block padding and end-of-archive blocks: supply them.
struct PadToBlocks {
    inner: Box<dyn std::io::Read>,
    total: u64,
    /// Zero bytes still to give once the stream ended.
    pad: Option<u64>,
}

impl std::io::Read for PadToBlocks {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pad.is_none() {
            let n = self.inner.read(out)?;
            if n > 0 {
                self.total += n as u64;
                return Ok(n);
            }
            let partial = self.total % 512;
            let align = if partial == 0 { 0 } else { 512 - partial };
            self.pad = Some(align + 1024);
        }
        let left = self.pad.unwrap_or(0);
        let n = (left.min(out.len() as u64)) as usize;
        out[..n].fill(0);
        self.pad = Some(left - n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    async fn receive(data: Vec<u8>, tmp: &Path, mem: Option<&MemoryDirs>) -> BuildContext {
        receive_context(Body::from(data), tmp, mem).await.unwrap()
    }

    #[tokio::test]
    async fn small_plain_contexts_in_memory_others_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mem = MemoryDirs::open(root.path());
        let dockerfile: &[u8] = b"FROM scratch\n";
        let small = tar_of(&[("Dockerfile", dockerfile)]);

        let bc = receive(small.clone(), &tmp, mem.as_ref()).await;
        assert_eq!(bc.dockerfile("Dockerfile").unwrap(), "FROM scratch\n");
        if mem.is_some() {
            assert!(bc.ctx().starts_with(SHM), "{}", bc.ctx().display());
            assert!(
                !bc.dir.exists(),
                "no disk directory before a step needs one"
            );
        }
        let ctx = bc.ctx();
        drop(bc);
        assert!(!ctx.exists());

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &small).unwrap();
        let bc = receive(gz.finish().unwrap(), &tmp, mem.as_ref()).await;
        assert!(bc.ctx().starts_with(&tmp), "compressed: on disk");
        assert_eq!(bc.dockerfile("Dockerfile").unwrap(), "FROM scratch\n");
        drop(bc);

        let big_data = vec![7u8; MEMORY_SPOOL + 1];
        let big = tar_of(&[("Dockerfile", dockerfile), ("big", &big_data)]);
        let bc = receive(big, &tmp, mem.as_ref()).await;
        assert!(bc.ctx().starts_with(&tmp), "large: spilled to disk");
        let len = std::fs::metadata(bc.ctx().join("big")).unwrap().len();
        assert_eq!(len, big_data.len() as u64);
        assert!(!bc.dir.join("context.tar").exists(), "the spool is removed");
        drop(bc);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);
    }
}
