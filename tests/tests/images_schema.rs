//! Image responses conform to the Engine API spec's schemas.

use berth_tests::{assert_matches_spec, Daemon};

fn get(d: &Daemon, method: &str, path: &str) -> String {
    let url = format!("http://localhost{path}");
    d.curl(&["-X", method, "--fail-with-body", &url]).ok()
}

#[test]
fn image_responses_match_the_spec() {
    let d = Daemon::start();
    d.load_busybox();
    d.docker_ok(&["tag", "busybox", "schema/check:1"]);
    assert_matches_spec(
        "GET",
        "/images/json",
        &get(&d, "GET", "/images/json?shared-size=1"),
    );
    assert_matches_spec(
        "GET",
        "/images/{name}/json",
        &get(&d, "GET", "/images/busybox/json"),
    );
    assert_matches_spec(
        "GET",
        "/images/{name}/history",
        &get(&d, "GET", "/images/busybox/history"),
    );
    assert_matches_spec(
        "DELETE",
        "/images/{name}",
        &get(&d, "DELETE", "/images/schema/check:1"),
    );
    assert_matches_spec("POST", "/images/prune", &get(&d, "POST", "/images/prune"));
}
