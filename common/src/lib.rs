//! Small pieces shared by berthd, berth-shim and berth-runtime.

pub mod atomic;
pub mod crashpoint;
pub mod shim;
pub mod tree;
