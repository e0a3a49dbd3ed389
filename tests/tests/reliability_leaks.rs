//! Leak soak: N cycles of run / exec / rm with a named and an anonymous
//! volume, a published port and (every other cycle) a user network, then
//! everything the daemon holds on the host is compared with before: mounts
//! under the test's directories, container cgroups, veths on its bridges,
//! its iptables rules, berthd's fds and threads, shim processes and the
//! files in the exec root. RSS is printed, not asserted (the allocator
//! keeps some; bench/memory.sh measures it).
//!
//! `BERTH_LEAK_CYCLES` sets N (30 by default, the CI form);
//! scripts/leak-soak.sh runs the long form.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_tests::cleanup::{container_cgroups, mounts_under, processes_under};
use berth_tests::{wait_until, Daemon};

const LOOP: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while true; do sleep 0.1; done",
];

/// What the daemon holds on the host, as comparable figures and lists.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Holdings {
    mounts: Vec<PathBuf>,
    cgroups: Vec<PathBuf>,
    veths: Vec<String>,
    rules: Vec<String>,
    fds: usize,
    threads: usize,
    shims: usize,
    exec_root_files: Vec<PathBuf>,
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(d: &Daemon) -> u64 {
    proc_status(d.pid().expect("berthd runs"), "VmRSS:")
}

/// Interfaces enslaved to `bridge`.
fn veths(bridge: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// iptables rules and chains that name one of `words` (counters dropped).
fn rules(words: &[String]) -> Vec<String> {
    let out = Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| words.iter().any(|w| l.contains(w.as_str())))
        .map(|l| match l.strip_prefix(':') {
            Some(chain) => format!(":{}", chain.split(' ').next().unwrap_or("")),
            None => l.to_string(),
        })
        .collect();
    v.sort();
    v
}

/// Every file (not directory) below `dir`, iteratively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                _ => out.push(e.path()),
            }
        }
    }
    out.sort();
    out
}

fn holdings(d: &Daemon, bridges: &[String]) -> Holdings {
    let pid = d.pid().expect("berthd runs");
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|r| r.count())
        .unwrap_or(0);
    let shims = processes_under(&d.exec_root, &d.cgroup_parent)
        .into_iter()
        .filter(|p| *p as u32 != pid)
        .count();
    let mut words: Vec<String> = bridges.to_vec();
    words.extend(bridges.iter().map(|b| format!("BERTH-{b}")));
    Holdings {
        mounts: mounts_under(d.dir.path()),
        cgroups: container_cgroups(&d.cgroup_parent),
        veths: bridges.iter().flat_map(|b| veths(b)).collect(),
        rules: rules(&words),
        fds,
        threads: proc_status(pid, "Threads:") as usize,
        shims,
        exec_root_files: files_under(&d.exec_root),
    }
}

/// One cycle: run with volumes and a published port, exec, remove.
fn cycle(d: &Daemon, i: u32, network: &str) {
    let name = format!("leak{i}");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "-v",
        "leakvol:/data",
        "-v",
        "/anon",
        "-p",
        "80",
        "-p",
        "127.0.0.1::81/udp",
    ];
    if i % 2 == 1 {
        args.extend(["--network", network]);
    }
    args.push("busybox");
    args.extend(LOOP);
    d.docker_ok(&args);
    let out = d.docker_ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo $$ >> /data/pids; wc -l < /data/pids",
    ]);
    assert_eq!(out.trim(), (i + 1).to_string(), "exec in cycle {i}");
    d.docker_ok(&["port", &name, "80/tcp"]);
    d.docker_ok(&["rm", "-f", "-v", &name]);
}

#[test]
fn run_exec_rm_cycles_leak_nothing() {
    let d = Daemon::with_busybox();
    let cycles: u32 = std::env::var("BERTH_LEAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let bridge = d
        .network
        .as_ref()
        .map(|n| n.bridge.clone())
        .expect("the test daemon has its own bridge");
    let net = d.docker_ok(&["network", "create", "leaknet"]);
    let user_bridge = format!("br-{}", &net.trim()[..12]);
    let bridges = vec![bridge, user_bridge];
    d.docker_ok(&["volume", "create", "leakvol"]);

    // Warm-up: what the first run sets up once (the bridges' rules, the
    // DNS server, lazily made pools) is not a leak.
    cycle(&d, 0, "leaknet");
    cycle(&d, 1, "leaknet");
    // Idle blocking threads of the async runtime go after 10 s.
    std::thread::sleep(Duration::from_secs(12));
    let before = holdings(&d, &bridges);
    let rss_before = rss_kib(&d);

    for i in 2..cycles + 2 {
        cycle(&d, i, "leaknet");
    }
    let rss_peak = rss_kib(&d);

    let mut after = holdings(&d, &bridges);
    let settled = wait_until(Duration::from_secs(40), || {
        after = holdings(&d, &bridges);
        after == before
    });
    let rss_after = rss_kib(&d);
    berth_tests::report_figures(&format!(
        "leak soak: {cycles} cycles of run/exec/rm (volumes, 2 published ports, user network every other cycle); \
         berthd RSS {rss_before} KiB before, {rss_peak} KiB at the end, {rss_after} KiB settled; \
         fds {} -> {}, threads {} -> {}, mounts {} -> {}, cgroups {} -> {}, veths {} -> {}, \
         iptables lines {} -> {}, shims {} -> {}, exec-root files {} -> {}",
        before.fds,
        after.fds,
        before.threads,
        after.threads,
        before.mounts.len(),
        after.mounts.len(),
        before.cgroups.len(),
        after.cgroups.len(),
        before.veths.len(),
        after.veths.len(),
        before.rules.len(),
        after.rules.len(),
        before.shims,
        after.shims,
        before.exec_root_files.len(),
        after.exec_root_files.len(),
    ));
    if !settled {
        let diff = |what: &str, b: &dyn std::fmt::Debug, a: &dyn std::fmt::Debug| {
            format!("{what}:\n  before {b:?}\n  after  {a:?}\n")
        };
        let mut report: BTreeMap<&str, String> = BTreeMap::new();
        if before.mounts != after.mounts {
            report.insert("mounts", diff("mounts", &before.mounts, &after.mounts));
        }
        if before.cgroups != after.cgroups {
            report.insert("cgroups", diff("cgroups", &before.cgroups, &after.cgroups));
        }
        if before.veths != after.veths {
            report.insert("veths", diff("veths", &before.veths, &after.veths));
        }
        if before.rules != after.rules {
            report.insert("rules", diff("rules", &before.rules, &after.rules));
        }
        if before.exec_root_files != after.exec_root_files {
            report.insert(
                "files",
                diff("exec root", &before.exec_root_files, &after.exec_root_files),
            );
        }
        let pid = d.pid().unwrap_or(0);
        let fd_list: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read_link(e.path()).ok())
            .map(|p| p.display().to_string())
            .collect();
        panic!(
            "berthd holds more after {cycles} cycles than before:\n{}\nfds now: {fd_list:?}",
            report.into_values().collect::<String>()
        );
    }
    d.docker_ok(&["volume", "rm", "leakvol"]);
    d.docker_ok(&["network", "rm", "leaknet"]);
}
