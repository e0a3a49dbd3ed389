//! Noticing that a client went away while its response is quiet.
//!
//! hyper learns of a departed client only when it next writes to it, so a
//! streaming answer that has nothing to say (a pull stalled on a registry)
//! would run on for nobody. The server records each connection's socket in
//! the request's extensions; a handler takes a [`ClientWatch`] of it and
//! polls the socket for the peer's hang-up without reading from it, as
//! dockerd's handlers learn it from Go's connection close notification.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use axum::http::Extensions;

/// How often a quiet connection is checked.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// The socket of the connection a request came on (set by the server).
#[derive(Debug, Clone, Copy)]
pub struct ConnFd(pub RawFd);

/// A handle on a request's connection that outlives the handler's borrow.
pub struct ClientWatch {
    fd: Option<OwnedFd>,
}

impl ClientWatch {
    /// Must be called while the request is being handled (its connection
    /// is then open, so the descriptor is the connection's).
    pub fn of(ext: &Extensions) -> ClientWatch {
        let fd = ext.get::<ConnFd>().and_then(|c| {
            // SAFETY: the connection owning this descriptor is serving the
            // request being handled, so it is open; it is only borrowed to
            // duplicate it.
            let borrowed = unsafe { BorrowedFd::borrow_raw(c.0) };
            borrowed
                .try_clone_to_owned()
                .map_err(|e| tracing::debug!(error = %e, "duplicating a client socket"))
                .ok()
        });
        ClientWatch { fd }
    }

    /// Whether the peer has hung up (or the socket failed).
    pub fn is_gone(&self) -> bool {
        let Some(fd) = &self.fd else {
            return false;
        };
        // nix's poll flags lack POLLRDHUP (the peer shut its side down).
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd for an open descriptor, zero timeout.
        let n = unsafe { libc::poll(&mut pfd, 1, 0) };
        n > 0 && pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Resolves once the client has gone; never without a known socket.
    pub async fn gone(&self) {
        if self.fd.is_none() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if self.is_gone() {
                return;
            }
        }
    }

    #[cfg(test)]
    fn raw(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_hang_up_is_seen_without_reading() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut ext = Extensions::new();
        ext.insert(ConnFd(ours.as_raw_fd()));
        let w = ClientWatch::of(&ext);
        assert!(w.raw().is_some());
        assert!(!w.is_gone());
        drop(theirs);
        assert!(w.is_gone());
        assert!(!ClientWatch::of(&Extensions::new()).is_gone());
    }
}
