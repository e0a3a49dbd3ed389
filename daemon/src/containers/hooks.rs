//! What the container store needs from other subsystems, as narrow traits
//! so each side can be built and tested alone: the image store (D2) and the
//! volume/mount resolver (C2). berthd wires the real implementations in.

use std::path::PathBuf;

use super::config::{ContainerConfig, HostConfig};
use super::record::MountPoint;

/// An image as containers need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    /// `sha256:<hex>`.
    pub id: String,
    /// The image config's `config` object (Env, Cmd, Entrypoint, ...).
    pub config: ContainerConfig,
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    /// `os`, e.g. "linux".
    pub os: String,
    /// Chain ID of the top layer (what the store holds for a container).
    pub top_layer: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageLookupError {
    /// Not in the store: the API answers 404 `No such image: <ref>`.
    #[error("No such image: {0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

pub trait ImageSource: Send + Sync {
    /// Resolve a reference (name[:tag], name@digest, ID or ID prefix) and
    /// make sure its layers are unpacked.
    fn lookup(&self, reference: &str) -> Result<ImageInfo, ImageLookupError>;

    /// Keep the layer chain ending at `top_layer` (an image's
    /// `top_layer`) while container `owner` exists, even if the image is
    /// deleted (`docker rmi -f`). Not forced to disk: restore holds each
    /// container's layers again (the record is durable).
    fn hold(&self, owner: &str, top_layer: Option<&str>) -> Result<(), ImageLookupError>;

    /// The container is gone.
    fn release(&self, owner: &str) -> Result<(), ImageLookupError>;
}

/// The container side of volumes and mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Bad mount spec etc.: 400 with this message.
    #[error("{0}")]
    Invalid(String),
    /// Volume in use / missing: 404 or 409 as the message says.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
}

/// What the resolver gets to decide a container's mounts.
pub struct MountRequest<'a> {
    pub container_id: &'a str,
    pub config: &'a ContainerConfig,
    pub host_config: &'a HostConfig,
    /// Image layer directories, lowest first (to fill anonymous volumes).
    pub layers: &'a [PathBuf],
    /// Mount points of other containers, for `--volumes-from`.
    pub volumes_from: Vec<(String, Vec<MountPoint>)>,
}

pub trait MountResolver: Send + Sync {
    /// At create: resolve Binds, Mounts, VolumesFrom and image Volumes into
    /// mount points (creating named/anonymous volumes as needed).
    fn resolve(&self, request: &MountRequest<'_>) -> Result<Vec<MountPoint>, MountError>;

    /// At removal: release the container's volumes; with `remove_anonymous`
    /// (`docker rm -v`) delete its anonymous volumes.
    fn release(
        &self,
        container_id: &str,
        mounts: &[MountPoint],
        remove_anonymous: bool,
    ) -> Result<(), MountError>;
}
