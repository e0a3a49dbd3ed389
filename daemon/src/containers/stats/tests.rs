use super::cgroup::*;
use super::*;
use std::path::PathBuf;

const MOUNTINFO: &str = "\
35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
36 25 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
37 25 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
38 25 0:33 /outer /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

#[test]
fn locates_v1_and_unified_dirs() {
    let proc_cgroup =
        "4:memory:/berth/abc\n2:cpu,cpuacct:/berth/abc\n8:pids:/outer/berth/abc\n0::/berth/abc\n";
    let (v1, unified) = locate_for_test(proc_cgroup, MOUNTINFO);
    assert_eq!(
        v1["memory"],
        PathBuf::from("/sys/fs/cgroup/memory/berth/abc")
    );
    assert_eq!(
        v1["cpuacct"],
        PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth/abc")
    );
    assert_eq!(
        v1["cpu"],
        PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/berth/abc")
    );
    assert_eq!(v1["pids"], PathBuf::from("/sys/fs/cgroup/pids/berth/abc"));
    assert_eq!(
        unified,
        Some(PathBuf::from("/sys/fs/cgroup/unified/berth/abc"))
    );
}

#[test]
fn parses_counter_files() {
    let (sys, cpus) =
        parse_proc_stat("cpu  100 0 50 1000 10 0 5 3 0 0\ncpu0 1 2 3\ncpu1 1 2 3\nintr 5\n");
    assert_eq!(sys, (100 + 50 + 1000 + 10 + 5) * 10_000_000);
    assert_eq!(cpus, 2);
    let e = parse_blkio_v1("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[0].major, e[0].minor, e[0].op.as_str(), e[0].value),
        (8, 0, "Read", 4096)
    );
    let (bytes, ios) = parse_io_stat_v2("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0\n");
    assert_eq!(
        bytes.iter().map(|b| b.value).collect::<Vec<_>>(),
        vec![10, 20]
    );
    assert_eq!(ios[1].op, "write");
    let nets = parse_net_dev(
        "Inter-|\n face |\n    lo: 1 2 0 0 0 0 0 0 1 2 0 0 0 0 0 0\n  eth0: 100 3 1 2 0 0 0 0 200 4 5 6 0 0 0 0\n",
    );
    assert_eq!(nets.len(), 1);
    let e = &nets["eth0"];
    assert_eq!(
        (e.rx_bytes, e.rx_packets, e.tx_bytes, e.tx_dropped),
        (100, 3, 200, 6)
    );
}

#[test]
fn renders_dockerd_shape() {
    let mut s = Sample {
        read: "2026-01-01T00:00:01Z".into(),
        ..Default::default()
    };
    s.cpu.total = 5;
    s.cpu.percpu = vec![2, 3];
    s.memory.usage = 1000;
    s.memory.limit = 4096;
    s.pids_current = 3;
    let prev = Sample {
        read: "2026-01-01T00:00:00Z".into(),
        ..Default::default()
    };
    let v = render("/c", "id1", &s, Some(&prev));
    assert_eq!(v["name"], "/c");
    assert_eq!(v["preread"], "2026-01-01T00:00:00Z");
    assert_eq!(
        v["cpu_stats"]["cpu_usage"]["percpu_usage"],
        serde_json::json!([2, 3])
    );
    assert_eq!(v["memory_stats"]["limit"], 4096);
    assert_eq!(v["pids_stats"]["current"], 3);
    assert!(v["pids_stats"].get("limit").is_none());
    assert_eq!(
        v["blkio_stats"]["io_service_bytes_recursive"],
        serde_json::json!([])
    );
    assert!(v["blkio_stats"]["io_serviced_recursive"].is_null());
    assert!(v.get("networks").is_none());
    let z = zero("/c", "id1");
    assert_eq!(z["read"], "0001-01-01T00:00:00Z");
    assert_eq!(z["cpu_stats"]["cpu_usage"]["total_usage"], 0);
    assert_eq!(z["memory_stats"], serde_json::json!({}));
}

#[test]
fn samples_this_process() {
    // Our own process has cgroups on any Linux host.
    let s = sample(std::process::id() as i32, machine_memory()).expect("sample self");
    assert!(s.cpu.total > 0, "{s:?}");
    assert!(s.cpu.system > 0);
    assert!(s.cpu.online_cpus >= 1);
    assert!(s.memory.usage > 0);
    assert!(s.memory.limit > 0 && s.memory.limit <= machine_memory());
    // (pids.current does not exist in a root cgroup, so not checked here.)
    // We share the host's network namespace.
    assert!(s.networks.is_none());
}

#[test]
fn reads_cgroup_v2_files() {
    let dir = tempfile::tempdir().unwrap();
    let w = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).unwrap();
    w("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n");
    w("memory.current", "4096\n");
    w("memory.max", "max\n");
    w("memory.stat", "anon 1024\nfile 2048\ninactive_file 512\n");
    w("pids.current", "3\n");
    w("pids.max", "100\n");
    w("io.stat", "8:0 rbytes=7 wbytes=9 rios=1 wios=2\n");
    let s = sample_v2_for_test(dir.path());
    assert_eq!(
        (s.cpu.total, s.cpu.user, s.cpu.kernel),
        (1_500_000, 1_000_000, 500_000)
    );
    assert_eq!(
        (s.cpu.periods, s.cpu.throttled_periods, s.cpu.throttled_time),
        (4, 1, 20_000)
    );
    assert!(s.cpu.percpu.is_empty());
    assert_eq!(s.memory.usage, 4096);
    // "max" is unlimited: 0 here, the machine's memory after sample().
    assert_eq!(s.memory.limit, 0);
    assert_eq!(s.memory.stats["inactive_file"], 512);
    assert_eq!((s.pids_current, s.pids_limit), (3, 100));
    assert_eq!(s.io_service_bytes.len(), 2);
    let v = render("/c", "id", &s, None);
    assert!(v["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
    assert!(v["memory_stats"].get("max_usage").is_none());
}
