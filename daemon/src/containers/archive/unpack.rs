//! Extracting a tar stream into a container's file system (PUT archive,
//! `docker cp ... CONTAINER:path`). Every entry's parent directory is
//! resolved inside the container (see `view`), and the entry is created
//! relative to that directory's fd, so neither `..` names, absolute or
//! hostile symlinks in the archive, nor symlinks swapped in by a running
//! container can make it write outside the container.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::sys;
use super::view::{components, is_not_found, join, FsView, MAX_SYMLINKS};
use super::ArchiveError;

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Refuse to replace a directory by a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// Owner for every entry instead of the archive's uid/gid.
    pub chown: Option<(u32, u32)>,
}

/// Extract `input` (an uncompressed tar) below the resolved directory `dest`.
pub fn extract_tar<R: Read>(
    view: &FsView,
    dest: &[OsString],
    input: R,
    opts: ExtractOptions,
) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(bad_archive)?;
    let mut dir_times: Vec<(Vec<OsString>, i64)> = Vec::new();
    let mut last_dir: Option<LastDir> = None;
    for entry in entries {
        let mut entry = entry.map_err(bad_archive)?;
        let raw_name = entry.path_bytes().into_owned();
        let Some(rel) = clean_inside(&raw_name) else {
            return Err(ArchiveError::BadArchive(format!(
                "invalid archive entry {:?}: it is outside of the extraction point",
                String::from_utf8_lossy(&raw_name)
            )));
        };
        // "." is the extraction point itself, which already exists.
        let Some((base, parent_rel)) = rel.split_last() else {
            continue;
        };
        let mut target: Vec<OsString> = dest.to_vec();
        target.extend(rel.iter().cloned());
        if view.is_read_only(&target) {
            return Err(ArchiveError::ReadOnly(
                "mounted volume is marked read-only".into(),
            ));
        }
        let kind = entry.header().entry_type();
        if view.mount_at(&target).is_some() {
            // A mount point: its content comes from the mount, never replaced.
            if kind.is_dir() {
                continue;
            }
            return Err(ArchiveError::BadArchive(format!(
                "cannot overwrite mount point {} with a non-directory",
                join(&target)
            )));
        }
        let mut parent_raw: Vec<OsString> = dest.to_vec();
        parent_raw.extend(parent_rel.iter().cloned());
        let (parent, parent_fd) = match last_dir.take() {
            Some(d) if d.raw == parent_raw => (d.resolved, d.fd),
            _ => ensure_dir(view, &parent_raw)?,
        };
        let dir = parent_fd.as_fd();
        let header = entry.header().clone();
        let mode = header.mode().map_err(bad_archive)? & 0o7777;
        let (uid, gid) = match opts.chown {
            Some(ids) => ids,
            None => (
                header.uid().map_err(bad_archive)? as u32,
                header.gid().map_err(bad_archive)? as u32,
            ),
        };
        let mtime = header.mtime().map_err(bad_archive)? as i64;
        let name = base.as_os_str();

        let replaced = clear_target(
            dir,
            name,
            kind.is_dir(),
            opts.no_overwrite_dir_non_dir,
            &target,
        )?;
        // Keep the parent for the next entry, unless something was removed
        // (a cached directory may have been below it).
        let keep = |resolved: Vec<OsString>, fd: OwnedFd| {
            (!replaced).then(|| LastDir {
                raw: parent_raw.clone(),
                resolved,
                fd,
            })
        };
        match kind {
            tar::EntryType::Directory => {
                match sys::mkdir_at(dir, name, 0o700) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(ArchiveError::io("creating a directory")(e)),
                }
                let fd = sys::open_child(dir, name, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(ArchiveError::io("opening a directory"))?;
                set_owner_mode(fd.as_fd(), uid, gid, mode)?;
                let mut resolved = parent.clone();
                resolved.push(name.to_os_string());
                dir_times.push((resolved.clone(), mtime));
                // Its content most likely comes next.
                last_dir = (!replaced).then(|| LastDir {
                    raw: target.clone(),
                    resolved,
                    fd,
                });
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = sys::create_file(dir, name, 0o600)
                    .map_err(ArchiveError::io("creating a file"))?;
                let mut file = File::from(fd);
                io::copy(&mut entry, &mut file).map_err(ArchiveError::io("writing a file"))?;
                set_owner_mode(file.as_fd(), uid, gid, mode)?;
                sys::set_times_fd(file.as_fd(), mtime, mtime)
                    .map_err(ArchiveError::io("setting times"))?;
            }
            tar::EntryType::Symlink => {
                let target_bytes = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad_archive("symlink without a target"))?;
                sys::symlink_at(OsStr::from_bytes(&target_bytes), dir, name)
                    .map_err(ArchiveError::io("creating a symlink"))?;
                let fd = sys::open_child(dir, name, libc::O_PATH)
                    .map_err(ArchiveError::io("opening a symlink"))?;
                sys::fchown_fd(fd.as_fd(), uid, gid).map_err(ArchiveError::io("chown"))?;
                sys::set_times_nofollow(dir, name, mtime, mtime)
                    .map_err(ArchiveError::io("setting times"))?;
            }
            tar::EntryType::Link => {
                let link_bytes = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad_archive("hard link without a target"))?;
                let Some(link_rel) = clean_inside(&link_bytes) else {
                    return Err(ArchiveError::BadArchive(format!(
                        "invalid hard link {:?}: it is outside of the extraction point",
                        String::from_utf8_lossy(&link_bytes)
                    )));
                };
                let mut src: Vec<OsString> = dest.to_vec();
                src.extend(link_rel);
                let src = view.resolve(join(&src).as_bytes(), false)?;
                let src_fd = view
                    .open(&src, libc::O_PATH)
                    .map_err(ArchiveError::io("opening a hard link target"))?;
                sys::link_fd_at(src_fd.as_fd(), dir, name)
                    .map_err(ArchiveError::io("creating a hard link"))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let type_bits = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().map_err(bad_archive)?.unwrap_or(0);
                let minor = header.device_minor().map_err(bad_archive)?.unwrap_or(0);
                sys::mknod_at(dir, name, type_bits | mode, libc::makedev(major, minor))
                    .map_err(ArchiveError::io("mknod"))?;
                let fd = sys::open_child(dir, name, libc::O_PATH)
                    .map_err(ArchiveError::io("opening a device"))?;
                set_owner_mode(fd.as_fd(), uid, gid, mode)?;
                sys::set_times_fd(fd.as_fd(), mtime, mtime)
                    .map_err(ArchiveError::io("setting times"))?;
            }
            // Extension headers are consumed by the tar reader itself.
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            other => {
                return Err(ArchiveError::BadArchive(format!(
                    "unhandled tar header type {:?} for {}",
                    other.as_byte() as char,
                    join(&target)
                )))
            }
        }
        last_dir = keep(parent, parent_fd);
    }
    // Directory times last: creating entries inside changed them.
    for (parts, mtime) in dir_times.iter().rev() {
        if let Ok(fd) = view.open(parts, libc::O_PATH | libc::O_DIRECTORY) {
            sys::set_times_fd(fd.as_fd(), *mtime, *mtime)
                .map_err(ArchiveError::io("setting directory times"))?;
        }
    }
    Ok(())
}

/// The directory the previous entry was written in (or, for a directory
/// entry, that directory): archives list a directory right before its
/// content, so most entries find their parent here without a lookup.
struct LastDir {
    /// The parent as the archive names it, below the extraction point.
    raw: Vec<OsString>,
    resolved: Vec<OsString>,
    fd: OwnedFd,
}

fn bad_archive(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::BadArchive(format!("invalid tar archive: {e}"))
}

/// The components of an archive entry name relative to the extraction
/// point; `None` when `..` would climb above it.
fn clean_inside(name: &[u8]) -> Option<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for c in components(name) {
        if c == ".." {
            out.pop()?;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn set_owner_mode(fd: BorrowedFd<'_>, uid: u32, gid: u32, mode: u32) -> Result<(), ArchiveError> {
    // chown first: it clears set-id bits that chmod then restores.
    sys::fchown_fd(fd, uid, gid).map_err(ArchiveError::io("chown"))?;
    sys::fchmod_fd(fd, mode).map_err(ArchiveError::io("chmod"))
}

/// Make room for a new entry `name` in `dir`: an existing directory stays
/// for a directory entry; anything else is removed, unless that would
/// replace a directory by a non-directory or the reverse and
/// `no_overwrite` is set. Returns whether anything was removed.
fn clear_target(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    new_is_dir: bool,
    no_overwrite: bool,
    target: &[OsString],
) -> Result<bool, ArchiveError> {
    let st = match sys::lstat_at(dir, name) {
        Ok(st) => st,
        Err(e) if is_not_found(&e) => return Ok(false),
        Err(e) => return Err(ArchiveError::io("stat")(e)),
    };
    let old_is_dir = sys::file_type(&st) == libc::S_IFDIR;
    match (old_is_dir, new_is_dir) {
        (true, true) => Ok(false),
        (true, false) if no_overwrite => Err(ArchiveError::BadArchive(format!(
            "cannot overwrite directory {:?} with non-directory",
            join(target)
        ))),
        (false, true) if no_overwrite => Err(ArchiveError::BadArchive(format!(
            "cannot overwrite non-directory {:?} with directory",
            join(target)
        ))),
        (true, false) => berth_common::tree::remove_at(dir, name)
            .map(|()| true)
            .map_err(ArchiveError::io("removing a directory")),
        (false, _) => sys::unlink_at(dir, name, false)
            .map(|()| true)
            .map_err(ArchiveError::io("removing a file")),
    }
}

/// Resolve the directory `parts` inside the container, creating missing
/// components (0755, root) like `mkdir -p`. Returns its canonical path and
/// an `O_PATH` fd of it.
///
/// The walk goes one component at a time from an open directory fd, so a
/// path `depth` components deep costs `depth` lookups, not `depth²`; only
/// symlinks on the way (rare) send it back through the view's resolution.
fn ensure_dir(view: &FsView, parts: &[OsString]) -> Result<(Vec<OsString>, OwnedFd), ArchiveError> {
    let open_dir = |p: &[OsString]| {
        view.open(p, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(ArchiveError::io("opening a directory"))
    };
    // (component, must exist): components from the middle of a symlink's
    // target must exist, as a lookup through the link would need them.
    let mut todo: VecDeque<(OsString, bool)> = parts.iter().map(|c| (c.clone(), false)).collect();
    let mut cur: Vec<OsString> = Vec::new();
    let mut fd = open_dir(&cur)?;
    let mut followed = 0usize;
    while let Some((c, must_exist)) = todo.pop_front() {
        if c == ".." {
            cur.pop();
            fd = open_dir(&cur)?;
            continue;
        }
        cur.push(c);
        if view.mount_at(&cur).is_some() {
            fd = open_dir(&cur)?;
            continue;
        }
        let name = cur[cur.len() - 1].as_os_str();
        let st = match sys::lstat_at(fd.as_fd(), name) {
            Ok(st) => Some(st),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(ArchiveError::io("stat")(e)),
        };
        match st.map(|st| sys::file_type(&st)) {
            Some(libc::S_IFDIR) => {}
            Some(libc::S_IFLNK) => {
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return Err(ArchiveError::Io {
                        context: "resolving symlinks".into(),
                        source: io::Error::from_raw_os_error(libc::ELOOP),
                    });
                }
                let target =
                    sys::readlink_at(fd.as_fd(), name).map_err(ArchiveError::io("readlink"))?;
                cur.pop();
                if target.as_bytes().first() == Some(&b'/') {
                    cur.clear();
                }
                let link_parts = components(target.as_bytes());
                let n = link_parts.len();
                for (i, t) in link_parts.into_iter().enumerate().rev() {
                    todo.push_front((t, i + 1 < n));
                }
                fd = open_dir(&cur)?;
                continue;
            }
            Some(_) => {
                return Err(ArchiveError::BadArchive(format!(
                    "{} is not a directory",
                    join(&cur)
                )));
            }
            None if must_exist => {
                return Err(ArchiveError::BadArchive(format!(
                    "cannot create directory {}: a symlink on the way leads nowhere",
                    join(&cur)
                )))
            }
            None => match sys::mkdir_at(fd.as_fd(), name, 0o755) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(ArchiveError::io("creating a directory")(e)),
            },
        }
        fd = sys::open_child(fd.as_fd(), name, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(ArchiveError::io("opening a directory"))?;
    }
    Ok((cur, fd))
}
