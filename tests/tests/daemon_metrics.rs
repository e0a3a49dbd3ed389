//! `metrics-addr`: a Prometheus text endpoint whose figures move as
//! containers start and stop, API requests come in, health probes run and
//! images go to and from a registry.

use std::process::Command;
use std::time::Duration;

use berth_tests::registry::{free_port, Registry};
use berth_tests::{run_with_timeout, wait_until, Daemon, DaemonOptions};

struct Scrape {
    content_type: String,
    body: String,
}

fn scrape(port: u16) -> Scrape {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-w", "\n%{content_type}"])
        .arg(format!("http://127.0.0.1:{port}/metrics"));
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    assert!(out.success(), "scrape failed: {}", out.stderr);
    let (body, content_type) = out.stdout.rsplit_once('\n').unwrap_or_default();
    Scrape {
        content_type: content_type.to_string(),
        body: body.to_string(),
    }
}

/// The value of one series (`name{labels}` exactly as exposed), or 0.
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn state(body: &str, s: &str) -> f64 {
    value(
        body,
        &format!("engine_daemon_container_states_containers{{state=\"{s}\"}}"),
    )
}

#[test]
fn figures_move_as_containers_start_and_requests_come_in() {
    let port = free_port();
    let d = Daemon::start_with(DaemonOptions {
        args: vec!["--metrics-addr".into(), format!(":{port}")],
        ..Default::default()
    });
    d.load_busybox();
    let first = scrape(port);
    assert!(
        first.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        first.content_type
    );
    assert_eq!(state(&first.body, "running"), 0.0, "{}", first.body);
    assert_eq!(value(&first.body, "berth_shims"), 0.0);
    assert!(first
        .body
        .contains("# TYPE berth_api_request_duration_seconds histogram"));

    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "probed",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "busybox",
        "sleep",
        "1000",
    ]);
    let _ = d.docker(&["inspect", "no-such-container"]);
    let m = scrape(port).body;
    assert_eq!(state(&m, "running"), 1.0, "{m}");
    assert_eq!(value(&m, "berth_shims"), 1.0, "{m}");
    let create = r#"method="POST",route="/containers/create""#;
    assert!(
        value(
            &m,
            &format!("berth_api_requests_total{{{create},status=\"201\"}}")
        ) >= 1.0,
        "{m}"
    );
    assert!(
        value(
            &m,
            &format!("berth_api_request_duration_seconds_count{{{create}}}")
        ) >= 1.0,
        "{m}"
    );
    assert!(
        value(
            &m,
            &format!("berth_api_request_duration_seconds_bucket{{{create},le=\"+Inf\"}}")
        ) >= 1.0,
        "{m}"
    );
    // Not found, by route template (never the container's name).
    assert!(
        value(
            &m,
            r#"berth_api_requests_total{method="GET",route="/containers/{id}/json",status="404"}"#
        ) >= 1.0,
        "{m}"
    );
    assert!(!m.contains("no-such-container"));
    assert!(
        wait_until(Duration::from_secs(30), || {
            value(&scrape(port).body, "engine_daemon_health_checks_total") >= 1.0
        }),
        "no health check counted:\n{}",
        scrape(port).body
    );

    d.docker_ok(&["stop", "-t", "0", "probed"]);
    let m = scrape(port).body;
    assert_eq!(state(&m, "running"), 0.0, "{m}");
    assert_eq!(state(&m, "stopped"), 1.0, "{m}");
    assert_eq!(value(&m, "berth_shims"), 0.0, "{m}");
    d.docker_ok(&["rm", "probed"]);

    // Only /metrics is served there.
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/containers/json"));
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    assert_eq!(out.stdout, "404");
}

#[test]
fn pull_and_push_bytes_are_counted() {
    let registry = Registry::start();
    let with_metrics = |port: u16| {
        Daemon::start_with(DaemonOptions {
            config: Some(serde_json::json!({ "metrics-addr": format!("127.0.0.1:{port}") })),
            ..Default::default()
        })
    };
    let (port, other_port) = (free_port(), free_port());
    let d = with_metrics(port);
    d.load_busybox();
    let image = registry.image("metrics/busybox:1");
    d.docker_ok(&["tag", "busybox", &image]);
    d.docker_ok(&["push", &image]);
    let m = scrape(port).body;
    let pushed = value(&m, "berth_image_push_bytes_total");
    assert!(pushed > 0.0, "{m}");
    assert_eq!(value(&m, "berth_image_pull_bytes_total"), 0.0, "{m}");
    // Another daemon, without the layers, pulls them back.
    let other = with_metrics(other_port);
    other.docker_ok(&["pull", &image]);
    let m = scrape(other_port).body;
    assert_eq!(value(&m, "berth_image_pull_bytes_total"), pushed, "{m}");
}
