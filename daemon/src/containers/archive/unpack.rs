//! Extracting a tar stream into a container's file system (PUT archive,
//! `docker cp ... CONTAINER:path`). Every entry's parent directory is
//! resolved inside the container (see `view`), and the entry is created
//! relative to that directory's fd, so neither `..` names, absolute or
//! hostile symlinks in the archive, nor symlinks swapped in by a running
//! container can make it write outside the container.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use super::sys;
use super::view::{components, is_not_found, join, FsView};
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
        let mut parent: Vec<OsString> = dest.to_vec();
        parent.extend(parent_rel.iter().cloned());
        let parent = ensure_dir(view, &parent)?;
        let parent_fd = view
            .open(&parent, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(ArchiveError::io("opening the extraction directory"))?;
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

        clear_target(
            dir,
            name,
            kind.is_dir(),
            opts.no_overwrite_dir_non_dir,
            &target,
        )?;
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
                dir_times.push((resolved, mtime));
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
/// `no_overwrite` is set.
fn clear_target(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    new_is_dir: bool,
    no_overwrite: bool,
    target: &[OsString],
) -> Result<(), ArchiveError> {
    let st = match sys::lstat_at(dir, name) {
        Ok(st) => st,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(ArchiveError::io("stat")(e)),
    };
    let old_is_dir = sys::file_type(&st) == libc::S_IFDIR;
    match (old_is_dir, new_is_dir) {
        (true, true) => Ok(()),
        (true, false) if no_overwrite => Err(ArchiveError::BadArchive(format!(
            "cannot overwrite directory {:?} with non-directory",
            join(target)
        ))),
        (false, true) if no_overwrite => Err(ArchiveError::BadArchive(format!(
            "cannot overwrite non-directory {:?} with directory",
            join(target)
        ))),
        (true, false) => remove_all(dir, name).map_err(ArchiveError::io("removing a directory")),
        (false, _) => sys::unlink_at(dir, name, false).map_err(ArchiveError::io("removing a file")),
    }
}

/// `rm -rf name` relative to `dir`, never following symlinks.
fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let child = sys::open_child(dir, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
    for entry in sys::read_dir_names(child.as_fd())? {
        let st = sys::lstat_at(child.as_fd(), &entry)?;
        if sys::file_type(&st) == libc::S_IFDIR {
            remove_all(child.as_fd(), &entry)?;
        } else {
            sys::unlink_at(child.as_fd(), &entry, false)?;
        }
    }
    drop(child);
    sys::unlink_at(dir, name, true)
}

/// Resolve the directory `parts` inside the container, creating missing
/// components (0755, root) like `mkdir -p`. Returns its canonical path.
fn ensure_dir(view: &FsView, parts: &[OsString]) -> Result<Vec<OsString>, ArchiveError> {
    let mut cur: Vec<OsString> = Vec::new();
    for c in parts {
        let mut next = cur.clone();
        next.push(c.clone());
        let resolved = match view.resolve(join(&next).as_bytes(), true) {
            Ok(r) => r,
            Err(ArchiveError::NotFound) => {
                return Err(ArchiveError::BadArchive(format!(
                    "cannot create directory {}: a symlink on the way leads nowhere",
                    join(&next)
                )))
            }
            Err(e) => return Err(e),
        };
        match view.lstat(&resolved).map_err(ArchiveError::io("stat"))? {
            Some(st) if sys::file_type(&st) == libc::S_IFDIR => {}
            Some(_) => {
                return Err(ArchiveError::BadArchive(format!(
                    "{} is not a directory",
                    join(&resolved)
                )));
            }
            None => {
                let Some((last, up)) = resolved.split_last() else {
                    return Err(ArchiveError::NotFound);
                };
                let up_fd = view
                    .open(up, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(ArchiveError::io("opening a directory"))?;
                match sys::mkdir_at(up_fd.as_fd(), last, 0o755) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(ArchiveError::io("creating a directory")(e)),
                }
            }
        }
        cur = resolved;
    }
    Ok(cur)
}
