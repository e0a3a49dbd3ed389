//! Seccomp filters compiled from the OCI config.
