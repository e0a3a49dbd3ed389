#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
}

impl NetError {
    pub fn status(&self) -> u16 {
        match self {
            NetError::InvalidParameter(_) => 400,
            NetError::NotFound(_) => 404,
            NetError::Conflict(_) => 409,
            NetError::Forbidden(_) => 403,
            NetError::Internal(_) => 500,
        }
    }

    pub fn internal(context: impl std::fmt::Display, e: impl std::fmt::Display) -> NetError {
        NetError::Internal(format!("{context}: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, NetError>;
