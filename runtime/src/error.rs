//! The runtime's error type. Every variant carries what was being done, so a
//! failure reads as one line: "mount proc on /proc: Operation not permitted".

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {err}")]
    Io {
        context: String,
        err: std::io::Error,
    },
    #[error("{context}: {err}")]
    Sys { context: String, err: nix::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("seccomp: {0}")]
    Seccomp(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::seccomp::SeccompError> for Error {
    fn from(e: crate::seccomp::SeccompError) -> Error {
        Error::Seccomp(e.to_string())
    }
}

impl Error {
    pub fn invalid(msg: impl Display) -> Error {
        Error::Invalid(msg.to_string())
    }
}

/// Attach "what we were doing" to io and nix errors.
pub trait Context<T> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|err| Error::Io {
            context: context().to_string(),
            err,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx<C: Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|err| Error::Sys {
            context: context().to_string(),
            err,
        })
    }
}
