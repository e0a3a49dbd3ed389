//! Which namespaces to create or join, in the order the kernel needs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::error::{Context, Error, Result};

/// ioctl(NS_GET_NSTYPE): the CLONE_NEW* type of a namespace fd.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Name of the namespace under /proc/<pid>/ns/.
pub fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Join order: user first (it grants the rights for the rest), mount last
/// (joining it changes what paths mean).
pub const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// An existing namespace to join, already opened and type-checked.
pub struct Join {
    pub typ: LinuxNamespaceType,
    pub fd: OwnedFd,
}

/// The namespace plan of a config: what to join (by fd) and what to create.
pub struct Plan {
    pub join: Vec<Join>,
    pub create: Vec<LinuxNamespaceType>,
}

impl Plan {
    /// Open every `path` now, in the parent, so a wrong path or a path of the
    /// wrong kind fails before anything is created.
    pub fn from_spec(namespaces: &[LinuxNamespace]) -> Result<Plan> {
        let mut join = Vec::new();
        let mut create = Vec::new();
        for t in JOIN_ORDER {
            let Some(ns) = namespaces.iter().find(|n| n.typ() == t) else {
                continue;
            };
            match ns.path() {
                Some(path) => join.push(Join {
                    typ: t,
                    fd: open_ns(path, t)?,
                }),
                None => create.push(t),
            }
        }
        Ok(Plan { join, create })
    }

    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.create.contains(&t)
    }

    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.creates(t) || self.join.iter().any(|j| j.typ == t)
    }
}

pub fn open_ns(path: &Path, t: LinuxNamespaceType) -> Result<OwnedFd> {
    let fd: OwnedFd = std::fs::File::open(path)
        .ctx(|| format!("open {} namespace {}", proc_name(t), path.display()))?
        .into();
    // SAFETY: ioctl on an fd we own; NS_GET_NSTYPE takes no argument.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if kind < 0 || kind != clone_flag(t).bits() {
        return Err(Error::invalid(format!(
            "{} is not a {} namespace",
            path.display(),
            proc_name(t)
        )));
    }
    Ok(fd)
}

pub fn setns(j: &Join) -> Result<()> {
    nix::sched::setns(&j.fd, clone_flag(j.typ))
        .ctx(|| format!("join {} namespace", proc_name(j.typ)))
}

/// Brings up `lo` in the network namespace this process just created, as
/// runc does: a new network namespace starts with it down.
pub fn loopback_up() -> Result<()> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "socket for bringing up lo")?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req`, which
    // outlives both calls.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "read the flags of lo");
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) < 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| "bring up lo");
        }
    }
    Ok(())
}
