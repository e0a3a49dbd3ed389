//! Published ports: what `HostConfig.PortBindings`, `PublishAllPorts` and
//! `ExposedPorts` ask for, and dockerd's JSON shapes for them.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// `80/tcp` → (80, tcp).
pub fn parse_port_key(key: &str) -> Result<(u16, Proto), String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = match proto {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return Err(format!(
                "publishing {other} ports is not supported by berth (tcp and udp are)"
            ))
        }
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port specification: {key:?}"))?;
    Ok((port, proto))
}

/// One host port to open: `host_port` 0 = any free port; a range is tried
/// port by port.
#[derive(Debug, Clone, PartialEq)]
pub struct PortRequest {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: IpAddr,
    pub host_ports: (u16, u16),
}

/// A port that is open now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

fn host_ports(s: &str) -> Result<(u16, u16), String> {
    if s.is_empty() {
        return Ok((0, 0));
    }
    let bad = || format!("invalid host port: {s:?}");
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a == 0 || b < a {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let p: u16 = s.parse().map_err(|_| bad())?;
            Ok((p, p))
        }
    }
}

impl PortRequest {
    /// Is this the `::` binding of an empty `HostIp` whose 0.0.0.0 binding
    /// is `v4`? `requests` puts the two one after the other.
    pub fn is_v6_twin_of(&self, v4: &Published) -> bool {
        self.host_ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            && v4.host_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            && self.proto == v4.proto
            && self.container_port == v4.container_port
            && (self.host_ports == (0, 0)
                || (self.host_ports.0..=self.host_ports.1).contains(&v4.host_port))
    }
}

/// Whether the host has IPv6 (an address on some interface), as dockerd
/// checks before publishing on `::`.
pub fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty())
}

/// The addresses a binding's `HostIp` publishes on: empty is 0.0.0.0 and,
/// with IPv6 on the host, `::` too (dockerd 28).
fn host_ips(ip: &str, v6: bool) -> Result<Vec<IpAddr>, String> {
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if ip.is_empty() {
        let mut ips = vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        if v6 {
            ips.push(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        }
        return Ok(ips);
    }
    let parsed: IpAddr = ip
        .parse()
        .map_err(|_| format!("invalid host IP address: {ip:?}"))?;
    if parsed.is_ipv6() && !v6 {
        return Err(format!(
            "cannot publish on {parsed}: IPv6 is not available on this host"
        ));
    }
    Ok(vec![parsed])
}

/// Everything to publish for a container.
pub fn requests(
    port_bindings: Option<&Value>,
    publish_all: bool,
    exposed: Option<&BTreeMap<String, Value>>,
) -> Result<Vec<PortRequest>, String> {
    requests_with(port_bindings, publish_all, exposed, host_has_ipv6())
}

fn requests_with(
    port_bindings: Option<&Value>,
    publish_all: bool,
    exposed: Option<&BTreeMap<String, Value>>,
    v6: bool,
) -> Result<Vec<PortRequest>, String> {
    let mut out = Vec::new();
    let mut bound = std::collections::BTreeSet::new();
    if let Some(Value::Object(map)) = port_bindings {
        for (key, list) in map {
            let (container_port, proto) = parse_port_key(key)?;
            bound.insert((container_port, proto));
            let entries = list.as_array().cloned().unwrap_or_default();
            let entries = if entries.is_empty() {
                vec![json!({})]
            } else {
                entries
            };
            for e in entries {
                let ip = e.get("HostIp").and_then(Value::as_str).unwrap_or("");
                let hp = host_ports(e.get("HostPort").and_then(Value::as_str).unwrap_or(""))?;
                for host_ip in host_ips(ip, v6)? {
                    out.push(PortRequest {
                        proto,
                        container_port,
                        host_ip,
                        host_ports: hp,
                    });
                }
            }
        }
    }
    if publish_all {
        for key in exposed.into_iter().flat_map(|m| m.keys()) {
            let (container_port, proto) = parse_port_key(key)?;
            if bound.insert((container_port, proto)) {
                for host_ip in host_ips("", v6)? {
                    out.push(PortRequest {
                        proto,
                        container_port,
                        host_ip,
                        host_ports: (0, 0),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// `NetworkSettings.Ports`: every exposed or published port, `null` when
/// it is not published.
pub fn settings_ports(published: &[Published], exposed: Option<&BTreeMap<String, Value>>) -> Value {
    let mut m = Map::new();
    for key in exposed.into_iter().flat_map(|m| m.keys()) {
        if let Ok((p, proto)) = parse_port_key(key) {
            m.insert(format!("{p}/{}", proto.as_str()), Value::Null);
        }
    }
    for p in published {
        let key = format!("{}/{}", p.container_port, p.proto.as_str());
        let entry = json!({ "HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string() });
        match m.get_mut(&key) {
            Some(Value::Array(a)) => a.push(entry),
            _ => {
                m.insert(key, json!([entry]));
            }
        }
    }
    Value::Object(m)
}

/// `ContainerSummary.Ports`.
pub fn summary_ports(published: &[Published], exposed: Option<&BTreeMap<String, Value>>) -> Value {
    let mut out: Vec<Value> = published
        .iter()
        .map(|p| json!({ "IP": p.host_ip.to_string(), "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto.as_str() }))
        .collect();
    for key in exposed.into_iter().flat_map(|m| m.keys()) {
        if let Ok((port, proto)) = parse_port_key(key) {
            if !published
                .iter()
                .any(|p| p.container_port == port && p.proto == proto)
            {
                out.push(json!({ "PrivatePort": port, "Type": proto.as_str() }));
            }
        }
    }
    Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_and_publish_all() {
        let pb = json!({ "80/tcp": [{ "HostIp": "", "HostPort": "5000" }], "53/udp": [{ "HostIp": "127.0.0.1", "HostPort": "" }] });
        let exposed: BTreeMap<String, Value> = [
            ("80/tcp".to_string(), json!({})),
            ("443/tcp".to_string(), json!({})),
        ]
        .into();
        let r = requests_with(Some(&pb), true, Some(&exposed), false).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.contains(&PortRequest {
            proto: Proto::Udp,
            container_port: 53,
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_ports: (0, 0)
        }));
        assert!(r.contains(&PortRequest {
            proto: Proto::Tcp,
            container_port: 443,
            host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host_ports: (0, 0)
        }));
        let both = requests_with(Some(&pb), true, Some(&exposed), true).unwrap();
        assert_eq!(both.len(), 5);
        assert!(both.contains(&PortRequest {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            host_ports: (5000, 5000)
        }));
        let v6 = json!({ "80/tcp": [{ "HostIp": "::1", "HostPort": "" }] });
        assert!(requests_with(Some(&v6), false, None, false).is_err());
        let r = requests_with(Some(&v6), false, None, true).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].host_ip, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert!(requests(Some(&json!({ "80/sctp": [] })), false, None).is_err());
        assert!(requests(
            Some(&json!({ "80/tcp": [{ "HostPort": "x" }] })),
            false,
            None
        )
        .is_err());
    }

    #[test]
    fn shapes() {
        let p = vec![Published {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host_port: 5000,
        }];
        let exposed: BTreeMap<String, Value> = [
            ("80/tcp".to_string(), json!({})),
            ("443/tcp".to_string(), json!({})),
        ]
        .into();
        let s = settings_ports(&p, Some(&exposed));
        assert_eq!(
            s,
            json!({ "80/tcp": [{ "HostIp": "0.0.0.0", "HostPort": "5000" }], "443/tcp": null })
        );
        let l = summary_ports(&p, Some(&exposed));
        assert_eq!(
            l,
            json!([{ "IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 5000, "Type": "tcp" }, { "PrivatePort": 443, "Type": "tcp" }])
        );
    }
}
