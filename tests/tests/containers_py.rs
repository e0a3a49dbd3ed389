//! docker-py drives the container API (tests/py/containers_dockerpy.py).

use berth_tests::{workspace_root, Daemon};

#[test]
fn docker_py_container_workflow() {
    let d = Daemon::start();
    d.load_busybox();
    let script = workspace_root().join("tests/py/containers_dockerpy.py");
    let out = d.python_file(&script, &[]);
    assert!(
        out.success() && out.stdout.trim() == "ok",
        "docker-py script failed:\nstdout: {}\nstderr: {}\nberthd log:\n{}",
        out.stdout,
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
    assert!(
        d.docker_ok(&["ps", "-aq"]).trim().is_empty(),
        "containers left"
    );
}
