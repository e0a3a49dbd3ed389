//! SIGHUP reloads daemon.json's reloadable keys while containers keep
//! running, emits the daemon `reload` event, and keeps the settings in
//! force when the file is broken; `berthd --validate` checks a file.

use std::process::Command;
use std::time::Duration;

use berth_tests::{bin_path, run_with_timeout, wait_until, Daemon};

fn hup(d: &Daemon) {
    // SAFETY: kill(2) on the berthd this test started.
    unsafe { libc::kill(d.pid().unwrap() as i32, libc::SIGHUP) };
}

fn info(d: &Daemon) -> serde_json::Value {
    serde_json::from_str(&d.docker_ok(&["info", "--format", "{{json .}}"])).unwrap()
}

#[test]
fn sighup_reloads_debug_and_mirrors_while_containers_run() {
    let d = Daemon::with_busybox();
    let id = d.docker_ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let id = id.trim();
    let pid = d.inspect("container", id)["State"]["Pid"].clone();
    let before = info(&d);
    assert_eq!(before["Debug"], false);
    let start = chrono_now(&d);

    std::fs::write(
        &d.config_file,
        r#"{"debug": true, "registry-mirrors": ["https://mirror.berth.test"], "labels": ["reloaded=yes"]}"#,
    )
    .unwrap();
    hup(&d);
    assert!(
        wait_until(Duration::from_secs(20), || info(&d)["Debug"] == true),
        "Debug did not change:\n{}",
        berth_tests::tail(&d.log(), 30)
    );
    let now = info(&d);
    let mirrors = now["RegistryConfig"]["Mirrors"].to_string();
    assert!(mirrors.contains("mirror.berth.test"), "{mirrors}");
    assert_eq!(now["Labels"], serde_json::json!(["reloaded=yes"]));
    let human = d.docker_ok(&["info"]);
    assert!(human.contains("Debug Mode: true"), "{human}");

    // The container kept running, same process.
    let c = d.inspect("container", id);
    assert_eq!(c["State"]["Running"], true);
    assert_eq!(c["State"]["Pid"], pid);

    // The daemon reload event.
    let events = d.docker_ok(&[
        "events",
        "--since",
        &start,
        "--until",
        &chrono_now(&d),
        "--filter",
        "type=daemon",
        "--format",
        "{{json .}}",
    ]);
    let reload: serde_json::Value = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["Action"] == "reload")
        .unwrap_or_else(|| panic!("no reload event in {events}"));
    assert_eq!(reload["Type"], "daemon");
    assert_eq!(reload["Actor"]["Attributes"]["debug"], "true");
    assert_eq!(reload["Actor"]["ID"], now["ID"]);

    // A broken file: logged, the settings in force stay.
    std::fs::write(&d.config_file, r#"{"debug": false, "#).unwrap();
    hup(&d);
    assert!(wait_until(Duration::from_secs(20), || d
        .log()
        .contains("error reloading the configuration")));
    // An unknown key is refused the same way.
    std::fs::write(&d.config_file, r#"{"debug": false, "colour": "red"}"#).unwrap();
    hup(&d);
    assert!(wait_until(Duration::from_secs(20), || d
        .log()
        .matches("error reloading the configuration")
        .count()
        >= 2));
    let after = info(&d);
    assert_eq!(after["Debug"], true);
    assert!(after["RegistryConfig"]["Mirrors"]
        .to_string()
        .contains("mirror.berth.test"));
    assert_eq!(d.inspect("container", id)["State"]["Running"], true);
    d.docker_ok(&["rm", "-f", id]);
}

/// The daemon's clock as `docker events --since/--until` takes it.
fn chrono_now(d: &Daemon) -> String {
    info(d)["SystemTime"].as_str().unwrap().to_string()
}

#[test]
fn validate_checks_a_file_and_exits() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("daemon.json");
    let validate = |cfg: &std::path::Path| {
        let mut cmd = Command::new(bin_path("berthd"));
        cmd.arg("--validate").arg("--config-file").arg(cfg);
        run_with_timeout(&mut cmd, None, Duration::from_secs(30))
    };
    std::fs::write(&cfg, r#"{"debug": true, "labels": ["a=b"]}"#).unwrap();
    let out = validate(&cfg);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "configuration OK");
    std::fs::write(&cfg, r#"{"debug": true, "bogus": 1}"#).unwrap();
    let out = validate(&cfg);
    assert!(!out.success());
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
    assert!(!out.stdout.contains("configuration OK"));
}

#[test]
fn default_ulimits_and_runtimes_apply_and_reload() {
    let d = Daemon::start_with(berth_tests::DaemonOptions {
        config: Some(serde_json::json!({
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1111, "Hard": 2222}}
        })),
        ..Default::default()
    });
    d.load_busybox();
    let limits = |extra: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend(["busybox", "sh", "-c", "ulimit -n; ulimit -Hn"]);
        d.docker_ok(&args)
    };
    assert_eq!(limits(&[]), "1111\n2222\n");
    // The container's own setting wins.
    assert_eq!(limits(&["--ulimit", "nofile=500:600"]), "500\n600\n");

    let runtime = bin_path("berth-runtime");
    std::fs::write(
        &d.config_file,
        serde_json::json!({
            "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 3333, "Hard": 4444}},
            "runtimes": {"alt": {"path": runtime}},
            "default-runtime": "alt",
        })
        .to_string(),
    )
    .unwrap();
    hup(&d);
    assert!(
        wait_until(Duration::from_secs(20), || info(&d)["DefaultRuntime"]
            == "alt"),
        "runtimes not reloaded:\n{}",
        berth_tests::tail(&d.log(), 30)
    );
    assert!(info(&d)["Runtimes"]["alt"]["path"].is_string());
    assert_eq!(limits(&[]), "3333\n4444\n");
    d.docker_ok(&["create", "--name", "on-alt", "busybox", "true"]);
    assert_eq!(
        d.inspect("container", "on-alt")["HostConfig"]["Runtime"],
        "alt"
    );
    d.docker_ok(&["start", "-a", "on-alt"]);
    d.docker_ok(&["rm", "on-alt"]);
}
