//! berth-runtime's cgroup handling seen from outside, on busybox bundles:
//! limits land in the host's cgroupfs, the kernel enforces them, `events
//! --stats` reads them back, `update` changes them, impossible limits are
//! refused with nothing left behind.

mod runtime_support;

use std::path::{Path, PathBuf};

use berth_tests::cleanup;
use runtime_support::Bundle;
use serde_json::json;

/// `<hierarchy>/<parent>/<id>` for a v1 controller, or the unified
/// hierarchy's directory when the controller is not mounted as v1.
fn controller_dir(b: &Bundle, controller: &str, id: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    let base = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    base.join(&b.cgroup_parent).join(id)
}

fn read_trimmed(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

fn stats(b: &Bundle, id: &str) -> serde_json::Value {
    let out = b.rt(&["events", "--stats", id]);
    assert!(out.success(), "events --stats: {}", out.stderr);
    let ev: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("events JSON");
    assert_eq!(ev["type"], "stats");
    ev["data"].clone()
}

#[test]
fn memory_limit_is_visible_and_an_allocation_past_it_is_oom_killed() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"] = json!({
        "memory": { "limit": 16 << 20, "swap": 16 << 20 }
    });
    // dd's 64 MiB buffer does not fit in 16 MiB: the kernel kills dd; the
    // shell stays to let us look at the cgroup.
    b.set_args(&[
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 600",
    ]);
    let id = b.start_detached("oom");
    let memory = controller_dir(&b, "memory", &id);
    let limit = std::fs::read_to_string(memory.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(memory.join("memory.max")))
        .expect("memory limit file");
    assert_eq!(limit.trim(), (16u64 << 20).to_string());
    let killed = berth_tests::wait_until(std::time::Duration::from_secs(20), || {
        let oom_control = std::fs::read_to_string(memory.join("memory.oom_control"))
            .or_else(|_| std::fs::read_to_string(memory.join("memory.events")))
            .unwrap_or_default();
        oom_control
            .lines()
            .any(|l| l.starts_with("oom_kill ") && l.trim_end() != "oom_kill 0")
    });
    assert!(killed, "no OOM kill recorded in {}", memory.display());
    let data = stats(&b, &id);
    assert_eq!(data["memory"]["usage"]["limit"], json!(16u64 << 20));
    assert_eq!(
        data["memory"]["usage"]["max"],
        json!(16u64 << 20),
        "peak usage reached the limit: {data}"
    );
    assert!(b.rt(&["delete", "--force", &id]).success());
    assert!(
        b.cgroup_leftovers(&id).is_empty(),
        "cgroup left after delete"
    );
}

#[test]
fn foreground_oom_kill_exits_137() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"] = json!({
        "memory": { "limit": 16 << 20, "swap": 16 << 20 }
    });
    b.set_args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    let out = b.run("oomfg");
    assert_eq!(
        out.code(),
        Some(137),
        "SIGKILL by the OOM killer: {}",
        out.stderr
    );
}

#[test]
fn cpu_settings_are_written_and_updatable() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"] = json!({
        "cpu": { "shares": 512, "quota": 50000, "period": 100000, "cpus": "0" },
        "pids": { "limit": 50 }
    });
    b.set_args(&["sleep", "600"]);
    let id = b.start_detached("cpu");
    let cpu = controller_dir(&b, "cpu", &id);
    if cpu.join("cpu.cfs_quota_us").exists() {
        assert_eq!(read_trimmed(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read_trimmed(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read_trimmed(&cpu.join("cpu.shares")), "512");
    } else {
        assert_eq!(read_trimmed(&cpu.join("cpu.max")), "50000 100000");
    }
    assert_eq!(
        read_trimmed(&controller_dir(&b, "cpuset", &id).join("cpuset.cpus")),
        "0"
    );
    let out = b.rt(&["update", "--cpu-quota", "25000", "--pids-limit", "30", &id]);
    assert!(out.success(), "update: {}", out.stderr);
    if cpu.join("cpu.cfs_quota_us").exists() {
        assert_eq!(read_trimmed(&cpu.join("cpu.cfs_quota_us")), "25000");
    } else {
        assert_eq!(read_trimmed(&cpu.join("cpu.max")), "25000 100000");
    }
    let pids = controller_dir(&b, "pids", &id);
    assert_eq!(read_trimmed(&pids.join("pids.max")), "30");
    let data = stats(&b, &id);
    assert_eq!(data["pids"]["limit"], json!(30));
    assert_eq!(data["pids"]["current"], json!(1));
    assert!(b.rt(&["delete", "--force", &id]).success());
    assert!(b.cgroup_leftovers(&id).is_empty());
}

#[test]
fn pids_limit_is_enforced() {
    // init (sh) plus ten short sleepers: fits in 20, not in 5 (busybox sh
    // gives up with "can't fork" at the first refused fork).
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait; echo all-forked";
    let mut b = Bundle::new();
    b.set_args(&["sh", "-c", script]);
    b.config["linux"]["resources"] = json!({ "pids": { "limit": 20 } });
    let roomy = b.run("pids20");
    assert!(roomy.success(), "pids.max=20: {roomy:?}");
    assert_eq!(roomy.stdout.trim(), "all-forked");
    b.config["linux"]["resources"] = json!({ "pids": { "limit": 5 } });
    let tight = b.run("pids5");
    assert!(
        !tight.success(),
        "pids.max=5 should stop the forks: {tight:?}"
    );
    assert!(tight.stderr.contains("can't fork"), "{}", tight.stderr);
    assert!(!tight.stdout.contains("all-forked"));
}

#[test]
fn impossible_limits_fail_cleanly() {
    for (what, resources, needle) in [
        ("mem", json!({ "memory": { "limit": 1 } }), "memory"),
        (
            "quota",
            json!({ "cpu": { "quota": 500, "period": 100000 } }),
            "cpu.quota",
        ),
        ("cpus", json!({ "cpu": { "cpus": "4000" } }), "cpuset.cpus"),
    ] {
        let mut b = Bundle::new();
        b.config["linux"]["resources"] = resources;
        b.set_args(&["true"]);
        let id = b.id(what);
        b.write_config(&id);
        let bundle = b.bundle.display().to_string();
        let out = b.rt(&["run", "--bundle", &bundle, &id]);
        assert!(!out.success(), "{what}: an impossible limit must fail");
        assert!(
            out.stderr.contains(needle),
            "{what}: error should name {needle}: {}",
            out.stderr
        );
        assert!(
            !b.container_dir(&id).exists(),
            "{what}: state dir left behind"
        );
        assert!(
            cleanup::cgroup_dirs(&b.cgroup_parent).is_empty(),
            "{what}: cgroups left behind: {:?}",
            cleanup::cgroup_dirs(&b.cgroup_parent)
        );
        assert!(
            b.mounts_under_bundle().is_empty(),
            "{what}: mounts left behind"
        );
    }
}

#[test]
fn systemd_cgroup_path_is_refused() {
    let mut b = Bundle::new();
    b.config["linux"]["cgroupsPath"] = json!("system.slice:berth:test");
    b.set_args(&["true"]);
    let out = b.run("systemd");
    assert!(!out.success());
    assert!(out.stderr.contains("systemd"), "{}", out.stderr);
}

/// memory.kernel / kernelTCP never refuse a container: written where the
/// host has the file and takes the value (kmem.tcp on this v1 host), dropped
/// otherwise, as runc 1.1.
#[test]
fn kernel_memory_limits_do_not_refuse_the_container() {
    let mut b = Bundle::new();
    b.config["linux"]["resources"]["memory"] =
        json!({"limit": 64 << 20, "kernel": 48 << 20, "kernelTCP": 32 << 20});
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("kmem");
    let dir = controller_dir(&b, "memory", &id);
    let tcp = dir.join("memory.kmem.tcp.limit_in_bytes");
    if tcp.exists() {
        assert_eq!(read_trimmed(&tcp), (32u64 << 20).to_string());
    }
    assert_eq!(
        read_trimmed(&dir.join(if dir.join("memory.limit_in_bytes").exists() {
            "memory.limit_in_bytes"
        } else {
            "memory.max"
        })),
        (64u64 << 20).to_string()
    );
    assert!(b.rt(&["delete", "--force", &id]).success());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// `<parent>/<rel>` in every mounted hierarchy.
fn in_every_hierarchy(b: &Bundle, rel: &str) -> Vec<PathBuf> {
    cleanup::cgroup_roots()
        .into_iter()
        .map(|r| r.join(&b.cgroup_parent).join(rel))
        .collect()
}

/// Issue 14.4: delete removes only what the container created. A parent an
/// orchestrator made beforehand (with its own limits) outlives its last
/// container; so does a parent one container made and another shared.
#[test]
fn delete_keeps_parent_cgroups_the_container_did_not_create() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "600"]);
    let admin = in_every_hierarchy(&b, "admin");
    for d in &admin {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    // The admin's own limit, where this host has the file for it.
    let admin_limit = admin
        .iter()
        .map(|d| d.join("memory.limit_in_bytes"))
        .chain(admin.iter().map(|d| d.join("pids.max")))
        .filter(|f| f.exists())
        .map(|f| {
            let value = if f.ends_with("pids.max") {
                "321"
            } else {
                "268435456"
            };
            std::fs::write(&f, value).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            (f, value)
        })
        .collect::<Vec<_>>();
    assert!(
        !admin_limit.is_empty(),
        "no memory or pids file to set on this host"
    );

    let id = b.id("admin");
    b.config["linux"]["cgroupsPath"] = json!(format!("/{}/admin/{id}", b.cgroup_parent));
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let out = b.rt_detached(&["run", "--detach", "--bundle", &bundle, &id]);
    assert!(out.success(), "run -d: {}", out.stderr);
    let leaf = in_every_hierarchy(&b, &format!("admin/{id}"));
    assert!(
        leaf.iter().all(|d| d.is_dir()),
        "container cgroup made: {leaf:?}"
    );
    assert!(b.rt(&["delete", "--force", &id]).success());
    for d in &leaf {
        assert!(!d.exists(), "{} left after delete", d.display());
    }
    for d in &admin {
        assert!(d.is_dir(), "the admin's cgroup {} was removed", d.display());
    }
    for (f, value) in &admin_limit {
        assert_eq!(read_trimmed(f), *value, "admin limit in {}", f.display());
    }

    // Shared: a makes "shared", b joins it; neither delete removes it
    // while the other is there, and b (which did not make it) never.
    let shared = in_every_hierarchy(&b, "shared");
    let mut ids = Vec::new();
    for what in ["a", "b"] {
        let id = b.id(what);
        b.config["linux"]["cgroupsPath"] = json!(format!("/{}/shared/{id}", b.cgroup_parent));
        b.write_config(&id);
        let out = b.rt_detached(&["run", "--detach", "--bundle", &bundle, &id]);
        assert!(out.success(), "run -d {what}: {}", out.stderr);
        ids.push(id);
    }
    assert!(b.rt(&["delete", "--force", &ids[0]]).success());
    for d in &shared {
        assert!(d.join(&ids[1]).is_dir(), "b's cgroup went with a's delete");
    }
    assert!(b.rt(&["delete", "--force", &ids[1]]).success());
    for d in &shared {
        assert!(
            !d.join(&ids[1]).exists(),
            "b's cgroup left in {}",
            d.display()
        );
        assert!(d.is_dir(), "the shared parent {} was removed", d.display());
    }
}

/// The directory of cgroup `<parent>/<id>` in the hierarchy that serves
/// `controller` on this host: its v1 mount, the unified half of a hybrid
/// host, or pure v2. None when the host lacks the controller.
fn serving_dir(b: &Bundle, controller: &str, id: &str) -> Option<PathBuf> {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.is_dir() && !v1.join("cgroup.controllers").exists() {
        return Some(v1.join(&b.cgroup_parent).join(id));
    }
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(Path::new)
        .find(|u| {
            std::fs::read_to_string(u.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
        })
        .map(|u| u.join(&b.cgroup_parent).join(id))
}

/// A block device of this host as (major, minor).
fn some_block_device() -> (u64, u64) {
    std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("dev")).ok())
        .filter_map(|d| {
            let (a, b) = d.trim().split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .find(|(major, _)| *major != 7) // not a loop device
        .expect("a block device")
}

/// Issue 14.7: on this hybrid host hugetlb is served by the unified
/// hierarchy and blkio by v1; each limit is read back where it belongs.
/// (net_cls/net_prio, rdma and the other layouts: placement_tests in
/// runtime/src/cgroups, on fake mount tables.)
#[test]
fn hugetlb_and_blkio_limits_land_in_the_hierarchy_serving_them() {
    let mut b = Bundle::new();
    b.set_args(&["sleep", "600"]);
    let (major, minor) = some_block_device();
    let hugetlb_2m = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir();
    let mut resources = json!({
        "blockIO": {
            "throttleReadBpsDevice": [{ "major": major, "minor": minor, "rate": 1048576 }],
            "throttleWriteIOPSDevice": [{ "major": major, "minor": minor, "rate": 120 }]
        }
    });
    if hugetlb_2m {
        resources["hugepageLimits"] = json!([{ "pageSize": "2MB", "limit": 4194304 }]);
    }
    b.config["linux"]["resources"] = resources;
    let id = b.start_detached("placed");

    let blkio = serving_dir(&b, "blkio", &id);
    match blkio.as_deref() {
        Some(d) if d.starts_with("/sys/fs/cgroup/blkio") => {
            assert_eq!(
                read_trimmed(&d.join("blkio.throttle.read_bps_device")),
                format!("{major}:{minor} 1048576")
            );
            assert_eq!(
                read_trimmed(&d.join("blkio.throttle.write_iops_device")),
                format!("{major}:{minor} 120")
            );
        }
        _ => {
            let io = serving_dir(&b, "io", &id).expect("no blkio and no io controller");
            let max = read_trimmed(&io.join("io.max"));
            assert!(
                max.contains(&format!("{major}:{minor} rbps=1048576")) && max.contains("wiops=120"),
                "io.max: {max}"
            );
        }
    }
    match serving_dir(&b, "hugetlb", &id) {
        Some(d) if hugetlb_2m => {
            let file = if d.join("hugetlb.2MB.max").exists() {
                "hugetlb.2MB.max"
            } else {
                "hugetlb.2MB.limit_in_bytes"
            };
            assert_eq!(read_trimmed(&d.join(file)), "4194304", "{}", d.display());
        }
        _ => eprintln!("no hugetlb controller or 2 MB pages here: hugetlb not checked live"),
    }
    assert!(b.rt(&["delete", "--force", &id]).success());

    // A weight needs a weight-capable I/O scheduler (BFQ): where the host
    // has no weight file the container is refused, naming the field.
    let weight_file = blkio
        .as_deref()
        .filter(|d| d.starts_with("/sys/fs/cgroup/blkio"))
        .and_then(|d| d.parent())
        .map(|p| p.join("blkio.weight"));
    b.config["linux"]["resources"] = json!({ "blockIO": { "weight": 300 } });
    let Some(weight_file) = weight_file else {
        eprintln!("no v1 blkio hierarchy: the weight is covered by placement_tests only");
        return;
    };
    if !weight_file.exists() {
        let out = b.run("weight");
        assert!(!out.success(), "blkio weight without a weight file ran");
        assert!(out.stderr.contains("blockIO.weight"), "{}", out.stderr);
    } else {
        let id = b.start_detached("weight");
        let d = serving_dir(&b, "blkio", &id).expect("blkio");
        let w = std::fs::read_to_string(d.join("blkio.weight"))
            .or_else(|_| std::fs::read_to_string(d.join("blkio.bfq.weight")))
            .expect("weight file");
        assert_eq!(w.trim(), "300");
        assert!(b.rt(&["delete", "--force", &id]).success());
    }
}
