//! docker-py scripts (tests/py/*.py) run against a test daemon.

use crate::{tail, workspace_root, Daemon, Output};

/// Runs `tests/py/<script>` with docker-py against `d` and asserts that it
/// exits 0 (showing its output and the end of berthd's log otherwise).
/// Returns its output for the caller's checks of what it printed.
#[track_caller]
pub fn run_ok(d: &Daemon, script: &str) -> Output {
    let out = d.python_file(&workspace_root().join("tests/py").join(script), &[]);
    assert!(
        out.success(),
        "{script} failed:\nstdout: {}\nstderr: {}\nberthd log:\n{}",
        out.stdout,
        out.stderr,
        tail(&d.log(), 40)
    );
    out
}
