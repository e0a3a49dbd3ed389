//! The build context: the request body (a tar, plain or compressed) is
//! written to a file as it arrives, never held in memory, then extracted
//! with the same in-root extraction as `docker cp` into a private
//! directory that is removed with the build.

use std::path::{Path, PathBuf};

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::ignore::Ignore;
use super::BuildError;
use crate::containers::archive::{self, ExtractOptions, FsView, ViewMount};

/// A build's private directory: `ctx/` holds the context, the rest is
/// scratch space for its steps. Removed on drop.
pub struct BuildContext {
    pub dir: PathBuf,
}

impl BuildContext {
    pub fn ctx(&self) -> PathBuf {
        self.dir.join("ctx")
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
        super::stepfs::unmount_below(&self.dir);
        if let Err(e) = berth_common::tree::remove_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "removing a build directory");
        }
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

/// A new, empty build directory under `tmp`.
pub fn new_build_dir(tmp: &Path) -> Result<BuildContext, BuildError> {
    let dir = tmp.join(hex::encode(rand::random::<[u8; 8]>()));
    std::fs::create_dir_all(dir.join("ctx"))
        .map_err(|e| BuildError::Internal(format!("creating the build directory: {e}")))?;
    Ok(BuildContext { dir })
}

/// Receives the context tar of a request into a new build directory
/// under `tmp`.
pub async fn receive_context(body: Body, tmp: &Path) -> Result<BuildContext, BuildError> {
    let bc = new_build_dir(tmp)?;
    let spool = bc.dir.join("context.tar");
    let mut file = tokio::fs::File::create(&spool)
        .await
        .map_err(|e| BuildError::Internal(format!("spooling the context: {e}")))?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| BuildError::Invalid(format!("reading the build context: {e}")))?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data)
                .await
                .map_err(|e| BuildError::Internal(format!("spooling the context: {e}")))?;
        }
    }
    file.flush()
        .await
        .map_err(|e| BuildError::Internal(format!("spooling the context: {e}")))?;
    drop(file);
    extract_spool(&bc, &spool).await?;
    Ok(bc)
}

/// Extracts a spooled context archive (any compression) into the
/// context directory, then removes the spool. An empty file is an empty
/// context.
pub async fn extract_spool(bc: &BuildContext, spool: &Path) -> Result<(), BuildError> {
    let ctx = bc.ctx();
    let spool2 = spool.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<(), BuildError> {
        let file = std::fs::File::open(&spool2)
            .map_err(|e| BuildError::Internal(format!("reading the context: {e}")))?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
        if empty {
            return Ok(());
        }
        let view = FsView::new(vec![ViewMount {
            destination: "/".into(),
            source: ctx,
            read_only: false,
        }])
        .map_err(|e| BuildError::Internal(e.to_string()))?;
        let root = archive::prepare_extract(&view, "/", false)
            .map_err(|e| BuildError::Internal(e.to_string()))?;
        let reader = decompress(file)?;
        archive::extract(&view, &root, reader, ExtractOptions::default())
            .map_err(|e| BuildError::Invalid(format!("failed to read the build context: {e}")))
    })
    .await
    .map_err(|e| BuildError::Internal(format!("context task: {e}")))??;
    let _ = std::fs::remove_file(spool);
    Ok(())
}

/// bzip2 and xz streams are decompressed here; gzip, zstd and plain tars
/// pass through to the archive extraction, which knows them.
fn decompress(file: std::fs::File) -> Result<Box<dyn std::io::Read>, BuildError> {
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
