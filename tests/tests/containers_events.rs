//! Container events with dockerd's attributes, image-in-use protection and
//! the container counts in /info.

use berth_tests::Daemon;

#[test]
fn events_rmi_conflict_and_info_counts() {
    let d = Daemon::start();
    d.load_busybox();
    let start = chrono_now_secs();
    let run = d.docker(&[
        "run", "--name", "evt", "--label", "team=a", "busybox", "sh", "-c", "exit 3",
    ]);
    assert_eq!(run.code(), Some(3), "{}", run.stderr);
    d.docker_ok(&["rename", "evt", "evt2"]);
    let until = chrono_now_secs() + 1;
    let out = d.docker_ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"name\"}} {{index .Actor.Attributes \"exitCode\"}} {{index .Actor.Attributes \"team\"}} {{index .Actor.Attributes \"image\"}}",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"create evt  a busybox"), "{out}");
    assert!(lines.contains(&"start evt  a busybox"), "{out}");
    assert!(lines.contains(&"die evt 3 a busybox"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("rename evt2 ")), "{out}");

    // An image used by a container cannot be removed without force.
    let rmi = d.docker(&["rmi", "busybox"]);
    assert!(!rmi.success());
    assert!(
        rmi.stderr.contains(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container"
        ),
        "{}",
        rmi.stderr
    );

    d.docker_ok(&["run", "-d", "--name", "up", "busybox", "sleep", "1000"]);
    let info = d.docker_ok(&[
        "info",
        "--format",
        "{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}}",
    ]);
    assert_eq!(info.trim(), "2 1 1");
    d.docker_ok(&["rm", "-f", "up", "evt2"]);
    d.docker_ok(&["rmi", "busybox"]);
}

fn chrono_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
