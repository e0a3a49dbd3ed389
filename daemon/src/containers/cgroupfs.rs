//! Where the cgroup hierarchies are mounted, from a mountinfo table.

use std::path::PathBuf;

/// One cgroup file system mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The cgroup the mount shows as its root ("/" outside a cgroup namespace).
    pub root: String,
    pub mountpoint: PathBuf,
    /// v1: the super options (controllers, `name=…`); empty for cgroup2.
    pub options: Vec<String>,
}

/// The v1 hierarchies and the first cgroup2 mount, in table order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    pub v1: Vec<CgroupMount>,
    pub unified: Option<CgroupMount>,
}

/// The cgroup mounts of a `/proc/*/mountinfo` text.
pub fn parse(mountinfo: &str) -> CgroupMounts {
    let mut mounts = CgroupMounts::default();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let mount = |options: Vec<String>| CgroupMount {
            root: unescape(pre[3]),
            mountpoint: PathBuf::from(unescape(pre[4])),
            options,
        };
        match post[0] {
            "cgroup" => mounts
                .v1
                .push(mount(post[2].split(',').map(str::to_string).collect())),
            "cgroup2" if mounts.unified.is_none() => mounts.unified = Some(mount(Vec::new())),
            _ => {}
        }
    }
    mounts
}

/// This process's cgroup mounts (none when the table cannot be read).
pub fn of_this_process() -> CgroupMounts {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse(&t))
        .unwrap_or_default()
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_table() {
        let t = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
                 32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                 40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                 41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                 42 31 0:38 /x /mnt/un\\040ified rw - cgroup2 cgroup2 rw\n";
        let m = parse(t);
        assert_eq!(m.v1.len(), 2);
        assert_eq!(
            m.v1[0].mountpoint,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m.v1[0].options, ["rw", "cpu", "cpuacct"]);
        assert_eq!(m.v1[1].options, ["rw", "name=systemd"]);
        let u = m.unified.expect("unified");
        assert_eq!(u.mountpoint, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(u.root, "/");
        assert_eq!(unescape("/mnt/un\\040ified"), "/mnt/un ified");
    }
}
