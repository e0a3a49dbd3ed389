//! A container's filesystem as its processes see it — the root file system
//! plus volume and bind mounts — addressed by container paths and walked from
//! the host. Symlinks are resolved by hand in container-path space (so a link
//! may cross into a mount, as it would inside the container), and every open
//! goes through `openat2(RESOLVE_IN_ROOT)` on the covering mount's root, so a
//! path swapped under us can at worst name another file of the container,
//! never one of the host.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::sys;
use super::ArchiveError;

/// Linux's limit on symlinks followed in one lookup.
pub(super) const MAX_SYMLINKS: usize = 40;

/// One piece of the container's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewMount {
    /// Absolute container path, e.g. `/` for the root file system.
    pub destination: String,
    /// Host directory (or file, for a file bind mount) shown there.
    pub source: PathBuf,
    pub read_only: bool,
}

/// A container path resolved to the mount holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Index into the view's mounts.
    pub mount: usize,
    /// Path below that mount's root; empty for the root itself.
    pub rel: PathBuf,
}

pub struct FsView {
    mounts: Vec<ViewMount>,
    /// Each mount's destination as components, to match paths without
    /// joining them into strings (deep paths stay linear).
    dests: Vec<Vec<OsString>>,
    /// Open `O_PATH` fds of each mount's source, opened on first use.
    roots: Vec<std::cell::OnceCell<OwnedFd>>,
}

/// Container path components of an absolute or relative path string,
/// empty and `.` components dropped (`..` kept).
pub fn components(path: &[u8]) -> Vec<OsString> {
    path.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_os_string())
        .collect()
}

/// `/a/b` from components.
pub fn join(parts: &[OsString]) -> String {
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(&p.to_string_lossy());
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

impl FsView {
    /// `mounts` must contain the root (`/`); order does not matter.
    pub fn new(mut mounts: Vec<ViewMount>) -> Result<FsView, ArchiveError> {
        for m in &mut mounts {
            m.destination = join(&components(m.destination.as_bytes()));
        }
        if !mounts.iter().any(|m| m.destination == "/") {
            return Err(ArchiveError::Internal(
                "the container has no root file system".into(),
            ));
        }
        // Longest destination first: the first match is the covering mount.
        mounts.sort_by_key(|m| std::cmp::Reverse(components(m.destination.as_bytes()).len()));
        let roots = mounts.iter().map(|_| std::cell::OnceCell::new()).collect();
        let dests = mounts
            .iter()
            .map(|m| components(m.destination.as_bytes()))
            .collect();
        Ok(FsView {
            mounts,
            dests,
            roots,
        })
    }

    pub fn mount(&self, idx: usize) -> &ViewMount {
        &self.mounts[idx]
    }

    /// The mount whose destination is exactly `parts`, if any.
    pub fn mount_at(&self, parts: &[OsString]) -> Option<usize> {
        self.dests.iter().position(|d| d.as_slice() == parts)
    }

    /// The mount covering the container path `parts` and the rest of the
    /// path below it.
    pub fn locate(&self, parts: &[OsString]) -> Located {
        for (i, dest) in self.dests.iter().enumerate() {
            if parts.len() >= dest.len() && parts[..dest.len()] == dest[..] {
                let rel: PathBuf = parts[dest.len()..].iter().collect();
                return Located { mount: i, rel };
            }
        }
        // new() guarantees a `/` mount, which covers everything; keep a
        // defined answer anyway.
        Located {
            mount: self.mounts.len() - 1,
            rel: parts.iter().collect(),
        }
    }

    /// The `O_PATH` fd of a mount's source.
    pub fn root_fd(&self, idx: usize) -> io::Result<BorrowedFd<'_>> {
        let cell = &self.roots[idx];
        if cell.get().is_none() {
            let fd = sys::open_host(&self.mounts[idx].source, libc::O_PATH)?;
            let _ = cell.set(fd);
        }
        match cell.get() {
            Some(fd) => Ok(fd.as_fd()),
            None => Err(io::Error::other("mount root fd vanished")),
        }
    }

    /// Open the object at container path `parts` without following a final
    /// symlink (`O_PATH | O_NOFOLLOW` unless `flags` say otherwise).
    pub fn open(&self, parts: &[OsString], flags: libc::c_int) -> io::Result<OwnedFd> {
        let loc = self.locate(parts);
        if loc.rel.as_os_str().is_empty() {
            // The mount root itself: a directory, or a bind-mounted file.
            let src = &self.mounts[loc.mount].source;
            let want_dir = flags & libc::O_DIRECTORY != 0;
            let fd = sys::open_host(src, flags & !libc::O_NOFOLLOW)?;
            if want_dir && sys::file_type(&sys::fstat(fd.as_fd())?) != libc::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            return Ok(fd);
        }
        sys::open_in_root(
            self.root_fd(loc.mount)?,
            &loc.rel,
            flags | libc::O_NOFOLLOW,
            0,
        )
    }

    /// lstat of a container path; `None` when it does not exist.
    pub fn lstat(&self, parts: &[OsString]) -> io::Result<Option<libc::stat>> {
        match self.open(parts, libc::O_PATH) {
            Ok(fd) => sys::fstat(fd.as_fd()).map(Some),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Resolve `path` (absolute in the container) to canonical components:
    /// `..` and every symlink are resolved inside the container, the final
    /// component only when `follow_final`. Missing components are kept as
    /// given when they are last; a missing directory earlier is NotFound.
    pub fn resolve(&self, path: &[u8], follow_final: bool) -> Result<Vec<OsString>, ArchiveError> {
        self.resolve_inner(path, follow_final, false)
    }

    /// Like [`Self::resolve`] with every symlink followed, but a missing
    /// component ends the lookup and the rest is appended as written
    /// (dockerd's `FollowSymlinkInScope`, for `linkTarget`).
    pub fn resolve_lenient(&self, path: &[u8]) -> Result<Vec<OsString>, ArchiveError> {
        self.resolve_inner(path, true, true)
    }

    fn resolve_inner(
        &self,
        path: &[u8],
        follow_final: bool,
        lenient: bool,
    ) -> Result<Vec<OsString>, ArchiveError> {
        let mut todo: std::collections::VecDeque<OsString> = components(path).into();
        let mut cur: Vec<OsString> = Vec::new();
        let mut followed = 0usize;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            cur.push(c);
            let last = todo.is_empty();
            if last && !follow_final {
                break;
            }
            let st = match self.lstat(&cur).map_err(ArchiveError::io("stat"))? {
                Some(st) => st,
                None if last => break,
                None if lenient => {
                    for rest in todo.drain(..) {
                        if rest == ".." {
                            cur.pop();
                        } else {
                            cur.push(rest);
                        }
                    }
                    break;
                }
                None => return Err(ArchiveError::NotFound),
            };
            match sys::file_type(&st) {
                libc::S_IFLNK => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(ArchiveError::Io {
                            context: "resolving symlinks".into(),
                            source: io::Error::from_raw_os_error(libc::ELOOP),
                        });
                    }
                    let target = self.read_link(&cur).map_err(ArchiveError::io("readlink"))?;
                    cur.pop();
                    if target.as_bytes().first() == Some(&b'/') {
                        cur.clear();
                    }
                    for (i, t) in components(target.as_bytes()).into_iter().enumerate() {
                        todo.insert(i, t);
                    }
                }
                libc::S_IFDIR => {}
                // A file used as a directory: nothing is found there.
                _ if !last => return Err(ArchiveError::NotFound),
                _ => {}
            }
        }
        Ok(cur)
    }

    /// The target of the symlink at `parts`.
    pub fn read_link(&self, parts: &[OsString]) -> io::Result<OsString> {
        let fd = self.open(parts, libc::O_PATH)?;
        sys::readlink_at(fd.as_fd(), OsStr::new(""))
    }

    /// Whether writes at container path `parts` land on a read-only mount.
    pub fn is_read_only(&self, parts: &[OsString]) -> bool {
        self.mounts[self.locate(parts).mount].read_only
    }
}

pub fn is_not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT))
}
