//! Capability sets: Docker's default set, CapAdd/CapDrop with `ALL`, and
//! everything for privileged containers.

use super::super::error::ContainerError;

/// Every capability the kernels we run on know (up to 6.x), in bit order.
pub const ALL: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// What an unprivileged Docker container gets.
pub const DEFAULT: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; `all` → `ALL`.
fn normalize(name: &str) -> Result<String, ContainerError> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(ContainerError::InvalidParameter(format!(
            "invalid CapAdd: unknown capability: \"{name}\""
        )))
    }
}

/// berthd's own bounding set: a container cannot get capabilities the
/// daemon does not have (some sandboxes withhold e.g. CAP_SYS_RESOURCE).
fn host_bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(u64::MAX)
}

/// Every capability the daemon may hand out.
fn all_available() -> Vec<&'static str> {
    let bounding = host_bounding_set();
    ALL.iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The effective set for a container, in a stable order.
pub fn effective(
    privileged: bool,
    cap_add: &[String],
    cap_drop: &[String],
) -> Result<Vec<String>, ContainerError> {
    let available = all_available();
    if privileged {
        return Ok(available.iter().map(|c| c.to_string()).collect());
    }
    let adds = cap_add
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drops = cap_drop
        .iter()
        .map(|c| {
            normalize(c).map_err(|_| {
                ContainerError::InvalidParameter(format!(
                    "invalid CapDrop: unknown capability: \"{c}\""
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let add_all = adds.iter().any(|c| c == "ALL");
    let drop_all = drops.iter().any(|c| c == "ALL");
    // As dockerd: adds win over drops, and "drop ALL" keeps what is added.
    let base: Vec<&str> = if add_all {
        available.clone()
    } else if drop_all {
        Vec::new()
    } else {
        DEFAULT.to_vec()
    };
    let out = available
        .iter()
        .filter(|cap| {
            let added = add_all || adds.iter().any(|a| a == *cap);
            let dropped = !add_all && drops.iter().any(|d| d == *cap);
            added || (base.contains(cap) && !dropped)
        })
        .map(|c| c.to_string())
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_set_and_changes() {
        let d = effective(false, &[], &[]).unwrap();
        assert_eq!(d.len(), DEFAULT.len());
        let d = effective(false, &s(&["net_admin"]), &s(&["CHOWN", "cap_kill"])).unwrap();
        assert!(d.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!d.contains(&"CAP_CHOWN".to_string()));
        assert!(!d.contains(&"CAP_KILL".to_string()));
        let d = effective(false, &s(&["NET_BIND_SERVICE"]), &s(&["ALL"])).unwrap();
        assert_eq!(d, s(&["CAP_NET_BIND_SERVICE"]));
        let n = all_available().len();
        assert!(n >= DEFAULT.len());
        assert_eq!(effective(false, &s(&["ALL"]), &[]).unwrap().len(), n);
        assert_eq!(effective(true, &[], &s(&["ALL"])).unwrap().len(), n);
    }

    #[test]
    fn unknown_capability_is_rejected() {
        let e = effective(false, &s(&["FLY"]), &[]).unwrap_err();
        assert_eq!(e.to_string(), "invalid CapAdd: unknown capability: \"FLY\"");
    }
}
