//! Volume names: dockerd's rule for the local driver, and random names for
//! anonymous volumes.

use super::error::{Result, VolumeError};

/// The pattern dockerd quotes in its error message.
const PATTERN: &str = "[a-zA-Z0-9][a-zA-Z0-9_.-]";

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`: at least two characters, no `/`, at
/// most [`MAX_LEN`].
pub fn is_valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= MAX_LEN
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A name is a directory name under the volumes root: NAME_MAX bytes.
pub const MAX_LEN: usize = 255;

/// dockerd's error for a bad name (400).
pub fn validate(name: &str) -> Result<()> {
    if name.len() > MAX_LEN {
        // Not echoed: it may be kilobytes long.
        return Err(VolumeError::invalid(format!(
            "invalid volume name: {} bytes long, the maximum is {MAX_LEN}",
            name.len()
        )));
    }
    if is_valid(name) {
        return Ok(());
    }
    Err(VolumeError::invalid(format!(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"{PATTERN}\" are allowed. If you intended to pass a host directory, use absolute path"
    )))
}

/// 64 hex characters, like an anonymous volume's name in dockerd.
pub fn random() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_dockerd() {
        for ok in ["ab", "my-vol", "v1.2_x", "0a", "A-"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["", "a", "-a", ".x", "a/b", "a b", "é1", "_ab"] {
            assert!(!is_valid(bad), "{bad}");
        }
        let e = validate("a/b").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e
            .to_string()
            .starts_with("create a/b: \"a/b\" includes invalid characters"));
        assert!(is_valid(&"v".repeat(255)));
        let e = validate(&"v".repeat(5000)).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.to_string(),
            "invalid volume name: 5000 bytes long, the maximum is 255"
        );
        let r = random();
        assert_eq!(r.len(), 64);
        assert!(is_valid(&r));
        assert_ne!(r, random());
    }
}
