//! Packing part of a container's file system into a tar stream (GET
//! archive, `docker cp CONTAINER:path ...`).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use super::sys;
use super::view::{is_not_found, FsView};
use super::ArchiveError;

struct Packer<'a, W: Write> {
    view: &'a FsView,
    out: tar::Builder<W>,
    /// First archive name of each multiply-linked inode, for hard links.
    seen: HashMap<(u64, u64), String>,
}

/// Write `parts` (a resolved container path) and, for a directory,
/// everything below it as a tar stream whose entries are named under
/// `rebase` (`etc`, `etc/passwd`, ...). Mounts below `parts` are followed
/// as the container sees them. Nothing from the container is executed or
/// followed outside it.
pub fn write_tar<W: Write>(
    view: &FsView,
    parts: &[OsString],
    rebase: &str,
    out: W,
) -> Result<W, ArchiveError> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut packer = Packer {
        view,
        out: builder,
        seen: HashMap::new(),
    };
    // Depth-first with an explicit stack: a tree of any depth costs heap,
    // never call stack.
    let mut todo = vec![(parts.to_vec(), rebase.to_string(), true)];
    while let Some((parts, name, top)) = todo.pop() {
        let children = packer.add(&parts, name, top)?;
        for (child, child_name) in children.into_iter().rev() {
            let mut p = parts.clone();
            p.push(child);
            todo.push((p, child_name, false));
        }
    }
    packer
        .out
        .into_inner()
        .map_err(ArchiveError::io("finishing the archive"))
}

impl<W: Write> Packer<'_, W> {
    /// Archives `parts` as `name`; for a directory, returns its entries
    /// (name, archive name) to archive next.
    fn add(
        &mut self,
        parts: &[OsString],
        name: String,
        top: bool,
    ) -> Result<Vec<(OsString, String)>, ArchiveError> {
        let fd = match self.view.open(parts, libc::O_PATH) {
            Ok(fd) => fd,
            // Removed while we walk a running container: leave it out.
            Err(e) if is_not_found(&e) && !top => return Ok(Vec::new()),
            Err(e) if is_not_found(&e) => return Err(ArchiveError::NotFound),
            Err(e) => return Err(ArchiveError::io("opening for the archive")(e)),
        };
        let st = sys::fstat(fd.as_fd()).map_err(ArchiveError::io("stat"))?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(st.st_mtime.max(0) as u64);
        header.set_size(0);
        let ftype = sys::file_type(&st);
        let key = (st.st_dev, st.st_ino);
        if ftype != libc::S_IFDIR && st.st_nlink > 1 {
            if let Some(first) = self.seen.get(&key) {
                header.set_entry_type(tar::EntryType::Link);
                let first = first.clone();
                return self
                    .out
                    .append_link(&mut header, &name, &first)
                    .map(|()| Vec::new())
                    .map_err(ArchiveError::io("writing the archive"));
            }
            self.seen.insert(key, name.clone());
        }
        match ftype {
            libc::S_IFREG => {
                let file = File::from(
                    sys::reopen(fd.as_fd(), libc::O_RDONLY)
                        .map_err(ArchiveError::io("opening a file"))?,
                );
                let size = st.st_size.max(0) as u64;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                // A file growing or shrinking meanwhile still gives exactly
                // `size` bytes, as the header promised.
                let data = file.take(size).chain(io::repeat(0)).take(size);
                self.out
                    .append_data(&mut header, &name, data)
                    .map(|()| Vec::new())
                    .map_err(ArchiveError::io("writing the archive"))
            }
            libc::S_IFDIR => {
                header.set_entry_type(tar::EntryType::Directory);
                let dir_name = if name.ends_with('/') {
                    name.clone()
                } else {
                    format!("{name}/")
                };
                self.out
                    .append_data(&mut header, &dir_name, io::empty())
                    .map_err(ArchiveError::io("writing the archive"))?;
                let dir = sys::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)
                    .map_err(ArchiveError::io("opening a directory"))?;
                let names = sys::read_dir_names(dir.as_fd())
                    .map_err(ArchiveError::io("reading a directory"))?;
                Ok(names
                    .into_iter()
                    .map(|child| {
                        let child_name = format!("{}{}", dir_name, child.to_string_lossy());
                        (child, child_name)
                    })
                    .collect())
            }
            libc::S_IFLNK => {
                let target = sys::readlink_at(fd.as_fd(), OsStr::new(""))
                    .map_err(ArchiveError::io("readlink"))?;
                header.set_entry_type(tar::EntryType::Symlink);
                self.out
                    .append_link(&mut header, &name, &target)
                    .map(|()| Vec::new())
                    .map_err(ArchiveError::io("writing the archive"))
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = match ftype {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    _ => tar::EntryType::Fifo,
                };
                header.set_entry_type(kind);
                if kind != tar::EntryType::Fifo {
                    header
                        .set_device_major(libc::major(st.st_rdev))
                        .and_then(|_| header.set_device_minor(libc::minor(st.st_rdev)))
                        .map_err(ArchiveError::io("device numbers"))?;
                }
                self.out
                    .append_data(&mut header, &name, io::empty())
                    .map(|()| Vec::new())
                    .map_err(ArchiveError::io("writing the archive"))
            }
            // Sockets cannot be archived (as with GNU tar and dockerd).
            _ => Ok(Vec::new()),
        }
    }
}
