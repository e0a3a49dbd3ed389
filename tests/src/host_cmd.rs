//! Host commands run by tests (ip, iptables-save, …): output captured, a
//! failure to start is a panic naming the command.

use std::process::{Command, Output};

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[track_caller]
pub fn run_ok(args: &[&str]) {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
