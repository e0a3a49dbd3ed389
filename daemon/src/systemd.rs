//! sd_notify: state changes for a service manager, as datagrams to
//! $NOTIFY_SOCKET (a path, or an abstract name starting with '@'). The
//! protocol is one send per message, so std's UnixDatagram does it without
//! a library. Without NOTIFY_SOCKET (not under systemd) nothing is sent.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (newline-separated KEY=VALUE lines); failures are logged,
/// never fatal.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let result = (|| -> std::io::Result<()> {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(&path)?,
        };
        let sock = UnixDatagram::unbound()?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(socket = ?path, error = %e, "sd_notify");
    }
}

/// RELOADING=1 with the monotonic timestamp systemd asks for.
pub fn reloading() {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let usec = if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) } == 0 {
        t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1000
    } else {
        0
    };
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration"
    ));
}
