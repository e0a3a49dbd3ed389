//! Running code inside a container's network namespace: a fresh OS thread
//! joins the namespace with setns(2) (which only moves the calling thread)
//! and ends afterwards, so no tokio worker ever changes namespace. Sockets
//! opened there stay in that namespace for their whole life.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `/proc/<pid>/ns/net`, opened.
pub fn open(pid: i32) -> io::Result<File> {
    if pid <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no process to join (pid {pid})"),
        ));
    }
    File::open(format!("/proc/{pid}/ns/net"))
}

/// Run `f` on a new thread inside the network namespace `ns`.
pub fn run_in<T: Send + 'static>(
    ns: &File,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.try_clone()?;
    std::thread::Builder::new()
        .name("berthd-netns".into())
        .spawn(move || {
            // SAFETY: setns on an fd we own; affects this thread only.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            f()
        })?
        .join()
        .map_err(|_| io::Error::other("network namespace worker panicked"))?
}
