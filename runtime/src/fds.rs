//! File descriptor hygiene before the container's program runs.

use crate::error::{Error, Result};

/// Mark every fd from `first` up close-on-exec, so nothing of the runtime
/// (state dir, sockets, host directories) reaches the container.
pub fn cloexec_from(first: u32) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes fd flags.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Older kernels: walk /proc/self/fd.
    let entries = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::invalid(format!("list /proc/self/fd: {e}")))?;
    let fds: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd as u32 >= first {
            // SAFETY: setting FD_CLOEXEC on an fd number; a closed fd just fails.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}
