//! `ExposedPorts` keys and `PortBindings` (keys and host ports), checked
//! with dockerd's syntax and message, then against what berth can publish.

use serde_json::Value;

use super::invalid;
use crate::containers::config::{ContainerConfig, HostConfig};
use crate::containers::error::Result;

/// `80`, `80/tcp`, `8000-8010/udp`: a port number or range (1-65535) and
/// an optional protocol.
fn valid_key(key: &str) -> bool {
    let (ports, proto) = key.split_once('/').unwrap_or((key, ""));
    let proto_ok = matches!(
        proto.to_ascii_lowercase().as_str(),
        "" | "tcp" | "udp" | "sctp"
    );
    proto_ok && range(ports, 1).is_some()
}

/// `N` or `A-B` with `min <= A <= B <= 65535`.
fn range(s: &str, min: u16) -> Option<(u16, u16)> {
    let num = |p: &str| -> Option<u16> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse::<u16>().ok().filter(|n| *n >= min)
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(s)?;
            (n, n)
        }
    };
    (a <= b).then_some((a, b))
}

fn spec_error(what: &str) -> crate::containers::error::ContainerError {
    invalid(format!("invalid port specification: {what:?}"))
}

pub fn check(config: &ContainerConfig, hc: &HostConfig) -> Result<()> {
    for key in config.exposed_ports.iter().flat_map(|m| m.keys()) {
        if !valid_key(key) {
            return Err(spec_error(key));
        }
    }
    let bindings = match &hc.port_bindings {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid("invalid PortBindings: must be an object")),
    };
    for (key, list) in bindings {
        if !valid_key(key) {
            return Err(spec_error(key));
        }
        let entries = match list {
            Value::Null => continue,
            Value::Array(a) => a,
            _ => {
                return Err(invalid(format!(
                    "invalid PortBindings for {key}: must be a list"
                )))
            }
        };
        for e in entries {
            if !(e.is_object() || e.is_null()) {
                return Err(invalid(format!(
                    "invalid PortBindings for {key}: each binding must be an object"
                )));
            }
            let host_port = match e.get("HostPort") {
                None | Some(Value::Null) => "",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => return Err(invalid("invalid PortBindings: HostPort must be a string")),
            };
            // An empty host port means any free port; 0 too.
            let port = host_port.split_once('/').map_or(host_port, |(p, _)| p);
            if !port.is_empty() && range(port, 0).is_none() {
                return Err(spec_error(host_port));
            }
            match e.get("HostIp") {
                None | Some(Value::Null) => {}
                Some(Value::String(ip)) if ip.is_empty() => {}
                Some(Value::String(ip)) => {
                    ip.parse::<std::net::IpAddr>()
                        .map_err(|_| invalid(format!("invalid host IP address: {ip:?}")))?;
                }
                Some(_) => return Err(invalid("invalid PortBindings: HostIp must be a string")),
            }
        }
    }
    // What dockerd accepts but berth cannot publish (sctp), and v6 host
    // addresses on a host without IPv6.
    crate::network::ports::requests(
        hc.port_bindings.as_ref(),
        hc.publish_all_ports,
        config.exposed_ports.as_ref(),
    )
    .map(drop)
    .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ranges() {
        for ok in ["80", "80/tcp", "53/UDP", "8000-8010/tcp", "1/sctp", "65535"] {
            assert!(valid_key(ok), "{ok}");
        }
        for bad in [
            "", "abc/tcp", "0/tcp", "70000", "80/icmp", "10-5", "-1", "+80", "80-",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert_eq!(range("0", 0), Some((0, 0)));
        assert_eq!(range("0", 1), None);
    }
}
