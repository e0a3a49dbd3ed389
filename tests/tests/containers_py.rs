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

/// docker-py reads a hijacked response's head through a buffered reader and
/// the payload from the raw socket: output that the daemon has at once
/// (replayed logs, a fast exec) must not arrive with the head, or it is
/// lost (seen with docker-py's own `test_attach_no_stream`).
#[test]
fn docker_py_gets_output_available_at_once() {
    let d = Daemon::start();
    d.load_busybox();
    let out = d.python(
        r#"
import os
import docker
c = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="auto")
lost = 0
for i in range(15):
    ctr = c.create_container("busybox", "echo hello")
    c.start(ctr)
    c.wait(ctr, condition="not-running")
    if c.attach(ctr, stream=False, logs=True) != b"hello\n":
        lost += 1
    c.remove_container(ctr)
run = c.create_container("busybox", "sleep 60")
c.start(run)
for i in range(15):
    e = c.exec_create(run, "echo hi")
    if c.exec_start(e) != b"hi\n":
        lost += 1
c.remove_container(run, force=True)
print("lost", lost)
"#,
    );
    assert!(
        out.success() && out.stdout.trim() == "lost 0",
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
}
