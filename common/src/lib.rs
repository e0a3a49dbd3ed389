//! Small pieces shared by berthd, berth-shim and berth-runtime.

pub mod atomic;
pub mod crashpoint;
pub mod mounts;
pub mod mux;
pub mod readonly_exe;
pub mod shim;
pub mod tree;
