//! `berth-runtime run` against `runc run` on the same busybox bundle, runs
//! interleaved so both see the same machine load. Prints the medians and the
//! ratio (target: berth ≤ 0.5 × runc). Needs root; `runc` from $PATH (or
//! $RUNC); iterations from $BERTH_BENCH_RUNS (default 30).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fixtures_rootfs(workspace: &Path) -> PathBuf {
    let dir = std::env::var_os("BERTH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/fixtures"));
    let rootfs = dir.join("busybox/rootfs");
    if !rootfs.is_dir() {
        let status = Command::new(workspace.join("rootfs-fixtures/build.sh"))
            .arg(&dir)
            .status()
            .expect("run rootfs-fixtures/build.sh");
        assert!(status.success(), "building the busybox fixture failed");
    }
    rootfs
}

fn run_once(bin: &str, root: &Path, bundle: &Path, id: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"));
    let took = start.elapsed();
    assert!(status.success(), "{bin} run {id} failed: {status}");
    took
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the benchmark needs root");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    let berth = env!("CARGO_BIN_EXE_berth-runtime");
    let runc = std::env::var("RUNC").unwrap_or_else(|_| "runc".into());
    let runs: usize = std::env::var("BERTH_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tmp.path().join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle dir");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(fixtures_rootfs(&workspace))
        .arg(bundle.join("rootfs"))
        .status()
        .expect("cp");
    assert!(cp.success(), "copying the rootfs failed");
    let spec = Command::new(berth)
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .expect("berth-runtime spec");
    assert!(spec.success());
    let cfg_path = bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).expect("read config")).expect("json");
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["process"]["args"] = serde_json::json!(["true"]);
    let cgroup_parent = format!("berth-bench-{}", std::process::id());
    cfg["linux"]["cgroupsPath"] = serde_json::json!(format!("/{cgroup_parent}/c"));
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).expect("encode")).expect("write config");
    // State on tmpfs, like both runtimes' defaults.
    let state = PathBuf::from(format!("/run/berth-bench-{}", std::process::id()));
    let (berth_root, runc_root) = (state.join("berth"), state.join("runc"));

    // One warm-up each (page cache, first cgroup creation).
    run_once(berth, &berth_root, &bundle, "warm-b");
    run_once(&runc, &runc_root, &bundle, "warm-r");
    let mut b = Vec::with_capacity(runs);
    let mut r = Vec::with_capacity(runs);
    for i in 0..runs {
        b.push(run_once(berth, &berth_root, &bundle, &format!("b{i}")));
        r.push(run_once(&runc, &runc_root, &bundle, &format!("r{i}")));
    }
    let (mb, mr) = (median(&mut b), median(&mut r));
    println!(
        "berth-runtime run: median {:.2} ms over {runs} runs",
        mb.as_secs_f64() * 1e3
    );
    println!(
        "runc run:          median {:.2} ms over {runs} runs",
        mr.as_secs_f64() * 1e3
    );
    println!(
        "ratio berth/runc:  {:.2} (target <= 0.50)",
        mb.as_secs_f64() / mr.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&state);
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&cgroup_parent));
    }
}
