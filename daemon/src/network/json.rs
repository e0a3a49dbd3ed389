//! dockerd's JSON shapes for networks and container network settings, and
//! the hosts/resolv.conf edits for a container's addresses.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::configured;
use super::dns::DNS_IP;
use super::ports;
use super::records::{ContainerNet, Endpoint, NetworkRecord};
use crate::containers::record::ContainerRecord;

/// IDs of the host and none networks: stable per name.
pub fn pseudo_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        format!("berth-predefined-network:{name}").as_bytes(),
    ))
}

pub fn pseudo_network(name: &str, driver: &str) -> Value {
    json!({
        "Name": name, "Id": pseudo_id(name), "Created": "0001-01-01T00:00:00Z", "Scope": "local",
        "Driver": driver, "EnableIPv4": true, "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": [] },
        "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": { "Network": "" },
        "ConfigOnly": false, "Containers": {}, "Options": {}, "Labels": {},
    })
}

pub fn network(n: &NetworkRecord, conts: &BTreeMap<String, ContainerNet>) -> Value {
    let mut containers = Map::new();
    for c in conts.values() {
        for ep in c.endpoints.iter().filter(|e| e.network_id == n.id) {
            containers.insert(
                c.id.clone(),
                json!({
                    "Name": c.name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                    "IPv4Address": format!("{}/{}", ep.ip, n.pool.subnet.prefix),
                    "IPv6Address": match (ep.ip6, &n.pool6) {
                        (Some(a), Some(p)) => format!("{a}/{}", p.subnet.prefix),
                        _ => String::new(),
                    },
                }),
            );
        }
    }
    let mut cfg =
        json!({ "Subnet": n.pool.subnet.to_string(), "Gateway": n.pool.gateway.to_string() });
    if let Some(r) = n.pool.range {
        cfg["IPRange"] = json!(r.to_string());
    }
    if !n.pool.aux.is_empty() {
        let aux: BTreeMap<&String, String> =
            n.pool.aux.iter().map(|(k, v)| (k, v.to_string())).collect();
        cfg["AuxiliaryAddresses"] = json!(aux);
    }
    let mut configs = vec![cfg];
    if let Some(p) = &n.pool6 {
        configs.push(json!({ "Subnet": p.subnet.to_string(), "Gateway": p.gateway.to_string() }));
    }
    json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": "bridge",
        "EnableIPv4": true, "EnableIPv6": n.pool6.is_some(),
        "IPAM": { "Driver": "default", "Options": n.ipam_options, "Config": configs },
        "Internal": n.internal, "Attachable": n.attachable, "Ingress": false, "ConfigFrom": { "Network": "" },
        "ConfigOnly": false, "Containers": containers, "Options": n.options, "Labels": n.labels,
    })
}

/// The parts of an endpoint that come from its config, as dockerd keeps
/// them: absent ones are null (but Links, an array in the spec, is `[]`).
fn configured_fields(epc: &Value) -> Map<String, Value> {
    let field = |k: &str| {
        epc.get(k)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut m = Map::new();
    let ipam = field("IPAMConfig");
    m.insert(
        "IPAMConfig".into(),
        if ipam.as_object().is_some_and(|o| !o.is_empty()) {
            ipam
        } else {
            Value::Null
        },
    );
    let links = field("Links");
    m.insert(
        "Links".into(),
        if links.is_array() { links } else { json!([]) },
    );
    let aliases = field("Aliases");
    m.insert(
        "Aliases".into(),
        if aliases.as_array().is_some_and(|a| !a.is_empty()) {
            aliases
        } else {
            Value::Null
        },
    );
    m.insert("DriverOpts".into(), field("DriverOpts"));
    m.insert(
        "GwPriority".into(),
        epc.get("GwPriority").cloned().unwrap_or(json!(0)),
    );
    m
}

/// dockerd's DNSNames: name, aliases, short ID, hostname (user-defined
/// networks only).
fn dns_names(rec: &ContainerRecord, predefined: bool, aliases: &[String]) -> Value {
    if predefined {
        return json!([]);
    }
    let mut names: Vec<String> = vec![rec.name.trim_start_matches('/').to_string()];
    names.extend(aliases.iter().cloned());
    names.push(rec.id[..12.min(rec.id.len())].to_string());
    if !rec.config.hostname.is_empty() {
        names.push(rec.config.hostname.clone());
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    json!(names)
}

fn endpoint(rec: &ContainerRecord, n: &NetworkRecord, ep: &Endpoint) -> Value {
    let mut m = configured_fields(&ep.config);
    if m["IPAMConfig"].is_null() {
        if let Some(ip) = ep.requested_ip {
            m.insert(
                "IPAMConfig".into(),
                json!({ "IPv4Address": ip.to_string() }),
            );
        }
    }
    let v6 = ep
        .ip6
        .zip(n.pool6.as_ref())
        .map(|(a, p)| (a, p.subnet.prefix, p.gateway));
    if m["Aliases"].is_null() && !ep.aliases.is_empty() {
        m.insert("Aliases".into(), json!(ep.aliases));
    }
    let rest = json!({
        "MacAddress": ep.mac,
        "NetworkID": n.id, "EndpointID": ep.endpoint_id, "Gateway": n.pool.gateway.to_string(),
        "IPAddress": ep.ip.to_string(), "IPPrefixLen": n.pool.subnet.prefix,
        "IPv6Gateway": v6.map(|(_, _, g)| g.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": v6.map(|(a, _, _)| a.to_string()).unwrap_or_default(),
        "GlobalIPv6PrefixLen": v6.map(|(_, p, _)| p).unwrap_or(0),
        "DNSNames": dns_names(rec, n.predefined, &ep.aliases),
    });
    if let Value::Object(o) = rest {
        m.extend(o);
    }
    Value::Object(m)
}

/// An endpoint that is configured but not plugged in (container not running).
fn idle_endpoint(rec: &ContainerRecord, network_id: &str, predefined: bool, epc: &Value) -> Value {
    let mut m = configured_fields(epc);
    let aliases: Vec<String> = m["Aliases"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mac = epc.get("MacAddress").and_then(Value::as_str).unwrap_or("");
    let rest = json!({
        "MacAddress": mac, "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": dns_names(rec, predefined, &aliases),
    });
    if let Value::Object(o) = rest {
        m.extend(o);
    }
    Value::Object(m)
}

pub fn settings(
    rec: &ContainerRecord,
    cn: Option<&ContainerNet>,
    nets: &BTreeMap<String, NetworkRecord>,
) -> Value {
    let mut networks = Map::new();
    let mut primary: Option<(&NetworkRecord, &Endpoint)> = None;
    match cn {
        // Running: the endpoints plugged in.
        Some(cn) => {
            for ep in &cn.endpoints {
                if let Some(n) = nets.get(&ep.network_id) {
                    networks.insert(n.name.clone(), endpoint(rec, n, ep));
                    if primary.is_none() {
                        primary = Some((n, ep));
                    }
                }
            }
        }
        // Not running: the networks it will be connected to at start.
        None => {
            for (name, epc) in configured::configured(rec) {
                let (id, predefined) = match name.as_str() {
                    "host" | "none" => (pseudo_id(&name), true),
                    _ => nets
                        .values()
                        .find(|n| n.name == name || n.id == name)
                        .map(|n| (n.id.clone(), n.predefined))
                        .unwrap_or_default(),
                };
                networks.insert(name, idle_endpoint(rec, &id, predefined, &epc));
            }
        }
    }
    // The top-level (deprecated) fields describe the default bridge only.
    let legacy = primary.filter(|(n, _)| n.predefined);
    let legacy6 = legacy.and_then(|(n, e)| {
        e.ip6
            .zip(n.pool6.as_ref())
            .map(|(a, p)| (a, p.subnet.prefix, p.gateway))
    });
    let published = cn.map(|c| c.ports.as_slice()).unwrap_or_default();
    let pid = rec.state.pid;
    json!({
        "Bridge": "",
        "SandboxID": cn.map(|c| c.id.clone()).unwrap_or_default(),
        "SandboxKey": if pid > 0 { format!("/proc/{pid}/ns/net") } else { String::new() },
        "Ports": ports::settings_ports(published, rec.config.exposed_ports.as_ref()),
        "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": legacy.map(|(_, e)| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": legacy.map(|(n, _)| n.pool.gateway.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": legacy6.map(|(a, _, _)| a.to_string()).unwrap_or_default(),
        "GlobalIPv6PrefixLen": legacy6.map(|(_, p, _)| p).unwrap_or(0),
        "IPAddress": legacy.map(|(_, e)| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": legacy.map(|(n, _)| n.pool.subnet.prefix).unwrap_or(0),
        "IPv6Gateway": legacy6.map(|(_, _, g)| g.to_string()).unwrap_or_default(),
        "MacAddress": legacy.map(|(_, e)| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
}

/// Container inspect for API < 1.45: on user-defined networks the short ID
/// and hostname are listed among the aliases, as dockerd did (compose 1.29
/// looks for the short ID there before it reconnects a container).
pub fn legacy_aliases(inspect: &mut Value) {
    let id = inspect["Id"].as_str().unwrap_or_default();
    let short = id[..12.min(id.len())].to_string();
    let hostname = inspect["Config"]["Hostname"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(nets) = inspect["NetworkSettings"]["Networks"].as_object_mut() else {
        return;
    };
    for (name, ep) in nets.iter_mut() {
        if matches!(name.as_str(), "bridge" | "host" | "none") {
            continue;
        }
        let mut aliases: Vec<Value> = ep["Aliases"].as_array().cloned().unwrap_or_default();
        for extra in [&short, &hostname] {
            if !extra.is_empty() && !aliases.iter().any(|a| a == extra.as_str()) {
                aliases.push(json!(extra));
            }
        }
        ep["Aliases"] = Value::Array(aliases);
    }
}

pub fn summary_ports(rec: &ContainerRecord, cn: Option<&ContainerNet>) -> Value {
    ports::summary_ports(
        cn.map(|c| c.ports.as_slice()).unwrap_or_default(),
        rec.config.exposed_ports.as_ref(),
    )
}

/// `hosts` with the container's own line (`127.0.1.1` placeholder or an
/// earlier address) replaced by `ip hostname`.
pub fn hosts_with_address(hosts: &str, hostname: &str, ip: Ipv4Addr) -> String {
    let mut out = String::new();
    let mut own_names = hostname.to_string();
    for line in hosts.lines() {
        let mut f = line.split_whitespace();
        let addr = f.next().unwrap_or("");
        let names: Vec<&str> = f.collect();
        let own = names
            .first()
            .is_some_and(|n| *n == hostname || n.starts_with(&format!("{hostname}.")))
            && (addr == "127.0.1.1" || addr.parse::<Ipv4Addr>().is_ok_and(|a| !a.is_loopback()));
        if own {
            // Keep `host.domain host` as written at create.
            own_names = names.join(" ");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("{ip}\t{own_names}\n"));
    out
}

/// resolv.conf pointing at the embedded DNS, and the servers it replaced
/// (kept in dockerd's `# ExtServers:` comment so a restart finds them).
pub fn resolv_for_embedded_dns(resolv: &str) -> (String, Vec<String>) {
    let mut upstream = Vec::new();
    let mut rest = String::new();
    for line in resolv.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if ns != DNS_IP.to_string() {
                upstream.push(ns.to_string());
            }
        } else if let Some(list) = t.strip_prefix("# ExtServers: [") {
            upstream.extend(
                list.trim_end_matches(']')
                    .split_whitespace()
                    .map(str::to_string),
            );
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    upstream.dedup();
    let content = format!(
        "nameserver {DNS_IP}\n{rest}# ExtServers: [{}]\n",
        upstream.join(" ")
    );
    (content, upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_clients_see_the_short_id_among_aliases() {
        let mut v = json!({
            "Id": "0123456789abcdef", "Config": {"Hostname": "box"},
            "NetworkSettings": {"Networks": {
                "bridge": {"Aliases": null},
                "app": {"Aliases": ["web", "box"]},
                "other": {"Aliases": null},
            }},
        });
        legacy_aliases(&mut v);
        let nets = &v["NetworkSettings"]["Networks"];
        assert_eq!(nets["bridge"]["Aliases"], Value::Null);
        assert_eq!(
            nets["app"]["Aliases"],
            json!(["web", "box", "0123456789ab"])
        );
        assert_eq!(nets["other"]["Aliases"], json!(["0123456789ab", "box"]));
    }

    #[test]
    fn hosts_line_is_replaced_not_added() {
        let h = "127.0.0.1\tlocalhost\n10.0.0.9\tdb\n127.0.1.1\tabc\n";
        let once = hosts_with_address(h, "abc", Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(
            once,
            "127.0.0.1\tlocalhost\n10.0.0.9\tdb\n172.17.0.2\tabc\n"
        );
        let twice = hosts_with_address(&once, "abc", Ipv4Addr::new(172, 17, 0, 3));
        assert_eq!(
            twice,
            "127.0.0.1\tlocalhost\n10.0.0.9\tdb\n172.17.0.3\tabc\n"
        );
    }

    #[test]
    fn resolv_points_at_embedded_dns_and_survives_a_restart() {
        let (r, up) = resolv_for_embedded_dns("nameserver 10.0.0.1\nsearch lan\noptions ndots:2\n");
        assert_eq!(up, vec!["10.0.0.1"]);
        assert_eq!(
            r,
            "nameserver 127.0.0.11\nsearch lan\noptions ndots:2\n# ExtServers: [10.0.0.1]\n"
        );
        let (r2, up2) = resolv_for_embedded_dns(&r);
        assert_eq!((r2, up2), (r, up));
    }
}
