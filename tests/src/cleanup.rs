//! Removes everything a test daemon may have left: processes (shims and
//! containers), mounts, cgroups, then the files. Order matters: files are
//! only deleted once nothing is mounted below them, so a bind mount of a host
//! directory can never be emptied by the clean-up.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Kills, unmounts and removes everything under `dir` and the cgroups named
/// `cgroup_parent` in every hierarchy.
pub fn remove_everything_under(dir: &Path, cgroup_parent: &str) {
    kill_processes_under(dir, cgroup_parent);
    unmount_under(dir);
    remove_cgroups(cgroup_parent);
    if mounts_under(dir).is_empty() {
        let _ = fs::remove_dir_all(dir);
    } else {
        eprintln!(
            "cleanup: mounts remain under {}, leaving its files in place",
            dir.display()
        );
    }
}

/// Processes that belong to a test daemon: their command line names `dir`
/// (shims, runtimes), their root is inside `dir` (containers), or they sit in
/// a cgroup below `cgroup_parent`.
pub fn processes_under(dir: &Path, cgroup_parent: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let dir_s = dir.display().to_string();
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let proc_dir = e.path();
        let cmdline = fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let root = fs::read_link(proc_dir.join("root")).unwrap_or_default();
        let cgroup = fs::read_to_string(proc_dir.join("cgroup")).unwrap_or_default();
        let in_cgroup = cgroup.lines().any(|l| {
            l.contains(&format!("/{cgroup_parent}/")) || l.ends_with(&format!("/{cgroup_parent}"))
        });
        if cmdline.contains(&dir_s) || root.starts_with(dir) || in_cgroup {
            pids.push(pid);
        }
    }
    pids
}

fn kill_processes_under(dir: &Path, cgroup_parent: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = processes_under(dir, cgroup_parent);
        if pids.is_empty() || Instant::now() > deadline {
            if !pids.is_empty() {
                eprintln!("cleanup: processes survive SIGKILL: {pids:?}");
            }
            return;
        }
        for pid in pids {
            // Thaw first: a frozen (paused) process does not die.
            // SAFETY: kill(2) on pids read from /proc.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        thaw_cgroups(cgroup_parent);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    points
}

fn unescape_mount_path(s: &str) -> PathBuf {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

fn unmount_under(dir: &Path) {
    for _ in 0..5 {
        let points = mounts_under(dir);
        if points.is_empty() {
            return;
        }
        for p in points {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
            // SAFETY: umount2 with a NUL-terminated path.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// Every cgroup hierarchy root mounted on this host.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|l| {
            l.split(" - ")
                .nth(1)
                .is_some_and(|t| t.starts_with("cgroup ") || t.starts_with("cgroup2 "))
        })
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .collect()
}

/// The directories named `cgroup_parent` directly below any hierarchy root.
pub fn cgroup_dirs(cgroup_parent: &str) -> Vec<PathBuf> {
    cgroup_roots()
        .into_iter()
        .map(|r| r.join(cgroup_parent))
        .filter(|p| p.is_dir())
        .collect()
}

/// Container cgroups: the directories directly below `cgroup_parent` in
/// every hierarchy.
pub fn container_cgroups(cgroup_parent: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = cgroup_dirs(cgroup_parent)
        .into_iter()
        .flat_map(|dir| fs::read_dir(dir).into_iter().flatten().flatten())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

fn thaw_cgroups(cgroup_parent: &str) {
    for d in cgroup_dirs(cgroup_parent) {
        for sub in walk_dirs(&d) {
            let _ = fs::write(sub.join("freezer.state"), "THAWED");
            let _ = fs::write(sub.join("cgroup.freeze"), "0");
        }
    }
}

fn remove_cgroups(cgroup_parent: &str) {
    for d in cgroup_dirs(cgroup_parent) {
        let mut dirs = walk_dirs(&d);
        dirs.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for sub in dirs {
            let _ = fs::remove_dir(&sub);
        }
    }
}

fn walk_dirs(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![d.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// The iptables chains of published ports of a daemon whose default bridge
/// is `bridge` (see daemon/src/network/portfwd.rs), as (table, chain).
pub fn port_chains(bridge: &str) -> Vec<(&'static str, String)> {
    vec![
        ("nat", format!("BERTH-{bridge}")),
        ("nat", format!("BERTH-{bridge}-POST")),
        ("filter", format!("BERTH-{bridge}")),
    ]
}

/// Deletes the published-port chains of the daemon on `bridge` and the
/// jumps into them.
pub fn remove_port_chains(bridge: &str) {
    use std::process::Command;
    let iptables = |args: &[&str]| Command::new("iptables").arg("-w").args(args).output();
    for (table, chain) in port_chains(bridge) {
        let Ok(out) = iptables(&["-t", table, "-S"]) else {
            continue;
        };
        for rule in String::from_utf8_lossy(&out.stdout).lines() {
            let words: Vec<&str> = rule.split_whitespace().collect();
            let jumps = words.windows(2).any(|w| w == ["-j", chain.as_str()]);
            if words.first() == Some(&"-A") && jumps {
                let mut args = vec!["-t", table, "-D"];
                args.extend(&words[1..]);
                let _ = iptables(&args);
            }
        }
        let _ = iptables(&["-t", table, "-F", &chain]);
        let _ = iptables(&["-t", table, "-X", &chain]);
    }
}

/// Deletes the bridge `name`, the veths enslaved to it, every iptables
/// rule that names it and the published-port chains of a daemon on it.
/// The bridges of the user networks a berthd data root records.
pub fn user_network_bridges(data_root: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(data_root.join("network/networks")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|n| n["predefined"] != serde_json::Value::Bool(true))
        .filter_map(|n| n["bridge"].as_str().map(str::to_owned))
        .filter(|b| !b.is_empty())
        .collect()
}

pub fn remove_network(name: &str) {
    remove_port_chains(name);
    use std::process::Command;
    let run = |args: &[&str]| Command::new(args[0]).args(&args[1..]).output();
    if let Ok(out) = run(&["ip", "-o", "link", "show", "master", name]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(ifname) = line
                .split(':')
                .nth(1)
                .map(|s| s.trim().split('@').next().unwrap_or(""))
            {
                if !ifname.is_empty() {
                    let _ = run(&["ip", "link", "del", ifname]);
                }
            }
        }
    }
    let _ = run(&["ip", "link", "del", name]);
    for table in ["nat", "filter"] {
        let Ok(out) = run(&["iptables", "-w", "-t", table, "-S"]) else {
            continue;
        };
        let rules = String::from_utf8_lossy(&out.stdout).into_owned();
        for rule in rules.lines() {
            let words: Vec<&str> = rule.split_whitespace().collect();
            if words.first() != Some(&"-A") || !words.contains(&name) {
                continue;
            }
            let mut args = vec!["iptables", "-w", "-t", table, "-D"];
            args.extend(&words[1..]);
            let _ = run(&args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/a\\040b"), PathBuf::from("/a b"));
        assert_eq!(unescape_mount_path("/plain"), PathBuf::from("/plain"));
    }
}
