//! Image records: the config blob (whose digest is the image ID) plus the
//! little metadata Docker keeps beside it (parent, last tag time).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::chain_ids;

/// Stored beside each image in `image/images/<hex>.json`; its presence is
/// what makes the image exist.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<DateTime<Utc>>,
    /// Tags being pointed at the image when the record was written: a
    /// crash before they all are is completed at the next open, so an
    /// image never shows up without the tags its load or commit gave it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_tags: Vec<String>,
}

/// An image as the store knows it.
#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:` digest of the config blob.
    pub id: Digest,
    /// The parsed config blob (OCI/Docker image config JSON).
    pub config: Value,
    pub config_size: u64,
    pub diff_ids: Vec<Digest>,
    /// Chain ID of every layer, lowest first; the last is the top layer.
    pub chain_ids: Vec<Digest>,
    pub created: Option<DateTime<Utc>>,
    pub meta: ImageMeta,
}

impl Image {
    pub fn from_config(id: Digest, bytes: &[u8], meta: ImageMeta) -> Result<Self> {
        let config: Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid(format!("invalid image config {id}: {e}")))?;
        if !config.is_object() {
            return Err(Error::invalid(format!(
                "invalid image config {id}: not a JSON object"
            )));
        }
        let diff_ids = parse_diff_ids(&config)
            .map_err(|e| Error::invalid(format!("invalid image config {id}: {e}")))?;
        let created = config
            .get("created")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc));
        Ok(Image {
            id,
            chain_ids: chain_ids(&diff_ids),
            diff_ids,
            config,
            config_size: bytes.len() as u64,
            created,
            meta,
        })
    }

    pub fn top_layer(&self) -> Option<&Digest> {
        self.chain_ids.last()
    }

    /// The container configuration part (`config` in the image config).
    pub fn container_config(&self) -> Value {
        match self.config.get("config") {
            Some(v) if v.is_object() => v.clone(),
            _ => Value::Object(Default::default()),
        }
    }

    pub fn labels(&self) -> serde_json::Map<String, Value> {
        self.config
            .get("config")
            .and_then(|c| c.get("Labels"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub fn str_field(&self, key: &str) -> String {
        self.config
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn created_unix(&self) -> i64 {
        self.created.map(|c| c.timestamp()).unwrap_or(0)
    }

    pub fn history(&self) -> Vec<Value> {
        self.config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

fn parse_diff_ids(config: &Value) -> Result<Vec<Digest>, String> {
    let rootfs = config.get("rootfs").ok_or("missing rootfs")?;
    if rootfs.get("type").and_then(Value::as_str) != Some("layers") {
        return Err("rootfs type must be \"layers\"".into());
    }
    let ids = match rootfs.get("diff_ids") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("rootfs.diff_ids must be an array".into()),
    };
    ids.iter()
        .map(|v| {
            let s = v.as_str().ok_or("diff ID is not a string")?;
            Digest::parse(s).map_err(|e| e.to_string())
        })
        .collect()
}

/// RFC 3339 with up to nanosecond precision and trailing zeros dropped,
/// as Go's `time.RFC3339Nano` (and so dockerd) prints times.
pub fn format_time(t: &DateTime<Utc>) -> String {
    let full = t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    match full.split_once('.') {
        Some((secs, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() {
                format!("{secs}Z")
            } else {
                format!("{secs}.{digits}Z")
            }
        }
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_like_go() {
        let t = DateTime::from_timestamp(0, 0).unwrap();
        assert_eq!(format_time(&t), "1970-01-01T00:00:00Z");
        let t = DateTime::from_timestamp(1_700_000_000, 120_000_000).unwrap();
        assert_eq!(format_time(&t), "2023-11-14T22:13:20.12Z");
    }
}
