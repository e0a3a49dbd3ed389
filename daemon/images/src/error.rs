//! Errors of the image store. Each variant maps onto one HTTP status in the
//! API layer (see `Error::kind`).

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image, reference or blob that does not exist ("No such image: x").
    #[error("{0}")]
    NotFound(String),
    /// A name that is not a valid Docker reference; the message is dockerd's.
    #[error("{0}")]
    InvalidReference(String),
    /// Bad input from the caller: malformed archive, manifest, change command.
    #[error("{0}")]
    InvalidArgument(String),
    /// The operation conflicts with the store's state (tag in use, image in use).
    #[error("{0}")]
    Conflict(String),
    /// Something the store does not do (yet); the message says what.
    #[error("{0}")]
    NotImplemented(String),
    /// Content whose digest differs from the one it claims.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A tar entry trying to write outside the layer directory.
    #[error("invalid tar entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    /// On-disk state that cannot be read back.
    #[error("corrupt image store at {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// Coarse classification the HTTP layer maps to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    NotImplemented,
    Internal,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidReference(_)
            | Error::InvalidArgument(_)
            | Error::DigestMismatch { .. }
            | Error::UnsafeEntry { .. } => ErrorKind::InvalidArgument,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotImplemented(_) => ErrorKind::NotImplemented,
            Error::Corrupt { .. } | Error::Io { .. } => ErrorKind::Internal,
        }
    }

    pub fn no_such_image(name: &str) -> Self {
        Error::NotFound(format!("No such image: {name}"))
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

/// Describe a tar reading error without echoing binary garbage from a
/// corrupt header back to the client.
pub(crate) fn tar_error(what: &str, e: &io::Error) -> Error {
    let msg = e.to_string();
    let printable = msg.chars().all(|c| !c.is_control() && c != '\u{fffd}');
    if printable {
        Error::invalid(format!("{what}: {msg}"))
    } else {
        Error::invalid(format!("{what}: invalid tar header"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a human context to io errors: `fs::read(p).ctx(|| format!("read {p:?}"))`.
pub(crate) trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: f(),
            source,
        })
    }
}
