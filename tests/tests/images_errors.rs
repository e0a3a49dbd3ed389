//! Image API errors: dockerd's status codes and messages, checked with curl
//! and the docker CLI.

use berth_tests::Daemon;

/// (status, body) of a request to the daemon.
fn call(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("http://localhost{path}");
    let mut args = vec!["-X", method, "-w", "\n%{http_code}"];
    if let Some(b) = body {
        args.extend(["--data-binary", b]);
    }
    args.push(&url);
    let out = d.curl(&args);
    assert!(out.success(), "curl failed: {}", out.stderr);
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status code"), body.to_owned())
}

fn message(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {body}"))
        .to_owned()
}

#[test]
fn unknown_and_invalid_images() {
    let d = Daemon::start();
    d.load_busybox();
    let (code, body) = call(&d, "GET", "/images/nosuch/json", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (404, "No such image: nosuch:latest")
    );
    let (code, body) = call(&d, "GET", "/v1.45/images/nosuch:2/history", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (404, "No such image: nosuch:2")
    );
    let (code, body) = call(&d, "GET", "/images/Bad/json", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (
            400,
            "invalid reference format: repository name (library/Bad) must be lowercase"
        )
    );
    let (code, body) = call(&d, "DELETE", "/images/nosuch", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (404, "No such image: nosuch:latest")
    );
    let (code, body) = call(&d, "POST", "/images/busybox/tag?repo=Bad&tag=x", None);
    assert_eq!(code, 400, "{body}");
    let (code, body) = call(&d, "POST", "/images/busybox/tag?repo=ok&tag=-bad", None);
    assert_eq!((code, message(&body).as_str()), (400, "invalid tag format"));
    let (code, _) = call(&d, "POST", "/images/busybox/tag?repo=ok&tag=1", None);
    assert_eq!(code, 201);
    let (code, body) = call(&d, "GET", "/images/get?names=nosuch", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (404, "No such image: nosuch:latest")
    );

    // Names with slashes and digests route to the right endpoint.
    let (code, body) = call(
        &d,
        "GET",
        "/images/docker.io/library/busybox:latest/json",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(&d, "GET", "/images/localhost:5000/a/b:c/json", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (404, "No such image: localhost:5000/a/b:c")
    );

    // The CLI shows the same messages.
    let out = d.docker(&["image", "inspect", "nosuch"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("No such image: nosuch"),
        "{}",
        out.stderr
    );
    let big = d.dir.path().join("big.tar");
    berth_tests::tarball::create(
        &berth_tests::fixtures_dir().join("busybox/rootfs"),
        &big,
        ".",
    );
    let out = d.docker(&["import", &big.display().to_string(), "Bad:1"]);
    assert!(!out.success());
    assert!(out.stderr.contains("must be lowercase"), "{}", out.stderr);
    let out = d.docker(&["rmi", "nosuch"]);
    assert!(
        out.stderr.contains("No such image: nosuch:latest"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_filters_and_bodies() {
    let d = Daemon::start();
    let (code, body) = call(&d, "GET", "/images/json?filters=%7Bbad", None);
    assert_eq!(code, 400, "{body}");
    assert!(message(&body).starts_with("invalid filter"), "{body}");
    let (code, body) = call(
        &d,
        "GET",
        "/images/json?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "invalid filter 'nope'")
    );
    let (code, body) = call(
        &d,
        "GET",
        "/images/json?filters=%7B%22dangling%22%3A%5B%22maybe%22%5D%7D",
        None,
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "Invalid filter 'dangling=maybe'")
    );
    let (code, body) = call(
        &d,
        "POST",
        "/images/prune?filters=%7B%22reference%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "invalid filter 'reference'")
    );
    // Not a tar archive: as dockerd, 200 with the error in the stream;
    // nothing left behind.
    let (code, body) = call(
        &d,
        "POST",
        "/images/load",
        Some("this is not a tar archive"),
    );
    assert_eq!(code, 200, "{body}");
    let last: serde_json::Value =
        serde_json::from_str(body.trim().lines().last().unwrap_or("")).expect("a JSON line");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid image archive")),
        "{body}"
    );
    assert_eq!(last["errorDetail"]["message"], last["error"]);
    let (code, body) = call(
        &d,
        "POST",
        "/images/create?fromSrc=-",
        Some("not a tar either"),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        std::fs::read_dir(d.data_root.join("image/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(d.data_root.join("overlay/layers"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn url_import_search_and_push_errors() {
    let d = Daemon::start();
    let (code, body) = call(
        &d,
        "POST",
        "/images/create?fromSrc=http%3A%2F%2Fexample.com%2Fx.tar",
        None,
    );
    assert_eq!(code, 501, "{body}");
    assert!(
        message(&body).contains("http://example.com/x.tar"),
        "{body}"
    );
    let (code, body) = call(&d, "GET", "/images/search?term=busybox", None);
    assert_eq!(code, 501, "{body}");
    // Pulls and pushes are tested against a local registry (registry_cli.rs);
    // an image the daemon lacks is refused before any registry is asked.
    let (code, body) = call(&d, "POST", "/images/busybox/push", None);
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        message(&body),
        "An image does not exist locally with the tag: busybox",
        "{body}"
    );
    let (code, body) = call(&d, "POST", "/images/create?fromImage=UPPER&tag=1", None);
    assert_eq!(code, 400, "{body}");
}

#[test]
fn delete_conflicts_like_dockerd() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker_ok(&["tag", "busybox", "second:1"]);
    let id = {
        let out = d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
        out.trim().to_owned()
    };
    let (code, body) = call(&d, "DELETE", &format!("/images/{}", &id[7..]), None);
    assert_eq!(code, 409);
    assert_eq!(
        message(&body),
        format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            &id[7..19]
        )
    );
    let (code, body) = call(&d, "DELETE", "/images/second:1", None);
    assert_eq!(code, 200);
    assert_eq!(body, r#"[{"Untagged":"second:1"}]"#);
    // One tag left: deleting by ID untags and deletes.
    let (code, body) = call(
        &d,
        "DELETE",
        &format!("/images/{}?noprune=1", &id[7..19]),
        None,
    );
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["Untagged"], "busybox:latest");
    assert_eq!(v[1]["Deleted"], id.as_str());
}

/// docker-py raises its load error from the stream, as with dockerd.
#[test]
fn bad_load_archive_raises_in_docker_py() {
    let d = Daemon::start();
    let out = d.python(
        r#"
import docker
c = docker.from_env()
try:
    c.images.load(b"this is not a tar archive")
    raise SystemExit("load succeeded")
except docker.errors.ImageLoadError as e:
    assert "invalid image archive" in str(e), e
print("ok")
"#,
    );
    assert_eq!(out.stdout.trim(), "ok", "{}", out.stderr);
    let cli = d.docker_stdin(&["load"], Some(b"this is not a tar archive"));
    assert!(!cli.success());
    assert!(
        cli.stderr.contains("invalid image archive"),
        "{}",
        cli.stderr
    );
}
