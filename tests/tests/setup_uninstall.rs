//! scripts/uninstall.sh on a tree laid out under DESTDIR: the service
//! units and binaries go, the data root and configuration stay unless
//! `--purge`, and nothing else is touched.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::{run_with_timeout, workspace_root, Output};

fn uninstall(root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(workspace_root().join("scripts/uninstall.sh"));
    cmd.env("DESTDIR", root).args(args);
    run_with_timeout(&mut cmd, None, Duration::from_secs(60))
}

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, "x").unwrap();
}

#[test]
fn uninstall_keeps_the_data_root_unless_purged() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let installed = [
        "usr/local/bin/berthd",
        "usr/local/bin/berth-shim",
        "usr/local/bin/berth-runtime",
        "etc/systemd/system/berthd.socket",
        "etc/systemd/system/berthd.service",
        "var/run/berth.sock",
    ];
    let kept = [
        "var/lib/berth/containers/abc/config.json",
        "var/lib/berth/image/repositories.json",
        "etc/berth/daemon.json",
    ];
    let others = [
        "usr/local/bin/other-tool",
        "etc/systemd/system/other.service",
    ];
    for rel in installed.iter().chain(&kept).chain(&others) {
        touch(root, rel);
    }

    let out = uninstall(root, &[]);
    assert!(out.success(), "{}", out.stderr);
    for rel in installed {
        assert!(!root.join(rel).exists(), "{rel} left");
    }
    for rel in kept.iter().chain(&others) {
        assert!(root.join(rel).exists(), "{rel} removed");
    }
    assert!(
        out.stdout.contains("--purge removes them"),
        "{}",
        out.stdout
    );
    // Running it again is fine.
    assert!(uninstall(root, &[]).success());

    let out = uninstall(root, &["--bogus"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(root.join(kept[0]).exists());

    let out = uninstall(root, &["--purge"]);
    assert!(out.success(), "{}", out.stderr);
    for rel in ["var/lib/berth", "etc/berth"] {
        assert!(!root.join(rel).exists(), "{rel} not purged");
    }
    for rel in others {
        assert!(root.join(rel).exists(), "{rel} removed");
    }
}
