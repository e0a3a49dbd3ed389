//! cgroup v1 file writers and readers, one function per controller.

use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNetwork,
};

use super::fsutil::{exists, read, read_keyed, read_u64, read_u64_or_zero, write};
use super::stats::{self, Stats};
use super::CgroupError;

const MEMSW_LIMIT: &str = "memory.memsw.limit_in_bytes";
const MEM_LIMIT: &str = "memory.limit_in_bytes";

fn unsupported(what: &str, why: &str) -> CgroupError {
    CgroupError::Unsupported(what.to_owned(), why.to_owned())
}

pub fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().filter(|l| *l != 0);
    let mut swap = m.swap().filter(|s| *s != 0);
    // "Unlimited memory" with swap unsaid means unlimited memory+swap too;
    // otherwise the old memsw limit would still cap the container.
    if limit == Some(-1) && swap.is_none() && exists(dir, MEMSW_LIMIT) {
        swap = Some(-1);
    }
    if swap.is_some() && !exists(dir, MEMSW_LIMIT) {
        return Err(unsupported(
            "memory.swap",
            "the kernel has no swap accounting (memory.memsw.* is missing)",
        ));
    }
    match (limit, swap) {
        (Some(limit), Some(swap)) => {
            // memsw must stay >= limit after every single write: when the
            // limit grows (or swap becomes unlimited) raise memsw first.
            let current = read_u64(dir, MEM_LIMIT)?;
            let growing = limit == -1 || (limit as u64) > current;
            if swap == -1 || growing {
                write(dir, MEMSW_LIMIT, &swap.to_string())?;
                write(dir, MEM_LIMIT, &limit.to_string())?;
            } else {
                write(dir, MEM_LIMIT, &limit.to_string())?;
                write(dir, MEMSW_LIMIT, &swap.to_string())?;
            }
        }
        (Some(limit), None) => write(dir, MEM_LIMIT, &limit.to_string())?,
        (None, Some(swap)) => write(dir, MEMSW_LIMIT, &swap.to_string())?,
        (None, None) => {}
    }
    if let Some(res) = m.reservation().filter(|r| *r != 0) {
        write(dir, "memory.soft_limit_in_bytes", &res.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        write(dir, "memory.swappiness", &s.to_string())?;
    }
    if let Some(disable) = m.disable_oom_killer() {
        write(dir, "memory.oom_control", if disable { "1" } else { "0" })?;
    }
    set_kernel_memory(Some(dir), m);
    Ok(())
}

/// Kernel memory limits are deprecated (kmem limits are gone since 5.16), so
/// as runc 1.1 they never refuse a container: written where the host has the
/// file and accepts the value, otherwise dropped with a warning in the log.
/// `dir` is None where no v1 memory hierarchy exists (cgroup v2).
pub fn set_kernel_memory(dir: Option<&Path>, m: &LinuxMemory) {
    let wanted = [
        ("memory.kernel", "memory.kmem.limit_in_bytes", m.kernel()),
        (
            "memory.kernelTCP",
            "memory.kmem.tcp.limit_in_bytes",
            m.kernel_tcp(),
        ),
    ];
    for (what, file, value) in wanted {
        let Some(value) = value.filter(|v| *v != 0) else {
            continue;
        };
        let outcome = match dir {
            Some(dir) if exists(dir, file) => {
                write(dir, file, &value.to_string()).map_err(|e| e.to_string())
            }
            _ => Err(format!("{file} does not exist on this host")),
        };
        if let Err(why) = outcome {
            crate::logging::warn(&format!("ignoring {what} = {value}: {why}"));
        }
    }
}

pub fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = c.shares().filter(|s| *s != 0) {
        write(dir, "cpu.shares", &shares.to_string())?;
    }
    if let Some(period) = c.period().filter(|p| *p != 0) {
        write(dir, "cpu.cfs_period_us", &period.to_string())?;
    }
    if let Some(quota) = c.quota().filter(|q| *q != 0) {
        write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
    }
    if let Some(burst) = c.burst() {
        write(dir, "cpu.cfs_burst_us", &burst.to_string())?;
    }
    if let Some(period) = c.realtime_period().filter(|p| *p != 0) {
        write(dir, "cpu.rt_period_us", &period.to_string())?;
    }
    if let Some(runtime) = c.realtime_runtime().filter(|r| *r != 0) {
        write(dir, "cpu.rt_runtime_us", &runtime.to_string())?;
    }
    if let Some(idle) = c.idle() {
        write(dir, "cpu.idle", &idle.to_string())?;
    }
    Ok(())
}

pub fn set_cpuset(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// A fresh v1 cpuset cgroup has empty cpus/mems and refuses tasks until
/// they are filled in; fill every empty one on the way from `root` down to
/// `leaf` from its parent, top to bottom (a parent another start created a
/// moment ago may still be empty).
pub fn init_cpuset(root: &Path, leaf: &Path) -> Result<(), CgroupError> {
    let Ok(below) = leaf.strip_prefix(root) else {
        return Ok(());
    };
    let mut dir = root.to_path_buf();
    for part in below.components() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if read(&dir, file)?.trim().is_empty() {
                write(&dir, file, read(&parent, file)?.trim())?;
            }
        }
    }
    Ok(())
}

pub fn set_pids(dir: &Path, limit: i64) -> Result<(), CgroupError> {
    let value = if limit > 0 {
        limit.to_string()
    } else {
        "max".to_owned()
    };
    write(dir, "pids.max", &value)
}

/// Writes device rules in order; with the v1 semantics each rule updates
/// the list, so a later rule overrides an earlier one for the same device.
pub fn set_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    for rule in rules {
        let file = if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        write(dir, file, &device_rule_line(rule))?;
    }
    Ok(())
}

/// "c 1:3 rwm", "a *:* rwm", ...
pub fn device_rule_line(rule: &LinuxDeviceCgroup) -> String {
    let typ = rule.typ().map(|t| t.as_str().to_owned());
    let typ = typ.as_deref().unwrap_or("a");
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_owned(), |n| n.to_string())
    };
    let access = rule.access().clone().unwrap_or_else(|| "rwm".to_owned());
    format!("{typ} {}:{} {access}", num(rule.major()), num(rule.minor()))
}

pub fn set_blkio(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let weight_file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| exists(dir, f));
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let file = weight_file.ok_or_else(|| {
            unsupported(
                "blockIO.weight",
                "no blkio.weight (needs the BFQ scheduler)",
            )
        })?;
        write(dir, file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        if !exists(dir, "blkio.leaf_weight") {
            return Err(unsupported("blockIO.leafWeight", "no blkio.leaf_weight"));
        }
        write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            let file = ["blkio.weight_device", "blkio.bfq.weight_device"]
                .into_iter()
                .find(|f| exists(dir, f))
                .ok_or_else(|| {
                    unsupported("blockIO.weightDevice", "no blkio weight_device file")
                })?;
            write(dir, file, &format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            write(
                dir,
                file,
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

pub fn set_hugepages(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for l in limits {
        let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
        if !exists(dir, &file) {
            return Err(unsupported(
                "hugepageLimits",
                &format!("page size {:?} is not offered by the kernel", l.page_size()),
            ));
        }
        write(dir, &file, &l.limit().to_string())?;
    }
    Ok(())
}

/// `rdma.max`, one line per device (the format is the same on v2); a
/// device with neither limit set is left alone.
pub fn set_rdma(
    dir: &Path,
    limits: &std::collections::HashMap<String, oci_spec::runtime::LinuxRdma>,
) -> Result<(), CgroupError> {
    let mut devices: Vec<_> = limits.iter().collect();
    devices.sort_by(|a, b| a.0.cmp(b.0));
    for (device, l) in devices {
        if device.is_empty() || device.contains(char::is_whitespace) {
            return Err(CgroupError::InvalidLimit(format!(
                "rdma device name {device:?}"
            )));
        }
        let mut line = device.clone();
        if let Some(h) = l.hca_handles() {
            line.push_str(&format!(" hca_handle={h}"));
        }
        if let Some(o) = l.hca_objects() {
            line.push_str(&format!(" hca_object={o}"));
        }
        if line.len() > device.len() {
            write(dir, "rdma.max", &line)?;
        }
    }
    Ok(())
}

pub fn set_net_cls(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        write(dir, "net_cls.classid", &id.to_string())?;
    }
    Ok(())
}

pub fn set_net_prio(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    for p in n.priorities().iter().flatten() {
        write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

/// Count of OOM kills (kernel ≥ 4.13 prints `oom_kill` in memory.oom_control).
pub fn oom_kill_count(dir: &Path) -> Result<u64, CgroupError> {
    Ok(read_keyed(dir, "memory.oom_control")?
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}

pub fn cpu_stats(
    cpuacct: Option<&Path>,
    cpu: Option<&Path>,
    st: &mut Stats,
) -> Result<(), CgroupError> {
    if let Some(dir) = cpuacct {
        st.cpu.usage.total = read_u64(dir, "cpuacct.usage")?;
        st.cpu.usage.percpu = read(dir, "cpuacct.usage_percpu")?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let acct = read_keyed(dir, "cpuacct.stat")?;
        let ns_per_tick = 1_000_000_000 / clock_ticks();
        st.cpu.usage.user = acct.get("user").copied().unwrap_or(0) * ns_per_tick;
        st.cpu.usage.kernel = acct.get("system").copied().unwrap_or(0) * ns_per_tick;
    }
    if let Some(dir) = cpu {
        let s = read_keyed(dir, "cpu.stat")?;
        st.cpu.throttling.periods = s.get("nr_periods").copied().unwrap_or(0);
        st.cpu.throttling.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
        st.cpu.throttling.throttled_time = s.get("throttled_time").copied().unwrap_or(0);
    }
    Ok(())
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

pub fn memory_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    let m = &mut st.memory;
    let entry = |prefix: &str| -> Result<stats::MemoryEntry, CgroupError> {
        Ok(stats::MemoryEntry {
            limit: read_u64_or_zero(dir, &format!("{prefix}.limit_in_bytes"))?,
            usage: read_u64_or_zero(dir, &format!("{prefix}.usage_in_bytes"))?,
            max: read_u64_or_zero(dir, &format!("{prefix}.max_usage_in_bytes"))?,
            failcnt: read_u64_or_zero(dir, &format!("{prefix}.failcnt"))?,
        })
    };
    m.usage = entry("memory")?;
    m.swap = entry("memory.memsw")?;
    m.kernel = entry("memory.kmem")?;
    m.kernel_tcp = entry("memory.kmem.tcp")?;
    m.raw = read_keyed(dir, "memory.stat")?;
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    Ok(())
}

pub fn pids_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    st.pids.current = read_u64(dir, "pids.current")?;
    let max = read_u64(dir, "pids.max")?;
    st.pids.limit = if max == u64::MAX { 0 } else { max };
    Ok(())
}

pub fn blkio_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    let read_list = |file: &str| -> Result<Vec<stats::BlkioEntry>, CgroupError> {
        if exists(dir, file) {
            Ok(stats::parse_blkio_v1(&read(dir, file)?))
        } else {
            Ok(Vec::new())
        }
    };
    st.blkio.io_service_bytes_recursive = read_list("blkio.throttle.io_service_bytes_recursive")?;
    st.blkio.io_serviced_recursive = read_list("blkio.throttle.io_serviced_recursive")?;
    Ok(())
}

pub fn hugetlb_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    for size in hugepage_sizes(dir, ".limit_in_bytes") {
        st.hugetlb.insert(
            size.clone(),
            stats::Hugetlb {
                usage: read_u64_or_zero(dir, &format!("hugetlb.{size}.usage_in_bytes"))?,
                max: read_u64_or_zero(dir, &format!("hugetlb.{size}.max_usage_in_bytes"))?,
                failcnt: read_u64_or_zero(dir, &format!("hugetlb.{size}.failcnt"))?,
            },
        );
    }
    Ok(())
}

/// Page sizes for which `hugetlb.<size><suffix>` exists in `dir`.
pub fn hugepage_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let size = name.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    #[test]
    fn device_rules_render_like_the_kernel_expects() {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(device_rule_line(&deny_all), "a *:* rwm");
        let null = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .unwrap();
        assert_eq!(device_rule_line(&null), "c 1:3 rw");
        let any_minor = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(136)
            .build()
            .unwrap();
        assert_eq!(device_rule_line(&any_minor), "c 136:* rwm");
    }
}
