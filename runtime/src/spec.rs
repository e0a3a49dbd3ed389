//! Loading and checking a bundle's config.json, and the template `spec` writes.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Error, Result};

/// A parsed config.json with its paths made absolute.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

impl Bundle {
    /// Read and check `<dir>/config.json`. Nothing is created here, so a bad
    /// bundle leaves nothing behind.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::fs::canonicalize(dir).ctx(|| format!("bundle {}", dir.display()))?;
        let config = dir.join("config.json");
        let data = std::fs::read(&config).ctx(|| format!("read {}", config.display()))?;
        let spec: Spec = serde_json::from_slice(&data)
            .map_err(|e| Error::invalid(format!("parse {}: {e}", config.display())))?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::invalid("config.json has no root.path"))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            dir.join(root.path())
        };
        let rootfs =
            std::fs::canonicalize(&rootfs).ctx(|| format!("rootfs {}", rootfs.display()))?;
        if !rootfs.is_dir() {
            return Err(Error::invalid(format!(
                "rootfs {} is not a directory",
                rootfs.display()
            )));
        }
        validate(&spec)?;
        Ok(Bundle { dir, rootfs, spec })
    }
}

/// Checks that need no side effects: a process to run, known namespaces used
/// once, namespace paths that exist, a hostname only with a UTS namespace.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json has no process"))?;
    validate_process(process)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::invalid("config.json has no linux section"))?;
    let mut seen = Vec::new();
    for ns in linux.namespaces().as_deref().unwrap_or_default() {
        if seen.contains(&ns.typ()) {
            return Err(Error::invalid(format!(
                "namespace {} is listed twice",
                ns.typ()
            )));
        }
        seen.push(ns.typ());
        if let Some(path) = ns.path() {
            if let Err(e) = std::fs::metadata(path) {
                return Err(Error::invalid(format!(
                    "{} namespace path {}: {e}",
                    ns.typ(),
                    path.display()
                )));
            }
        }
    }
    let has = |t: LinuxNamespaceType| seen.contains(&t);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(Error::invalid(
            "unable to set hostname without a private UTS namespace",
        ));
    }
    if has(LinuxNamespaceType::User)
        && linux
            .namespaces()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none())
        && linux
            .uid_mappings()
            .as_deref()
            .unwrap_or_default()
            .is_empty()
    {
        return Err(Error::invalid(
            "a new user namespace needs linux.uidMappings and linux.gidMappings",
        ));
    }
    unsupported(spec)?;
    for key in linux
        .sysctl()
        .as_ref()
        .map(|m| m.keys())
        .into_iter()
        .flatten()
    {
        check_sysctl(key, &has)?;
    }
    Ok(())
}

/// A sysctl may only be set in a namespace the container has, or it would
/// change the host (runc applies the same rule).
fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.contains('/') || key.starts_with('.') {
        return Err(Error::invalid(format!("invalid sysctl name {key:?}")));
    }
    let ipc = matches!(
        key,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || key.starts_with("fs.mqueue.");
    let needed = if ipc {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(Error::invalid(format!(
            "sysctl {key:?} is not in a separate kernel namespace"
        )));
    };
    if !has(needed) {
        return Err(Error::invalid(format!(
            "sysctl {key:?} is not allowed without a {} namespace",
            crate::namespaces::proc_name(needed)
        )));
    }
    Ok(())
}

/// Settings berth-runtime cannot honour are refused rather than ignored. A
/// security label the user asked for must not vanish: on a host without
/// that LSM it is an error too, as in runc.
fn unsupported(spec: &Spec) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::invalid(format!(
            "{what} is not supported by berth-runtime"
        )))
    };
    let refuse_label = |what: &str, lsm: &str, enabled: bool| {
        if enabled {
            refuse(what)
        } else {
            Err(Error::invalid(format!(
                "{what} is set but {lsm} is not enabled on this host"
            )))
        }
    };
    if let Some(linux) = spec.linux() {
        if linux.time_offsets().is_some() {
            return refuse("linux.timeOffsets");
        }
        if linux.intel_rdt().is_some() {
            return refuse("linux.intelRdt");
        }
        if linux.memory_policy().is_some() {
            return refuse("linux.memoryPolicy");
        }
        if linux.personality().is_some() {
            return refuse("linux.personality");
        }
        if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
            return refuse("linux.netDevices");
        }
        if linux
            .mount_label()
            .as_deref()
            .is_some_and(|l| !l.is_empty())
        {
            return refuse_label("linux.mountLabel", "SELinux", selinux_enabled());
        }
    }
    if let Some(p) = spec.process() {
        if p.io_priority().is_some() {
            return refuse("process.ioPriority");
        }
        if p.scheduler().is_some() {
            return refuse("process.scheduler");
        }
        if p.exec_cpu_affinity().is_some() {
            return refuse("process.execCPUAffinity");
        }
        if p.apparmor_profile()
            .as_deref()
            .is_some_and(|a| !a.is_empty())
        {
            return refuse_label("process.apparmorProfile", "AppArmor", apparmor_enabled());
        }
        if p.selinux_label().as_deref().is_some_and(|l| !l.is_empty()) {
            return refuse_label("process.selinuxLabel", "SELinux", selinux_enabled());
        }
    }
    Ok(())
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    if process.args().as_deref().unwrap_or_default().is_empty() {
        return Err(Error::invalid("process.args must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::invalid(format!(
            "process.cwd {} must be an absolute path",
            process.cwd().display()
        )));
    }
    Ok(())
}

/// The config.json `spec` writes: the same shape as runc's template.
pub fn template() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_validates() {
        let spec: Spec = serde_json::from_value(template()).unwrap();
        validate(&spec).unwrap();
    }

    #[test]
    fn hostname_without_uts_is_rejected() {
        let mut v = template();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}]);
        let spec: Spec = serde_json::from_value(v).unwrap();
        let err = validate(&spec).unwrap_err().to_string();
        assert!(err.contains("UTS"), "{err}");
    }

    #[test]
    fn sysctls_need_their_namespace() {
        let mut v = template();
        v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        let spec: Spec = serde_json::from_value(v.clone()).unwrap();
        assert!(validate(&spec).is_ok());
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "uts"}]);
        let spec: Spec = serde_json::from_value(v.clone()).unwrap();
        let err = validate(&spec).unwrap_err().to_string();
        assert!(err.contains("net namespace"), "{err}");
        v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"});
        let spec: Spec = serde_json::from_value(v).unwrap();
        assert!(validate(&spec).is_err());
    }

    #[test]
    fn unsupported_settings_are_refused() {
        let mut v = template();
        v["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_OTHER"});
        let spec: Spec = serde_json::from_value(v).unwrap();
        let err = validate(&spec).unwrap_err().to_string();
        assert!(err.contains("process.scheduler"), "{err}");
    }

    #[test]
    fn missing_namespace_path_is_rejected() {
        let mut v = template();
        v["linux"]["namespaces"] = serde_json::json!([{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/nonexistent/ns"}]);
        let spec: Spec = serde_json::from_value(v).unwrap();
        let err = validate(&spec).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ns"), "{err}");
    }
}
