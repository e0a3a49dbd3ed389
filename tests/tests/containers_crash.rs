//! berthd killed (as `kill -9`) in the middle of create, start, stop,
//! remove, commit and load: after a restart every container is in a
//! consistent state, can be started, stopped and removed, nothing (mount,
//! cgroup, shim, runtime state, files) is left behind, and the image store
//! shows no half-made image and keeps no unreachable layer or blob.
//!
//! Crashes at exact points use berthd's test-only `BERTH_TEST_CRASH_AT`
//! hook (daemon/src/containers/crashpoint.rs); the loop at the end kills
//! berthd at random moments instead. `BERTH_CRASH_ITERATIONS` sets its
//! length (20 by default, the CI form).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_tests::cleanup::{container_cgroups, mounts_under, processes_under};
use berth_tests::{wait_until, Daemon};

const CRASH_ENV: &str = "BERTH_TEST_CRASH_AT";
/// A container that runs until stopped and leaves at SIGTERM.
const LOOP: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while true; do sleep 0.1; done",
];

/// Restart berthd with the crash hook armed at `point`, run `docker args`
/// (which must die with the daemon), then restart it unarmed.
fn crash_during(d: &mut Daemon, point: &str, args: &[&str]) {
    crash_at(d, point, args);
    d.start_again();
}

/// As [`crash_during`], leaving berthd down. The unarmed berthd goes with
/// SIGKILL: a graceful stop would stop the running containers.
fn crash_at(d: &mut Daemon, point: &str, args: &[&str]) {
    d.kill9();
    d.set_env(CRASH_ENV, Some(point));
    d.start_again();
    let out = d.docker(args);
    assert!(
        !out.success(),
        "docker {} survived the crash at {point}: {}",
        args.join(" "),
        out.stdout
    );
    assert!(
        wait_until(Duration::from_secs(10), || d.exited()),
        "berthd did not die at {point}"
    );
    assert!(
        d.log().contains(point),
        "berthd did not reach {point}:\n{}",
        berth_tests::tail(&d.log(), 30)
    );
    d.set_env(CRASH_ENV, None);
}

fn entries(dir: PathBuf) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Nothing of any container remains: no mounts, shim or container
/// processes, container cgroups, bundles, runtime state, records, rw
/// layers or image holds.
#[track_caller]
fn assert_nothing_left(d: &Daemon) {
    // A removal answers before its shim has finished its own teardown and
    // before the trash is emptied: both follow within moments.
    let mut left = leftovers(d);
    wait_until(Duration::from_secs(10), || {
        left = leftovers(d);
        left.is_empty()
    });
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// Everything of a container still there: mounts, processes, cgroups,
/// records, layers, holds, bundles, runtime state and trash entries.
fn leftovers(d: &Daemon) -> Vec<String> {
    let mut left: Vec<String> = mounts_under(d.dir.path())
        .into_iter()
        .map(|m| format!("mount {}", m.display()))
        .collect();
    left.extend(
        processes_under(&d.exec_root, &d.cgroup_parent)
            .into_iter()
            .filter(|p| Some(*p as u32) != d.pid())
            .map(|p| format!("process {p}")),
    );
    left.extend(
        container_cgroups(&d.cgroup_parent)
            .into_iter()
            .map(|c| format!("cgroup {}", c.display())),
    );
    for dir in [
        d.data_root.join("containers"),
        d.data_root.join("overlay/containers"),
        d.data_root.join("overlay/holds"),
        d.data_root.join("trash"),
        d.exec_root.join("shims"),
        d.exec_root.join("runtime"),
    ] {
        left.extend(
            entries(dir.clone())
                .into_iter()
                .map(|e| format!("{}/{e}", dir.display())),
        );
    }
    left
}

fn status(d: &Daemon, name: &str) -> String {
    d.inspect("container", name)["State"]["Status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The container runs, stops and goes away cleanly.
#[track_caller]
fn start_stop_remove(d: &Daemon, name: &str) {
    d.docker_ok(&["start", name]);
    assert_eq!(status(d, name), "running");
    d.docker_ok(&["stop", "-t", "5", name]);
    assert_eq!(status(d, name), "exited");
    d.docker_ok(&["rm", name]);
}

#[test]
fn start_interrupted_at_every_step_is_undone() {
    let mut d = Daemon::with_busybox();
    for point in [
        "start:after-marker",
        "start:after-mount",
        "start:after-runtime-create",
        "start:after-runtime-start",
    ] {
        let mut args = vec!["create", "--name", "ctr", "busybox"];
        args.extend(LOOP);
        d.docker_ok(&args);
        crash_during(&mut d, point, &["start", "ctr"]);
        // The interrupted start is undone: the container is as before it.
        assert!(
            wait_until(Duration::from_secs(30), || d
                .log()
                .contains("undid a start that was interrupted")),
            "{point}: restore did not undo the start:\n{}",
            berth_tests::tail(&d.log(), 30)
        );
        assert_eq!(status(&d, "ctr"), "created", "{point}");
        start_stop_remove(&d, "ctr");
        assert_nothing_left(&d);
        fs::write(&d.log_file, "").unwrap();
    }
    // A container that ran before: the undone start leaves it exited.
    let mut args = vec!["run", "-d", "--name", "ctr", "busybox"];
    args.extend(LOOP);
    d.docker_ok(&args);
    d.docker_ok(&["stop", "ctr"]);
    crash_during(&mut d, "start:after-runtime-start", &["start", "ctr"]);
    assert!(wait_until(Duration::from_secs(30), || d
        .log()
        .contains("undid a start that was interrupted")));
    assert_eq!(status(&d, "ctr"), "exited");
    start_stop_remove(&d, "ctr");
    assert_nothing_left(&d);

    // A record written by a berthd without the start marker (the state the
    // bug left: `created`, with a live shim, init, mount and cgroup).
    let mut args = vec!["create", "--name", "ctr", "busybox"];
    args.extend(LOOP);
    let id = d.docker_ok(&args).trim().to_string();
    crash_at(&mut d, "start:after-runtime-start", &["start", "ctr"]);
    let record = d.data_root.join("containers").join(&id).join("config.json");
    let mut rec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&record).unwrap()).unwrap();
    assert_eq!(rec["pending"]["op"], "starting");
    rec.as_object_mut().unwrap().remove("pending");
    fs::write(&record, rec.to_string()).unwrap();
    fs::write(&d.log_file, "").unwrap();
    d.start_again();
    assert!(wait_until(Duration::from_secs(30), || d
        .log()
        .contains("undid a start that was interrupted")));
    assert_eq!(status(&d, "ctr"), "created");
    start_stop_remove(&d, "ctr");
    assert_nothing_left(&d);
}

#[test]
fn create_interrupted_is_removed() {
    let mut d = Daemon::with_busybox();
    for point in ["create:after-record", "create:after-layer"] {
        crash_during(
            &mut d,
            point,
            &["create", "--name", "ctr", "-v", "/data", "busybox", "true"],
        );
        assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "", "{point}");
        // Its anonymous volume went with it.
        assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "", "{point}");
        assert_nothing_left(&d);
        // The name is free again.
        d.docker_ok(&["create", "--name", "ctr", "busybox", "true"]);
        d.docker_ok(&["rm", "ctr"]);
    }
    // A directory without a record (a create interrupted before its first
    // record write, by an older berthd) is removed at start, not logged as
    // an error at every start.
    let id = "ab".repeat(32);
    let dir = d.data_root.join("containers").join(&id);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("hostname"), "x\n").unwrap();
    fs::create_dir_all(
        d.data_root
            .join("overlay/containers")
            .join(&id)
            .join("upper"),
    )
    .unwrap();
    d.stop();
    fs::write(&d.log_file, "").unwrap();
    d.start_again();
    assert!(!dir.exists(), "record-less container directory kept");
    // What a berthd killed while emptying its trash left there is deleted
    // by the next one.
    d.stop();
    let left = d.data_root.join("trash/0123-left-behind");
    fs::create_dir_all(left.join("upper/deep")).unwrap();
    fs::write(left.join("upper/deep/f"), "x").unwrap();
    d.start_again();
    assert!(
        wait_until(Duration::from_secs(10), || !left.exists()),
        "the trash was not emptied at start"
    );
    assert!(!d.log().contains("skipping unreadable container record"));
    d.stop();
    d.start_again();
    assert!(!d.log().contains("skipping unreadable container record"));
    assert_nothing_left(&d);
}

#[test]
fn remove_interrupted_is_finished() {
    let mut d = Daemon::with_busybox();
    for point in ["remove:after-marker", "remove:after-layer"] {
        d.docker_ok(&["create", "--name", "ctr", "-v", "/data", "busybox", "true"]);
        crash_during(&mut d, point, &["rm", "-v", "ctr"]);
        assert!(
            wait_until(Duration::from_secs(30), || d
                .docker_ok(&["ps", "-aq"])
                .trim()
                .is_empty()),
            "{point}: the removal was not finished"
        );
        assert!(
            wait_until(Duration::from_secs(10), || d
                .docker_ok(&["volume", "ls", "-q"])
                .trim()
                .is_empty()),
            "{point}: rm -v left the anonymous volume"
        );
        assert_nothing_left(&d);
        d.docker_ok(&["create", "--name", "ctr", "busybox", "true"]);
        d.docker_ok(&["rm", "ctr"]);
    }
}

/// A removal answers while the container's shim may still be in its own
/// teardown, and waits for it behind the answer. A berthd killed there
/// has already removed the record: the next one sweeps the shim's bundle
/// and runtime state out of its exec root.
#[test]
fn what_a_removal_left_behind_its_answer_is_swept_at_start() {
    let mut d = Daemon::with_busybox();
    let point = "remove:behind-answer";
    let mut reached = false;
    // The shim is usually still finishing when the removal gets there; a
    // removal that finds it gone does it all before the answer.
    for _ in 0..10 {
        d.docker_ok(&["run", "-d", "--name", "ctr", "busybox", "sleep", "1000"]);
        d.kill9();
        d.set_env(CRASH_ENV, Some(point));
        d.start_again();
        // Answered or cut off: either way the container is gone for good.
        let _ = d.docker(&["rm", "-f", "ctr"]);
        reached = wait_until(Duration::from_secs(3), || d.exited());
        if !reached {
            d.set_env(CRASH_ENV, None);
            continue;
        }
        assert!(
            d.log().contains(point),
            "{}",
            berth_tests::tail(&d.log(), 30)
        );
        d.set_env(CRASH_ENV, None);
        d.start_again();
        break;
    }
    assert!(reached, "no removal got to {point} in 10 tries");
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    assert_nothing_left(&d);
    assert!(
        d.log()
            .contains("removing what a removed container left in the exec root"),
        "{}",
        berth_tests::tail(&d.log(), 30)
    );
}

fn wait_status(d: &Daemon, name: &str, want: &str) {
    assert!(
        wait_until(Duration::from_secs(30), || status(d, name) == want),
        "{name} is {}, not {want}:\n{}",
        status(d, name),
        berth_tests::tail(&d.log(), 30)
    );
}

/// The busybox image plus one file, saved to `<dir>/extra.tar` as
/// `extra:1` and removed again, so loading it unpacks a new layer.
fn extra_image_archive(d: &Daemon) -> String {
    d.docker_ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        "echo x > /extra",
    ]);
    d.docker_ok(&["commit", "mk", "extra:1"]);
    d.docker_ok(&["rm", "mk"]);
    let tar = d.dir.path().join("extra.tar").display().to_string();
    d.docker_ok(&["save", "-o", &tar, "extra:1"]);
    d.docker_ok(&["rmi", "extra:1"]);
    tar
}

fn image_ids(d: &Daemon) -> String {
    d.docker_ok(&[
        "images",
        "-a",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Repository}}:{{.Tag}}",
    ])
}

#[test]
fn commit_load_and_stop_interrupted_leave_nothing_half_done() {
    let mut d = Daemon::with_busybox();
    let extra = extra_image_archive(&d);
    let mut args = vec!["run", "-d", "--name", "ctr", "busybox"];
    args.extend(LOOP);
    d.docker_ok(&args);
    d.docker_ok(&["exec", "ctr", "sh", "-c", "echo data > /committed"]);
    let before = image_ids(&d);
    berth_tests::image_store::assert_consistent(&d.data_root);

    for point in [
        "commit:after-pause",
        "commit:after-diff",
        "image:after-layer",
        "image:after-record",
    ] {
        crash_during(&mut d, point, &["commit", "ctr", "snap:1"]);
        // The container the commit had paused runs again.
        wait_status(&d, "ctr", "running");
        berth_tests::image_store::assert_consistent(&d.data_root);
        if point == "image:after-record" {
            // The image was complete: it is there, with its tag.
            let img = d.inspect("image", "snap:1");
            assert_eq!(img["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));
            d.docker_ok(&["rmi", "snap:1"]);
        }
        assert_eq!(image_ids(&d), before, "{point}: images changed");
        // A retried commit works and holds the container's change.
        d.docker_ok(&["commit", "ctr", "snap:1"]);
        let out = d.docker_ok(&["run", "--rm", "snap:1", "cat", "/committed"]);
        assert_eq!(out.trim(), "data", "{point}");
        d.docker_ok(&["rmi", "snap:1"]);
        berth_tests::image_store::assert_consistent(&d.data_root);
        fs::write(&d.log_file, "").unwrap();
    }

    for point in [
        "load:after-spool",
        "image:after-layer",
        "image:after-record",
    ] {
        crash_during(&mut d, point, &["load", "-i", &extra]);
        berth_tests::image_store::assert_consistent(&d.data_root);
        if point == "image:after-record" {
            d.inspect("image", "extra:1");
            d.docker_ok(&["rmi", "extra:1"]);
        }
        assert_eq!(image_ids(&d), before, "{point}: images changed");
        d.docker_ok(&["load", "-i", &extra]);
        let out = d.docker_ok(&["run", "--rm", "extra:1", "cat", "/extra"]);
        assert_eq!(out.trim(), "x", "{point}");
        d.docker_ok(&["rmi", "extra:1"]);
        berth_tests::image_store::assert_consistent(&d.data_root);
        fs::write(&d.log_file, "").unwrap();
    }

    // A stop whose signal went out: the container ended while berthd was
    // down, and that exit is what the next berthd reports.
    crash_during(&mut d, "stop:after-signal", &["stop", "ctr"]);
    wait_status(&d, "ctr", "exited");
    start_stop_remove(&d, "ctr");
    // One that ignores the signal keeps running and stops normally.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    crash_during(
        &mut d,
        "stop:after-signal",
        &["stop", "-t", "30", "stubborn"],
    );
    wait_status(&d, "stubborn", "running");
    d.docker_ok(&["stop", "-t", "1", "stubborn"]);
    assert_eq!(status(&d, "stubborn"), "exited");
    d.docker_ok(&["start", "stubborn"]);
    d.docker_ok(&["rm", "-f", "stubborn"]);
    assert_nothing_left(&d);
    berth_tests::image_store::assert_consistent(&d.data_root);
}

/// A tiny xorshift generator: the seed is printed, so a failing sequence
/// can be replayed with `BERTH_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn spawn_docker(d: &Daemon, args: &[&str]) -> Child {
    let mut cmd = d.docker_command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().expect("spawn docker")
}

fn reap(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a docker command outlived its daemon by 30s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every listed container has a valid state; each that is not running
/// starts (the next iterations then stop or remove it).
#[track_caller]
fn check_consistent(d: &Daemon, iteration: u32, op: &str) -> BTreeMap<String, String> {
    let out = d.docker_ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    let mut states = BTreeMap::new();
    for line in out.lines() {
        let (name, state) = line.split_once(' ').unwrap_or((line, ""));
        states.insert(name.to_string(), state.to_string());
    }
    for (name, state) in &states {
        // A running one may be stopping (an interrupted `stop`), a
        // created/exited one must start.
        match state.as_str() {
            "running" => {}
            // Paused by a commit the kill interrupted: restore resumes it.
            "paused" => wait_status(d, name, "running"),
            "created" | "exited" => {
                let out = d.docker(&["start", name]);
                assert!(
                    out.success(),
                    "iteration {iteration} ({op}): {name} ({state}) does not start: {}\n{}",
                    out.stderr,
                    berth_tests::tail(&d.log(), 40)
                );
            }
            other => panic!("iteration {iteration} ({op}): {name} is {other}"),
        }
    }
    states
}

#[test]
fn kill9_at_random_points_converges() {
    let mut d = Daemon::with_busybox();
    let iterations: u32 = std::env::var("BERTH_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|t| t.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("crash loop: {iterations} iterations, BERTH_CRASH_SEED={seed}");
    let extra = extra_image_archive(&d);
    let mut rng = Rng(seed);
    let mut states: BTreeMap<String, String> = BTreeMap::new();
    let mut next_name = 0;
    let mut crashes = 0;
    let mut ops: BTreeMap<&str, u32> = BTreeMap::new();
    for i in 0..iterations {
        let names: Vec<String> = states.keys().cloned().collect();
        let pick = names.get(rng.next(names.len() as u64) as usize).cloned();
        let fresh = format!("c{next_name}");
        let room = names.len() < 3;
        let words = |w: &[&str]| -> Vec<String> { w.iter().map(|s| s.to_string()).collect() };
        let (op, args) = match (rng.next(7), pick) {
            (0, _) | (_, None) if room => ("run", words(&["run", "-d", "--name", &fresh])),
            (4, _) if room => ("create", words(&["create", "--name", &fresh])),
            (5, Some(n)) => ("commit", words(&["commit", &n, "snap:1"])),
            (6, _) => {
                // Loading unpacks a new layer only if the image is gone.
                let _ = d.docker(&["rmi", "extra:1"]);
                ("load", words(&["load", "-i", &extra]))
            }
            (1, Some(n)) => ("stop", words(&["stop", "-t", "1", &n])),
            (2, Some(n)) => ("restart", words(&["restart", "-t", "0", &n])),
            (3, Some(n)) => ("rm", words(&["rm", "-f", &n])),
            (_, Some(n)) => {
                // Stopped first (not interrupted), so the start is what the
                // kill lands in.
                d.docker_ok(&["stop", "-t", "0", &n]);
                ("start", words(&["start", &n]))
            }
            (_, None) => unreachable!("no containers means room for one"),
        };
        let args = if matches!(op, "run" | "create") {
            next_name += 1;
            let mut a = args;
            a.push("busybox".into());
            a.extend(words(LOOP));
            a
        } else {
            args
        };
        *ops.entry(op).or_default() += 1;
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = spawn_docker(&d, &argv);
        std::thread::sleep(Duration::from_millis(rng.next(400)));
        if !d.exited() {
            crashes += 1;
        }
        d.kill9();
        reap(child);
        d.start_again();
        states = check_consistent(&d, i, op);
        berth_tests::image_store::assert_consistent(&d.data_root);
        if op == "commit" {
            // Older commits lost their tag to the newer ones.
            d.docker_ok(&["image", "prune", "-f"]);
        }
    }
    // Every container left can be stopped, started and removed.
    let names: Vec<String> = states.keys().cloned().collect();
    for name in &names {
        d.docker_ok(&["stop", "-t", "5", name]);
        assert_eq!(status(&d, name), "exited");
        d.docker_ok(&["start", name]);
        d.docker_ok(&["rm", "-f", name]);
    }
    assert!(
        wait_until(Duration::from_secs(10), || d
            .docker_ok(&["ps", "-aq"])
            .trim()
            .is_empty()),
        "containers left"
    );
    assert_nothing_left(&d);
    for img in ["snap:1", "extra:1"] {
        let _ = d.docker(&["rmi", img]);
    }
    d.docker_ok(&["image", "prune", "-f"]);
    berth_tests::image_store::assert_consistent(&d.data_root);
    berth_tests::report_figures(&format!(
        "crash loop: {iterations} iterations ({ops:?}), {crashes} kills, {} containers at the end, all consistent, nothing leaked (BERTH_CRASH_SEED={seed})",
        names.len()
    ));
}

/// A container's hold on its image layers is not forced to disk at create
/// (the record is): after a host crash that lost it, the next berthd holds
/// the layers again, so `rmi -f` of the image cannot take them.
#[test]
fn a_hold_lost_to_a_host_crash_is_made_again() {
    let mut d = Daemon::with_busybox();
    let id = d
        .docker_ok(&["create", "--name", "ctr", "busybox", "true"])
        .trim()
        .to_string();
    let hold = d.data_root.join("overlay/holds").join(&id);
    assert!(hold.exists(), "create made no hold");
    d.stop();
    fs::remove_file(&hold).unwrap();
    d.start_again();
    assert!(hold.exists(), "restore did not hold the layers again");
    d.docker_ok(&["rmi", "-f", "busybox"]);
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    d.docker_ok(&["start", "-a", "ctr"]);
    assert_eq!(status(&d, "ctr"), "exited");
    d.docker_ok(&["rm", "ctr"]);
    assert_nothing_left(&d);
}
