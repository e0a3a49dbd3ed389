//! Thin, fd-based syscall wrappers for walking a container's filesystem
//! from the host without ever following a path outside it. Every path
//! argument here is a single component or a path resolved by the kernel
//! under `RESOLVE_IN_ROOT`.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

fn cstr(p: &OsStr) -> io::Result<CString> {
    CString::new(p.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `open(path)` of a trusted host path (a mount source the daemon chose).
pub fn open_host(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: valid NUL-terminated path; the fd is owned by the result.
    let fd = check(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(root, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`:
/// symlinks and `..` in `rel` are resolved as if `root` were `/`.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let rel: &OsStr = if rel.as_os_str().is_empty() {
        OsStr::new(".")
    } else {
        rel.as_os_str()
    };
    let c = cstr(rel)?;
    // SAFETY: open_how is plain data; zeroed is a valid starting value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    if flags & libc::O_CREAT != 0 {
        how.mode = u64::from(mode);
    }
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, NUL-terminated path, properly sized open_how.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a new fd we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// `openat(dir, name, flags | O_NOFOLLOW)` of one directory entry.
pub fn open_child(dir: BorrowedFd<'_>, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    // SAFETY: valid fd and path.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Create a regular file `name` in `dir`; fails if anything is there.
pub fn create_file(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid fd and path.
    let fd =
        check(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: zeroed stat is valid storage for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and stat buffer.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<libc::stat> {
    let c = cstr(name)?;
    // SAFETY: as above.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, path and buffer.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// The target of the symlink `fd` (an `O_PATH | O_NOFOLLOW` fd) or of
/// `name` in `fd` when `name` is not empty.
pub fn readlink_at(fd: BorrowedFd<'_>, name: &OsStr) -> io::Result<OsString> {
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid fd, path, and a buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(OsString::from_vec(buf))
}

pub fn mkdir_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and path.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn symlink_at(target: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let t = cstr(target)?;
    let c = cstr(name)?;
    // SAFETY: valid strings and fd.
    check(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), c.as_ptr()) }).map(drop)
}

/// Hard link the object `src` (an `O_PATH` fd) as `name` in `dir`.
pub fn link_fd_at(src: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let c = cstr(name)?;
    let empty = c"";
    // SAFETY: valid fds and strings; AT_EMPTY_PATH links the fd itself.
    check(unsafe {
        libc::linkat(
            src.as_raw_fd(),
            empty.as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    })
    .map(drop)
}

pub fn mknod_at(dir: BorrowedFd<'_>, name: &OsStr, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fd and path.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t, dev) })
        .map(drop)
}

pub fn unlink_at(dir: BorrowedFd<'_>, name: &OsStr, is_dir: bool) -> io::Result<()> {
    let c = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid fd and path.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
}

/// The `/proc/self/fd/N` path of `fd`: operations on it act on exactly the
/// object the fd refers to, whatever has been renamed or swapped since.
fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    // A decimal fd number never contains NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// chown of the object behind an `O_PATH` (or any) fd, not following it.
pub fn fchown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let empty = c"";
    // SAFETY: valid fd; AT_EMPTY_PATH operates on the fd itself.
    check(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            empty.as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// chmod of the object behind a non-symlink `O_PATH` fd.
pub fn fchmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let p = proc_fd_path(fd);
    // SAFETY: valid path string.
    check(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) }).map(drop)
}

fn timespec(secs: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    }
}

/// Set atime and mtime of the object behind a non-symlink fd.
pub fn set_times_fd(fd: BorrowedFd<'_>, atime: i64, mtime: i64) -> io::Result<()> {
    let p = proc_fd_path(fd);
    let times = [timespec(atime), timespec(mtime)];
    // SAFETY: valid path and a two-element timespec array.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

/// Set the times of `name` in `dir` without following it (symlinks).
pub fn set_times_nofollow(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    atime: i64,
    mtime: i64,
) -> io::Result<()> {
    let c = cstr(name)?;
    let times = [timespec(atime), timespec(mtime)];
    // SAFETY: valid fd, path and timespec array.
    check(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Names in the directory `dir` (without `.` and `..`), sorted.
pub fn read_dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    // A second fd for the stream: fdopendir takes ownership of it.
    let dup = open_child(dir, OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY)?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: raw is an open directory fd whose ownership passes to the DIR.
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so we still own raw.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; reset it to tell EOF from errors.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: d is a valid DIR stream until closedir below.
        let ent = unsafe { libc::readdir64(d) };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            break if err.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(err)
            };
        }
        // SAFETY: d_name is a NUL-terminated array inside a valid dirent.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    };
    // SAFETY: d is valid and closed exactly once.
    unsafe { libc::closedir(d) };
    result?;
    names.sort();
    Ok(names)
}

pub fn file_type(st: &libc::stat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

/// Open again the object behind `fd` (usually `O_PATH`) with `flags`:
/// exactly that inode, whatever its path has become since.
pub fn reopen(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    let p = proc_fd_path(fd);
    // SAFETY: valid path string.
    let fd = check(unsafe { libc::open(p.as_ptr(), flags | libc::O_CLOEXEC) })?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
