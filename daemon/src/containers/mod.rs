//! Containers: records, lifecycle through berth-shim, logs.
//!
//! [`Containers`] is the store every container endpoint works on. Each
//! container has its own locks (see [`core::Container`]); the index lock is
//! only taken for lookups, so one stuck container never blocks `ps`,
//! events or the others.

mod attach;
mod cgroup_parent;
mod cgroupfs;
mod commit_pause;
pub mod config;
pub mod core;
pub mod crashpoint;
mod create;
pub mod error;
pub mod hooks;
pub mod host_config_view;
mod hostfiles;
mod image_source;
mod lifecycle;
pub mod links;
pub mod names;
mod networking;
mod ops;
mod query;
pub mod record;
mod restore;
pub(crate) mod rootfs;
mod shim;
mod shutdown;
pub mod signals;
pub mod spec;
mod steps;
mod store;
mod subpath;
pub mod timefmt;
mod trash;
mod validate;
mod views;

pub use attach::AttachRequest;
pub use core::{Container, Containers, Settings};
pub use error::ContainerError;
pub use image_source::ImageUsers;
pub use query::LIST_FILTERS;
pub(crate) use validate::ulimit as check_ulimit;
pub use views::InspectShape;
pub mod archive;
pub mod changes;
pub mod exec;
pub mod export;
pub mod logs;
pub mod stats;
