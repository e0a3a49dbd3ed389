//! berth-runtime's library: everything the `berth-runtime` binary does, in
//! modules that can be tested on their own.

pub mod caps;
pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod devices_policy;
pub mod error;
pub mod fds;
pub mod hooks;
pub mod identity;
pub mod logging;
pub mod namespaces;
pub mod process;
pub mod rlimits;
pub mod rootfs;
pub mod seal;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod state;
pub mod sync;
pub mod tty;
