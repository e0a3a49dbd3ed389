//! Safe extraction of one layer tar into an empty directory.
//!
//! Every entry name is cleaned (`..` that would climb above the root is
//! rejected, a leading `/` is dropped) and its parent directory is opened
//! with `openat2(RESOLVE_IN_ROOT)`, so symlinks created by earlier entries
//! resolve inside the layer. The final component is then created with
//! `*at` calls relative to that parent fd and never followed. Hardlink
//! targets are resolved the same way. OCI whiteouts become overlayfs
//! whiteouts: `.wh.NAME` a 0/0 character device, `.wh..wh..opq` the
//! `trusted.overlay.opaque=y` xattr on the directory.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use tar::{EntryType, Header};

use super::sys;
use crate::error::{tar_error, Error, IoContext, Result};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
const COPY_BUF: usize = 1 << 20;

#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    /// Sum of the sizes of regular files, as dockerd reports layer sizes.
    pub size: u64,
    pub entries: u64,
}

/// Owner, mode and times of an entry, taken from the header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: libc::mode_t,
    mtime: libc::timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// Extract `archive` (an uncompressed tar stream) into `root`, which must be
/// an existing directory private to the caller.
pub fn unpack<R: Read>(archive: R, root: &Path) -> Result<UnpackStats> {
    let root_fd = sys::open_dir(root).ctx(|| format!("open {}", root.display()))?;
    let mut ex = Extractor {
        root: root_fd,
        parent_cache: None,
        dir_times: Vec::new(),
        buf: vec![0u8; COPY_BUF],
        stats: UnpackStats::default(),
    };
    let mut ar = tar::Archive::new(archive);
    let entries = ar.entries().map_err(|e| tar_error("read layer tar", &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| tar_error("read layer tar", &e))?;
        ex.entry(&mut entry)?;
    }
    ex.finish_dir_times()?;
    Ok(ex.stats)
}

/// Make the extracted tree durable before it is published by a rename.
pub fn sync_tree(root: &Path) -> Result<()> {
    let fd = sys::open_dir(root).ctx(|| format!("open {}", root.display()))?;
    sys::syncfs(fd.as_fd()).ctx(|| format!("syncfs {}", root.display()))
}

struct Extractor {
    root: OwnedFd,
    /// The last opened parent directory, keyed by its cleaned path. An entry
    /// only ever adds or removes children of its parent, so the next entry
    /// with the same parent path resolves to the same directory.
    parent_cache: Option<(Vec<u8>, OwnedFd)>,
    dir_times: Vec<(Vec<u8>, libc::timespec)>,
    buf: Vec<u8>,
    stats: UnpackStats,
}

/// Clean a tar name to components below the root. `None` means the root.
fn clean(raw: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(Error::UnsafeEntry {
                        entry: String::from_utf8_lossy(raw).into_owned(),
                        reason: "path escapes the layer root".into(),
                    });
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    let mut p = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            p.push(b'/');
        }
        p.extend_from_slice(c);
    }
    p
}

fn entry_err(name: &[u8], what: &str, e: io::Error) -> Error {
    Error::Io {
        context: format!("{what} {:?}", String::from_utf8_lossy(name)),
        source: e,
    }
}

/// A parent path that cannot be a directory inside the layer (it passes
/// through a file, a dangling or looping symlink, or one that leads out of
/// the layer) is the archive's fault: refuse the entry, not a daemon error.
fn parent_err(path: &[u8], e: io::Error) -> Error {
    let reason = match e.raw_os_error() {
        Some(libc::ENOTDIR) | Some(libc::EXDEV) => {
            "as a parent directory it passes through a symbolic link or file that does not lead to a directory inside the layer"
        }
        Some(libc::ELOOP) => "as a parent directory it passes through a symbolic link loop",
        Some(libc::ENAMETOOLONG) => "as a parent directory its path is too long",
        _ => return entry_err(path, "open parent directory", e),
    };
    Error::UnsafeEntry {
        entry: String::from_utf8_lossy(path).into_owned(),
        reason: reason.into(),
    }
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Meta> {
    let h: &Header = entry.header();
    let bad = |what: &str, e: io::Error| Error::invalid(format!("layer tar header {what}: {e}"));
    let old = h.as_old();
    // Like Go's archive/tar, an empty numeric field reads as 0.
    let num = |field: &[u8], value: io::Result<u64>, what: &str| -> Result<u64> {
        if field.iter().all(|&b| b == 0 || b == b' ') {
            return Ok(0);
        }
        value.map_err(|e| bad(what, e))
    };
    let mut uid = num(&old.uid, h.uid(), "uid")? as u32;
    let mut gid = num(&old.gid, h.gid(), "gid")? as u32;
    let mode = (num(&old.mode, h.mode().map(u64::from), "mode")? & 0o7777) as libc::mode_t;
    let mut mtime = sys::timespec(num(&old.mtime, h.mtime(), "mtime")? as i64, 0);
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(|e| bad("pax", e))? {
        for ext in pax {
            let ext = ext.map_err(|e| bad("pax", e))?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                // Overlay's own attributes (opaque, redirect, metacopy) only
                // come from our whiteout conversion, never from layer content.
                if name.starts_with(b"trusted.overlay.") {
                    continue;
                }
                xattrs.push((
                    sys::cstr(name).map_err(|e| bad("xattr", e))?,
                    value.to_vec(),
                ));
            } else if key == b"uid" {
                uid = parse_num(value).ok_or_else(|| Error::invalid("layer tar: bad pax uid"))?;
            } else if key == b"gid" {
                gid = parse_num(value).ok_or_else(|| Error::invalid("layer tar: bad pax gid"))?;
            } else if key == b"mtime" {
                if let Some(t) = parse_pax_time(value) {
                    mtime = t;
                }
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode,
        mtime,
        xattrs,
    })
}

fn parse_num(v: &[u8]) -> Option<u32> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

fn parse_pax_time(v: &[u8]) -> Option<libc::timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += (c - b'0') as i64 * 10i64.pow(8 - i as u32);
    }
    Some(sys::timespec(secs, nanos))
}

impl Extractor {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let comps = clean(&raw)?;
        let Some((&name, parent)) = comps.split_last() else {
            // The root itself: the layer directory keeps its own metadata.
            return Ok(());
        };
        self.stats.entries += 1;
        let parent_path = join(parent);

        if name == OPAQUE_WHITEOUT {
            let dir = self.parent(&parent_path)?;
            return sys::fsetxattr(dir.as_fd(), c"trusted.overlay.opaque", b"y")
                .map_err(|e| entry_err(&raw, "mark opaque", e));
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            // Other AUFS metadata (.wh..wh.plnk, ...) has no overlay meaning.
            return Ok(());
        }
        let meta = read_meta(entry)?;
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let hidden = sys::cstr(hidden).map_err(|e| entry_err(&raw, "whiteout", e))?;
            let dir = self.parent(&parent_path)?;
            sys::remove_all_at(dir.as_fd(), &hidden).map_err(|e| entry_err(&raw, "replace", e))?;
            sys::mknodat(dir.as_fd(), &hidden, libc::S_IFCHR, 0)
                .map_err(|e| entry_err(&raw, "create whiteout", e))?;
            return sys::lchownat(dir.as_fd(), &hidden, meta.uid, meta.gid)
                .map_err(|e| entry_err(&raw, "chown", e));
        }

        let cname = sys::cstr(name).map_err(|e| entry_err(&raw, "name", e))?;
        let dir = self.parent(&parent_path)?;
        let dir = dir.as_fd();
        let existing = sys::lstatat(dir, &cname).map_err(|e| entry_err(&raw, "stat", e))?;
        let is_dir_entry = kind == EntryType::Directory;
        if let Some(st) = &existing {
            // A directory over a directory merges; anything else replaces.
            if !(is_dir_entry && st.is_dir()) {
                sys::remove_all_at(dir, &cname).map_err(|e| entry_err(&raw, "replace", e))?;
            }
        }

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = sys::openat(
                    dir,
                    &cname,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    0o600,
                )
                .map_err(|e| entry_err(&raw, "create", e))?;
                let mut file = File::from(fd);
                let written = copy(entry, &mut file, &mut self.buf)
                    .map_err(|e| entry_err(&raw, "write", e))?;
                self.stats.size += written;
                start_writeback(&file);
                apply_fd_meta(file.as_fd(), &meta)
                    .map_err(|e| entry_err(&raw, "set metadata of", e))?;
                sys::futimens(file.as_fd(), meta.mtime)
                    .map_err(|e| entry_err(&raw, "set times of", e))?;
            }
            EntryType::Directory => {
                if existing.is_none() {
                    sys::mkdirat(dir, &cname, 0o700).map_err(|e| entry_err(&raw, "mkdir", e))?;
                }
                let fd = sys::openat(dir, &cname, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(|e| entry_err(&raw, "open", e))?;
                apply_fd_meta(fd.as_fd(), &meta)
                    .map_err(|e| entry_err(&raw, "set metadata of", e))?;
                let mut full = parent_path.clone();
                if !full.is_empty() {
                    full.push(b'/');
                }
                full.extend_from_slice(name);
                self.dir_times.push((full, meta.mtime));
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    Error::invalid(format!(
                        "symlink {:?} without target",
                        String::from_utf8_lossy(&raw)
                    ))
                })?;
                let target =
                    sys::cstr(&target).map_err(|e| entry_err(&raw, "symlink target", e))?;
                sys::symlinkat(&target, dir, &cname).map_err(|e| entry_err(&raw, "symlink", e))?;
                sys::lchownat(dir, &cname, meta.uid, meta.gid)
                    .map_err(|e| entry_err(&raw, "chown", e))?;
                for (k, v) in &meta.xattrs {
                    set_xattr_tolerant(sys::lsetxattr_at(dir, &cname, k, v))
                        .map_err(|e| entry_err(&raw, "setxattr", e))?;
                }
                sys::lutimensat(dir, &cname, meta.mtime)
                    .map_err(|e| entry_err(&raw, "set times of", e))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "hardlink {:?} without target",
                            String::from_utf8_lossy(&raw)
                        ))
                    })?
                    .into_owned();
                let tcomps = clean(&target).map_err(|_| Error::UnsafeEntry {
                    entry: String::from_utf8_lossy(&raw).into_owned(),
                    reason: "hardlink target escapes the layer root".into(),
                })?;
                let Some((&tname, tparent)) = tcomps.split_last() else {
                    return Err(Error::UnsafeEntry {
                        entry: String::from_utf8_lossy(&raw).into_owned(),
                        reason: "hardlink to the layer root".into(),
                    });
                };
                let tdir = self
                    .open_existing_dir(&join(tparent))
                    .map_err(|e| entry_err(&target, "open hardlink target dir", e))?;
                let tname = sys::cstr(tname).map_err(|e| entry_err(&raw, "hardlink target", e))?;
                let dir = self.parent(&parent_path)?;
                sys::linkat(tdir.as_fd(), &tname, dir.as_fd(), &cname)
                    .map_err(|e| entry_err(&raw, "hardlink", e))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let ftype = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let dev = libc::makedev(major, minor);
                sys::mknodat(dir, &cname, ftype | 0o600, dev)
                    .map_err(|e| entry_err(&raw, "mknod", e))?;
                sys::lchownat(dir, &cname, meta.uid, meta.gid)
                    .map_err(|e| entry_err(&raw, "chown", e))?;
                sys::fchmodat(dir, &cname, meta.mode).map_err(|e| entry_err(&raw, "chmod", e))?;
                sys::lutimensat(dir, &cname, meta.mtime)
                    .map_err(|e| entry_err(&raw, "set times of", e))?;
            }
            other => {
                return Err(Error::invalid(format!(
                    "layer tar entry {:?} has unsupported type {other:?}",
                    String::from_utf8_lossy(&raw)
                )));
            }
        }
        Ok(())
    }

    /// Open (creating missing components 0755, as dockerd does) the parent
    /// directory of an entry, resolved inside the root.
    fn parent(&mut self, path: &[u8]) -> Result<&OwnedFd> {
        let hit = matches!(&self.parent_cache, Some((p, _)) if p == path);
        if !hit {
            let fd = self
                .open_or_create_dir(path)
                .map_err(|e| parent_err(path, e))?;
            self.parent_cache = Some((path.to_vec(), fd));
        }
        match &self.parent_cache {
            Some((_, fd)) => Ok(fd),
            None => Err(Error::invalid("parent cache empty")),
        }
    }

    fn open_existing_dir(&self, path: &[u8]) -> io::Result<OwnedFd> {
        let p = if path.is_empty() {
            CString::from(c".")
        } else {
            sys::cstr(path)?
        };
        sys::open_in_root(self.root.as_fd(), &p, libc::O_RDONLY | libc::O_DIRECTORY)
    }

    fn open_or_create_dir(&self, path: &[u8]) -> io::Result<OwnedFd> {
        match self.open_existing_dir(path) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        // Walk down, creating what is missing; each step re-resolves in root.
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        let mut cur = self.open_existing_dir(b"")?;
        for i in 0..comps.len() {
            let prefix = join(&comps[..=i]);
            match self.open_existing_dir(&prefix) {
                Ok(fd) => cur = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = sys::cstr(comps[i])?;
                    match sys::mkdirat(cur.as_fd(), &name, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    cur = sys::openat(cur.as_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(cur)
    }

    fn finish_dir_times(&mut self) -> Result<()> {
        self.parent_cache = None;
        for (path, mtime) in std::mem::take(&mut self.dir_times) {
            // A later entry may have replaced the directory; skip it then.
            if let Ok(fd) = self.open_existing_dir(&path) {
                sys::futimens(fd.as_fd(), mtime)
                    .map_err(|e| entry_err(&path, "set times of", e))?;
            }
        }
        Ok(())
    }
}

fn apply_fd_meta(fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
    sys::fchown(fd, meta.uid, meta.gid)?;
    // chmod after chown: chown clears setuid/setgid bits.
    sys::fchmod(fd, meta.mode)?;
    for (k, v) in &meta.xattrs {
        set_xattr_tolerant(sys::fsetxattr(fd, k, v))?;
    }
    Ok(())
}

/// Filesystems without xattr support for a namespace are tolerated, as in
/// dockerd; real failures are not.
fn set_xattr_tolerant(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(()),
        other => other,
    }
}

/// Start writing the file's data to disk without waiting for it, so the
/// sync before the layer is published finds little left to do instead of
/// flushing every layer of a pull at its end.
fn start_writeback(file: &File) {
    // SAFETY: an open descriptor; the call only schedules writeback.
    // A failure just leaves the work to the later sync.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

fn copy<R: Read>(src: &mut R, dst: &mut File, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match src.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_confines_names() {
        assert_eq!(clean(b"/etc/passwd").unwrap(), vec![&b"etc"[..], b"passwd"]);
        assert_eq!(clean(b"./a/./b/").unwrap(), vec![&b"a"[..], b"b"]);
        assert_eq!(clean(b"a/../b").unwrap(), vec![&b"b"[..]]);
        assert!(clean(b"../x").is_err());
        assert!(clean(b"a/../../x").is_err());
        assert!(clean(b"./").unwrap().is_empty());
    }

    #[test]
    fn pax_time_parses_fraction() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!(t.tv_sec, 1700000000);
        assert_eq!(t.tv_nsec, 500_000_000);
    }
}
