//! The `cgroup` mount type: what a container sees at /sys/fs/cgroup. The
//! container's own cgroup directories are bound in from the host, on
//! cgroup v2, v1 and hybrid hosts alike.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::mounts::{bind, mkdir_all, MountContext};
use super::options::Options;
use crate::error::{Context, Result};

const HOST_CGROUP: &str = "/sys/fs/cgroup";

/// One line of /proc/self/cgroup: "ID:controllers:path".
struct Line<'a> {
    controllers: &'a str,
    path: &'a str,
}

fn parse_line(l: &str) -> Option<Line<'_>> {
    let mut parts = l.splitn(3, ':');
    let _id = parts.next()?;
    let controllers = parts.next()?;
    let path = parts.next()?;
    Some(Line { controllers, path })
}

fn host_is_unified() -> bool {
    nix::sys::statfs::statfs(HOST_CGROUP)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

fn host_dir(base: &str, path: &str) -> PathBuf {
    Path::new(HOST_CGROUP)
        .join(base)
        .join(path.trim_start_matches('/'))
}

pub fn mount_cgroups(dest: &Path, opts: &Options, ctx: &MountContext) -> Result<()> {
    mkdir_all(dest)?;
    let keep = opts.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    let ro = opts.flags & MsFlags::MS_RDONLY;
    if host_is_unified() {
        if ctx.new_cgroup_ns {
            return mount(
                Some("cgroup2"),
                dest,
                Some("cgroup2"),
                keep | ro,
                None::<&str>,
            )
            .ctx(|| format!("mount cgroup2 on {}", dest.display()));
        }
        let own = ctx
            .cgroup_lines
            .iter()
            .filter_map(|l| parse_line(l))
            .find(|l| l.controllers.is_empty())
            .map(|l| l.path)
            .unwrap_or("/");
        return bind(&host_dir("", own), dest, keep | ro | MsFlags::MS_REC);
    }
    mount(Some("tmpfs"), dest, Some("tmpfs"), keep, Some("mode=755"))
        .ctx(|| format!("mount tmpfs on {}", dest.display()))?;
    for line in ctx.cgroup_lines.iter().filter_map(|l| parse_line(l)) {
        let base = if line.controllers.is_empty() {
            "unified".to_string()
        } else {
            line.controllers.trim_start_matches("name=").to_string()
        };
        let source = host_dir(&base, line.path);
        if !source.is_dir() {
            continue;
        }
        let target = dest.join(&base);
        mkdir_all(&target)?;
        bind(&source, &target, keep | ro)?;
        // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct".
        if base.contains(',') {
            for single in base.split(',') {
                let link = dest.join(single);
                if std::fs::symlink_metadata(&link).is_err() {
                    std::os::unix::fs::symlink(&base, &link)
                        .ctx(|| format!("symlink {}", link.display()))?;
                }
            }
        }
    }
    if !ro.is_empty() {
        mount(
            None::<&str>,
            dest,
            None::<&str>,
            MsFlags::MS_REMOUNT | keep | ro,
            Some("mode=755"),
        )
        .ctx(|| format!("remount {} read-only", dest.display()))?;
    }
    Ok(())
}
