//! The networks a container is configured for, as kept in its record's
//! `NetworkingConfig.EndpointsConfig` (dockerd's `NetworkSettings.Networks`):
//! set at create, changed by connect/disconnect whether or not the container
//! runs, and attached at each start.

use serde_json::{Map, Value};
use std::net::Ipv4Addr;

use super::error::{NetError, Result};
use super::records;
use crate::containers::record::ContainerRecord;

/// Network modes that are not a network of their own.
pub fn is_shared_mode(mode: &str) -> bool {
    mode == "host" || mode == "none" || mode.starts_with("container:")
}

/// The configured networks by name, primary first: the network mode's
/// network while it is configured, then the others in name order.
/// Records from before connect/disconnect were kept have no
/// `EndpointsConfig`; their one network is the network mode's.
pub fn configured(rec: &ContainerRecord) -> Vec<(String, Value)> {
    let mode = rec.host_config.network_mode();
    if mode.starts_with("container:") {
        return Vec::new();
    }
    let eps = rec
        .networking_config
        .get("EndpointsConfig")
        .and_then(Value::as_object);
    let Some(eps) = eps else {
        return vec![(mode.to_string(), Value::Object(Map::new()))];
    };
    let mut out: Vec<(String, Value)> =
        eps.iter().map(|(k, v)| (k.clone(), normalize(v))).collect();
    out.sort_by(|a, b| (a.0 != mode).cmp(&(b.0 != mode)).then(a.0.cmp(&b.0)));
    out
}

/// An endpoint config as kept: JSON null becomes `{}`.
fn normalize(v: &Value) -> Value {
    if v.is_object() {
        v.clone()
    } else {
        Value::Object(Map::new())
    }
}

/// The record's `networking_config` with `EndpointsConfig` spelled out
/// (records from before it was kept have none).
pub fn materialized(rec: &ContainerRecord) -> Value {
    let mut nc = match &rec.networking_config {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let eps: Map<String, Value> = configured(rec).into_iter().collect();
    nc.insert("EndpointsConfig".into(), Value::Object(eps));
    Value::Object(nc)
}

/// `networking_config` with `EndpointsConfig[name] = epc` (or the entry
/// removed when `epc` is None).
pub fn with_endpoint(networking_config: &Value, name: &str, epc: Option<Value>) -> Value {
    let mut nc = match networking_config {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    let mut eps = match nc.get("EndpointsConfig") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    match epc {
        Some(v) => {
            eps.insert(name.to_string(), normalize(&v));
        }
        None => {
            eps.remove(name);
        }
    }
    nc.insert("EndpointsConfig".into(), Value::Object(eps));
    Value::Object(nc)
}

/// What an endpoint config asks of the address, aliases and MAC.
#[derive(Debug, Default, Clone)]
pub struct EndpointRequest {
    pub ip: Option<Ipv4Addr>,
    pub ip6: Option<std::net::Ipv6Addr>,
    pub aliases: Vec<String>,
    pub mac: Option<String>,
}

impl EndpointRequest {
    pub fn parse(epc: &Value) -> Result<EndpointRequest> {
        let ip =
            match epc
                .pointer("/IPAMConfig/IPv4Address")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
                    NetError::InvalidParameter(format!("invalid IPv4 address: {s}"))
                })?),
                None => None,
            };
        let ip6 =
            match epc
                .pointer("/IPAMConfig/IPv6Address")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                Some(s) => Some(s.parse::<std::net::Ipv6Addr>().map_err(|_| {
                    NetError::InvalidParameter(format!("invalid IPv6 address: {s}"))
                })?),
                None => None,
            };
        if let Some(list) = epc
            .pointer("/IPAMConfig/LinkLocalIPs")
            .and_then(Value::as_array)
        {
            for a in list {
                let s = a.as_str().unwrap_or_default();
                if s.parse::<std::net::IpAddr>().is_err() {
                    return Err(NetError::InvalidParameter(format!(
                        "invalid link-local IP address: {s}"
                    )));
                }
            }
        }
        let aliases = epc
            .get("Aliases")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let mac =
            match epc
                .get("MacAddress")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
            {
                Some(m) => Some(records::parse_mac(m).map(records::mac_string).ok_or_else(
                    || NetError::InvalidParameter(format!("invalid MAC address: {m}")),
                )?),
                None => None,
            };
        Ok(EndpointRequest {
            ip,
            ip6,
            aliases,
            mac,
        })
    }

    /// dockerd's rule: addresses and aliases only on user-defined networks.
    pub fn check_network(&self, predefined: bool) -> Result<()> {
        let mut errs = Vec::new();
        if predefined && (self.ip.is_some() || self.ip6.is_some()) {
            errs.push("user-specified IP address is supported on user-defined networks only");
        }
        if predefined && !self.aliases.is_empty() {
            errs.push("network-scoped aliases are only supported for user-defined networks");
        }
        if errs.is_empty() {
            return Ok(());
        }
        Err(NetError::InvalidParameter(format!(
            "invalid endpoint settings:\n{}",
            errs.join("\n")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(mode: &str, nc: Value) -> ContainerRecord {
        let mut r: ContainerRecord = serde_json::from_value(json!({
            "id": "abc", "name": "/x", "created": "", "path": "", "args": [],
            "config": {}, "host_config": {}, "networking_config": {}, "image_id": "", "layers": [],
            "state": {"status":"created","pid":0,"exit_code":0,"error":"","oom_killed":false,
                      "started_at":"","finished_at":""},
            "restart_count": 0, "has_been_started": false, "platform": "linux", "runtime": "berth"
        }))
        .expect("record");
        r.host_config.network_mode = mode.into();
        r.networking_config = nc;
        r
    }

    #[test]
    fn legacy_records_use_the_network_mode() {
        let r = rec("bridge", json!({}));
        assert_eq!(configured(&r), vec![("bridge".to_string(), json!({}))]);
        assert!(configured(&rec("container:abc", json!({}))).is_empty());
    }

    #[test]
    fn primary_first_then_by_name() {
        let r = rec(
            "mid",
            json!({"EndpointsConfig": {"a": null, "mid": {"Aliases": ["m"]}, "z": {}}}),
        );
        let names: Vec<String> = configured(&r).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["mid", "a", "z"]);
        // Disconnected from everything: nothing, not the mode.
        let r = rec("mid", json!({"EndpointsConfig": {}}));
        assert!(configured(&r).is_empty());
    }

    #[test]
    fn endpoints_are_added_and_removed() {
        let nc = with_endpoint(&json!(null), "n1", Some(json!({"Aliases": ["a"]})));
        assert_eq!(nc, json!({"EndpointsConfig": {"n1": {"Aliases": ["a"]}}}));
        let nc = with_endpoint(&nc, "n1", None);
        assert_eq!(nc, json!({"EndpointsConfig": {}}));
    }

    #[test]
    fn requests_are_checked() {
        let r = EndpointRequest::parse(&json!({
            "IPAMConfig": {"IPv4Address": "10.1.2.3", "LinkLocalIPs": ["169.254.1.1"]},
            "Aliases": ["a", ""], "MacAddress": "02:42:AC:11:00:09"
        }))
        .unwrap();
        assert_eq!(r.ip, Some(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(r.aliases, ["a"]);
        assert_eq!(r.mac.as_deref(), Some("02:42:ac:11:00:09"));
        assert!(r.check_network(true).is_err());
        assert!(EndpointRequest::parse(&json!({"IPAMConfig": {"IPv4Address": "x"}})).is_err());
        assert!(
            EndpointRequest::parse(&json!({"IPAMConfig": {"LinkLocalIPs": ["nope"]}})).is_err()
        );
    }
}
