//! One module per group of CLI commands; each takes plain options so the
//! CLI layer stays thin.

pub mod create;
pub mod exec;
pub mod info;
pub mod lifecycle;
pub mod run;
pub mod update;
