//! docker-py drives the image API (tests/py/images_dockerpy.py).

use berth_tests::{py, Daemon};

#[test]
fn docker_py_image_workflow() {
    let d = Daemon::start();
    let out = py::run_ok(&d, "images_dockerpy.py");
    assert_eq!(out.stdout.trim(), "ok");
}
