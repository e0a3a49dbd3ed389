//! The reverse of unpacking: write an overlay upper directory (a container's
//! changes) as a layer tar with OCI whiteouts, as `docker commit` needs.
//! Overlay whiteouts (0/0 character devices) become `.wh.NAME` entries and
//! opaque directories (`trusted.overlay.opaque=y`) get a `.wh..wh..opq`
//! entry. The tree is walked with fds (`openat` + `O_NOFOLLOW`), so a
//! symlink swapped in while walking is archived as a symlink, never
//! followed out of the directory.

use std::collections::HashMap;
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::sys;
use crate::error::{Error, IoContext, Result};

const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// Write the tree under `upper` to `out` as an uncompressed layer tar.
pub fn write_diff<W: Write>(upper: &Path, out: W) -> Result<W> {
    let root = sys::open_dir(upper).ctx(|| format!("open {}", upper.display()))?;
    let mut w = DiffWriter {
        tar: tar::Builder::new(out),
        hardlinks: HashMap::new(),
    };
    w.walk(root)?;
    w.tar.into_inner().ctx(|| "finish layer tar".to_owned())
}

/// A directory being archived: its open fd, path in the layer, and the
/// names still to archive.
struct Level {
    fd: OwnedFd,
    prefix: PathBuf,
    names: Vec<std::ffi::CString>,
}

struct DiffWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, ino) of files with several links → first archived path.
    hardlinks: HashMap<(u64, u64), PathBuf>,
}

fn header(st: &libc::stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

fn empty_file(mtime: i64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_mtime(mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> DiffWriter<W> {
    /// Archives the tree below `root` depth-first with an explicit stack
    /// (one open fd per level, never call stack), names sorted.
    fn walk(&mut self, root: OwnedFd) -> Result<()> {
        let mut stack = vec![self.level(root, PathBuf::new())?];
        while let Some(level) = stack.last_mut() {
            let Some(name) = level.names.pop() else {
                stack.pop();
                continue;
            };
            let (fd, prefix) = (level.fd.as_fd(), level.prefix.clone());
            if let Some((child, rel)) = self.entry(fd, &prefix, &name)? {
                let next = self.level(child, rel)?;
                stack.push(next);
            }
        }
        Ok(())
    }

    fn level(&self, fd: OwnedFd, prefix: PathBuf) -> Result<Level> {
        let mut names = sys::list_dir(fd.as_fd()).ctx(|| format!("list {}", prefix.display()))?;
        // Popped from the end: reverse order gives sorted output.
        names.sort_by(|a, b| b.cmp(a));
        Ok(Level { fd, prefix, names })
    }

    /// Archives one entry; a directory is returned (open, with its path)
    /// for the caller to descend into.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        prefix: &Path,
        name: &CStr,
    ) -> Result<Option<(OwnedFd, PathBuf)>> {
        let rel = prefix.join(OsStr::from_bytes(name.to_bytes()));
        let err = |what: &str| {
            let rel = rel.clone();
            let what = what.to_owned();
            move |e: io::Error| Error::Io {
                context: format!("{what} {}", rel.display()),
                source: e,
            }
        };
        let st = sys::lstat_full(dir, name).map_err(err("stat"))?;
        let tar_err = err("archive");
        match st.st_mode & libc::S_IFMT {
            libc::S_IFCHR if st.st_rdev == 0 => {
                let mut wh = OsStr::new(".wh.").to_owned();
                wh.push(OsStr::from_bytes(name.to_bytes()));
                let mut h = empty_file(st.st_mtime);
                self.tar
                    .append_data(&mut h, prefix.join(wh), io::empty())
                    .map_err(tar_err)?;
            }
            libc::S_IFDIR => {
                let fd = sys::openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(err("open"))?;
                let xattrs = sys::fxattrs(fd.as_fd()).map_err(err("read xattrs of"))?;
                let opaque = xattrs.iter().any(|(k, v)| k == OPAQUE_XATTR && v == b"y");
                self.pax(&xattrs).map_err(err("archive"))?;
                let mut h = header(&st, tar::EntryType::Directory);
                let mut path = rel.clone().into_os_string();
                path.push("/");
                self.tar
                    .append_data(&mut h, PathBuf::from(path), io::empty())
                    .map_err(err("archive"))?;
                if opaque {
                    let mut h = empty_file(st.st_mtime);
                    self.tar
                        .append_data(&mut h, rel.join(".wh..wh..opq"), io::empty())
                        .map_err(err("archive"))?;
                }
                return Ok(Some((fd, rel)));
            }
            libc::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.hardlinks.get(&key) {
                        let mut h = header(&st, tar::EntryType::Link);
                        let first = first.clone();
                        self.tar.append_link(&mut h, &rel, first).map_err(tar_err)?;
                        return Ok(None);
                    }
                    self.hardlinks.insert(key, rel.clone());
                }
                let fd = sys::openat(dir, name, libc::O_RDONLY, 0).map_err(err("open"))?;
                let xattrs = sys::fxattrs(fd.as_fd()).map_err(err("read xattrs of"))?;
                self.pax(&xattrs).map_err(err("archive"))?;
                let size = st.st_size.max(0) as u64;
                let mut h = header(&st, tar::EntryType::Regular);
                h.set_size(size);
                let file = File::from(fd);
                // A file shrinking while archived ends as a short read: an error.
                self.tar
                    .append_data(&mut h, &rel, file.take(size))
                    .map_err(tar_err)?;
            }
            libc::S_IFLNK => {
                let target = sys::readlinkat(dir, name).map_err(err("readlink"))?;
                let mut h = header(&st, tar::EntryType::Symlink);
                self.tar
                    .append_link(&mut h, &rel, OsStr::from_bytes(&target))
                    .map_err(tar_err)?;
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = match st.st_mode & libc::S_IFMT {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                let mut h = header(&st, kind);
                if kind != tar::EntryType::Fifo {
                    h.set_device_major(libc::major(st.st_rdev))
                        .map_err(err("archive"))?;
                    h.set_device_minor(libc::minor(st.st_rdev))
                        .map_err(err("archive"))?;
                }
                self.tar
                    .append_data(&mut h, &rel, io::empty())
                    .map_err(tar_err)?;
            }
            // Sockets cannot be archived; dockerd skips them too.
            _ => {}
        }
        Ok(None)
    }

    /// PAX records for the next entry's xattrs (overlay's own excluded).
    fn pax(&mut self, xattrs: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .filter(|(k, _)| !k.starts_with(OVERLAY_XATTR_PREFIX))
            .map(|(k, v)| {
                (
                    format!("SCHILY.xattr.{}", String::from_utf8_lossy(k)),
                    v.as_slice(),
                )
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.tar
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
    }
}
