//! `docker stats` and the stats API against the container's cgroup files.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_tests::{assert_matches_spec, py, Daemon};

/// The cgroup v1 directory of `controller` for process `pid`, or the v2
/// directory when the host has no v1 hierarchy for it.
fn cgroup_dir(pid: u32, controller: &str) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (
            f.next().unwrap(),
            f.next().unwrap_or(""),
            f.next().unwrap_or(""),
        );
        if ctrls.split(',').any(|c| c == controller) {
            let mount = fs::read_dir("/sys/fs/cgroup")
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .split(',')
                        .any(|c| c == controller)
                })
                .expect("controller mount");
            return mount.join(path.trim_start_matches('/'));
        }
    }
    let v2 = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("cgroup v2 line");
    PathBuf::from("/sys/fs/cgroup").join(v2.trim_start_matches('/'))
}

/// The container's init on the host: its cgroup holds the container.
fn container_pid(d: &Daemon, c: &str) -> u32 {
    let pid: u32 = d
        .docker_ok(&["inspect", "-f", "{{.State.Pid}}", c])
        .trim()
        .parse()
        .unwrap_or(0);
    if pid > 0 {
        return pid;
    }
    // Fall back to `docker top`, whose PID column is the host's.
    let top = d.docker_ok(&["top", c]);
    top.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
        .expect("a pid from docker top")
}

fn read_u64(p: PathBuf) -> u64 {
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .parse()
        .unwrap()
}

fn api_stats(d: &Daemon, c: &str, query: &str) -> serde_json::Value {
    let out = d.curl(&[&format!(
        "http://localhost/v1.50/containers/{c}/stats?{query}"
    )]);
    assert!(out.success(), "{out:?}");
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stats JSON: {e}: {}", out.stdout))
}

#[test]
fn stats_match_the_cgroup_files() {
    let d = Daemon::start();
    d.load_busybox();
    let c = d
        .docker_ok(&[
            "run",
            "-d",
            "--memory",
            "64m",
            "--pids-limit",
            "50",
            "busybox",
            "sh",
            "-c",
            "sleep 1000 & while :; do :; done",
        ])
        .trim()
        .to_string();
    let pid = container_pid(&d, &c);
    let mem_dir = cgroup_dir(pid, "memory");
    let pids_dir = cgroup_dir(pid, "pids");
    let v1 = mem_dir.join("memory.limit_in_bytes").exists();

    // one-shot: immediate, no previous sample.
    let started = Instant::now();
    let one = api_stats(&d, &c, "stream=false&one-shot=true");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "one-shot took {:?}",
        started.elapsed()
    );
    assert_eq!(one["preread"], "0001-01-01T00:00:00Z");
    assert_eq!(one["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    assert_eq!(one["id"].as_str(), Some(c.as_str()));
    assert_eq!(one["memory_stats"]["limit"], 64 * 1024 * 1024);
    assert_eq!(one["pids_stats"]["limit"], 50);
    let pids_now = read_u64(pids_dir.join("pids.current"));
    assert_eq!(one["pids_stats"]["current"].as_u64(), Some(pids_now));
    assert!(one["cpu_stats"]["online_cpus"].as_u64().unwrap() >= 1);
    let usage_file = if v1 {
        "memory.usage_in_bytes"
    } else {
        "memory.current"
    };
    let usage = read_u64(mem_dir.join(usage_file));
    let reported = one["memory_stats"]["usage"].as_u64().unwrap();
    assert!(
        reported > 0 && reported.abs_diff(usage) < 4 * 1024 * 1024,
        "usage {reported} vs {usage}"
    );
    assert!(one["networks"].is_object(), "{}", one["networks"]);
    assert_matches_spec("GET", "/containers/{id}/stats", &one.to_string());

    // stream=false waits for a second sample: precpu filled, ~1 s apart.
    let cpu_file = if v1 {
        cgroup_dir(pid, "cpuacct").join("cpuacct.usage")
    } else {
        mem_dir.join("cpu.stat")
    };
    let cpu_now = |f: &PathBuf| -> u64 {
        if v1 {
            read_u64(f.clone())
        } else {
            let t = fs::read_to_string(f).unwrap();
            t.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .unwrap()
                .trim()
                .parse::<u64>()
                .unwrap()
                * 1000
        }
    };
    let before = cpu_now(&cpu_file);
    let two = api_stats(&d, &c, "stream=false");
    let after = cpu_now(&cpu_file);
    let cpu = two["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .unwrap();
    let precpu = two["precpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .unwrap();
    assert!(precpu > 0 && cpu > precpu, "{cpu} {precpu}");
    // Both samples were read from the cgroup during the request.
    assert!(
        before <= precpu && cpu <= after,
        "cgroup {before}..{after}, reported {precpu}..{cpu}"
    );
    let sys = two["cpu_stats"]["system_cpu_usage"].as_u64().unwrap()
        - two["precpu_stats"]["system_cpu_usage"].as_u64().unwrap();
    let cpus = two["cpu_stats"]["online_cpus"].as_u64().unwrap();
    let percent = (cpu - precpu) as f64 / sys as f64 * cpus as f64 * 100.0;
    // A busy loop: clearly busy, at most all CPUs (the machine may be shared).
    assert!(
        percent > 5.0 && percent <= cpus as f64 * 100.0 + 1.0,
        "busy loop at {percent:.1}%"
    );

    // The CLI shows the same figures.
    let line = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}",
        &c,
    ]);
    let parts: Vec<&str> = line.trim().split('|').collect();
    assert_eq!(parts.len(), 3, "{line}");
    let cli_cpu: f64 = parts[0].trim_end_matches('%').parse().unwrap();
    assert!(cli_cpu > 5.0, "{line}");
    assert!(parts[1].ends_with("/ 64MiB"), "{line}");
    assert_eq!(
        parts[2],
        read_u64(pids_dir.join("pids.current")).to_string(),
        "{line}"
    );

    // Streaming: one object per second, each with the previous as precpu.
    let out = d.curl(&[
        "--max-time",
        "2.5",
        &format!("http://localhost/v1.50/containers/{c}/stats"),
    ]);
    let objs: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(objs.len() >= 2, "{}", out.stdout);
    assert_eq!(objs[1]["preread"], objs[0]["read"]);
    assert_eq!(
        objs[1]["precpu_stats"]["cpu_usage"],
        objs[0]["cpu_stats"]["cpu_usage"]
    );

    // Stopped: zeros, as dockerd.
    d.docker_ok(&["stop", "-t", "0", &c]);
    let z = api_stats(&d, &c, "stream=false");
    assert_eq!(z["read"], "0001-01-01T00:00:00Z");
    assert_eq!(z["cpu_stats"]["cpu_usage"]["total_usage"], 0);
    assert_eq!(z["memory_stats"], serde_json::json!({}));
    let line = d.docker_ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.CPUPerc}}|{{.PIDs}}",
        &c,
    ]);
    assert_eq!(line.trim(), "0.00%|0");
    d.docker_ok(&["rm", &c]);
    let missing = d.curl(&[
        "-w",
        "%{http_code}",
        "http://localhost/v1.50/containers/nope/stats?stream=false",
    ]);
    assert!(missing.stdout.ends_with("404"), "{missing:?}");
}

#[test]
fn stats_docker_py() {
    let d = Daemon::start();
    d.load_busybox();
    let out = py::run_ok(&d, "stats_docker_py.py");
    assert!(out.stdout.contains("stats_docker_py: ok"), "{}", out.stdout);
}
