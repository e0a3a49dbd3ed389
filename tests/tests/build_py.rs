//! docker-py's images.build and the low-level build API
//! (tests/py/build_dockerpy.py).

use berth_tests::{py, Daemon};

#[test]
fn docker_py_build_workflow() {
    let d = Daemon::start();
    let out = py::run_ok(&d, "build_dockerpy.py");
    assert_eq!(out.stdout.trim(), "ok");
}
