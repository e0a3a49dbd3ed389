//! Removing directory trees that a container (or an image) may have built:
//! any depth, no recursion, symlinks never followed.
//!
//! `std::fs::remove_dir_all` recurses once per level, so a directory nested
//! tens of thousands of levels deep inside a container would overflow the
//! daemon's stack when the container is removed. Here each level costs one
//! open fd and one heap frame.

use std::ffi::OsStr;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Open file descriptors kept for the levels above the one being emptied;
/// deeper trees reopen their parent by walking down again from the
/// shallowest kept level, so a tree of any depth is removed within the
/// process's fd limit.
const MAX_OPEN_LEVELS: usize = 256;

/// `rm -rf path`: Ok when it is gone (or never existed).
pub fn remove_all(path: &Path) -> io::Result<()> {
    remove_in(libc::AT_FDCWD, path.as_os_str())
}

/// `rm -rf name` relative to the directory `dir`, never following a
/// symlink: for trees reached through an in-root fd.
pub fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    remove_in(dir.as_raw_fd(), name)
}

fn remove_in(dir: RawFd, name: &OsStr) -> io::Result<()> {
    let c = crate::c_string(name)?;
    // SAFETY: valid fd, C string and stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(dir, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(e)
        };
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return unlink(dir, &c, false);
    }
    let top = open_dir(dir, &c)?;
    empty_dir(top)?;
    unlink(dir, &c, true)
}

struct Level {
    /// Its name in the parent level (empty for the top).
    name: CString,
    /// Open for the deepest MAX_OPEN_LEVELS levels; reopened from the
    /// top when needed again.
    fd: Option<OwnedFd>,
    /// Entries listed and not yet removed: (name, is a directory).
    pending: Vec<(CString, bool)>,
}

/// Removes everything inside the directory `top`.
fn empty_dir(top: OwnedFd) -> io::Result<()> {
    let mut levels = vec![Level {
        name: CString::default(),
        pending: list(top.as_raw_fd())?,
        fd: Some(top),
    }];
    loop {
        let depth = levels.len() - 1;
        if levels[depth].fd.is_none() {
            reopen(&mut levels)?;
        }
        let cur = levels[depth].fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        match levels[depth].pending.pop() {
            Some((name, true)) => {
                let fd = open_dir(cur, &name)?;
                let pending = list(fd.as_raw_fd())?;
                levels.push(Level {
                    name,
                    fd: Some(fd),
                    pending,
                });
                // The top stays open: the others are reopened from it.
                match levels.len().checked_sub(MAX_OPEN_LEVELS + 1) {
                    Some(i) if i > 0 => levels[i].fd = None,
                    _ => {}
                }
            }
            Some((name, false)) => unlink(cur, &name, false)?,
            None => {
                // Listed again: anything created meanwhile goes too.
                let again = list(cur)?;
                if !again.is_empty() {
                    levels[depth].pending = again;
                    continue;
                }
                if depth == 0 {
                    return Ok(());
                }
                let done = levels.pop().map(|l| l.name).unwrap_or_default();
                if levels[depth - 1].fd.is_none() {
                    reopen(&mut levels)?;
                }
                let parent = levels[depth - 1].fd.as_ref().map_or(-1, |f| f.as_raw_fd());
                unlink(parent, &done, true)?;
            }
        }
    }
}

/// Opens the levels whose fds were dropped, walking down from the deepest
/// level still open (the top always is).
fn reopen(levels: &mut [Level]) -> io::Result<()> {
    let Some(open_at) = levels.iter().rposition(|l| l.fd.is_some()) else {
        return Err(io::Error::other("the tree's top is not open"));
    };
    let start = levels
        .len()
        .saturating_sub(MAX_OPEN_LEVELS)
        .max(open_at + 1);
    let mut cur = match &levels[open_at].fd {
        Some(f) => f.try_clone()?,
        None => return Err(io::Error::other("the tree's top is not open")),
    };
    for (i, level) in levels.iter_mut().enumerate().skip(open_at + 1) {
        cur = open_dir(cur.as_raw_fd(), &level.name)?;
        if i >= start {
            level.fd = Some(cur.try_clone()?);
        }
    }
    Ok(())
}

/// All entries of `dir` but `.` and `..`, with whether each is a directory.
fn list(dir: RawFd) -> io::Result<Vec<(CString, bool)>> {
    // SAFETY: dup of a valid fd; fdopendir takes ownership of the dup.
    let dup = unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is ours.
    let stream = unsafe { libc::fdopendir(dup) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, `dup` is still ours to close.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    // The dup shares the file offset with `dir`: start from the beginning.
    // SAFETY: valid stream.
    unsafe { libc::rewinddir(stream) };
    let mut out = Vec::new();
    let result = loop {
        // SAFETY: errno reset to tell the end of the stream from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: valid stream.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            // SAFETY: reading errno.
            let errno = unsafe { *libc::__errno_location() };
            break if errno == 0 {
                Ok(out)
            } else {
                Err(io::Error::from_raw_os_error(errno))
            };
        }
        // SAFETY: readdir returned a valid entry with a NUL-terminated name.
        let (name, d_type) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let is_dir = match d_type {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => {
                // SAFETY: zeroed stat is valid storage; valid fd and name.
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                let rc = unsafe {
                    libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
                };
                if rc < 0 {
                    break Err(io::Error::last_os_error());
                }
                st.st_mode & libc::S_IFMT == libc::S_IFDIR
            }
            _ => false,
        };
        out.push((name.to_owned(), is_dir));
    };
    // SAFETY: closes the stream and its dup'ed fd.
    unsafe { libc::closedir(stream) };
    result
}

fn open_dir(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: valid fd and C string.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unlink(dir: RawFd, name: &CStr, is_dir: bool) -> io::Result<()> {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and C string.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), flags) } < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::NotFound {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn removes_a_tree_deeper_than_the_stack_and_the_fd_window() {
        let tmp = tempfile_dir();
        let top = tmp.join("t");
        fs::create_dir(&top).unwrap();
        // 3000 levels through relative mkdirs (paths beyond PATH_MAX).
        let mut fd = open_dir(libc::AT_FDCWD, &crate::c_string(top.as_os_str()).unwrap()).unwrap();
        for i in 0..3000 {
            let d = CString::new(if i % 2 == 0 { "d" } else { "e" }).unwrap();
            assert_eq!(
                unsafe { libc::mkdirat(fd.as_raw_fd(), d.as_ptr(), 0o755) },
                0
            );
            let f = CString::new("f").unwrap();
            let ffd = unsafe {
                libc::openat(
                    fd.as_raw_fd(),
                    f.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY,
                    0o644,
                )
            };
            assert!(ffd >= 0);
            unsafe { libc::close(ffd) };
            fd = open_dir(fd.as_raw_fd(), &d).unwrap();
        }
        drop(fd);
        std::os::unix::fs::symlink("/etc", top.join("link")).unwrap();
        remove_all(&top).unwrap();
        assert!(!top.exists());
        assert!(Path::new("/etc/passwd").exists(), "followed a symlink");
        remove_all(&top).unwrap();
        fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn removes_a_file_and_ignores_missing() {
        let tmp = tempfile_dir();
        let f = tmp.join("f");
        fs::write(&f, b"x").unwrap();
        remove_all(&f).unwrap();
        assert!(!f.exists());
        remove_all(&tmp.join("missing")).unwrap();
        fs::remove_dir_all(&tmp).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "berth-tree-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir(&d).unwrap();
        d
    }
}
