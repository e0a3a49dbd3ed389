//! Terminals: the container gets a new pty from its own devpts; the master
//! goes to the caller through the console socket (SCM_RIGHTS), as runc does.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result};

pub fn connect_console_socket(path: &Path) -> Result<OwnedFd> {
    let s =
        UnixStream::connect(path).ctx(|| format!("connect console socket {}", path.display()))?;
    Ok(s.into())
}

/// Inside the container (after pivot_root): make a pty, bind its slave on
/// /dev/console, send the master, and make the slave our controlling
/// terminal and stdio.
pub fn setup(socket: &OwnedFd, size: Option<(u16, u16)>, mount_console: bool) -> Result<()> {
    let master = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| "open /dev/ptmx in the container")?;
    // SAFETY: open returned a new fd we now own.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    // SAFETY: unlockpt/ptsname_r on a pty master we own.
    let mut name = [0 as libc::c_char; 128];
    unsafe {
        if libc::unlockpt(master.as_raw_fd()) != 0 {
            return Err(Error::invalid(format!(
                "unlockpt: {}",
                std::io::Error::last_os_error()
            )));
        }
        if libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) != 0 {
            return Err(Error::invalid("ptsname failed"));
        }
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into `name`.
    let slave_path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let slave = open(
        slave_path.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open {slave_path}"))?;
    // SAFETY: open returned a new fd we now own.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    if mount_console {
        let console = Path::new("/dev/console");
        if std::fs::symlink_metadata(console).is_err() {
            std::fs::File::create(console).ctx(|| "create /dev/console")?;
        }
        mount(
            Some(slave_path.as_str()),
            console,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .ctx(|| "bind pty on /dev/console")?;
    }
    send_fd(socket, &master, "/dev/ptmx")?;
    drop(master);
    nix::unistd::setsid().ok();
    // SAFETY: TIOCSCTTY on the slave we own.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(Error::invalid(format!(
            "set controlling terminal: {}",
            std::io::Error::last_os_error()
        )));
    }
    for target in 0..3 {
        nix::unistd::dup2(slave.as_raw_fd(), target).ctx(|| "dup pty onto stdio")?;
    }
    Ok(())
}

pub fn send_fd(socket: &OwnedFd, fd: &OwnedFd, name: &str) -> Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .ctx(|| "send pty master over the console socket")?;
    Ok(())
}

/// The fd sent with `send_fd` (the pty master), from our end of the pair.
pub fn recv_fd(socket: &OwnedFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ctx(|| "receive pty master")?;
    for c in msg.cmsgs().ctx(|| "read control messages")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Error::invalid("no pty master received from the container"))
}

/// A connected pair standing in for --console-socket when we proxy the
/// terminal ourselves: (our end, the end handed to the container).
pub fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    let (a, b) = UnixStream::pair().ctx(|| "socketpair for the console")?;
    Ok((a.into(), b.into()))
}
