//! One module per group of CLI commands; each takes plain options so the
//! CLI layer stays thin.

pub mod create;
pub mod exec;
pub mod info;
pub mod lifecycle;
pub mod run;
pub mod update;

/// One line to stdout. A closed stdout (`... | head -1`) is not worth a
/// panic: the line is dropped.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
