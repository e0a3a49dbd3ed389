//! Small pieces shared by berthd, berth-shim and berth-runtime.

pub mod atomic;
pub mod shim;
pub mod tree;
