//! cgroup v2 (unified) file writers and readers, one function per
//! controller. OCI values are v1-shaped; conversions follow the kernel's
//! documented ranges.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory};

use super::fsutil::{exists, read, read_keyed, read_u64_or_zero, write};
use super::stats::{self, Stats};
use super::{v1, CgroupError};

fn unsupported(what: &str, why: &str) -> CgroupError {
    CgroupError::Unsupported(what.to_owned(), why.to_owned())
}

fn limit_value(v: i64) -> String {
    if v < 0 {
        "max".to_owned()
    } else {
        v.to_string()
    }
}

pub fn set_memory(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().filter(|l| *l != 0);
    if let Some(limit) = limit {
        write(dir, "memory.max", &limit_value(limit))?;
    }
    if let Some(swap) = m.swap().filter(|s| *s != 0) {
        // OCI swap is memory+swap (v1 memsw); v2 limits swap alone.
        let swap_only = match (swap, limit) {
            (-1, _) => "max".to_owned(),
            (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
            _ => {
                return Err(CgroupError::InvalidLimit(
                    "memory.swap needs memory.limit on cgroup v2".to_owned(),
                ))
            }
        };
        if !exists(dir, "memory.swap.max") {
            return Err(unsupported("memory.swap", "memory.swap.max is missing"));
        }
        write(dir, "memory.swap.max", &swap_only)?;
    }
    if let Some(res) = m.reservation().filter(|r| *r != 0) {
        write(dir, "memory.low", &limit_value(res))?;
    }
    if m.swappiness().is_some() {
        return Err(unsupported(
            "memory.swappiness",
            "cgroup v2 has no per-cgroup swappiness",
        ));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(unsupported(
            "memory.disableOOMKiller",
            "cgroup v2 cannot disable the OOM killer",
        ));
    }
    v1::set_kernel_memory(None, m);
    Ok(())
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), the mapping runc and
/// crun use so a value round-trips the same on both.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

pub fn set_cpu(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(shares) = c.shares().filter(|s| *s != 0) {
        write(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
    }
    let quota = c.quota().filter(|q| *q != 0);
    let period = c.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let current = read(dir, "cpu.max")?;
        let mut fields = current.split_whitespace();
        let cur_quota = fields.next().unwrap_or("max").to_owned();
        let cur_period = fields.next().unwrap_or("100000").to_owned();
        let quota = quota.map_or(cur_quota, limit_value);
        let period = period.map_or(cur_period, |p| p.to_string());
        write(dir, "cpu.max", &format!("{quota} {period}"))?;
    }
    if let Some(burst) = c.burst() {
        write(dir, "cpu.max.burst", &burst.to_string())?;
    }
    if let Some(idle) = c.idle() {
        write(dir, "cpu.idle", &idle.to_string())?;
    }
    if c.realtime_runtime().is_some_and(|r| r != 0) || c.realtime_period().is_some_and(|p| p != 0) {
        return Err(unsupported(
            "cpu.realtimeRuntime/realtimePeriod",
            "cgroup v2 has no realtime bandwidth control",
        ));
    }
    Ok(())
}

/// blkio weight 10..1000 → io.weight 1..10000.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

pub fn set_io(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if exists(dir, "io.bfq.weight") {
            write(dir, "io.bfq.weight", &w.to_string())?;
        } else if exists(dir, "io.weight") {
            write(
                dir,
                "io.weight",
                &format!("default {}", blkio_to_io_weight(w)),
            )?;
        } else {
            return Err(unsupported(
                "blockIO.weight",
                "no io.weight or io.bfq.weight",
            ));
        }
    }
    if b.leaf_weight().is_some_and(|w| w != 0) {
        return Err(unsupported(
            "blockIO.leafWeight",
            "cgroup v2 has no leaf weight",
        ));
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            let line = format!("{}:{} {}", wd.major(), wd.minor(), blkio_to_io_weight(w));
            write(dir, "io.weight", &line)?;
        }
    }
    let throttles = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 {
                "max".to_owned()
            } else {
                t.rate().to_string()
            };
            write(
                dir,
                "io.max",
                &format!("{}:{} {key}={rate}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}

pub fn set_hugepages(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for l in limits {
        let file = format!("hugetlb.{}.max", l.page_size());
        if !exists(dir, &file) {
            return Err(unsupported(
                "hugepageLimits",
                &format!("page size {:?} is not offered by the kernel", l.page_size()),
            ));
        }
        write(dir, &file, &limit_value(l.limit()))?;
    }
    Ok(())
}

/// Raw key/value pairs for the unified hierarchy (`linux.resources.unified`).
pub fn set_unified(
    dir: &Path,
    entries: &std::collections::HashMap<String, String>,
) -> Result<(), CgroupError> {
    for (key, value) in entries {
        if key.contains('/') || key.starts_with('.') || key.is_empty() {
            return Err(CgroupError::InvalidLimit(format!(
                "unified key {key:?} is not a cgroup file name"
            )));
        }
        write(dir, key, value)?;
    }
    Ok(())
}

/// Turns on `controllers` in cgroup.subtree_control of every ancestor of
/// `leaf` below `root` (the root included), so the leaf gets their files.
/// A controller that cannot be enabled is skipped: the write of its limit
/// will then fail with a clear "file missing" error, which is only raised if
/// that limit was asked for.
pub fn enable_controllers(root: &Path, leaf: &Path, controllers: &[String]) {
    let mut ancestors: Vec<PathBuf> = leaf
        .ancestors()
        .skip(1)
        .take_while(|p| p.starts_with(root))
        .map(Path::to_path_buf)
        .collect();
    ancestors.reverse();
    for dir in ancestors {
        let enabled = read(&dir, "cgroup.subtree_control").unwrap_or_default();
        for c in controllers {
            if !enabled.split_whitespace().any(|e| e == c) {
                let _ = write(&dir, "cgroup.subtree_control", &format!("+{c}"));
            }
        }
    }
}

pub fn oom_kill_count(dir: &Path) -> Result<u64, CgroupError> {
    Ok(read_keyed(dir, "memory.events")?
        .get("oom_kill")
        .copied()
        .unwrap_or(0))
}

pub fn cpu_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    let s = read_keyed(dir, "cpu.stat")?;
    let get = |k: &str| s.get(k).copied().unwrap_or(0);
    st.cpu.usage.total = get("usage_usec") * 1000;
    st.cpu.usage.user = get("user_usec") * 1000;
    st.cpu.usage.kernel = get("system_usec") * 1000;
    st.cpu.throttling.periods = get("nr_periods");
    st.cpu.throttling.throttled_periods = get("nr_throttled");
    st.cpu.throttling.throttled_time = get("throttled_usec") * 1000;
    Ok(())
}

pub fn memory_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    let m = &mut st.memory;
    let max_or_zero = |v: u64| if v == u64::MAX { 0 } else { v };
    m.usage = stats::MemoryEntry {
        limit: read_u64_or_zero(dir, "memory.max")?,
        usage: read_u64_or_zero(dir, "memory.current")?,
        max: read_u64_or_zero(dir, "memory.peak")?,
        failcnt: read_keyed(dir, "memory.events")?
            .get("max")
            .copied()
            .unwrap_or(0),
    };
    m.swap = stats::MemoryEntry {
        limit: read_u64_or_zero(dir, "memory.swap.max")?,
        usage: read_u64_or_zero(dir, "memory.swap.current")?,
        max: read_u64_or_zero(dir, "memory.swap.peak")?,
        failcnt: 0,
    };
    // runc reports memory.max "max" as the all-ones limit too; keep zeros
    // out of the way only for the swap peak which older kernels lack.
    m.swap.max = max_or_zero(m.swap.max);
    m.raw = read_keyed(dir, "memory.stat")?;
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    Ok(())
}

pub fn io_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    if !exists(dir, "io.stat") {
        return Ok(());
    }
    let (bytes, ios) = stats::parse_io_stat_v2(&read(dir, "io.stat")?);
    st.blkio.io_service_bytes_recursive = bytes;
    st.blkio.io_serviced_recursive = ios;
    Ok(())
}

pub fn hugetlb_stats(dir: &Path, st: &mut Stats) -> Result<(), CgroupError> {
    for size in v1::hugepage_sizes(dir, ".max") {
        let events = read_keyed(dir, &format!("hugetlb.{size}.events")).unwrap_or_default();
        st.hugetlb.insert(
            size.clone(),
            stats::Hugetlb {
                usage: read_u64_or_zero(dir, &format!("hugetlb.{size}.current"))?,
                max: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversions_cover_the_ranges() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    use oci_spec::runtime::{LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder};

    /// A directory with the given cgroup files, empty unless given content.
    fn fake_cgroup(files: &[(&str, &str)]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(tmp.path().join(name), content).unwrap();
        }
        tmp
    }

    fn file(dir: &tempfile::TempDir, name: &str) -> String {
        // Fake files are not truncated by writes; the tail is a stale newline.
        std::fs::read_to_string(dir.path().join(name))
            .unwrap()
            .trim_end()
            .to_owned()
    }

    #[test]
    fn memory_limits_convert_to_v2_files() {
        let d = fake_cgroup(&[
            ("memory.max", ""),
            ("memory.swap.max", ""),
            ("memory.low", ""),
        ]);
        let m = LinuxMemoryBuilder::default()
            .limit(64i64 << 20)
            .swap(96i64 << 20)
            .reservation(32i64 << 20)
            .build()
            .unwrap();
        set_memory(d.path(), &m).unwrap();
        assert_eq!(file(&d, "memory.max"), (64u64 << 20).to_string());
        // OCI swap is memory+swap; v2 wants swap alone.
        assert_eq!(file(&d, "memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(file(&d, "memory.low"), (32u64 << 20).to_string());
    }

    #[test]
    fn v1_only_memory_knobs_are_refused_on_v2() {
        let d = fake_cgroup(&[("memory.max", "")]);
        let swappiness = LinuxMemoryBuilder::default()
            .swappiness(10u64)
            .build()
            .unwrap();
        assert!(matches!(
            set_memory(d.path(), &swappiness),
            Err(CgroupError::Unsupported(..))
        ));
        let no_oom = LinuxMemoryBuilder::default()
            .disable_oom_killer(true)
            .build()
            .unwrap();
        assert!(set_memory(d.path(), &no_oom).is_err());
        let swap_alone = LinuxMemoryBuilder::default()
            .swap(1i64 << 30)
            .build()
            .unwrap();
        assert!(matches!(
            set_memory(d.path(), &swap_alone),
            Err(CgroupError::InvalidLimit(_))
        ));
    }

    #[test]
    fn cpu_max_keeps_the_half_not_given() {
        let d = fake_cgroup(&[("cpu.max", "max 100000\n"), ("cpu.weight", "")]);
        let quota = LinuxCpuBuilder::default()
            .quota(50_000i64)
            .shares(1024u64)
            .build()
            .unwrap();
        set_cpu(d.path(), &quota).unwrap();
        assert_eq!(file(&d, "cpu.max"), "50000 100000");
        assert_eq!(file(&d, "cpu.weight"), "39");
        let d = fake_cgroup(&[("cpu.max", "max 100000\n")]);
        let period = LinuxCpuBuilder::default()
            .period(250_000u64)
            .build()
            .unwrap();
        set_cpu(d.path(), &period).unwrap();
        assert_eq!(file(&d, "cpu.max"), "max 250000");
        let rt = LinuxCpuBuilder::default()
            .realtime_runtime(1000i64)
            .build()
            .unwrap();
        assert!(set_cpu(d.path(), &rt).is_err());
    }

    #[test]
    fn io_weight_and_throttles() {
        let d = fake_cgroup(&[("io.weight", ""), ("io.max", "")]);
        let b = LinuxBlockIoBuilder::default()
            .weight(500u16)
            .build()
            .unwrap();
        set_io(d.path(), &b).unwrap();
        assert_eq!(
            file(&d, "io.weight"),
            format!("default {}", blkio_to_io_weight(500))
        );
        let none = fake_cgroup(&[]);
        assert!(matches!(
            set_io(none.path(), &b),
            Err(CgroupError::Unsupported(..))
        ));
    }

    #[test]
    fn stats_read_v2_files() {
        let d = fake_cgroup(&[
            ("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n"),
            ("memory.max", "max\n"),
            ("memory.current", "4096\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            ("memory.stat", "anon 4096\nfile 8192\n"),
        ]);
        let mut st = Stats::default();
        cpu_stats(d.path(), &mut st).unwrap();
        memory_stats(d.path(), &mut st).unwrap();
        assert_eq!(st.cpu.usage.total, 1_500_000);
        assert_eq!(st.cpu.usage.kernel, 500_000);
        assert_eq!(st.cpu.throttling.throttled_time, 20_000);
        assert_eq!(st.memory.usage.usage, 4096);
        assert_eq!(st.memory.usage.limit, u64::MAX);
        assert_eq!(st.memory.usage.failcnt, 3);
        assert_eq!(st.memory.cache, 8192);
        assert_eq!(oom_kill_count(d.path()).unwrap(), 1);
    }

    #[test]
    fn enable_controllers_writes_every_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("a/b/leaf")).unwrap();
        for d in ["", "a", "a/b"] {
            std::fs::write(root.join(d).join("cgroup.subtree_control"), "").unwrap();
        }
        enable_controllers(root, &root.join("a/b/leaf"), &["memory".to_owned()]);
        for d in ["", "a", "a/b"] {
            let v = std::fs::read_to_string(root.join(d).join("cgroup.subtree_control")).unwrap();
            assert_eq!(v, "+memory", "in {d:?}");
        }
        assert!(!root.join("a/b/leaf/cgroup.subtree_control").exists());
    }
}
