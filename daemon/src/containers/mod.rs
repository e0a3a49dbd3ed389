//! Containers: records, lifecycle through berth-shim, logs.
