//! Errors with dockerd's wording; [`Error::kind`] picks the HTTP status.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    Unauthorized,
    Forbidden,
    /// The registry could not be reached or answered nonsense.
    Upstream,
    Internal,
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Upstream(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Store(#[from] berth_images::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Upstream(_) => ErrorKind::Upstream,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Store(e) => match e.kind() {
                berth_images::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_images::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
        }
    }
}

/// `GET "url": cause` as Go's net/http words transport failures.
pub(crate) fn transport(method: &str, url: &str, e: &reqwest::Error) -> Error {
    let mut cause = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = format!("{cause}: {s}");
        src = s.source();
    }
    let verb = match method {
        "GET" => "Get",
        "HEAD" => "Head",
        "PUT" => "Put",
        "POST" => "Post",
        "PATCH" => "Patch",
        other => other,
    };
    Error::Upstream(format!("{verb} \"{url}\": {cause}"))
}
