//! One `mounts[]` entry of config.json, mounted inside the new root.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::options::{self, Options};
use super::resolve::secure_join;
use crate::error::{Context, Error, Result};

/// Facts about the container the mount code needs.
pub struct MountContext<'a> {
    pub bundle: &'a Path,
    /// Lines of /proc/self/cgroup as seen before any cgroup namespace.
    pub cgroup_lines: &'a [String],
    pub new_cgroup_ns: bool,
}

pub fn mount_entry(rootfs: &Path, m: &Mount, ctx: &MountContext) -> Result<()> {
    let opts = options::parse(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = secure_join(rootfs, m.destination())?;
    if opts.is_bind() {
        return bind_entry(m, &dest, &opts, ctx);
    }
    match typ {
        "cgroup" | "cgroup2" => super::cgroupfs::mount_cgroups(&dest, &opts, ctx),
        _ => {
            mkdir_all(&dest)?;
            let source = m
                .source()
                .as_ref()
                .map(|s| s.as_os_str().to_os_string())
                .unwrap_or_else(|| typ.into());
            let flags = opts.flags - MsFlags::MS_REMOUNT;
            mount(
                Some(source.as_os_str()),
                &dest,
                Some(typ),
                flags,
                opts.data_string().as_deref(),
            )
            .ctx(|| format!("mount {typ} on {}", m.destination().display()))?;
            apply_propagation(&dest, &opts)
        }
    }
}

fn bind_entry(m: &Mount, dest: &Path, opts: &Options, ctx: &MountContext) -> Result<()> {
    let source = m.source().as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "bind mount on {} has no source",
            m.destination().display()
        ))
    })?;
    let source = if source.is_absolute() {
        source.clone()
    } else {
        ctx.bundle.join(source)
    };
    let meta = std::fs::metadata(&source).ctx(|| format!("bind source {}", source.display()))?;
    if meta.is_dir() {
        mkdir_all(dest)?;
    } else {
        create_file(dest)?;
    }
    bind(&source, dest, opts.flags)?;
    apply_propagation(dest, opts)
}

/// Bind `source` on `dest` and apply the flags a bind cannot take directly
/// (ro, nosuid, ...) with a remount.
pub fn bind(source: &Path, dest: &Path, flags: MsFlags) -> Result<()> {
    let rec = flags & MsFlags::MS_REC;
    mount(
        Some(source),
        dest,
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on {}", source.display(), dest.display()))?;
    let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if !extra.is_empty() {
        remount(dest, extra)?;
    }
    Ok(())
}

/// Remount a bind mount with `flags`, keeping the flags the kernel locks
/// (in a user namespace dropping nosuid/nodev/noexec is refused).
pub fn remount(dest: &Path, flags: MsFlags) -> Result<()> {
    let base = MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    match mount(None::<&str>, dest, None::<&str>, base | flags, None::<&str>) {
        Ok(()) => Ok(()),
        Err(nix::Error::EPERM) => {
            let locked = locked_flags(dest);
            mount(
                None::<&str>,
                dest,
                None::<&str>,
                base | flags | locked,
                None::<&str>,
            )
            .ctx(|| format!("remount {} with {flags:?}", dest.display()))
        }
        Err(e) => Err(e).ctx(|| format!("remount {} with {flags:?}", dest.display())),
    }
}

fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        // ST_RELATIME: nix names it for glibc only.
        (FsFlags::from_bits_retain(0x1000), MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

pub fn apply_propagation(dest: &Path, opts: &Options) -> Result<()> {
    for p in &opts.propagation {
        mount(None::<&str>, dest, None::<&str>, *p, None::<&str>)
            .ctx(|| format!("set propagation {p:?} on {}", dest.display()))?;
    }
    Ok(())
}

pub fn mkdir_all(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).ctx(|| format!("create directory {}", p.display()))
}

/// Make an empty file to bind a non-directory on (parents included).
pub fn create_file(p: &Path) -> Result<PathBuf> {
    if let Some(parent) = p.parent() {
        mkdir_all(parent)?;
    }
    if std::fs::symlink_metadata(p).is_err() {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .ctx(|| format!("create {}", p.display()))?;
    }
    Ok(p.to_path_buf())
}
