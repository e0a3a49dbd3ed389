//! Volume and mount errors, each knowing the HTTP status dockerd gives it.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Bad names, specs and options: 400.
    #[error("{0}")]
    Invalid(String),
    /// 404, e.g. `get x: no such volume`.
    #[error("{0}")]
    NotFound(String),
    /// 409, e.g. `remove x: volume is in use - [...]`.
    #[error("{0}")]
    Conflict(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl VolumeError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        VolumeError::Invalid(msg.into())
    }

    /// `.map_err(VolumeError::io(format!("creating {}", path.display())))`
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> VolumeError {
        let context = context.into();
        move |source| VolumeError::Io { context, source }
    }

    pub fn status(&self) -> u16 {
        match self {
            VolumeError::Invalid(_) => 400,
            VolumeError::NotFound(_) => 404,
            VolumeError::Conflict(_) => 409,
            VolumeError::Io { .. } => 500,
        }
    }
}

pub type Result<T> = std::result::Result<T, VolumeError>;
