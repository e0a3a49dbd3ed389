//! `docker cp`: stat, pack and extract paths of a container's file system
//! as the container sees them (root file system plus its mounts), on a
//! running or stopped container, without ever touching the host outside it
//! and without running anything from the container.

pub mod container;
mod pack;
pub mod sys;
mod unpack;
mod view;

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};

use serde::Serialize;

pub use unpack::ExtractOptions;
pub use view::{components as view_components, FsView, ViewMount};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The API turns this into dockerd's "Could not find the file ...".
    #[error("no such file or directory")]
    NotFound,
    #[error("extraction point is not a directory")]
    NotADirectory,
    #[error("{0}")]
    ReadOnly(String),
    #[error("{0}")]
    BadArchive(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl ArchiveError {
    /// `map_err(ArchiveError::io("what we were doing"))`.
    pub fn io(context: &'static str) -> impl FnOnce(io::Error) -> ArchiveError {
        move |source| ArchiveError::Io {
            context: context.to_string(),
            source,
        }
    }
}

/// dockerd's `ContainerPathStat`, sent base64-encoded in the
/// `X-Docker-Container-Path-Stat` header.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// A path as dockerd interprets it: absolute in the container, `..`
/// cleaned lexically, trailing `/` or `/.` meaning "resolve the last
/// component too".
#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestedPath {
    /// Cleaned components.
    parts: Vec<OsString>,
    /// Resolve symlinks in the last component as well.
    follow_final: bool,
    /// Go's `filepath.Base` of the cleaned path (`.` for a trailing `/.`).
    base: String,
}

impl RequestedPath {
    fn parse(path: &str) -> RequestedPath {
        let mut parts: Vec<OsString> = Vec::new();
        for c in view::components(path.as_bytes()) {
            if c == ".." {
                parts.pop();
            } else {
                parts.push(c);
            }
        }
        let trailing_dot = path.ends_with("/.") || path == ".";
        let trailing_slash = path.ends_with('/');
        let base = if trailing_dot {
            ".".to_string()
        } else {
            parts
                .last()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| "/".to_string())
        };
        RequestedPath {
            follow_final: trailing_dot || trailing_slash || parts.is_empty(),
            parts,
            base,
        }
    }

    /// Resolve inside the container: every directory, and the last
    /// component only when the path asked for it.
    fn resolve(&self, view: &FsView) -> Result<Vec<OsString>, ArchiveError> {
        view.resolve(view::join(&self.parts).as_bytes(), self.follow_final)
    }
}

/// Go's `os.FileMode` for a `st_mode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    const MODE_DIR: u32 = 1 << 31;
    const MODE_SYMLINK: u32 = 1 << 27;
    const MODE_DEVICE: u32 = 1 << 26;
    const MODE_NAMED_PIPE: u32 = 1 << 25;
    const MODE_SOCKET: u32 = 1 << 24;
    const MODE_SETUID: u32 = 1 << 23;
    const MODE_SETGID: u32 = 1 << 22;
    const MODE_CHAR_DEVICE: u32 = 1 << 21;
    const MODE_STICKY: u32 = 1 << 20;
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => MODE_DIR,
        libc::S_IFLNK => MODE_SYMLINK,
        libc::S_IFBLK => MODE_DEVICE,
        libc::S_IFCHR => MODE_DEVICE | MODE_CHAR_DEVICE,
        libc::S_IFIFO => MODE_NAMED_PIPE,
        libc::S_IFSOCK => MODE_SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        mode |= MODE_SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        mode |= MODE_SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        mode |= MODE_STICKY;
    }
    mode
}

fn rfc3339(secs: i64, nanos: i64) -> String {
    chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Stat `path` in the container (HEAD archive, and the header of GET).
pub fn stat_path(view: &FsView, path: &str) -> Result<PathStat, ArchiveError> {
    let req = RequestedPath::parse(path);
    let resolved = req.resolve(view)?;
    stat_resolved(view, &req, &resolved)
}

fn stat_resolved(
    view: &FsView,
    req: &RequestedPath,
    resolved: &[OsString],
) -> Result<PathStat, ArchiveError> {
    let st = view
        .lstat(resolved)
        .map_err(ArchiveError::io("stat"))?
        .ok_or(ArchiveError::NotFound)?;
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        view::join(&view.resolve_lenient(view::join(resolved).as_bytes())?)
    } else {
        String::new()
    };
    Ok(PathStat {
        name: req.base.clone(),
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: rfc3339(st.st_mtime, st.st_mtime_nsec),
        link_target,
    })
}

/// Stat `path` and return it with a function that writes it as a tar
/// stream (GET archive). The stat happens first so the API can answer
/// 404 before any byte of the body.
pub fn prepare_archive(
    view: &FsView,
    path: &str,
) -> Result<(PathStat, PreparedArchive), ArchiveError> {
    let req = RequestedPath::parse(path);
    let resolved = req.resolve(view)?;
    let stat = stat_resolved(view, &req, &resolved)?;
    // The root of the container is archived as `.`: tar entries are
    // relative by nature.
    let rebase = if req.base == "/" {
        ".".to_string()
    } else {
        req.base.clone()
    };
    Ok((stat, PreparedArchive { resolved, rebase }))
}

pub struct PreparedArchive {
    resolved: Vec<OsString>,
    rebase: String,
}

impl PreparedArchive {
    pub fn write<W: Write>(&self, view: &FsView, out: W) -> Result<W, ArchiveError> {
        pack::write_tar(view, &self.resolved, &self.rebase, out)
    }
}

/// Check that `path` is a directory that may be written, and return its
/// resolved form (PUT archive, before reading the body).
pub fn prepare_extract(
    view: &FsView,
    path: &str,
    read_only_rootfs: bool,
) -> Result<Vec<OsString>, ArchiveError> {
    let mut req = RequestedPath::parse(path);
    req.follow_final = true;
    let resolved = req.resolve(view)?;
    let st = view
        .lstat(&resolved)
        .map_err(ArchiveError::io("stat"))?
        .ok_or(ArchiveError::NotFound)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(ArchiveError::NotADirectory);
    }
    let loc = view.locate(&resolved);
    let in_volume = view.mount(loc.mount).destination != "/";
    if in_volume && view.is_read_only(&resolved) {
        return Err(ArchiveError::ReadOnly(
            "mounted volume is marked read-only".into(),
        ));
    }
    if !in_volume && read_only_rootfs {
        return Err(ArchiveError::ReadOnly(
            "container rootfs is marked read-only".into(),
        ));
    }
    Ok(resolved)
}

/// Extract a tar stream (plain, gzip or zstd) into the directory
/// `resolved` from [`prepare_extract`].
pub fn extract<R: Read>(
    view: &FsView,
    resolved: &[OsString],
    input: R,
    opts: ExtractOptions,
) -> Result<(), ArchiveError> {
    let reader = decompress(input)?;
    unpack::extract_tar(view, resolved, reader, opts)
}

/// Wrap `input` in the decompressor its magic bytes call for.
fn decompress<'a, R: Read + 'a>(input: R) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    let mut buf = BufReader::with_capacity(64 * 1024, input);
    let head = buf
        .fill_buf()
        .map_err(ArchiveError::io("reading the archive"))?;
    let starts = |magic: &[u8]| head.len() >= magic.len() && &head[..magic.len()] == magic;
    if starts(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buf)))
    } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let dec =
            zstd::stream::read::Decoder::with_buffer(buf).map_err(ArchiveError::io("zstd"))?;
        Ok(Box::new(dec))
    } else if starts(b"BZh") {
        Err(ArchiveError::BadArchive(
            "bzip2-compressed archives are not supported: send a plain, gzip or zstd tar".into(),
        ))
    } else if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Err(ArchiveError::BadArchive(
            "xz-compressed archives are not supported: send a plain, gzip or zstd tar".into(),
        ))
    } else {
        Ok(Box::new(buf))
    }
}

#[cfg(test)]
mod tests;
