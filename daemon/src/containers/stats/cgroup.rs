//! One sample of a container's counters.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::StatsError;
use crate::containers::cgroupfs;

/// Nanoseconds per `USER_HZ` tick (100 Hz on Linux, fixed in the ABI).
const NANOS_PER_TICK: u64 = 10_000_000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSample {
    pub total: u64,
    /// Empty on cgroup v2 (it has no per-CPU counters).
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
    pub system: u64,
    pub online_cpus: u32,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemorySample {
    pub usage: u64,
    /// v1 only (0 on v2, where dockerd omits it).
    pub max_usage: u64,
    pub failcnt: u64,
    pub limit: u64,
    pub stats: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetSample {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// RFC 3339 time of the reading.
    pub read: String,
    pub cpu: CpuSample,
    pub memory: MemorySample,
    pub pids_current: u64,
    /// 0 when unlimited.
    pub pids_limit: u64,
    pub io_service_bytes: Vec<BlkioEntry>,
    pub io_serviced: Vec<BlkioEntry>,
    /// Interfaces of the container's own network namespace (no `lo`);
    /// `None` when it shares the host's.
    pub networks: Option<BTreeMap<String, NetSample>>,
}

/// Where a process's cgroups are on this host.
#[derive(Debug, Default, PartialEq)]
struct Dirs {
    v1: BTreeMap<String, PathBuf>,
    unified: Option<PathBuf>,
}

fn read(path: &Path) -> Result<String, StatsError> {
    fs::read_to_string(path).map_err(|source| StatsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A missing or unparsable counter file counts as 0, as dockerd reports
/// controllers it cannot read.
fn read_u64(dir: &Path, file: &str) -> u64 {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| parse_u64(&s))
        .unwrap_or(0)
}

/// A number, or `max` (unlimited) as 0.
fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(0);
    }
    s.parse().ok()
}

/// `key value` lines.
fn read_keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    fs::read_to_string(dir.join(file))
        .map(|s| parse_keyed(&s))
        .unwrap_or_default()
}

fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

/// Read everything for the process `pid` (the container's init).
pub fn sample(pid: i32, machine_memory: u64) -> Result<Sample, StatsError> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let dirs = locate(
        &read(&proc_dir.join("cgroup"))?,
        &read(Path::new("/proc/self/mountinfo"))?,
    );
    let (system, online_cpus) = parse_proc_stat(&read(Path::new("/proc/stat"))?);
    let mut s = Sample {
        read: now_rfc3339(),
        ..Default::default()
    };
    s.cpu.system = system;
    s.cpu.online_cpus = online_cpus;
    if let Some(mem) = dirs.v1.get("memory") {
        sample_v1(&dirs, mem, &mut s, pid)?;
    } else if let Some(dir) = &dirs.unified {
        sample_v2(dir, &mut s);
    } else {
        return Err(StatsError::NoCgroup(pid, "memory"));
    }
    if s.memory.limit == 0 || (machine_memory > 0 && s.memory.limit > machine_memory) {
        s.memory.limit = machine_memory;
    }
    s.networks = networks(pid);
    Ok(s)
}

fn sample_v1(dirs: &Dirs, mem: &Path, s: &mut Sample, pid: i32) -> Result<(), StatsError> {
    let cpuacct = dirs
        .v1
        .get("cpuacct")
        .ok_or(StatsError::NoCgroup(pid, "cpuacct"))?;
    s.cpu.total = read_u64(cpuacct, "cpuacct.usage");
    s.cpu.percpu = fs::read_to_string(cpuacct.join("cpuacct.usage_percpu"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let ticks = read_keyed(cpuacct, "cpuacct.stat");
    s.cpu.user = ticks.get("user").copied().unwrap_or(0) * NANOS_PER_TICK;
    s.cpu.kernel = ticks.get("system").copied().unwrap_or(0) * NANOS_PER_TICK;
    if let Some(cpu) = dirs.v1.get("cpu") {
        let st = read_keyed(cpu, "cpu.stat");
        s.cpu.periods = st.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
        s.cpu.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    }
    s.memory.usage = read_u64(mem, "memory.usage_in_bytes");
    s.memory.max_usage = read_u64(mem, "memory.max_usage_in_bytes");
    s.memory.failcnt = read_u64(mem, "memory.failcnt");
    s.memory.limit = read_u64(mem, "memory.limit_in_bytes");
    s.memory.stats = read_keyed(mem, "memory.stat");
    if let Some(pids) = dirs.v1.get("pids") {
        s.pids_current = read_u64(pids, "pids.current");
        s.pids_limit = read_u64(pids, "pids.max");
    }
    if let Some(blkio) = dirs.v1.get("blkio") {
        // CFQ's files are empty or gone on modern kernels; the throttle
        // files count every request.
        for (field, name) in [
            (&mut s.io_service_bytes, "io_service_bytes_recursive"),
            (&mut s.io_serviced, "io_serviced_recursive"),
        ] {
            let mut entries = parse_blkio_v1(
                &fs::read_to_string(blkio.join(format!("blkio.{name}"))).unwrap_or_default(),
            );
            if entries.is_empty() {
                entries = parse_blkio_v1(
                    &fs::read_to_string(blkio.join(format!("blkio.throttle.{name}")))
                        .unwrap_or_default(),
                );
            }
            *field = entries;
        }
    }
    Ok(())
}

fn sample_v2(dir: &Path, s: &mut Sample) {
    let cpu = read_keyed(dir, "cpu.stat");
    let get = |k: &str| cpu.get(k).copied().unwrap_or(0);
    s.cpu.total = get("usage_usec") * 1000;
    s.cpu.user = get("user_usec") * 1000;
    s.cpu.kernel = get("system_usec") * 1000;
    s.cpu.periods = get("nr_periods");
    s.cpu.throttled_periods = get("nr_throttled");
    s.cpu.throttled_time = get("throttled_usec") * 1000;
    s.memory.usage = read_u64(dir, "memory.current");
    s.memory.limit = read_u64(dir, "memory.max");
    s.memory.stats = read_keyed(dir, "memory.stat");
    s.pids_current = read_u64(dir, "pids.current");
    s.pids_limit = read_u64(dir, "pids.max");
    let (bytes, ios) =
        parse_io_stat_v2(&fs::read_to_string(dir.join("io.stat")).unwrap_or_default());
    s.io_service_bytes = bytes;
    s.io_serviced = ios;
}

/// `8:0 Read 1234` lines; the `Total` summary line (no device) is dropped.
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (major, minor) = it.next()?.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: it.next()?.to_string(),
                value: it.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` → (bytes, ios) entries with
/// dockerd's v2 op names `read` and `write`.
pub fn parse_io_stat_v2(text: &str) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let mut bytes = Vec::new();
    let mut ios = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "read"),
                "wbytes" => (&mut bytes, "write"),
                "rios" => (&mut ios, "read"),
                "wios" => (&mut ios, "write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ios)
}

/// Map `/proc/PID/cgroup` through `/proc/self/mountinfo` to directories.
fn locate(proc_cgroup: &str, mountinfo: &str) -> Dirs {
    let mounts = cgroupfs::parse(mountinfo);
    let mut dirs = Dirs::default();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            if let Some(m) = &mounts.unified {
                dirs.unified = Some(under_mount(&m.mountpoint, &m.root, path));
            }
            continue;
        }
        for ctrl in controllers.split(',') {
            if let Some(m) = mounts
                .v1
                .iter()
                .find(|m| m.options.iter().any(|o| o == ctrl))
            {
                dirs.v1
                    .insert(ctrl.to_string(), under_mount(&m.mountpoint, &m.root, path));
            }
        }
    }
    dirs
}

/// The directory of cgroup `path` in a hierarchy mounted at `mountpoint`
/// whose mount shows the cgroup `root`.
fn under_mount(mountpoint: &Path, root: &str, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .trim_start_matches('/');
    if rel.is_empty() {
        mountpoint.to_path_buf()
    } else {
        mountpoint.join(rel)
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
/// dockerd's `system_cpu_usage` (user..softirq of the `cpu` line, in ns)
/// and the number of `cpuN` lines.
pub fn parse_proc_stat(text: &str) -> (u64, u32) {
    let mut system = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        match it.next() {
            Some("cpu") => {
                let ticks: u64 = it.take(7).filter_map(|n| n.parse::<u64>().ok()).sum();
                system = ticks * NANOS_PER_TICK;
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (system, cpus)
}

/// The interfaces of `pid`'s network namespace, unless it is the host's.
fn networks(pid: i32) -> Option<BTreeMap<String, NetSample>> {
    let theirs = fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    let ours = fs::metadata("/proc/self/ns/net").ok()?;
    use std::os::unix::fs::MetadataExt;
    if theirs.ino() == ours.ino() && theirs.dev() == ours.dev() {
        return None;
    }
    let text = fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(parse_net_dev(&text))
}

pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetSample> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let n: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if n.len() < 16 {
            continue;
        }
        out.insert(
            name.to_string(),
            NetSample {
                rx_bytes: n[0],
                rx_packets: n[1],
                rx_errors: n[2],
                rx_dropped: n[3],
                tx_bytes: n[8],
                tx_packets: n[9],
                tx_errors: n[10],
                tx_dropped: n[11],
            },
        );
    }
    out
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Total RAM of the machine (dockerd's memory limit for unlimited
/// containers).
pub fn machine_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[cfg(test)]
pub(super) fn sample_v2_for_test(dir: &Path) -> Sample {
    let mut s = Sample::default();
    sample_v2(dir, &mut s);
    s
}

#[cfg(test)]
pub(super) fn locate_for_test(
    proc_cgroup: &str,
    mountinfo: &str,
) -> (BTreeMap<String, PathBuf>, Option<PathBuf>) {
    let d = locate(proc_cgroup, mountinfo);
    (d.v1, d.unified)
}
