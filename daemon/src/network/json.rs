//! dockerd's JSON shapes for networks and container network settings, and
//! the hosts/resolv.conf edits for a container's addresses.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

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
        "IPAM": { "Driver": "default", "Options": {}, "Config": [] },
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
                    "IPv4Address": format!("{}/{}", ep.ip, n.pool.subnet.prefix), "IPv6Address": "",
                }),
            );
        }
    }
    let mut cfg =
        json!({ "Subnet": n.pool.subnet.to_string(), "Gateway": n.pool.gateway.to_string() });
    if let Some(r) = n.pool.range {
        cfg["IPRange"] = json!(r.to_string());
    }
    json!({
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": "bridge",
        "EnableIPv4": true, "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": {}, "Config": [cfg] },
        "Internal": n.internal, "Attachable": n.attachable, "Ingress": false, "ConfigFrom": { "Network": "" },
        "ConfigOnly": false, "Containers": containers, "Options": n.options, "Labels": n.labels,
    })
}

fn endpoint(rec: &ContainerRecord, n: &NetworkRecord, ep: &Endpoint) -> Value {
    let mut dns_names = Vec::new();
    if !n.predefined {
        dns_names.push(rec.name.trim_start_matches('/').to_string());
        dns_names.extend(ep.aliases.iter().cloned());
        dns_names.push(rec.id[..12.min(rec.id.len())].to_string());
    }
    json!({
        "IPAMConfig": ep.requested_ip.map(|ip| json!({ "IPv4Address": ip.to_string() })),
        "Links": [],
        "Aliases": ep.aliases,
        "MacAddress": ep.mac, "DriverOpts": null, "GwPriority": 0,
        "NetworkID": n.id, "EndpointID": ep.endpoint_id, "Gateway": n.pool.gateway.to_string(),
        "IPAddress": ep.ip.to_string(), "IPPrefixLen": n.pool.subnet.prefix,
        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": dns_names,
    })
}

/// An endpoint that is configured but not plugged in (container not running).
fn idle_endpoint(rec: &ContainerRecord, network_id: &str, name: &str) -> Value {
    let aliases = rec
        .networking_config
        .get("EndpointsConfig")
        .and_then(|e| e.get(name))
        .and_then(|e| e.get("Aliases"))
        .filter(|a| a.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({
        "IPAMConfig": null, "Links": [], "Aliases": aliases, "MacAddress": "", "DriverOpts": null,
        "GwPriority": 0, "NetworkID": network_id, "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": [],
    })
}

pub fn settings(
    rec: &ContainerRecord,
    cn: Option<&ContainerNet>,
    nets: &BTreeMap<String, NetworkRecord>,
) -> Value {
    let mode = rec.host_config.network_mode();
    let mut networks = Map::new();
    let mut primary: Option<(&NetworkRecord, &Endpoint)> = None;
    for ep in cn.map(|c| c.endpoints.as_slice()).unwrap_or_default() {
        if let Some(n) = nets.get(&ep.network_id) {
            networks.insert(n.name.clone(), endpoint(rec, n, ep));
            if primary.is_none() {
                primary = Some((n, ep));
            }
        }
    }
    if networks.is_empty() && !mode.starts_with("container:") {
        let name = if mode == "default" { "bridge" } else { mode };
        let id = match name {
            "host" | "none" => pseudo_id(name),
            _ => nets
                .values()
                .find(|n| n.name == name || n.id == name)
                .map(|n| n.id.clone())
                .unwrap_or_default(),
        };
        let shown = nets
            .values()
            .find(|n| n.id == id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| name.to_string());
        networks.insert(shown.clone(), idle_endpoint(rec, &id, &shown));
    }
    // The top-level (deprecated) fields describe the default bridge only.
    let legacy = primary.filter(|(n, _)| n.predefined);
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
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": legacy.map(|(_, e)| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": legacy.map(|(n, _)| n.pool.subnet.prefix).unwrap_or(0),
        "IPv6Gateway": "",
        "MacAddress": legacy.map(|(_, e)| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
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
