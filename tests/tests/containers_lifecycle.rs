//! Container lifecycle through the real docker CLI: run, exit codes, detached
//! containers with ps/stop/start/rm, names, config merging, stdin, and that
//! removal leaves nothing behind.

use std::fs;
use std::time::Duration;

use berth_tests::cleanup::{cgroup_dirs, mounts_under, processes_under};
use berth_tests::{wait_until, Daemon};

/// Nothing of any container remains: no mounts, no shim or container
/// processes, no container cgroups, no bundles, records or rw layers.
#[track_caller]
fn assert_nothing_left(d: &Daemon) {
    // A removal answers before its shim has finished its own teardown
    // (`runtime delete`, the bundle): that follows within moments.
    let settled = || {
        processes_under(&d.exec_root, &d.cgroup_parent)
            .into_iter()
            .all(|p| Some(p as u32) == d.pid())
            && fs::read_dir(d.exec_root.join("shims")).map_or(true, |mut r| r.next().is_none())
    };
    wait_until(Duration::from_secs(10), settled);
    assert_eq!(
        mounts_under(d.dir.path()),
        Vec::<std::path::PathBuf>::new(),
        "mounts left"
    );
    let procs: Vec<i32> = processes_under(&d.exec_root, &d.cgroup_parent)
        .into_iter()
        .filter(|p| Some(*p as u32) != d.pid())
        .collect();
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let cgroups: Vec<_> = cgroup_dirs(&d.cgroup_parent)
        .into_iter()
        .flat_map(|dir| fs::read_dir(dir).into_iter().flatten().flatten())
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    assert!(cgroups.is_empty(), "container cgroups left: {cgroups:?}");
    for dir in ["containers", "overlay/containers"] {
        let n = fs::read_dir(d.data_root.join(dir))
            .map(|r| r.count())
            .unwrap_or(0);
        assert_eq!(n, 0, "{dir} not empty");
    }
    let trash = d.data_root.join("trash");
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_dir(&trash)
            .map(|r| r.count() == 0)
            .unwrap_or(true)),
        "removed containers' directories stay in the trash"
    );
    let n = fs::read_dir(d.exec_root.join("shims"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(n, 0, "bundles left");
}

/// `docker ps -a` lists nothing within 10 s (an `--rm` container goes
/// after its exit).
#[track_caller]
fn assert_none_listed(d: &Daemon) {
    assert!(
        wait_until(Duration::from_secs(10), || d
            .docker_ok(&["ps", "-aq"])
            .trim()
            .is_empty()),
        "containers still listed: {}",
        d.docker_ok(&["ps", "-a"])
    );
}

#[test]
fn run_rm_prints_and_cleans_up() {
    let d = Daemon::with_busybox();
    let out = d.docker_ok(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!(out, "hello\n");
    assert_none_listed(&d);
    assert_nothing_left(&d);
}

/// berthd keeps its cgroup parent while it runs (the last container's
/// removal leaves it), knows after a crash that it made it, and removes
/// it when it stops.
#[test]
fn the_cgroup_parent_lives_as_long_as_berthd() {
    let mut d = Daemon::with_busybox();
    let parents = cgroup_dirs(&d.cgroup_parent);
    assert!(!parents.is_empty(), "no cgroup parent made at start");
    d.docker_ok(&["run", "--rm", "busybox", "true"]);
    assert_none_listed(&d);
    assert_nothing_left(&d);
    assert_eq!(
        cgroup_dirs(&d.cgroup_parent),
        parents,
        "the parent went with the container"
    );
    // An exec after the restart starts from the bundle berthd wrote before.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "-e",
        "FROM_RUN=1",
        "busybox",
        "sleep",
        "60",
    ]);
    d.kill9();
    d.start_again();
    assert_eq!(cgroup_dirs(&d.cgroup_parent), parents);
    let env = d.docker_ok(&["exec", "live", "sh", "-c", "echo $FROM_RUN"]);
    assert_eq!(env.trim(), "1");
    d.docker_ok(&["rm", "-f", "live"]);
    d.stop();
    let left = cgroup_dirs(&d.cgroup_parent);
    assert!(left.is_empty(), "left after berthd stopped: {left:?}");
}

#[test]
fn exit_codes_pass_through() {
    let d = Daemon::with_busybox();
    let out = d.docker(&[
        "run",
        "--name",
        "three",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code(), Some(3), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    let v = d.inspect("container", "three");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_ne!(v["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    let missing = d.docker(&["run", "busybox", "/no/such/binary"]);
    assert_eq!(missing.code(), Some(127), "stderr: {}", missing.stderr);
    d.docker_ok(&["rm", "three"]);
}

/// An exit answers its waiters before the shim has finished its own
/// teardown; a start or a copy right after waits for that. Through the
/// API on one connection (docker-py), each start follows the last wait
/// within a millisecond or two: every run must work and see the files of
/// the runs before it.
#[test]
fn a_container_is_used_again_the_moment_it_exits() {
    let d = Daemon::with_busybox();
    let out = d.python(
        r#"
import os, docker
c = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto")
ctr = c.create_container("busybox", ["sh", "-c", "echo run >> /runs"], name="again")
for n in range(1, 41):
    c.start(ctr)
    assert c.wait(ctr)["StatusCode"] == 0, n
    if n % 4 == 0:
        tar, _ = c.get_archive(ctr, "/runs")
        data = b"".join(tar)
        assert data.count(b"run\n") == n, (n, data[-200:])
print("ok")
"#,
    );
    assert_eq!(
        out.stdout.trim(),
        "ok",
        "{}\n{}",
        out.stderr,
        berth_tests::tail(&d.log(), 20)
    );
    d.docker_ok(&["rm", "again"]);
    assert_nothing_left(&d);
}

#[test]
fn detached_ps_stop_start_rm() {
    let d = Daemon::with_busybox();
    let id = d.docker_ok(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.docker_ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("{} web Up", &id[..12])), "{ps}");
    let v = d.inspect("container", "web");
    assert_eq!(v["State"]["Running"], true);
    let pid = v["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert!(fs::metadata(format!("/proc/{pid}")).is_ok());
    assert_eq!(v["Config"]["Hostname"], &id[..12]);

    // sleep as PID 1 ignores SIGTERM: the stop timeout ends in SIGKILL.
    d.docker_ok(&["stop", "-t", "1", "web"]);
    let v = d.inspect("container", "web");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert!(d.docker_ok(&["ps", "-q"]).trim().is_empty());
    assert!(d.docker_ok(&["ps", "-aq"]).contains(&id[..12]));

    d.docker_ok(&["start", "web"]);
    assert_eq!(d.inspect("container", "web")["State"]["Status"], "running");
    let busy = d.docker(&["rm", "web"]);
    assert!(!busy.success());
    assert!(
        busy.stderr.contains("cannot remove container \"web\": container is running: stop the container before removing or force remove"),
        "{}",
        busy.stderr
    );
    d.docker_ok(&["rm", "-f", "web"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    assert_nothing_left(&d);
}

#[test]
fn names_rename_and_conflicts() {
    let d = Daemon::with_busybox();
    let id = d.docker_ok(&["create", "--name", "first", "busybox", "true"]);
    let id = id.trim();
    let clash = d.docker(&["create", "--name", "first", "busybox", "true"]);
    assert!(!clash.success());
    assert!(
        clash.stderr.contains(&format!(
            "Conflict. The container name \"/first\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
        )),
        "{}",
        clash.stderr
    );
    d.docker_ok(&["rename", "first", "second"]);
    assert_eq!(d.inspect("container", "second")["Name"], "/second");
    assert!(!d
        .docker(&["inspect", "--type", "container", "first"])
        .success());
    // The old name is free again; a short ID prefix resolves.
    d.docker_ok(&["create", "--name", "first", "busybox", "true"]);
    assert_eq!(d.inspect("container", &id[..6])["Name"], "/second");
    let bad = d.docker(&["create", "--name", "-bad", "busybox", "true"]);
    assert!(
        bad.stderr.contains("Invalid container name (-bad)"),
        "{}",
        bad.stderr
    );
    // Generated names look like dockerd's.
    let gen = d.docker_ok(&["create", "busybox", "true"]);
    let name = d.inspect("container", gen.trim())["Name"]
        .as_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = name.trim_start_matches('/').split('_').collect();
    assert_eq!(parts.len(), 2, "{name}");
    d.docker_ok(&["rm", "first", "second", gen.trim()]);
    assert_nothing_left(&d);
}

#[test]
fn env_workdir_user_entrypoint_cmd() {
    let d = Daemon::with_busybox();
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "1000",
        "busybox",
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u) $(id -g) $HOME $HOSTNAME",
    ]);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        f[..5],
        ["bar", "/tmp", "1000", "1000", "/home/user"],
        "{out}"
    );
    assert_eq!(f[5].len(), 12);
    let out = d.docker_ok(&["run", "--rm", "-u", "nobody:user", "busybox", "id"]);
    assert!(out.starts_with("uid=65534(nobody) gid=1000(user)"), "{out}");
    let bad = d.docker(&["run", "--rm", "-u", "ghost", "busybox", "id"]);
    assert!(!bad.success());
    assert!(
        bad.stderr.contains("unable to find user ghost"),
        "{}",
        bad.stderr
    );
    // --entrypoint replaces the image's and drops its Cmd.
    let out = d.docker_ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"]);
    assert_eq!(out, "a b\n");
    let out = d.docker_ok(&["run", "--rm", "--entrypoint", "pwd", "busybox"]);
    assert_eq!(out, "/\n");
    // No command: the image's Cmd ("sh") reads the empty stdin and exits 0.
    let out = d.docker(&["run", "--rm", "busybox"]);
    assert_eq!(out.code(), Some(0));
    assert_nothing_left(&d);
}

#[test]
fn stdin_is_piped_and_closed() {
    let d = Daemon::with_busybox();
    let out = d.docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], Some(b"hi\n"));
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "hi\n");
    let big: Vec<u8> = (0..200_000).map(|i| b'a' + (i % 26) as u8).collect();
    let out = d.docker_stdin(&["run", "-i", "--rm", "busybox", "wc", "-c"], Some(&big));
    assert_eq!(out.stdout.trim(), "200000");
    assert_nothing_left(&d);
}

#[test]
fn kill_wait_restart_pause() {
    let d = Daemon::with_busybox();
    // PID 1 only dies of signals it handles: trap USR1.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "k1",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while true; do sleep 0.1; done",
    ]);
    d.docker_ok(&["pause", "k1"]);
    assert_eq!(d.inspect("container", "k1")["State"]["Status"], "paused");
    assert!(d.docker_ok(&["ps"]).contains("(Paused)"));
    d.docker_ok(&["unpause", "k1"]);
    assert_eq!(d.inspect("container", "k1")["State"]["Status"], "running");
    let pid1 = d.inspect("container", "k1")["State"]["Pid"]
        .as_i64()
        .unwrap();
    d.docker_ok(&["restart", "-t", "0", "k1"]);
    let v = d.inspect("container", "k1");
    assert_eq!(v["State"]["Status"], "running");
    assert_ne!(v["State"]["Pid"].as_i64().unwrap(), pid1);
    d.docker_ok(&["kill", "-s", "USR1", "k1"]);
    let code = d.docker_ok(&["wait", "k1"]);
    assert_eq!(code.trim(), "5");
    let again = d.docker(&["kill", "k1"]);
    assert!(again.stderr.contains("is not running"), "{}", again.stderr);
    let top = d.docker(&["top", "k1"]);
    assert!(!top.success());
    d.docker_ok(&["start", "k1"]);
    let top = d.docker_ok(&["top", "k1"]);
    assert!(top.contains("trap 'exit 5' USR1"), "{top}");
    d.docker_ok(&["rm", "-f", "k1"]);
    assert_nothing_left(&d);
}

#[test]
fn restart_policies() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let v = d.inspect("container", "flaky");
            v["RestartCount"] == 2 && v["State"]["Status"] == "exited"
        }),
        "on-failure:2 did not restart twice: {}",
        d.inspect("container", "flaky")
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "always",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    assert!(wait_until(Duration::from_secs(20), || d
        .inspect("container", "always")["RestartCount"]
        .as_u64()
        >= Some(2)));
    // A stopped container stays stopped.
    d.docker_ok(&["stop", "always"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        d.inspect("container", "always")["State"]["Status"],
        "exited"
    );
    let bad = d.docker(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert!(!bad.success());
    d.docker_ok(&["rm", "-f", "flaky", "always"]);
    assert_nothing_left(&d);
}

/// A container whose init ignores SIGTERM: a stop waits its whole timeout.
fn run_stubborn(d: &Daemon, name: &str) {
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
}

fn unix_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// `docker stop -t SECS NAME` in the background, returned once its
/// SIGTERM has been sent (the container's `kill` event says so).
fn pending_stop(d: &Daemon, name: &str, secs: &str) -> std::process::Child {
    let since = unix_now();
    let child = d
        .docker_command()
        .args(["stop", "-t", secs, name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn docker stop");
    let sent = wait_until(Duration::from_secs(20), || {
        let until = unix_now();
        let filter = format!("container={name}");
        d.docker_ok(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            &filter,
            "--filter",
            "event=kill",
            "--format",
            "{{.Actor.Attributes.signal}}",
        ])
        .lines()
        .any(|s| s == "15")
    });
    assert!(sent, "the stop of {name} never sent SIGTERM");
    child
}

/// The background request must finish (successfully) within `limit`.
#[track_caller]
fn finishes(mut child: std::process::Child, limit: Duration, what: &str) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            assert!(st.success(), "{what} failed: {err}");
            return;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still waiting after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `docker X` that must succeed well before the pending stop's timeout
/// (a functional bound: the bug made these wait for the whole timeout).
#[track_caller]
fn at_once(d: &Daemon, args: &[&str]) {
    let t0 = std::time::Instant::now();
    d.docker_ok(args);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "docker {} waited {took:?} behind a pending stop",
        args.join(" ")
    );
}

#[test]
fn force_operations_do_not_wait_behind_a_stop() {
    let d = Daemon::with_busybox();
    // rm -f kills at once; the pending stop returns as the container exits.
    run_stubborn(&d, "slow1");
    let stop = pending_stop(&d, "slow1", "30");
    at_once(&d, &["rm", "-f", "slow1"]);
    finishes(stop, Duration::from_secs(10), "the pending stop (rm -f)");
    assert!(!d.docker_ok(&["ps", "-a"]).contains("slow1"));

    // A shorter stop.
    run_stubborn(&d, "slow2");
    let stop = pending_stop(&d, "slow2", "30");
    at_once(&d, &["stop", "-t", "0", "slow2"]);
    finishes(
        stop,
        Duration::from_secs(10),
        "the pending stop (stop -t 0)",
    );
    assert_eq!(d.inspect("container", "slow2")["State"]["Status"], "exited");

    // restart -t 0: killed at once and running again.
    d.docker_ok(&["start", "slow2"]);
    let pid = d.inspect("container", "slow2")["State"]["Pid"].as_i64();
    let stop = pending_stop(&d, "slow2", "30");
    at_once(&d, &["restart", "-t", "0", "slow2"]);
    finishes(
        stop,
        Duration::from_secs(10),
        "the pending stop (restart -t 0)",
    );
    let v = d.inspect("container", "slow2");
    assert_eq!(v["State"]["Status"], "running");
    assert_ne!(v["State"]["Pid"].as_i64(), pid);
    d.docker_ok(&["rm", "-f", "slow2"]);
    assert_nothing_left(&d);
}

#[test]
fn pause_answers_during_a_pending_stop() {
    let d = Daemon::with_busybox();
    run_stubborn(&d, "slowp");
    let stop = pending_stop(&d, "slowp", "60");
    // As dockerd: the container is still running, so it pauses.
    at_once(&d, &["pause", "slowp"]);
    assert_eq!(d.inspect("container", "slowp")["State"]["Status"], "paused");
    // Killing the paused container ends it (and the pending stop).
    at_once(&d, &["kill", "slowp"]);
    finishes(stop, Duration::from_secs(10), "the pending stop (kill)");
    assert_eq!(d.inspect("container", "slowp")["State"]["Status"], "exited");
    d.docker_ok(&["rm", "slowp"]);
    assert_nothing_left(&d);
}

/// The mount options of the overlay at a container's rootfs.
fn rootfs_mount_options(d: &Daemon, name: &str) -> String {
    let id = d.docker_ok(&["inspect", "-f", "{{.Id}}", name]);
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find(|l| l.contains(id.trim()) && l.contains(" overlay "))
        .unwrap_or_else(|| panic!("no overlay mount for {name}"))
        .to_owned()
}

/// `--rm` containers are thrown away at exit, so their overlay is mounted
/// volatile (no syncfs of the data root at unmount); kept containers are
/// not, and both stop, start and copy files as before.
#[test]
fn throwaway_containers_mount_volatile_kept_ones_do_not() {
    let d = Daemon::with_busybox();
    d.docker_ok(&[
        "run", "-d", "--rm", "--name", "gone", "busybox", "sleep", "60",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "kept",
        "busybox",
        "sh",
        "-c",
        "echo data > /f; sleep 60",
    ]);
    assert!(rootfs_mount_options(&d, "gone").contains("volatile"));
    assert!(!rootfs_mount_options(&d, "kept").contains("volatile"));
    d.docker_ok(&["exec", "gone", "sh", "-c", "echo x > /y"]);
    let dir = d.dir.path().join("cp-out");
    d.docker_ok(&["cp", "gone:/y", &dir.display().to_string()]);
    assert_eq!(fs::read_to_string(&dir).unwrap(), "x\n");
    d.docker_ok(&["stop", "-t", "0", "gone"]);
    d.docker_ok(&["stop", "-t", "0", "kept"]);
    d.docker_ok(&["start", "kept"]);
    assert_eq!(d.docker_ok(&["exec", "kept", "cat", "/f"]).trim(), "data");
    d.docker_ok(&["rm", "-f", "kept"]);
    let gone = wait_until(Duration::from_secs(10), || {
        d.docker_ok(&["ps", "-aq"]).trim().is_empty()
    });
    assert!(gone, "the --rm container was not removed");
    assert_nothing_left(&d);
}
