//! Archives move between berthd and Debian's dockerd (docker.io) both ways
//! with the same image IDs and tags. dockerd runs on a private socket,
//! data root and exec root, without networking setup, and is stopped and
//! removed afterwards.

use std::path::{Path, PathBuf};

use berth_tests::dockerd::PrivateDockerd;
use berth_tests::Daemon;

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn archives_move_between_berthd_and_dockerd() {
    let berth = Daemon::start();
    berth.load_busybox();
    berth.docker_ok(&["tag", "busybox", "berth/made:1"]);
    let id = berth
        .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .trim()
        .to_owned();
    let from_berth: PathBuf = berth.dir.path().join("from-berth.tar");
    berth.docker_ok(&[
        "save",
        "-o",
        &path_str(&from_berth),
        "busybox",
        "berth/made:1",
    ]);

    let dockerd = PrivateDockerd::start();
    let out = dockerd.docker_ok(&["load", "-i", &path_str(&from_berth)]);
    assert!(
        out.contains("Loaded image: busybox:latest") && out.contains("Loaded image: berth/made:1"),
        "{out}"
    );
    assert_eq!(
        dockerd
            .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "berth/made:1"])
            .trim(),
        id
    );

    // And back: dockerd's own save of a retagged image loads into berthd.
    dockerd.docker_ok(&["tag", "busybox", "dockerd/made:2"]);
    let from_dockerd = berth.dir.path().join("from-dockerd.tar");
    dockerd.docker_ok(&["save", "-o", &path_str(&from_dockerd), "dockerd/made:2"]);
    berth.docker_ok(&["rmi", "-f", &id]);
    let out = berth.docker_ok(&["load", "-i", &path_str(&from_dockerd)]);
    assert_eq!(out.trim(), "Loaded image: dockerd/made:2");
    assert_eq!(
        berth
            .docker_ok(&["image", "inspect", "-f", "{{.Id}}", "dockerd/made:2"])
            .trim(),
        id
    );
    let tags = berth.docker_ok(&["image", "inspect", "-f", "{{json .RepoTags}}", &id]);
    assert_eq!(tags.trim(), r#"["dockerd/made:2"]"#);
}
