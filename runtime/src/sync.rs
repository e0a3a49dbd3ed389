//! The parent ↔ child channel used while building a container: a
//! SOCK_SEQPACKET socketpair carrying one JSON message per packet.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// Parent → child: carry on (cgroup joined, maps written, hooks run).
    Go,
    /// Child → parent: joining the cgroup by itself failed; move me by pid.
    WantCgroup,
    /// Child → parent: please write uid/gid maps for me.
    WantIdMaps,
    /// Stage 1 → parent: host pid of the process that becomes the container.
    Pid(i32),
    /// Init → parent: mounts are set up; run prestart/createRuntime hooks.
    RunCreateHooks,
    /// Child → parent: ready (created / exec about to run).
    Ready,
    /// Child → parent: it failed.
    Failed(String),
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// Close this end in a forked child that never returns (its OwnedFd is
    /// never dropped there, so there is no double close).
    pub fn close_in_child(&self) {
        // SAFETY: closing an fd the child owns a copy of.
        unsafe { libc::close(self.fd.as_raw_fd()) };
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        let data = serde_json::to_vec(msg).map_err(|e| Error::invalid(format!("encode: {e}")))?;
        nix::unistd::write(&self.fd, &data).ctx(|| "write to sync socket")?;
        Ok(())
    }

    /// The next message; the peer closing its end is an error.
    pub fn recv(&self) -> Result<Msg> {
        self.recv_or_eof()?
            .ok_or_else(|| Error::invalid("container process exited during setup"))
    }

    /// The next message, or None once every peer closed its end (the
    /// socket is close-on-exec, so that is how a successful execve shows).
    pub fn recv_or_eof(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 65536];
        let n = loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Err(nix::Error::EINTR) => continue,
                r => break r.ctx(|| "read from sync socket")?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::invalid(format!("bad sync message: {e}")))
    }

    /// Receive, turning `Failed` into an error and checking the kind.
    pub fn expect(&self, what: &str, pred: impl Fn(&Msg) -> bool) -> Result<Msg> {
        match self.recv()? {
            Msg::Failed(e) => Err(Error::Invalid(e)),
            m if pred(&m) => Ok(m),
            m => Err(Error::invalid(format!("expected {what}, got {m:?}"))),
        }
    }
}
