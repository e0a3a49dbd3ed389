//! Which cgroup filesystems are mounted where, and which hierarchy serves
//! each controller. Works from a mountinfo text so detection is testable
//! with fake mount tables.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::CgroupError;

/// v1 controllers we recognise in a cgroup mount's super options.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The unified (cgroup2) mount and the controllers enabled at its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unified {
    pub mountpoint: PathBuf,
    pub controllers: Vec<String>,
}

/// The cgroup layout of a host: v1 hierarchies (possibly none), and the
/// unified hierarchy (possibly absent). Pure v2 has no v1 hierarchies;
/// hybrid has both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1 controller (or `name=xyz` for named hierarchies) → mountpoint.
    pub v1: BTreeMap<String, PathBuf>,
    pub unified: Option<Unified>,
}

/// Where one controller's files live for a given cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    V1(PathBuf),
    V2(PathBuf),
}

impl Hierarchy {
    /// Reads this process's mount table and the unified root's controllers.
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(|source| CgroupError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Hierarchy::from_mountinfo(&text, |mountpoint| {
            let file = mountpoint.join("cgroup.controllers");
            fs::read_to_string(&file)
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        })
    }

    /// Parses a mountinfo table. `unified_controllers` reads the controller
    /// list of a cgroup2 mountpoint (injected so tests need no real mount).
    pub fn from_mountinfo(
        text: &str,
        unified_controllers: impl Fn(&Path) -> Vec<String>,
    ) -> Result<Hierarchy, CgroupError> {
        let mut v1 = BTreeMap::new();
        let mut unified = None;
        for line in text.lines() {
            let Some(mount) = parse_mountinfo_line(line) else {
                continue;
            };
            match mount.fstype {
                "cgroup2" if unified.is_none() => {
                    let mountpoint = PathBuf::from(mount.mountpoint);
                    let controllers = unified_controllers(&mountpoint);
                    unified = Some(Unified {
                        mountpoint,
                        controllers,
                    });
                }
                "cgroup" => {
                    for opt in mount.super_options.split(',') {
                        let known = V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=");
                        if known && !v1.contains_key(opt) {
                            v1.insert(opt.to_owned(), PathBuf::from(mount.mountpoint));
                        }
                    }
                }
                _ => {}
            }
        }
        if v1.is_empty() && unified.is_none() {
            return Err(CgroupError::NoCgroupMount);
        }
        Ok(Hierarchy { v1, unified })
    }

    /// True when every controller lives in the unified hierarchy.
    pub fn is_pure_v2(&self) -> bool {
        self.v1.is_empty() && self.unified.is_some()
    }

    /// The directory holding `controller`'s files for the cgroup at `rel`
    /// (a path relative to the hierarchy roots). A v1 mount wins; otherwise
    /// the unified hierarchy if it offers the controller.
    pub fn placement(&self, controller: &str, rel: &str) -> Option<Placement> {
        if let Some(mountpoint) = self.v1.get(controller) {
            return Some(Placement::V1(join_rel(mountpoint, rel)));
        }
        let unified = self.unified.as_ref()?;
        // cgroup.freeze and the eBPF device hook are core cgroup2 features,
        // not listed in cgroup.controllers.
        let core = matches!(controller, "freezer" | "devices");
        if core || unified.controllers.iter().any(|c| c == controller) {
            return Some(Placement::V2(join_rel(&unified.mountpoint, rel)));
        }
        None
    }

    /// Every directory this cgroup has, one per distinct hierarchy: each v1
    /// mountpoint once (co-mounted controllers share one), then unified.
    pub fn all_dirs(&self, rel: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for mountpoint in self.v1.values() {
            let dir = join_rel(mountpoint, rel);
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        if let Some(unified) = &self.unified {
            dirs.push(join_rel(&unified.mountpoint, rel));
        }
        dirs
    }

    /// The mountpoint (hierarchy root) that contains `dir`.
    pub fn root_of(&self, dir: &Path) -> Option<PathBuf> {
        self.v1
            .values()
            .chain(self.unified.iter().map(|u| &u.mountpoint))
            .filter(|m| dir.starts_with(m))
            .max_by_key(|m| m.as_os_str().len())
            .cloned()
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    pub fn procs_dir(&self, rel: &str) -> Option<PathBuf> {
        for preferred in ["pids", "memory", "cpu", "freezer"] {
            if let Some(m) = self.v1.get(preferred) {
                return Some(join_rel(m, rel));
            }
        }
        if let Some(m) = self.v1.values().next() {
            return Some(join_rel(m, rel));
        }
        self.unified.as_ref().map(|u| join_rel(&u.mountpoint, rel))
    }
}

/// Joins a cgroup path like "/berth/abc" under a mountpoint. Never lets the
/// leading '/' replace the mountpoint (the cgroups-rs pitfall).
pub fn join_rel(mountpoint: &Path, rel: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mountpoint.to_path_buf()
    } else {
        mountpoint.join(rel)
    }
}

struct MountEntry<'a> {
    mountpoint: &'a str,
    fstype: &'a str,
    super_options: &'a str,
}

/// mountinfo: `id parent maj:min root mountpoint opts [optional...] - fstype source superopts`
fn parse_mountinfo_line(line: &str) -> Option<MountEntry<'_>> {
    let (pre, post) = line.split_once(" - ")?;
    let mountpoint = pre.split(' ').nth(4)?;
    let mut post = post.split(' ');
    let fstype = post.next()?;
    let _source = post.next()?;
    let super_options = post.next().unwrap_or("");
    Some(MountEntry {
        mountpoint,
        fstype,
        super_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    const PURE_V2: &str = "\
22 1 0:21 / /proc rw - proc proc rw
30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    fn hugetlb_only(_: &Path) -> Vec<String> {
        vec!["hugetlb".into()]
    }

    fn v2_all(_: &Path) -> Vec<String> {
        ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn hybrid_layout_is_detected() {
        let h = Hierarchy::from_mountinfo(HYBRID, hugetlb_only).unwrap();
        assert!(!h.is_pure_v2());
        assert_eq!(
            h.v1.get("cpuacct"),
            Some(&PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(
            h.v1.get("name=systemd"),
            Some(&PathBuf::from("/sys/fs/cgroup/systemd"))
        );
        assert!(!h.v1.contains_key("xattr"));
        assert_eq!(
            h.placement("memory", "/berth/x"),
            Some(Placement::V1("/sys/fs/cgroup/memory/berth/x".into()))
        );
        // hugetlb is not mounted as v1 here, so the unified hierarchy serves it.
        assert_eq!(
            h.placement("hugetlb", "/berth/x"),
            Some(Placement::V2("/sys/fs/cgroup/unified/berth/x".into()))
        );
        assert_eq!(h.placement("blkio", "/berth/x"), None);
        // cpu and cpuacct share one directory; unified comes last.
        let dirs = h.all_dirs("/berth/x");
        assert_eq!(dirs.len(), 6);
        assert_eq!(dirs[0], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth/x"));
        assert_eq!(
            dirs.last(),
            Some(&PathBuf::from("/sys/fs/cgroup/unified/berth/x"))
        );
        assert_eq!(
            h.procs_dir("/berth/x"),
            Some(PathBuf::from("/sys/fs/cgroup/pids/berth/x"))
        );
    }

    #[test]
    fn pure_v2_layout_is_detected() {
        let h = Hierarchy::from_mountinfo(PURE_V2, v2_all).unwrap();
        assert!(h.is_pure_v2());
        assert_eq!(
            h.placement("memory", "/a/b"),
            Some(Placement::V2("/sys/fs/cgroup/a/b".into()))
        );
        assert_eq!(
            h.placement("freezer", "/a/b"),
            Some(Placement::V2("/sys/fs/cgroup/a/b".into()))
        );
        assert_eq!(h.placement("net_cls", "/a/b"), None);
        assert_eq!(
            h.all_dirs("/a/b"),
            vec![PathBuf::from("/sys/fs/cgroup/a/b")]
        );
        assert_eq!(
            h.root_of(Path::new("/sys/fs/cgroup/a/b")),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let err =
            Hierarchy::from_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n", v2_all).unwrap_err();
        assert!(matches!(err, CgroupError::NoCgroupMount));
    }

    #[test]
    fn join_rel_never_escapes_the_mountpoint() {
        assert_eq!(
            join_rel(Path::new("/sys/fs/cgroup/memory"), "/berth/x"),
            PathBuf::from("/sys/fs/cgroup/memory/berth/x")
        );
        assert_eq!(
            join_rel(Path::new("/sys/fs/cgroup/memory"), "/"),
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }
}
