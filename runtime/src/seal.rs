//! Protect the runtime binary from containers (CVE-2019-5736): before any
//! container code can see us, re-execute from a copy nobody can write, so
//! /proc/<pid>/exe of a runtime process is read-only.
//!
//! Callers that can (berth-shim) start us from such a view already, and
//! then nothing is done here.
//!
//! Fast path: a detached read-only bind mount of our binary
//! (`berth_common::readonly_exe`), which we execveat. Before Linux 5.12: a
//! helper thread makes a private mount namespace, binds our binary
//! read-only, opens it O_PATH and exits; the mount lives on, detached,
//! through that fd. No bytes are copied either way. Last resort: a sealed
//! memfd copy of the binary.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::mount::{mount, MsFlags};

use crate::error::{Context, Error, Result};

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Are we already running from a read-only mount or a sealed memfd?
pub fn is_sealed() -> bool {
    if let Ok(st) = nix::sys::statvfs::statvfs("/proc/self/exe") {
        if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
            return true;
        }
    }
    let Ok(f) = std::fs::File::open("/proc/self/exe") else {
        return false;
    };
    // SAFETY: F_GET_SEALS on an fd we own.
    let seals = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) };
    seals >= 0 && seals & SEALS == SEALS
}

/// Re-exec from a protected binary unless already done. Returns only on error.
pub fn ensure_sealed() -> Result<()> {
    if is_sealed() {
        return Ok(());
    }
    let exe = match berth_common::readonly_exe::open(std::path::Path::new("/proc/self/exe")) {
        Ok(fd) => fd,
        Err(e) => {
            crate::logging::debug(&format!(
                "detached read-only view of the runtime failed ({e}); binding it in a private namespace"
            ));
            match readonly_bind() {
                Ok(fd) => fd,
                Err(e) => {
                    crate::logging::debug(&format!(
                        "read-only bind of the runtime failed ({e}); copying to a memfd"
                    ));
                    sealed_memfd()?
                }
            }
        }
    };
    reexec(exe.as_raw_fd())
}

/// In a throwaway thread with its own mount namespace: bind our binary on
/// itself read-only and open it O_PATH (fds are shared with the thread).
fn readonly_bind() -> Result<OwnedFd> {
    let handle = std::thread::spawn(|| -> Result<RawFd> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS | nix::sched::CloneFlags::CLONE_NEWNS)
            .ctx(|| "unshare mount namespace")?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| "make / rslave")?;
        let path = std::fs::read_link("/proc/self/exe").ctx(|| "readlink /proc/self/exe")?;
        // The source must be a path in this (new) namespace: /proc/self/exe
        // points into the old one, which bind refuses.
        mount(
            Some(&path),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| format!("bind {}", path.display()))?;
        mount(
            None::<&str>,
            &path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .ctx(|| format!("remount {} read-only", path.display()))?;
        let fd = nix::fcntl::open(
            &path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| format!("open {}", path.display()))?;
        // Make sure the path still named the binary we are running.
        let (ours, bound) = (
            nix::sys::stat::stat("/proc/self/exe"),
            nix::sys::stat::fstat(fd),
        );
        match (ours, bound) {
            (Ok(a), Ok(b)) if a.st_dev == b.st_dev && a.st_ino == b.st_ino => Ok(fd),
            _ => {
                let _ = nix::unistd::close(fd);
                Err(Error::invalid(format!(
                    "{} is no longer the running binary",
                    path.display()
                )))
            }
        }
    });
    let fd = handle
        .join()
        .map_err(|_| Error::invalid("sealing thread panicked"))??;
    // SAFETY: the thread opened this fd for us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sealed_memfd() -> Result<OwnedFd> {
    let name = c"berth-runtime";
    const MFD_EXEC: libc::c_uint = 0x10;
    // SAFETY: memfd_create with a valid name; the fd is ours.
    let mut fd = unsafe {
        libc::memfd_create(
            name.as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | MFD_EXEC,
        )
    };
    if fd < 0 {
        // Kernels before 6.3 do not know MFD_EXEC.
        // SAFETY: as above.
        fd = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
    }
    if fd < 0 {
        return Err(Error::invalid(format!(
            "memfd_create: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fd is a fresh memfd we own.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(memfd);
    let mut exe = std::fs::File::open("/proc/self/exe").ctx(|| "open /proc/self/exe")?;
    std::io::copy(&mut exe, &mut file).ctx(|| "copy runtime binary into memfd")?;
    // SAFETY: F_ADD_SEALS on the memfd.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } != 0 {
        return Err(Error::invalid(format!(
            "seal memfd: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(file.into())
}

fn reexec(fd: RawFd) -> Result<()> {
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: NULL-terminated argv/envp of live CStrings; execveat only
    // returns on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Err(Error::invalid(format!(
        "re-exec sealed runtime: {}",
        std::io::Error::last_os_error()
    )))
}
