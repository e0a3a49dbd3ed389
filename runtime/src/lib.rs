//! berth-runtime's library: everything the `berth-runtime` binary does, in
//! modules that can be tested on their own.

pub mod cgroups;
pub mod seccomp;
