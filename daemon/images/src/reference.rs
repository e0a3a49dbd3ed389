//! Image references as Docker parses and normalises them:
//! `busybox` is `docker.io/library/busybox:latest`, `localhost:5000/a/b:t`
//! keeps its registry, `name@sha256:…` pins a digest. Error texts are the
//! ones dockerd returns, since clients show them verbatim.

use std::fmt;

use crate::digest::{is_hex64, Digest};
use crate::error::{Error, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A fully qualified reference: `domain/path[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// What a user may type where an image is expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A full 64-hex image ID, with or without `sha256:`.
    Id(Digest),
    Named(Reference),
}

impl Reference {
    /// Parse like `reference.ParseNormalizedNamed`: familiar names are
    /// expanded, nothing else is added (no default tag).
    pub fn parse_normalized(s: &str) -> Result<Self> {
        if is_hex64(s) {
            return Err(Error::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote_name = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => &remainder,
        };
        if remote_name.to_lowercase() != remote_name {
            return Err(Error::InvalidReference(format!(
                "invalid reference format: repository name ({remote_name}) must be lowercase"
            )));
        }
        Self::parse_full(&format!("{domain}/{remainder}"))
    }

    /// Parse an already fully qualified reference string.
    fn parse_full(s: &str) -> Result<Self> {
        match parse_grammar(s) {
            Ok(r) => Ok(r),
            Err(e) => {
                if s.is_empty() {
                    return Err(Error::InvalidReference(
                        "repository name must have at least one component".into(),
                    ));
                }
                if parse_grammar(&s.to_lowercase()).is_ok() {
                    return Err(Error::InvalidReference(
                        "invalid reference format: repository name must be lowercase".into(),
                    ));
                }
                Err(e)
            }
        }
    }

    /// `docker.io/library/busybox` for every reference to busybox.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Add `:latest` when neither tag nor digest is given (`TagNameOnly`).
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// Replace the tag (and drop any digest), validating the tag.
    pub fn with_tag(mut self, tag: &str) -> Result<Self> {
        if !is_valid_tag(tag) {
            return Err(Error::InvalidReference("invalid tag format".into()));
        }
        self.tag = Some(tag.to_owned());
        self.digest = None;
        Ok(self)
    }

    /// Only the repository name, with the given digest (a canonical reference).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The short form users see: `busybox:latest`, `localhost:5000/a/b:t`.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        if let Some(t) = &self.tag {
            out.push(':');
            out.push_str(t);
        }
        if let Some(d) = &self.digest {
            out.push('@');
            out.push_str(&d.to_string());
        }
        out
    }

    /// The familiar repository name without tag or digest.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl ImageRef {
    /// Parse like `reference.ParseAnyReference`: a bare 64-hex string or a
    /// `sha256:` digest is an ID, anything else must be a valid name.
    pub fn parse(s: &str) -> Result<Self> {
        if is_hex64(s) {
            return Ok(ImageRef::Id(Digest::from_hex(s)?));
        }
        if let Some(hex) = s.strip_prefix("sha256:") {
            if is_hex64(hex) {
                return Ok(ImageRef::Id(Digest::from_hex(hex)?));
            }
        }
        Reference::parse_normalized(s).map(ImageRef::Named)
    }
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i)
            if name[..i].contains(['.', ':'])
                || &name[..i] == "localhost"
                || name[..i].to_lowercase() != name[..i] =>
        {
            (name[..i].to_owned(), name[i + 1..].to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

fn invalid_format() -> Error {
    Error::InvalidReference("invalid reference format".into())
}

/// `domain/path[:tag][@digest]` where the domain is required (the caller
/// normalised first).
fn parse_grammar(s: &str) -> Result<Reference> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(parse_reference_digest(d)?)),
        None => (s, None),
    };
    // A ':' after the last '/' separates the tag; one before it is a port.
    let last_slash = rest.rfind('/').ok_or_else(invalid_format)?;
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => {
            let at = last_slash + i;
            (&rest[..at], Some(&rest[at + 1..]))
        }
        None => (rest, None),
    };
    if let Some(t) = tag {
        if !is_valid_tag(t) {
            return Err(invalid_format());
        }
    }
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(Error::InvalidReference(format!(
            "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )));
    }
    let slash = name.find('/').ok_or_else(invalid_format)?;
    let (domain, path) = (&name[..slash], &name[slash + 1..]);
    if !is_valid_domain(domain) || path.is_empty() || !path.split('/').all(is_path_component) {
        return Err(invalid_format());
    }
    Ok(Reference {
        domain: domain.to_owned(),
        path: path.to_owned(),
        tag: tag.map(str::to_owned),
        digest,
    })
}

fn parse_reference_digest(d: &str) -> Result<Digest> {
    let (alg, hex) = d.split_once(':').ok_or_else(invalid_format)?;
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|c| {
        let mut b = c.bytes();
        matches!(b.next(), Some(x) if x.is_ascii_alphabetic())
            && b.all(|x| x.is_ascii_alphanumeric())
    });
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid_format());
    }
    if alg != "sha256" {
        return Err(Error::InvalidReference(format!(
            "unsupported digest algorithm: {alg}"
        )));
    }
    Digest::from_hex(hex)
        .map_err(|_| Error::InvalidReference("invalid checksum digest format".into()))
}

fn is_valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `host[:port]` where host is DNS-like components or a bracketed IPv6.
fn is_valid_domain(d: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((ip, tail)) = rest.split_once(']') else {
            return false;
        };
        let ip_ok = !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        match tail {
            "" => (ip_ok, None),
            t => match t.strip_prefix(':') {
                Some(p) => (ip_ok, Some(p)),
                None => return false,
            },
        }
    } else {
        let (host, port) = match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        };
        (is_dns_host(host), port)
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn is_dns_host(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse_normalized(s).unwrap().to_string()
    }

    fn err(s: &str) -> String {
        Reference::parse_normalized(s).unwrap_err().to_string()
    }

    #[test]
    fn normalises_familiar_names() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox");
        assert_eq!(
            Reference::parse_normalized("busybox")
                .unwrap()
                .with_default_tag()
                .to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(norm("index.docker.io/library/x"), "docker.io/library/x");
        assert_eq!(norm("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(norm("localhost/a"), "localhost/a");
        assert_eq!(norm("quay.io/org/img"), "quay.io/org/img");
        assert_eq!(norm("[::1]:5000/x:y"), "[::1]:5000/x:y");
        assert_eq!(norm("[fe80::1]/x"), "[fe80::1]/x");
        assert!(Reference::parse_normalized("[::1]x/y").is_err());
        assert!(Reference::parse_normalized("[]:5000/y").is_err());
        assert!(Reference::parse_normalized("host:port/y").is_err());
        assert_eq!(norm("a__b/c-d.e---f"), "docker.io/a__b/c-d.e---f");
    }

    #[test]
    fn familiar_strings() {
        let r = Reference::parse_normalized("docker.io/library/busybox:latest").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse_normalized("docker.io/user/app").unwrap();
        assert_eq!(r.familiar(), "user/app");
        let r = Reference::parse_normalized("localhost:5000/a/b:t").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/a/b:t");
    }

    #[test]
    fn digests() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse_normalized(&format!("busybox@sha256:{hex}")).unwrap();
        assert_eq!(r.digest().unwrap().hex(), hex);
        assert_eq!(r.tag(), None);
        assert_eq!(r.familiar(), format!("busybox@sha256:{hex}"));
        let r = Reference::parse_normalized(&format!("busybox:1@sha256:{hex}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert!(Reference::parse_normalized("busybox@sha256:abc").is_err());
    }

    #[test]
    fn image_refs() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(ImageRef::parse(hex).unwrap(), ImageRef::Id(_)));
        assert!(matches!(
            ImageRef::parse(&format!("sha256:{hex}")).unwrap(),
            ImageRef::Id(_)
        ));
        assert!(matches!(
            ImageRef::parse("e3b0c4").unwrap(),
            ImageRef::Named(_)
        ));
    }

    #[test]
    fn rejects_invalid_with_dockerd_messages() {
        assert_eq!(
            err("Busybox"),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert_eq!(
            err("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "invalid repository name (e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855), cannot specify 64-byte hexadecimal strings"
        );
        assert_eq!(err("busybox:"), "invalid reference format");
        assert_eq!(err("-bad"), "invalid reference format");
        assert_eq!(err("a//b"), "invalid reference format");
        assert_eq!(err("bad!name"), "invalid reference format");
        assert_eq!(err(""), "invalid reference format");
        assert_eq!(err("busybox:-tag"), "invalid reference format");
        assert!(err(&"a".repeat(300)).contains("must not be more than 255"));
        assert_eq!(
            Reference::parse_normalized("busybox")
                .unwrap()
                .with_tag("bad tag")
                .unwrap_err()
                .to_string(),
            "invalid tag format"
        );
    }
}
