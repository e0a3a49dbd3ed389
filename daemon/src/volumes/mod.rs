//! Local volumes and container mounts.
//!
//! - [`VolumeStore`]: the volumes under `<data-root>/volumes` (create,
//!   inspect, list, remove, prune, events) and which containers use them.
//! - [`VolumeStore::resolve`]: a container's `-v`, `--mount`, `--tmpfs`,
//!   `--volumes-from` and image volumes as [`MountPoint`]s (inspect's
//!   `Mounts` plus the OCI mount options), with dockerd's validation.
//! - [`VolumeStore::populate`]: copy image content into a new volume.
//!
//! The container side calls, in order: `resolve` at create,
//! `mount_container` + `populate` at start, `unmount_container` at stop,
//! `release_container` at removal (`rm -v` removes anonymous volumes), and
//! `restore_container` for every existing container at daemon start.
//!
//! [`MountPoint`]: crate::containers::record::MountPoint

mod container_hooks;
mod error;
mod local_opts;
mod name;
mod populate;
mod resolve;
mod spec;
mod store;
mod tmpfs_opts;

pub use error::VolumeError;
pub use store::{CreateRequest, Volume, VolumeStore, ANONYMOUS_LABEL};
