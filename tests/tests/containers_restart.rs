//! berthd killed with -9 while containers run: they keep running, a new
//! berthd adopts them, and one that exited meanwhile reports its real code.

use std::time::Duration;

use berth_tests::{wait_until, Daemon};

fn alive(pid: i64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn kill9_daemon_and_adopt_containers() {
    let mut d = Daemon::start();
    d.load_busybox();
    let mut pids = Vec::new();
    for name in ["one", "two", "three"] {
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            name,
            "busybox",
            "sh",
            "-c",
            "trap 'exit 42' TERM; while true; do sleep 0.2; done",
        ]);
        pids.push(
            d.inspect("container", name)["State"]["Pid"]
                .as_i64()
                .unwrap(),
        );
    }
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "four",
        "busybox",
        "sh",
        "-c",
        "sleep 2; exit 7",
    ]);
    let started_four = d.inspect("container", "four")["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string();

    d.kill9();
    for pid in &pids {
        assert!(alive(*pid), "container {pid} died with berthd");
    }
    // "four" exits while no daemon is around.
    std::thread::sleep(Duration::from_secs(3));
    d.start_again();

    let ps = d.docker_ok(&["ps", "--format", "{{.Names}}"]);
    let mut names: Vec<&str> = ps.lines().collect();
    names.sort();
    assert_eq!(names, ["one", "three", "two"]);
    for (name, pid) in ["one", "two", "three"].iter().zip(&pids) {
        let v = d.inspect("container", name);
        assert_eq!(v["State"]["Status"], "running");
        assert_eq!(v["State"]["Pid"].as_i64(), Some(*pid));
    }
    let v = d.inspect("container", "four");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 7);
    let finished = v["State"]["FinishedAt"].as_str().unwrap();
    assert!(
        finished > started_four.as_str(),
        "FinishedAt {finished} after StartedAt {started_four}"
    );

    // The adopted containers are fully controllable.
    d.docker_ok(&["stop", "one"]);
    assert_eq!(d.inspect("container", "one")["State"]["ExitCode"], 42);
    let waiter = {
        let mut cmd = d.docker_command();
        cmd.args(["wait", "two"])
            .stdout(std::process::Stdio::piped());
        cmd.spawn().expect("docker wait")
    };
    std::thread::sleep(Duration::from_millis(300));
    d.docker_ok(&["kill", "-s", "TERM", "two"]);
    let out = waiter.wait_with_output().expect("docker wait output");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    assert!(wait_until(Duration::from_secs(5), || !alive(pids[1])));

    // Restart again with a container running: still adopted.
    d.kill9();
    d.start_again();
    assert_eq!(
        d.inspect("container", "three")["State"]["Status"],
        "running"
    );
    d.docker_ok(&["rm", "-f", "one", "two", "three", "four"]);
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
    assert!(!alive(pids[2]));
}
