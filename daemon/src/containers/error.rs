//! Errors of container operations; the API maps each kind to dockerd's
//! status code.

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// 404 `No such container: <ref>`.
    #[error("No such container: {0}")]
    NotFound(String),
    /// 404 with the message as is (e.g. `No such image: x`).
    #[error("{0}")]
    NotFoundOther(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    InvalidParameter(String),
    /// 304: already in the requested state.
    #[error("container already in the requested state")]
    NotModified,
    /// 500 with the whole chain.
    #[error("{0}")]
    Internal(String),
}

impl ContainerError {
    pub fn internal(context: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        ContainerError::Internal(format!("{context}: {err}"))
    }
}

pub type Result<T> = std::result::Result<T, ContainerError>;
