//! Facts about the host and the build, for /version and /info.

use std::path::Path;
use std::sync::OnceLock;

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct HostFacts {
    pub kernel_version: String,
    /// uname machine, e.g. x86_64 (Info.Architecture).
    pub architecture: String,
    /// Go's name for it, e.g. amd64 (Version.Arch).
    pub go_arch: &'static str,
    pub operating_system: String,
    pub os_version: String,
    pub hostname: String,
    pub ncpu: usize,
    pub mem_total: u64,
    pub cgroup: CgroupFacts,
}

#[derive(Debug, Clone, Default)]
pub struct CgroupFacts {
    /// "1" or "2" (the layout containers get: v1 when v1 controllers are
    /// mounted, even with the hybrid unified mount).
    pub version: &'static str,
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub kernel_memory_tcp: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    pub cpu_shares: bool,
    pub cpu_set: bool,
    pub pids_limit: bool,
    pub oom_kill_disable: bool,
}

/// Figures that do not change while berthd runs, read once.
pub fn facts() -> &'static HostFacts {
    static FACTS: OnceLock<HostFacts> = OnceLock::new();
    FACTS.get_or_init(read_facts)
}

fn read_facts() -> HostFacts {
    let uts = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uts.as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let architecture = field(|u| u.machine());
    let (operating_system, os_version) = os_release();
    HostFacts {
        kernel_version: field(|u| u.release()),
        go_arch: go_arch(&architecture),
        architecture,
        operating_system,
        os_version,
        hostname: field(|u| u.nodename()),
        ncpu: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        mem_total: mem_total(),
        cgroup: cgroup_facts(Path::new("/sys/fs/cgroup")),
    }
}

fn go_arch(machine: &str) -> &'static str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => "unknown",
    }
}

/// PRETTY_NAME and VERSION_ID from os-release.
fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    (
        get("PRETTY_NAME").unwrap_or_else(|| "Linux".into()),
        get("VERSION_ID").unwrap_or_default(),
    )
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn cgroup_facts(root: &Path) -> CgroupFacts {
    let unified_root = nix::sys::statfs::statfs(root)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    if unified_root {
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        return CgroupFacts {
            version: "2",
            memory_limit: has("memory"),
            swap_limit: has("memory")
                && (root.join("init.scope/memory.swap.max").exists()
                    || root.join("system.slice/memory.swap.max").exists()),
            kernel_memory_tcp: false,
            cpu_cfs_period: has("cpu"),
            cpu_cfs_quota: has("cpu"),
            cpu_shares: has("cpu"),
            cpu_set: has("cpuset"),
            pids_limit: has("pids"),
            oom_kill_disable: false,
        };
    }
    let exists = |p: &str| root.join(p).exists();
    CgroupFacts {
        version: "1",
        memory_limit: exists("memory/memory.limit_in_bytes"),
        swap_limit: exists("memory/memory.memsw.limit_in_bytes"),
        kernel_memory_tcp: exists("memory/memory.kmem.tcp.limit_in_bytes"),
        cpu_cfs_period: exists("cpu/cpu.cfs_period_us"),
        cpu_cfs_quota: exists("cpu/cpu.cfs_quota_us"),
        cpu_shares: exists("cpu/cpu.shares"),
        cpu_set: exists("cpuset/cpuset.cpus"),
        pids_limit: exists("pids/pids.max") || exists("pids"),
        oom_kill_disable: exists("memory/memory.oom_control"),
    }
}

/// overlay2's DriverStatus: the backing filesystem of the data root and
/// the overlay features berth uses.
pub fn driver_status(data_root: &Path) -> Vec<[String; 2]> {
    let backing = nix::sys::statfs::statfs(data_root)
        .map(|s| fs_name(s.filesystem_type()))
        .unwrap_or("unknown");
    vec![
        ["Backing Filesystem".into(), backing.into()],
        ["Supports d_type".into(), "true".into()],
        ["Using metacopy".into(), "false".into()],
        ["Native Overlay Diff".into(), "true".into()],
        ["userxattr".into(), "false".into()],
    ]
}

/// dockerd's names for common filesystems.
fn fs_name(fs: nix::sys::statfs::FsType) -> &'static str {
    use nix::sys::statfs::*;
    let known = [
        (EXT4_SUPER_MAGIC, "extfs"),
        (XFS_SUPER_MAGIC, "xfs"),
        (BTRFS_SUPER_MAGIC, "btrfs"),
        (TMPFS_MAGIC, "tmpfs"),
        (OVERLAYFS_SUPER_MAGIC, "overlayfs"),
        (NFS_SUPER_MAGIC, "nfs"),
    ];
    known
        .iter()
        .find(|(magic, _)| *magic == fs)
        .map(|(_, name)| *name)
        .unwrap_or("unknown")
}

pub fn ipv4_forwarding() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .map(|s| s.trim() == "1")
        .unwrap_or(false)
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A proxy variable (upper or lower case) with any password masked, as
/// dockerd shows it.
pub fn proxy_env(name: &str) -> String {
    let value = std::env::var(name)
        .or_else(|_| std::env::var(name.to_ascii_lowercase()))
        .unwrap_or_default();
    mask_userinfo(&value)
}

fn mask_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((_, host)) => format!("{scheme}://xxxxx:xxxxx@{host}"),
        None => url.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub git_commit: &'static str,
    pub rustc: &'static str,
    pub build_time: &'static str,
}

pub fn build_info() -> BuildInfo {
    BuildInfo {
        git_commit: env!("BERTH_GIT_COMMIT"),
        rustc: env!("BERTH_RUSTC_VERSION"),
        build_time: env!("BERTH_BUILD_TIME"),
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeVersion {
    pub version: String,
    pub commit: String,
}

/// `RUNTIME --version` of the default runtime (runc's format: "NAME version
/// X", "commit: Y"), asked once.
pub fn runtime_version(config: &Config) -> &'static RuntimeVersion {
    static VERSION: OnceLock<RuntimeVersion> = OnceLock::new();
    VERSION.get_or_init(|| {
        let Some((_, rt)) = config.runtime(None) else {
            return RuntimeVersion {
                version: "unknown".into(),
                commit: String::new(),
            };
        };
        match std::process::Command::new(&rt.path).arg("--version").output() {
            Ok(out) if out.status.success() => parse_runtime_version(&String::from_utf8_lossy(&out.stdout)),
            Ok(out) => {
                tracing::warn!(runtime = %rt.path.display(), status = %out.status, "runtime --version failed");
                RuntimeVersion { version: "unknown".into(), commit: String::new() }
            }
            Err(e) => {
                tracing::warn!(runtime = %rt.path.display(), error = %e, "cannot run runtime --version");
                RuntimeVersion { version: "unknown".into(), commit: String::new() }
            }
        }
    })
}

fn parse_runtime_version(text: &str) -> RuntimeVersion {
    let version = text
        .lines()
        .find_map(|l| l.split_once(" version ").map(|(_, v)| v.trim().to_string()))
        .or_else(|| text.lines().next().map(|l| l.trim().to_string()))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let commit = text
        .lines()
        .find_map(|l| l.strip_prefix("commit:"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    RuntimeVersion { version, commit }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_style_version() {
        let v =
            parse_runtime_version("runc version 1.1.5\ncommit: v1.1.5-0-gabc\nspec: 1.0.2-dev\n");
        assert_eq!(v.version, "1.1.5");
        assert_eq!(v.commit, "v1.1.5-0-gabc");
    }

    #[test]
    fn proxy_passwords_masked() {
        assert_eq!(
            mask_userinfo("http://u:secret@proxy:8080"),
            "http://xxxxx:xxxxx@proxy:8080"
        );
        assert_eq!(mask_userinfo("http://proxy:8080"), "http://proxy:8080");
        assert_eq!(mask_userinfo(""), "");
    }

    #[test]
    fn host_figures_are_real() {
        let f = facts();
        assert!(f.ncpu >= 1);
        assert!(f.mem_total > 0);
        assert!(!f.kernel_version.is_empty());
        assert!(f.cgroup.version == "1" || f.cgroup.version == "2");
    }
}
