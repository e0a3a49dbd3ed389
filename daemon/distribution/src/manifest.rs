//! Manifest formats: Docker schema2, OCI image manifest, Docker manifest
//! list and OCI index (platform selection); schema1 is refused as dockerd
//! refuses it.

use serde::{Deserialize, Serialize};

use berth_images::Digest;

use crate::error::{Error, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const SCHEMA1: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// What `Accept` lists when fetching a manifest.
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Largest manifest accepted (dockerd's limit).
pub const MANIFEST_MAX: usize = 4 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest> {
        Digest::parse(&self.digest).map_err(|_| {
            Error::Upstream(format!("unsupported or invalid digest {:?}", self.digest))
        })
    }

    /// The size, refusing negative ones.
    pub fn size(&self) -> Result<u64> {
        u64::try_from(self.size)
            .map_err(|_| Error::Upstream(format!("invalid size {} for {}", self.size, self.digest)))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub variant: String,
}

impl Platform {
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: String::new(),
        }
    }

    /// `os[/arch[/variant]]` as `--platform` takes it; empty is the host.
    pub fn parse(s: &str) -> Result<Platform> {
        if s.is_empty() {
            return Ok(Platform::host());
        }
        let parts: Vec<&str> = s.split('/').collect();
        let lower = |x: &str| x.to_ascii_lowercase();
        let mut p = match parts.as_slice() {
            [os] => Platform {
                os: lower(os),
                ..Platform::host()
            },
            [os, arch] => Platform {
                os: lower(os),
                architecture: lower(arch),
                variant: String::new(),
            },
            [os, arch, variant] => Platform {
                os: lower(os),
                architecture: lower(arch),
                variant: lower(variant),
            },
            _ => {
                return Err(Error::Invalid(format!(
                    "invalid platform {s:?}: expected os[/arch[/variant]]"
                )))
            }
        };
        if p.architecture == "x86_64" || p.architecture == "x86-64" {
            p.architecture = "amd64".into();
        }
        if p.architecture == "aarch64" {
            p.architecture = "arm64".into();
        }
        if p.os.is_empty() || p.architecture.is_empty() {
            return Err(Error::Invalid(format!("invalid platform {s:?}")));
        }
        Ok(p)
    }

    fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_empty() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Debug, Clone)]
pub enum Parsed {
    Image {
        media_type: String,
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    List {
        manifests: Vec<Descriptor>,
    },
}

/// Parse a manifest, using the `Content-Type` the registry sent when the
/// document does not name its own media type.
pub fn parse(bytes: &[u8], content_type: &str) -> Result<Parsed> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    if SCHEMA1.contains(&ct) {
        return Err(schema1_error());
    }
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| Error::Upstream(format!("invalid manifest: {e}")))?;
    if raw.schema_version == 1 || SCHEMA1.contains(&raw.media_type.as_str()) {
        return Err(schema1_error());
    }
    let mt = if raw.media_type.is_empty() {
        ct.to_owned()
    } else {
        raw.media_type.clone()
    };
    if mt == DOCKER_LIST || mt == OCI_INDEX || (raw.manifests.is_some() && raw.config.is_none()) {
        return Ok(Parsed::List {
            manifests: raw.manifests.unwrap_or_default(),
        });
    }
    match (raw.config, raw.layers) {
        (Some(config), Some(layers)) => Ok(Parsed::Image {
            media_type: if mt.is_empty() {
                OCI_MANIFEST.into()
            } else {
                mt
            },
            config,
            layers,
        }),
        _ => Err(Error::Upstream(format!(
            "unsupported manifest format: {}",
            if mt.is_empty() { "unknown" } else { &mt }
        ))),
    }
}

fn schema1_error() -> Error {
    Error::Invalid(
        "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of the image to upgrade the image to image manifest version 2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/".into(),
    )
}

/// Pick the entry of a list for `want`, as dockerd does.
pub fn select<'a>(manifests: &'a [Descriptor], want: &Platform) -> Result<&'a Descriptor> {
    manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no matching manifest for {want} in the manifest list entries"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_platform_and_refuses_schema1() {
        let list = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","size":1,"platform":{"os":"linux","architecture":"amd64"}}]}"#;
        let Parsed::List { manifests } = parse(list, "").unwrap() else {
            panic!("not a list")
        };
        assert_eq!(
            select(&manifests, &Platform::parse("linux/amd64").unwrap())
                .unwrap()
                .digest,
            "sha256:bb"
        );
        assert_eq!(
            select(&manifests, &Platform::parse("linux/arm/v7").unwrap())
                .unwrap()
                .digest,
            "sha256:aa"
        );
        let e = select(&manifests, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, "")
            .unwrap_err()
            .to_string()
            .contains("schema 1 support has been removed"));
        assert!(Platform::parse("a/b/c/d").is_err());
    }
}
