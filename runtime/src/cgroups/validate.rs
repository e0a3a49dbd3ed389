//! Refusing impossible limits before anything is created, so a bad config
//! leaves no cgroup behind and the error names the field.

use oci_spec::runtime::LinuxResources;

use super::CgroupError;

/// Below this a container is OOM-killed before its first instruction: the
/// runtime's own init is charged to the cgroup before it execs.
pub const MIN_MEMORY_LIMIT: i64 = 1024 * 1024;
/// The kernel's CFS bandwidth bounds (microseconds).
pub const MIN_CFS_US: i64 = 1000;
pub const MAX_CFS_PERIOD_US: u64 = 1_000_000;
pub const MAX_CPU_SHARES: u64 = 262_144;

fn bad(msg: String) -> CgroupError {
    CgroupError::InvalidLimit(msg)
}

pub fn validate(r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        if let Some(limit) = m.limit() {
            if limit != -1 && limit != 0 && !(MIN_MEMORY_LIMIT..).contains(&limit) {
                return Err(bad(format!(
                    "memory.limit {limit} is below the minimum of {MIN_MEMORY_LIMIT} bytes"
                )));
            }
        }
        if let Some(swap) = m.swap() {
            if swap < -1 {
                return Err(bad(format!("memory.swap {swap} is negative")));
            }
            if let Some(limit) = m.limit() {
                if swap > 0 && limit > 0 && swap < limit {
                    return Err(bad(format!(
                        "memory.swap {swap} (memory plus swap) is smaller than memory.limit {limit}"
                    )));
                }
            }
        }
        if let Some(res) = m.reservation() {
            if res < -1 {
                return Err(bad(format!("memory.reservation {res} is negative")));
            }
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(bad(format!("memory.swappiness {s} is above 100")));
            }
        }
    }
    if let Some(cpu) = r.cpu() {
        if let Some(quota) = cpu.quota() {
            if quota > 0 && quota < MIN_CFS_US {
                return Err(bad(format!(
                    "cpu.quota {quota} is below the kernel minimum of {MIN_CFS_US} microseconds"
                )));
            }
            if quota < -1 {
                return Err(bad(format!("cpu.quota {quota} is negative")));
            }
        }
        if let Some(period) = cpu.period() {
            if period != 0 && !(MIN_CFS_US as u64..=MAX_CFS_PERIOD_US).contains(&period) {
                return Err(bad(format!(
                    "cpu.period {period} is outside {MIN_CFS_US}..={MAX_CFS_PERIOD_US} microseconds"
                )));
            }
        }
        if let Some(shares) = cpu.shares() {
            if shares != 0 && !(2..=MAX_CPU_SHARES).contains(&shares) {
                return Err(bad(format!(
                    "cpu.shares {shares} is outside 2..={MAX_CPU_SHARES}"
                )));
            }
        }
        for (name, list) in [("cpus", cpu.cpus()), ("mems", cpu.mems())] {
            if let Some(list) = list {
                validate_cpu_list(name, list)?;
            }
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight() {
            if w != 0 && !(10..=1000).contains(&w) {
                return Err(bad(format!("blockIO.weight {w} is outside 10..=1000")));
            }
        }
    }
    Ok(())
}

/// "0-3,5" style lists.
fn validate_cpu_list(name: &str, list: &str) -> Result<(), CgroupError> {
    let ok = list.split(',').all(|part| {
        let part = part.trim();
        let mut bounds = part.splitn(2, '-');
        let lo = bounds.next().map(|s| s.parse::<u32>());
        let hi = bounds.next().map(|s| s.parse::<u32>());
        match (lo, hi) {
            (Some(Ok(_)), None) => true,
            (Some(Ok(a)), Some(Ok(b))) => a <= b,
            _ => false,
        }
    });
    if list.trim().is_empty() || ok {
        Ok(())
    } else {
        Err(bad(format!(
            "cpu.{name} {list:?} is not a list like \"0-2,4\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources, LinuxResourcesBuilder,
    };

    fn with_memory(limit: i64) -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(limit).build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn tiny_memory_limit_is_refused() {
        let err = validate(&with_memory(1)).unwrap_err();
        assert!(err.to_string().contains("memory.limit 1"), "{err}");
        assert!(validate(&with_memory(16 << 20)).is_ok());
        assert!(validate(&with_memory(-1)).is_ok());
    }

    #[test]
    fn cpu_bounds_are_checked() {
        let q = |quota: i64| {
            LinuxResourcesBuilder::default()
                .cpu(LinuxCpuBuilder::default().quota(quota).build().unwrap())
                .build()
                .unwrap()
        };
        assert!(validate(&q(999)).is_err());
        assert!(validate(&q(1000)).is_ok());
        assert!(validate(&q(-1)).is_ok());
        let p = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().period(10u64).build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&p).is_err());
        let c = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().cpus("0-1,x").build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&c).is_err());
        let c = LinuxResourcesBuilder::default()
            .cpu(LinuxCpuBuilder::default().cpus("0-1,3").build().unwrap())
            .build()
            .unwrap();
        assert!(validate(&c).is_ok());
    }
}
