//! Swarm and plugin endpoints answer as dockerd on a node outside a swarm
//! with no plugins: the docker CLI and docker-py get dockerd's errors and
//! an empty plugin list.

use berth_tests::Daemon;

const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

fn call(d: &Daemon, method: &str, path: &str) -> (u16, String) {
    let url = format!("http://localhost/v1.50{path}");
    let out = d.curl(&["-X", method, "-w", "\n%{http_code}", &url]);
    assert!(out.success(), "curl failed: {}", out.stderr);
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

fn message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["message"].as_str().expect("message").to_string()
}

#[test]
fn swarm_endpoints_outside_a_swarm() {
    let d = Daemon::start();
    for args in [
        &["service", "ls"][..],
        &["node", "ls"],
        &["secret", "ls"],
        &["config", "ls"],
        &["service", "ps", "web"],
        &["swarm", "unlock-key"],
    ] {
        let out = d.docker(args);
        assert!(!out.success(), "{args:?}");
        assert!(
            out.stderr.contains(NOT_A_MANAGER),
            "{args:?}: {}",
            out.stderr
        );
    }
    let leave = d.docker(&["swarm", "leave", "--force"]);
    assert!(!leave.success());
    assert!(
        leave.stderr.contains("This node is not part of a swarm"),
        "{}",
        leave.stderr
    );
    for (method, path) in [
        ("GET", "/swarm"),
        ("POST", "/swarm/update"),
        ("GET", "/services/x"),
        ("DELETE", "/services/x"),
        ("POST", "/services/create"),
        ("GET", "/tasks"),
        ("GET", "/tasks/x/logs"),
        ("DELETE", "/nodes/x"),
        ("POST", "/secrets/create"),
        ("POST", "/configs/x/update"),
    ] {
        let (code, body) = call(&d, method, path);
        assert_eq!(
            (code, message(&body)),
            (503, NOT_A_MANAGER.to_string()),
            "{method} {path}"
        );
    }
    // Clean-up commands that touch these endpoints succeed.
    d.docker_ok(&["system", "prune", "-af", "--volumes"]);
    let (code, body) = call(&d, "POST", "/swarm/leave");
    assert_eq!(
        (code, message(&body).as_str()),
        (503, "This node is not part of a swarm")
    );
}

#[test]
fn no_plugins() {
    let d = Daemon::start();
    let ls = d.docker_ok(&["plugin", "ls", "--format", "{{.Name}}"]);
    assert_eq!(ls.trim(), "");
    let (code, body) = call(&d, "GET", "/plugins");
    assert_eq!((code, body.trim()), (200, "[]"));
    let (code, body) = call(
        &d,
        "GET",
        "/plugins?filters=%7B%22color%22%3A%5B%22x%22%5D%7D",
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "invalid filter 'color'")
    );

    let inspect = d.docker(&["plugin", "inspect", "vieux/sshfs"]);
    assert!(!inspect.success());
    for (method, path, name) in [
        (
            "GET",
            "/plugins/vieux/sshfs:latest/json",
            "vieux/sshfs:latest",
        ),
        ("DELETE", "/plugins/sshfs", "sshfs"),
        ("POST", "/plugins/vieux/sshfs/enable", "vieux/sshfs"),
        ("POST", "/plugins/sshfs/disable", "sshfs"),
        ("POST", "/plugins/sshfs/set", "sshfs"),
    ] {
        let (code, body) = call(&d, method, path);
        assert_eq!(
            (code, message(&body)),
            (404, format!("plugin \"{name}\" not found")),
            "{method} {path}"
        );
    }
    let rm = d.docker(&["plugin", "rm", "sshfs"]);
    assert!(
        rm.stderr.contains("plugin \"sshfs\" not found"),
        "{}",
        rm.stderr
    );

    // docker-py sees the same.
    let out = d.python(
        r#"
import docker
c = docker.from_env()
assert c.plugins.list() == [], c.plugins.list()
try:
    c.swarm.leave()
    raise SystemExit("leave succeeded")
except docker.errors.APIError as e:
    assert e.status_code == 503, e
try:
    c.services.list()
    raise SystemExit("services listed")
except docker.errors.APIError as e:
    assert e.status_code == 503, e
print("ok")
"#,
    );
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
}
