//! Building the container's filesystem view inside its mount namespace:
//! `prepare` (mounts and devices under the rootfs), then `enter`
//! (pivot_root), then `finish` (masked/read-only paths, read-only root).
//! Without a mount namespace of its own (see `hostns`) nothing touches the
//! host's `/`: the mounts go below a private bind of the rootfs and `enter`
//! is a chroot.

pub mod cgroupfs;
pub mod devices;
pub mod hostns;
pub mod mounts;
pub mod options;
pub mod paths;
pub mod pivot;
pub mod resolve;

use std::path::Path;

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Spec;

use crate::error::{Context, Error, Result};
pub use mounts::MountContext;

fn rootfs_propagation(spec: &Spec) -> Result<MsFlags> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    {
        None | Some("") => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        Some(p) => options::propagation(p)
            .ok_or_else(|| Error::invalid(format!("unknown rootfsPropagation {p:?}"))),
    }
}

pub fn prepare(
    rootfs: &Path,
    spec: &Spec,
    ctx: &MountContext,
    in_userns: bool,
    own_mount_ns: bool,
) -> Result<()> {
    let linux = spec.linux().as_ref();
    let propagation = rootfs_propagation(spec)?;
    // Nothing we mount may leak to the host: the whole tree becomes a slave
    // (or what rootfsPropagation asks) before the first mount. Shared waits
    // for `enter`, unbindable for `finish`: nothing can be bind-mounted from
    // an unbindable tree (the rootfs bind below, the masks).
    let first = if applied_late(propagation) {
        MsFlags::MS_SLAVE | MsFlags::MS_REC
    } else {
        propagation
    };
    if own_mount_ns {
        mount(None::<&str>, "/", None::<&str>, first, None::<&str>)
            .ctx(|| "set propagation of /")?;
    }
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .ctx(|| format!("bind rootfs {} on itself", rootfs.display()))?;
    if !own_mount_ns {
        // The host's tree: only our bind changes, and what is mounted below
        // it reaches no other namespace.
        mount(
            None::<&str>,
            rootfs,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("make rootfs {} private", rootfs.display()))?;
    }
    let mount_list = spec.mounts().as_deref().unwrap_or_default();
    for m in mount_list {
        mounts::mount_entry(rootfs, m, ctx)?;
    }
    let dev_is_tmpfs = mount_list.iter().any(|m| {
        m.destination() == Path::new("/dev")
            && m.typ().as_deref() != Some("bind")
            && !options::parse(m.options().as_deref().unwrap_or_default()).is_bind()
    });
    let has_devpts = mount_list
        .iter()
        .any(|m| m.destination() == Path::new("/dev/pts"));
    let configured = linux.and_then(|l| l.devices().clone()).unwrap_or_default();
    if dev_is_tmpfs || !configured.is_empty() {
        devices::create_devices(rootfs, &configured, dev_is_tmpfs, in_userns)?;
    }
    if dev_is_tmpfs {
        devices::create_symlinks(rootfs, has_devpts)?;
    }
    Ok(())
}

fn applied_late(propagation: MsFlags) -> bool {
    propagation.intersects(MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE)
}

/// Switch root. A shared rootfsPropagation is applied only now: pivot_root
/// refuses a shared new root.
pub fn enter(rootfs: &Path, no_pivot: bool, spec: &Spec, own_mount_ns: bool) -> Result<()> {
    if !own_mount_ns {
        // pivot_root or a move over / would change the host's root.
        nix::unistd::chroot(rootfs).ctx(|| format!("chroot {}", rootfs.display()))?;
        nix::unistd::chdir("/").ctx(|| "chdir /")?;
    } else if no_pivot {
        pivot::move_root(rootfs)?;
    } else {
        pivot::pivot(rootfs)?;
    }
    let propagation = rootfs_propagation(spec)?;
    if propagation.contains(MsFlags::MS_SHARED) {
        mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
            .ctx(|| "make / shared")?;
    }
    Ok(())
}

pub fn finish(spec: &Spec) -> Result<()> {
    if let Some(linux) = spec.linux() {
        for p in linux.masked_paths().as_deref().unwrap_or_default() {
            paths::mask(p)?;
        }
        for p in linux.readonly_paths().as_deref().unwrap_or_default() {
            paths::make_readonly(p)?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        paths::readonly_root()?;
    }
    let propagation = rootfs_propagation(spec)?;
    if propagation.contains(MsFlags::MS_UNBINDABLE) {
        mount(None::<&str>, "/", None::<&str>, propagation, None::<&str>)
            .ctx(|| "make / unbindable")?;
    }
    Ok(())
}

/// linux.sysctl, written once /proc is the container's.
pub fn write_sysctls(spec: &Spec) -> Result<()> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    for (key, value) in sysctl {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).ctx(|| format!("sysctl {key}={value}"))?;
    }
    Ok(())
}
