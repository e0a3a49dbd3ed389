//! docker-py drives the image API (tests/py/images_dockerpy.py).

use berth_tests::{workspace_root, Daemon};

#[test]
fn docker_py_image_workflow() {
    let d = Daemon::start();
    let script = workspace_root().join("tests/py/images_dockerpy.py");
    let out = d.python_file(&script, &[]);
    assert!(
        out.success() && out.stdout.trim() == "ok",
        "docker-py script failed:\nstdout: {}\nstderr: {}\nberthd log:\n{}",
        out.stdout,
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
}
