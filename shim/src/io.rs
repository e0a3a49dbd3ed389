//! File-descriptor plumbing: pipes for a process's stdio, the console socket
//! the runtime hands a pty master over, window sizes.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::fcntl::OFlag;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// A pipe; both ends close-on-exec (the runtime gets its end through dup2).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")
}

pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on an fd the caller owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn dev_null() -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    Ok(OwnedFd::from(f))
}

/// read(2) into `buf`; `Ok(0)` is end of file. EIO from a pty master (every
/// slave closed) also counts as end of file.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EIO) {
        return Ok(0);
    }
    Err(e)
}

/// write(2) (send(2) with MSG_NOSIGNAL on sockets would also do; SIGPIPE is
/// ignored in this process, so EPIPE comes back as an error either way).
pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n >= 0 {
        Ok(n as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

pub fn set_window_size(pty: &OwnedFd, width: u16, height: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass.
    if unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Longest socket path used as is; `sun_path` holds 108 bytes.
const MAX_SOCKET_PATH: usize = 100;

/// A name for `path` that fits in `sun_path`: the path itself, or
/// `/proc/<our pid>/fd/<dir fd>/<name>` through an open handle on its
/// directory (usable by other root processes too, as long as the handle is
/// kept open).
pub struct SocketPath {
    pub path: PathBuf,
    pub short: PathBuf,
    _dir: Option<std::fs::File>,
}

impl SocketPath {
    pub fn new(path: &Path) -> Result<SocketPath> {
        if path.as_os_str().len() <= MAX_SOCKET_PATH {
            return Ok(SocketPath {
                path: path.to_path_buf(),
                short: path.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            bail!("socket path {} has no directory", path.display());
        };
        let dir_file =
            std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
        let short = PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            dir_file.as_raw_fd()
        ))
        .join(name);
        Ok(SocketPath {
            path: path.to_path_buf(),
            short,
            _dir: Some(dir_file),
        })
    }

    pub fn bind(&self) -> Result<UnixListener> {
        let _ = std::fs::remove_file(&self.path);
        let l = UnixListener::bind(&self.short)
            .with_context(|| format!("binding {}", self.path.display()))?;
        l.set_nonblocking(true)?;
        // Whoever can connect controls the container: owner only.
        std::fs::set_permissions(&self.short, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod {}", self.path.display()))?;
        Ok(l)
    }
}

/// The socket passed as `--console-socket`: the runtime connects and sends
/// the pty master with SCM_RIGHTS. The file is removed on drop.
pub struct ConsoleSocket {
    listener: UnixListener,
    path: SocketPath,
}

impl ConsoleSocket {
    pub fn bind(path: &Path) -> Result<ConsoleSocket> {
        let path = SocketPath::new(path)?;
        let listener = path.bind().context("console socket")?;
        Ok(ConsoleSocket { listener, path })
    }

    /// The name to give the runtime.
    pub fn connect_path(&self) -> &Path {
        &self.path.short
    }

    /// Takes the pty master from the connection the runtime made. Called
    /// after the runtime command returned, so the connection is queued.
    pub fn receive(&self) -> Result<OwnedFd> {
        let (stream, _) = match self.listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                bail!("the runtime did not connect to the console socket")
            }
            Err(e) => return Err(e).context("accepting on the console socket"),
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receiving the pty master")?;
        let mut master = None;
        for cmsg in msg.cmsgs().context("reading control messages")? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for fd in fds {
                    // SAFETY: SCM_RIGHTS just installed this fd in our table;
                    // nothing else owns it.
                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                    if master.is_none() {
                        master = Some(owned);
                    }
                }
            }
        }
        master.ok_or_else(|| anyhow!("the runtime sent no file descriptor on the console socket"))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path.path);
    }
}
