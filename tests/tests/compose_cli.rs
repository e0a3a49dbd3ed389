//! Debian's docker-compose 1.29 against berthd: a project with two custom
//! networks (one service on both, with an alias), a named volume, labels,
//! a published port, a healthcheck the worker waits for
//! (`condition: service_healthy`) and restart policies, through up, ps, logs, exec,
//! scale, restart, stop and down -v; afterwards no container, network,
//! volume, bridge, veth or iptables rule of the project is left.
//!
//! compose 1.29 disconnects and reconnects every created container from
//! its networks before starting it, so this also drives `network
//! connect`/`disconnect` on containers that are not running.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::{run_with_timeout, wait_until, Daemon, Output, DEFAULT_TIMEOUT};

const COMPOSE: &str = "/usr/bin/docker-compose";

fn compose(d: &Daemon, dir: &Path, project: &str, args: &[&str]) -> Output {
    assert!(
        Path::new(COMPOSE).exists(),
        "{COMPOSE} is missing: scripts/deps.sh installs Debian's docker-compose"
    );
    let mut cmd = Command::new(COMPOSE);
    cmd.current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .args(["-p", project])
        .args(args);
    run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT)
}

#[track_caller]
fn compose_ok(d: &Daemon, dir: &Path, project: &str, args: &[&str]) -> String {
    let out = compose(d, dir, project, args);
    assert!(
        out.success(),
        "docker-compose {} failed ({}):\nstdout: {}\nstderr: {}\nberthd log:\n{}",
        args.join(" "),
        out.status,
        out.stdout,
        out.stderr,
        berth_tests::tail(&d.log(), 40)
    );
    out.stdout
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "-m", "3", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .expect("curl must be installed");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn iptables_rules() -> String {
    let mut s = String::new();
    for table in ["nat", "filter"] {
        let out = Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output()
            .expect("iptables must be installed");
        s.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    s
}

/// Removes the project's bridges (and what names them) whatever happens.
struct Bridges(Vec<String>);

impl Drop for Bridges {
    fn drop(&mut self) {
        for b in &self.0 {
            berth_tests::cleanup::remove_network(b);
        }
    }
}

fn project_file(port: u16, front: (&str, &str), back: (&str, &str)) -> String {
    format!(
        r#"version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; echo web-up; echo served-from-volume > /data/index.html; httpd -f -p 80 -h /data & wait"]
    ports:
      - "127.0.0.1:{port}:80"
    volumes:
      - webdata:/data
    networks:
      front: {{}}
      back:
        aliases:
          - www
    labels:
      com.example.role: frontend
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/index.html"]
      interval: 1s
      timeout: 2s
      retries: 30
  worker:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do wget -q -O - http://www/index.html; sleep 1 & wait; done"]
    networks:
      - back
    depends_on:
      web:
        condition: service_healthy
    restart: on-failure
volumes:
  webdata: {{}}
networks:
  front:
    driver_opts:
      com.docker.network.bridge.name: {fb}
    ipam:
      config:
        - subnet: {fs}
  back:
    labels:
      com.example.tier: back
    driver_opts:
      com.docker.network.bridge.name: {bb}
    ipam:
      config:
        - subnet: {bs}
"#,
        fb = front.0,
        fs = front.1,
        bb = back.0,
        bs = back.1,
    )
}

#[test]
fn compose_project_up_scale_restart_stop_down() {
    let d = Daemon::with_busybox();
    let slot = d.network.as_ref().expect("the daemon's test network").slot;
    let base = d
        .network
        .as_ref()
        .map(|n| n.bridge.clone())
        .unwrap_or_default();
    let (front, back) = (format!("{base}f"), format!("{base}k"));
    let _bridges = Bridges(vec![front.clone(), back.clone()]);
    let dir = tempfile::tempdir().expect("project dir");
    let port = free_port();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        project_file(
            port,
            (&front, &format!("10.124.{slot}.0/24")),
            (&back, &format!("10.125.{slot}.0/24")),
        ),
    )
    .expect("write docker-compose.yml");
    let p = "berthcompose";
    let dir = dir.path();

    // up waits for web's healthcheck before it starts the worker.
    compose_ok(&d, dir, p, &["up", "-d"]);
    let web_health = d.inspect("container", &format!("{p}_web_1"))["State"]["Health"].clone();
    assert_eq!(web_health["Status"], "healthy", "{web_health}");

    // ps: both services up, the port shown.
    let ps = compose_ok(&d, dir, p, &["ps"]);
    for name in [format!("{p}_web_1"), format!("{p}_worker_1")] {
        let line = ps
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("{name} missing from ps:\n{ps}"));
        assert!(line.contains(" Up"), "{line}");
    }
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");

    // The web container: on both networks, the alias on one, its labels,
    // volume and restart policy.
    let web = d.inspect("container", &format!("{p}_web_1"));
    let nets = &web["NetworkSettings"]["Networks"];
    let nets_obj = nets.as_object().expect("Networks");
    let mut names: Vec<&String> = nets_obj.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [&format!("{p}_back"), &format!("{p}_front")],
        "{nets}"
    );
    let back_ep = &nets[format!("{p}_back")];
    assert!(
        back_ep["Aliases"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "www")),
        "{back_ep}"
    );
    assert!(
        back_ep["IPAddress"]
            .as_str()
            .is_some_and(|ip| ip.starts_with(&format!("10.125.{slot}."))),
        "{back_ep}"
    );
    assert!(
        nets[format!("{p}_front")]["IPAddress"]
            .as_str()
            .is_some_and(|ip| ip.starts_with(&format!("10.124.{slot}."))),
        "{nets}"
    );
    assert_eq!(web["Config"]["Labels"]["com.example.role"], "frontend");
    assert_eq!(web["Config"]["Labels"]["com.docker.compose.service"], "web");
    assert_eq!(web["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(web["Mounts"][0]["Name"], format!("{p}_webdata"));
    let back_net = d.inspect("network", &format!("{p}_back"));
    assert_eq!(back_net["Labels"]["com.example.tier"], "back");
    assert_eq!(back_net["Containers"].as_object().map(|c| c.len()), Some(2));

    // The published port serves the file the container wrote to the volume.
    let mut body = None;
    wait_until(Duration::from_secs(10), || {
        body = http_get(port, "/index.html");
        body.is_some()
    });
    assert_eq!(body.as_deref(), Some("served-from-volume\n"));

    // The worker reaches web by its alias on the shared network (logs),
    // and by service name (exec).
    assert!(
        wait_until(Duration::from_secs(20), || {
            compose(&d, dir, p, &["logs", "--no-color", "worker"])
                .stdout
                .contains("served-from-volume")
        }),
        "worker never fetched the page:\n{}",
        compose(&d, dir, p, &["logs", "--no-color"]).stdout
    );
    assert!(compose_ok(&d, dir, p, &["logs", "--no-color", "web"]).contains("web-up"));
    let got = compose_ok(
        &d,
        dir,
        p,
        &[
            "exec",
            "-T",
            "worker",
            "wget",
            "-q",
            "-O",
            "-",
            "http://web/index.html",
        ],
    );
    assert_eq!(got, "served-from-volume\n");
    // The worker is not on the front network: names there are not its.
    let front_only = compose(
        &d,
        dir,
        p,
        &["exec", "-T", "worker", "ip", "-o", "-4", "addr"],
    );
    assert!(
        !front_only.stdout.contains(&format!("10.124.{slot}.")),
        "{}",
        front_only.stdout
    );

    // Scale: a second worker, also reaching web.
    compose_ok(&d, dir, p, &["up", "-d", "--scale", "worker=2"]);
    let running = d.docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={p}"),
        "--filter",
        "label=com.docker.compose.service=worker",
    ]);
    assert_eq!(running.lines().count(), 2, "{running}");
    let got = compose_ok(
        &d,
        dir,
        p,
        &[
            "exec",
            "-T",
            "--index=2",
            "worker",
            "wget",
            "-q",
            "-O",
            "-",
            "http://www/index.html",
        ],
    );
    assert_eq!(got, "served-from-volume\n");

    // Restart: everything comes back, the port answers again.
    compose_ok(&d, dir, p, &["restart"]);
    let states = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={p}"),
        "--format",
        "{{.Names}} {{.State}}",
    ]);
    assert_eq!(states.lines().count(), 3, "{states}");
    assert!(states.lines().all(|l| l.ends_with(" running")), "{states}");
    assert!(
        wait_until(Duration::from_secs(10), || http_get(port, "/index.html")
            .is_some()),
        "the port does not answer after restart"
    );

    // Stop: all exited, nothing plugged into the project's bridges.
    compose_ok(&d, dir, p, &["stop"]);
    let states = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={p}"),
        "--format",
        "{{.State}}",
    ]);
    assert!(
        states.lines().count() == 3 && states.lines().all(|l| l == "exited"),
        "{states}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || bridge_ports(&front).is_empty()
            && bridge_ports(&back).is_empty()),
        "veths left on the project's bridges after stop: {:?} {:?}",
        bridge_ports(&front),
        bridge_ports(&back)
    );

    // Down -v: nothing of the project is left.
    compose_ok(&d, dir, p, &["down", "-v"]);
    assert_eq!(d.docker_ok(&["ps", "-aq"]).trim(), "");
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut nets: Vec<&str> = nets.lines().collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"]);
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]).trim(), "");
    let left = links();
    assert!(
        !left.contains(&front) && !left.contains(&back),
        "bridges left"
    );
    let rules = iptables_rules();
    assert!(
        !rules.contains(&front) && !rules.contains(&back),
        "iptables rules of the project's networks are left:\n{rules}"
    );
    assert!(
        !rules.contains(&format!("--dport {port}")),
        "the published port's rules are left:\n{rules}"
    );
}
