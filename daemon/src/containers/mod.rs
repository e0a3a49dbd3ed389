//! Containers: records, lifecycle through berth-shim, logs.
pub mod archive;
pub mod stats;
pub mod exec;
