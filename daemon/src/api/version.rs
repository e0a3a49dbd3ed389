//! API version negotiation: the optional `/vX.Y` path prefix.
//!
//! The prefix is stripped before routing (so routers register plain paths)
//! and the version is put in the request extensions; handlers read it with
//! the [`ApiVersion`] extractor (1.50 when the path had no prefix).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::convert::Infallible;
use std::fmt;

use super::error::ApiError;

pub const MAX_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 50,
};
pub const MIN_VERSION: ApiVersion = ApiVersion {
    major: 1,
    minor: 24,
};
pub const DEFAULT_VERSION: ApiVersion = MAX_VERSION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u32,
    pub minor: u32,
}

impl ApiVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        ApiVersion { major, minor }
    }

    pub fn at_least(self, major: u32, minor: u32) -> bool {
        self >= ApiVersion::new(major, minor)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ApiVersion>()
            .copied()
            .unwrap_or(DEFAULT_VERSION))
    }
}

/// What a request path says about the version.
#[derive(Debug, PartialEq, Eq)]
pub enum Prefix<'a> {
    /// No `/vX.Y` prefix; the path is used as is.
    None,
    /// A supported version and the path without the prefix.
    Version(ApiVersion, &'a str),
}

/// Split `/v1.41/containers/json` into the version and `/containers/json`.
/// A prefix naming an unsupported version is dockerd's 400.
pub fn split_prefix(path: &str) -> Result<Prefix<'_>, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(Prefix::None);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (raw, remainder) = rest.split_at(end);
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok(Prefix::None);
    }
    let version = compare_key(raw);
    let max = [MAX_VERSION.major, MAX_VERSION.minor];
    let min = [MIN_VERSION.major, MIN_VERSION.minor];
    if version.as_slice() > &max[..] {
        return Err(ApiError::bad_request(format!(
            "client version {raw} is too new. Maximum supported API version is {MAX_VERSION}"
        )));
    }
    if version.as_slice() < &min[..] {
        return Err(ApiError::bad_request(format!(
            "client version {raw} is too old. Minimum supported API version is {MIN_VERSION}, please upgrade your client to a newer version"
        )));
    }
    let remainder = if remainder.is_empty() { "/" } else { remainder };
    Ok(Prefix::Version(
        ApiVersion::new(version[0], version[1]),
        remainder,
    ))
}

/// Dotted version as comparable numbers (missing parts are 0, as dockerd
/// compares them; "1.50.1" > "1.50" and is therefore too new).
fn compare_key(raw: &str) -> Vec<u32> {
    let mut key: Vec<u32> = raw
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(u32::MAX))
        .collect();
    while key.len() < 2 {
        key.push(0);
    }
    while key.len() > 2 && key.last() == Some(&0) {
        key.pop();
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(split_prefix("/_ping").unwrap(), Prefix::None);
        assert_eq!(
            split_prefix("/v1.41/containers/json").unwrap(),
            Prefix::Version(ApiVersion::new(1, 41), "/containers/json")
        );
        assert_eq!(
            split_prefix("/v1.50").unwrap(),
            Prefix::Version(ApiVersion::new(1, 50), "/")
        );
        assert_eq!(split_prefix("/volumes").unwrap(), Prefix::None);
        let e = split_prefix("/v1.51/info").unwrap_err();
        assert_eq!(
            e.message,
            "client version 1.51 is too new. Maximum supported API version is 1.50"
        );
        let e = split_prefix("/v1.23/info").unwrap_err();
        assert_eq!(e.message, "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version");
        assert!(split_prefix("/v2/info").is_err());
        assert!(split_prefix("/v1.50.1/info").is_err());
        assert!(split_prefix("/v1.50.0/info").is_ok());
    }

    #[test]
    fn ordering() {
        assert!(!ApiVersion::new(1, 41).at_least(1, 44));
        assert!(!ApiVersion::new(1, 9).at_least(1, 24));
        assert!(ApiVersion::new(1, 50).at_least(1, 48));
        assert!(ApiVersion::new(1, 48).at_least(1, 48));
    }
}
