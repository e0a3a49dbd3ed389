//! Bad input gets dockerd's status and message and leaves nothing behind;
//! responses match the Engine API schemas.

use std::fs;

use berth_tests::{assert_matches_spec, Daemon};

/// `curl -w` with the status on the last line.
fn call(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("http://localhost/v1.50{path}");
    let mut args = vec!["-X", method, "-w", "\n%{http_code}"];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "-d", b]);
    }
    args.push(&url);
    let out = d.curl(&args);
    assert!(out.success(), "curl failed: {}", out.stderr);
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

fn message(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["message"].as_str().expect("message").to_string()
}

fn records(d: &Daemon) -> usize {
    fs::read_dir(d.data_root.join("containers"))
        .map(|r| r.count())
        .unwrap_or(0)
}

#[test]
fn bad_requests_get_dockerd_errors() {
    let d = Daemon::start();
    d.load_busybox();

    let (code, body) = call(&d, "POST", "/containers/create", Some("{not json"));
    assert_eq!(code, 400, "{body}");
    assert!(!message(&body).is_empty());

    let (code, body) = call(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"nosuch:tag"}"#),
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (404, "No such image: nosuch:tag")
    );
    let (code, body) = call(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":1024}}"#),
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "Minimum memory limit allowed is 6MB")
    );
    let (code, body) = call(
        &d,
        "POST",
        "/containers/create?name=b%20ad",
        Some(r#"{"Image":"busybox"}"#),
    );
    assert_eq!(code, 400);
    assert_eq!(
        message(&body),
        "Invalid container name (b ad), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    );
    let (code, body) = call(
        &d,
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"CapAdd":["FLY"]}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(records(&d), 0, "failed creates left records");

    for (method, path) in [
        ("GET", "/containers/nope/json"),
        ("POST", "/containers/nope/start"),
        ("POST", "/containers/nope/stop"),
        ("POST", "/containers/nope/kill"),
        ("POST", "/containers/nope/wait"),
        ("DELETE", "/containers/nope"),
        ("GET", "/containers/nope/top"),
    ] {
        let (code, body) = call(&d, method, path, None);
        assert_eq!(
            (code, message(&body).as_str()),
            (404, "No such container: nope"),
            "{method} {path}"
        );
    }

    // The CLI shows the same messages.
    let out = d.docker(&["run", "nosuch"]);
    assert!(
        out.stderr.contains("No such image: nosuch:latest")
            || out.stderr.contains("pull access denied")
            || out.stderr.contains("nosuch"),
        "{}",
        out.stderr
    );
    let out = d.docker(&["rm", "ghost"]);
    assert!(
        out.stderr.contains("No such container: ghost"),
        "{}",
        out.stderr
    );

    let (code, body) = call(
        &d,
        "POST",
        "/containers/create?name=runner",
        Some(r#"{"Image":"busybox","Cmd":["sleep","1000"]}"#),
    );
    assert_eq!(code, 201, "{body}");
    assert_matches_spec("POST", "/containers/create", &body);
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = call(&d, "POST", &format!("/containers/{id}/start"), None);
    assert_eq!(code, 204);
    let (code, _) = call(&d, "POST", "/containers/runner/start", None);
    assert_eq!(code, 304);
    let (code, body) = call(&d, "DELETE", "/containers/runner", None);
    assert_eq!(code, 409);
    assert_eq!(
        message(&body),
        "cannot remove container \"runner\": container is running: stop the container before removing or force remove"
    );
    let (code, body) = call(&d, "POST", "/containers/runner/kill?signal=NOPE", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "Invalid signal: NOPE")
    );
    let (code, body) = call(
        &d,
        "POST",
        "/containers/create?name=runner",
        Some(r#"{"Image":"busybox"}"#),
    );
    assert_eq!(code, 409, "{body}");

    let (code, body) = call(&d, "GET", "/containers/runner/json", None);
    assert_eq!(code, 200);
    assert_matches_spec("GET", "/containers/{id}/json", &body);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["Image"].as_str().unwrap().len(), 71);
    assert!(v["NetworkSettings"]["Networks"]["bridge"]["NetworkID"].is_string());
    let (code, body) = call(&d, "GET", "/containers/json?all=1&size=1", None);
    assert_eq!(code, 200);
    assert_matches_spec("GET", "/containers/json", &body);
    let (code, body) = call(&d, "GET", "/containers/runner/top", None);
    assert_eq!(code, 200);
    assert_matches_spec("GET", "/containers/{id}/top", &body);

    let (code, _) = call(&d, "POST", "/containers/runner/stop?t=0", None);
    assert_eq!(code, 204);
    let (code, _) = call(&d, "POST", "/containers/runner/stop", None);
    assert_eq!(code, 304);
    let (code, body) = call(&d, "POST", "/containers/runner/kill", None);
    assert_eq!(code, 409);
    assert!(message(&body).contains("is not running"), "{body}");
    let (code, body) = call(&d, "POST", "/containers/runner/wait", None);
    assert_eq!(code, 200);
    assert_matches_spec("POST", "/containers/{id}/wait", &body);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["StatusCode"],
        137
    );
    let (code, body) = call(
        &d,
        "GET",
        "/containers/json?filters=%7B%22status%22%3A%5B%22bogus%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = call(&d, "DELETE", "/containers/runner", None);
    assert_eq!(code, 204);
    assert_eq!(records(&d), 0);
}

#[test]
fn list_filters() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker_ok(&[
        "create", "--name", "alpha", "--label", "tier=web", "busybox", "true",
    ]);
    assert_eq!(
        d.docker(&["run", "--name", "beta", "--label", "tier=db", "busybox", "sh", "-c", "exit 2"])
            .code(),
        Some(2)
    );
    d.docker_ok(&["run", "-d", "--name", "gamma", "busybox", "sleep", "1000"]);
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = d.docker_ok(&a).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), ["gamma"]);
    assert_eq!(names(&["-a"]), ["alpha", "beta", "gamma"]);
    assert_eq!(names(&["-a", "--filter", "label=tier=web"]), ["alpha"]);
    assert_eq!(names(&["-a", "--filter", "label=tier"]), ["alpha", "beta"]);
    assert_eq!(names(&["-a", "--filter", "status=exited"]), ["beta"]);
    assert_eq!(names(&["-a", "--filter", "status=created"]), ["alpha"]);
    assert_eq!(names(&["-a", "--filter", "exited=2"]), ["beta"]);
    assert_eq!(names(&["-a", "--filter", "name=amm"]), ["gamma"]);
    assert_eq!(
        names(&["-a", "--filter", "ancestor=busybox"]),
        ["alpha", "beta", "gamma"]
    );
    assert_eq!(names(&["-a", "--filter", "since=alpha"]), ["beta", "gamma"]);
    assert_eq!(
        names(&["-a", "--filter", "before=gamma"]),
        ["alpha", "beta"]
    );
    assert_eq!(names(&["--filter", "network=bridge"]), ["gamma"]);
    assert!(names(&["-a", "--filter", "network=none"]).is_empty());
    assert_eq!(
        d.docker_ok(&["ps", "-a", "-n", "1", "--format", "{{.Names}}"])
            .trim(),
        "gamma"
    );
    let status = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "name=beta",
        "--format",
        "{{.Status}}",
    ]);
    assert!(status.starts_with("Exited (2) "), "{status}");
    d.docker_ok(&["rm", "-f", "alpha", "beta", "gamma"]);
}
