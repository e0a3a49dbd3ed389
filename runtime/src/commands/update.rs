//! `update`: change a running container's resource limits.

use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::state::{Root, Status};

#[derive(Default)]
pub struct UpdateOptions {
    /// Path of a JSON LinuxResources, "-" for stdin.
    pub resources: Option<PathBuf>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

pub fn update(root: &Root, id: &str, opts: &UpdateOptions) -> Result<()> {
    let mut c = root.load(id)?;
    if c.status(root) == Status::Stopped {
        return Err(Error::invalid("cannot update a stopped container"));
    }
    let patch = patch_from(opts)?;
    let cg = super::lifecycle::cgroup(&c)?;
    let change: LinuxResources = serde_json::from_value(patch.clone())
        .map_err(|e| Error::invalid(format!("invalid resources: {e}")))?;
    cg.update(&change)
        .map_err(|e| Error::Cgroup(e.to_string()))?;
    // Remember the merged limits so the state reflects them.
    let mut linux = c.spec.linux().clone().unwrap_or_default();
    let mut current = serde_json::to_value(linux.resources().clone().unwrap_or_default())
        .map_err(|e| Error::invalid(e.to_string()))?;
    merge(&mut current, &patch);
    let merged: LinuxResources = serde_json::from_value(current)
        .map_err(|e| Error::invalid(format!("invalid resources: {e}")))?;
    linux.set_resources(Some(merged));
    c.spec.set_linux(Some(linux));
    root.save(&c)
}

fn patch_from(opts: &UpdateOptions) -> Result<Value> {
    let mut patch = match &opts.resources {
        Some(p) => {
            let mut data = String::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut data)
                    .map_err(|e| Error::invalid(format!("read resources from stdin: {e}")))?;
            } else {
                data = std::fs::read_to_string(p)
                    .map_err(|e| Error::invalid(format!("read {}: {e}", p.display())))?;
            }
            serde_json::from_str(&data)
                .map_err(|e| Error::invalid(format!("parse resources: {e}")))?
        }
        None => json!({}),
    };
    let mut flags = json!({});
    let mut set = |section: &str, key: &str, v: Value| {
        flags[section][key] = v;
    };
    if let Some(m) = &opts.memory {
        set("memory", "limit", json!(parse_bytes(m)?));
    }
    if let Some(m) = &opts.memory_reservation {
        set("memory", "reservation", json!(parse_bytes(m)?));
    }
    if let Some(m) = &opts.memory_swap {
        set("memory", "swap", json!(parse_bytes(m)?));
    }
    if let Some(v) = opts.cpu_shares {
        set("cpu", "shares", json!(v));
    }
    if let Some(v) = opts.cpu_quota {
        set("cpu", "quota", json!(v));
    }
    if let Some(v) = opts.cpu_period {
        set("cpu", "period", json!(v));
    }
    if let Some(v) = &opts.cpuset_cpus {
        set("cpu", "cpus", json!(v));
    }
    if let Some(v) = &opts.cpuset_mems {
        set("cpu", "mems", json!(v));
    }
    if let Some(v) = opts.pids_limit {
        set("pids", "limit", json!(v));
    }
    if let Some(v) = opts.blkio_weight {
        set("blockIO", "weight", json!(v));
    }
    merge(&mut patch, &flags);
    Ok(patch)
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// "512", "64k", "100m", "1g" (binary units, as runc); "-1" is unlimited.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("invalid size {s:?}")))?;
    if n < 0.0 {
        return Err(Error::invalid(format!("invalid size {s:?}")));
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("100m").unwrap(), 100 << 20);
        assert_eq!(parse_bytes("64K").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("1gb").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn flags_patch_json() {
        let o = UpdateOptions {
            memory: Some("16m".into()),
            pids_limit: Some(10),
            ..Default::default()
        };
        let p = patch_from(&o).unwrap();
        assert_eq!(p["memory"]["limit"], json!(16 << 20));
        assert_eq!(p["pids"]["limit"], json!(10));
        let r: LinuxResources = serde_json::from_value(p).unwrap();
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
    }
}
