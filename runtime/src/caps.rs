//! Capabilities: the five sets of process.capabilities.

use std::collections::HashSet;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use crate::error::{Error, Result};

/// Kernel capability numbers of a set, skipping ones this kernel does not
/// know (as runc does: a newer profile must still run on an older kernel).
pub fn numbers(set: &Capabilities) -> Result<Vec<u8>> {
    let last = last_cap();
    let mut out = Vec::new();
    for c in set {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| Error::invalid(format!("capability {c:?}")))?;
        let cap = caps::Capability::from_str(&name)
            .map_err(|_| Error::invalid(format!("unknown capability {name}")))?;
        if cap.index() <= last {
            out.push(cap.index());
        } else {
            crate::logging::warn(&format!("capability {name} is not known to this kernel"));
        }
    }
    out.sort_unstable();
    Ok(out)
}

pub fn parse_names(names: &[String]) -> Result<Capabilities> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value(serde_json::Value::String(n.clone()))
                .map_err(|_| Error::invalid(format!("unknown capability {n:?}")))
        })
        .collect()
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn mask(nums: &[u8]) -> u64 {
    nums.iter().fold(0u64, |m, n| m | (1u64 << n))
}

/// Drop every capability not in `bounding` from the bounding set. Needs
/// CAP_SETPCAP, so it runs before the uid changes.
pub fn drop_bounding(c: &LinuxCapabilities) -> Result<()> {
    let keep: HashSet<u8> = numbers(&c.bounding().clone().unwrap_or_default())?
        .into_iter()
        .collect();
    for n in 0..=last_cap() {
        if !keep.contains(&n) {
            // SAFETY: prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                return Err(Error::invalid(format!(
                    "drop capability {n} from the bounding set: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Set effective, permitted and inheritable in one capset(2), then the
/// ambient set.
pub fn apply_sets(c: &LinuxCapabilities) -> Result<()> {
    let eff = mask(&numbers(&c.effective().clone().unwrap_or_default())?);
    let perm = mask(&numbers(&c.permitted().clone().unwrap_or_default())?);
    let inh = mask(&numbers(&c.inheritable().clone().unwrap_or_default())?);
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: eff as u32,
            permitted: perm as u32,
            inheritable: inh as u32,
        },
        CapData {
            effective: (eff >> 32) as u32,
            permitted: (perm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    // SAFETY: capset with a valid v3 header and two data structs.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(Error::invalid(format!(
            "set capabilities: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    for n in numbers(&c.ambient().clone().unwrap_or_default())? {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                n as libc::c_ulong,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(Error::invalid(format!(
                "raise ambient capability {n}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_kernel_numbers() {
        let set =
            parse_names(&["CAP_CHOWN".into(), "CAP_KILL".into(), "NET_ADMIN".into()]).unwrap();
        assert_eq!(numbers(&set).unwrap(), vec![0, 5, 12]);
        assert!(parse_names(&["CAP_BOGUS".into()]).is_err());
    }
}
