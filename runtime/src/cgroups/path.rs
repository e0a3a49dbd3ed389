//! Turning `linux.cgroupsPath` into a normalised cgroup path.

use super::CgroupError;

/// Resolves the config's cgroupsPath. The result always starts with '/',
/// has no empty, "." or ".." components and is never the root itself.
///
/// Absolute and relative paths are both placed under the hierarchy roots
/// (the runtime-defined location the spec allows for relative paths is the
/// root as well). The systemd `slice:prefix:name` form is refused: berth
/// drives cgroupfs directly.
pub fn resolve(cgroups_path: Option<&str>, id: &str) -> Result<String, CgroupError> {
    let raw = match cgroups_path {
        None | Some("") => format!("/berth/{id}"),
        Some(p) => p.to_owned(),
    };
    if is_systemd_form(&raw) {
        return Err(CgroupError::SystemdUnsupported(raw));
    }
    normalise(&raw)
}

/// Validates and normalises an already resolved path (from state.json).
pub fn normalise(raw: &str) -> Result<String, CgroupError> {
    let invalid = |reason: &str| CgroupError::InvalidPath {
        path: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid("\"..\" is not allowed")),
            p if p.contains('\0') => return Err(invalid("contains a NUL byte")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(invalid("a container cannot use the root cgroup"));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `system.slice:docker:abc` — three colon-separated fields, no slash.
fn is_systemd_form(raw: &str) -> bool {
    !raw.contains('/') && raw.split(':').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_under_berth() {
        assert_eq!(resolve(None, "abc").unwrap(), "/berth/abc");
        assert_eq!(resolve(Some(""), "abc").unwrap(), "/berth/abc");
    }

    #[test]
    fn absolute_and_relative_paths_are_normalised() {
        assert_eq!(resolve(Some("/docker/x"), "i").unwrap(), "/docker/x");
        assert_eq!(resolve(Some("docker//x/"), "i").unwrap(), "/docker/x");
        assert_eq!(resolve(Some("/a/./b"), "i").unwrap(), "/a/b");
    }

    #[test]
    fn systemd_form_is_refused() {
        let err = resolve(Some("system.slice:docker:abc"), "abc").unwrap_err();
        assert!(matches!(err, CgroupError::SystemdUnsupported(_)));
        assert!(err.to_string().contains("system.slice:docker:abc"));
    }

    #[test]
    fn escapes_and_root_are_refused() {
        assert!(resolve(Some("/a/../../etc"), "i").is_err());
        assert!(resolve(Some("/"), "i").is_err());
        assert!(normalise("//").is_err());
    }
}
