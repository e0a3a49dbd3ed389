//! What berthd persists about networks (`<data-root>/network/networks/<id>.json`,
//! including the address pool) and about each container's attachments
//! (`<data-root>/network/endpoints/<container-id>.json`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::ipam::Pool;
use super::ports::Published;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The Linux bridge interface.
    pub bridge: String,
    pub pool: Pool,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// The predefined `bridge` network (no DNS, cannot be removed).
    pub predefined: bool,
    /// The IPv6 pool of an `EnableIPv6` network.
    #[serde(default)]
    pub pool6: Option<super::ipam6::Pool6>,
    /// `IPAM.Options` as given at create.
    #[serde(default)]
    pub ipam_options: Option<BTreeMap<String, String>>,
    pub mtu: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoint {
    pub network_id: String,
    pub endpoint_id: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub aliases: Vec<String>,
    /// Requested with `--ip` (shown as IPAMConfig).
    pub requested_ip: Option<Ipv4Addr>,
    /// The IPv6 address on an `EnableIPv6` network.
    #[serde(default)]
    pub ip6: Option<std::net::Ipv6Addr>,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// The interface name inside the container (eth0, eth1, ...).
    pub ifname: String,
    /// The endpoint config as requested (IPAMConfig, Aliases, Links,
    /// DriverOpts, ...), shown back in inspect.
    #[serde(default)]
    pub config: serde_json::Value,
}

impl Endpoint {
    /// Its IPv4 and (on an IPv6 network) IPv6 address.
    pub fn addrs(&self) -> Vec<std::net::IpAddr> {
        let mut v = vec![std::net::IpAddr::V4(self.ip)];
        v.extend(self.ip6.map(std::net::IpAddr::V6));
        v
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNet {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub hostname: String,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<Published>,
    /// Resolvers the embedded DNS forwards to (the container's resolv.conf
    /// before it was pointed at 127.0.0.11).
    #[serde(default)]
    pub upstream_dns: Vec<String>,
}

pub struct Dirs {
    pub networks: PathBuf,
    pub endpoints: PathBuf,
}

impl Dirs {
    pub fn new(data_root: &Path) -> io::Result<Dirs> {
        let base = data_root.join("network");
        let d = Dirs {
            networks: base.join("networks"),
            endpoints: base.join("endpoints"),
        };
        std::fs::create_dir_all(&d.networks)?;
        std::fs::create_dir_all(&d.endpoints)?;
        Ok(d)
    }

    fn save<T: Serialize>(dir: &Path, id: &str, v: &T) -> io::Result<()> {
        let data = serde_json::to_vec_pretty(v).map_err(io::Error::other)?;
        berth_common::atomic::write_file(&dir.join(format!("{id}.json")), &data)
    }

    fn load_all<T: for<'de> Deserialize<'de>>(dir: &Path) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let data = std::fs::read(&path)?;
                match serde_json::from_slice(&data) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        tracing::error!(path = %path.display(), error = %e, "skipping an unreadable network record")
                    }
                }
            }
        }
        Ok(out)
    }

    fn remove(dir: &Path, id: &str) -> io::Result<()> {
        match std::fs::remove_file(dir.join(format!("{id}.json"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub fn save_network(&self, n: &NetworkRecord) -> io::Result<()> {
        Self::save(&self.networks, &n.id, n)
    }

    pub fn remove_network(&self, id: &str) -> io::Result<()> {
        Self::remove(&self.networks, id)
    }

    pub fn load_networks(&self) -> io::Result<Vec<NetworkRecord>> {
        Self::load_all(&self.networks)
    }

    pub fn save_container(&self, c: &ContainerNet) -> io::Result<()> {
        Self::save(&self.endpoints, &c.id, c)
    }

    pub fn remove_container(&self, id: &str) -> io::Result<()> {
        Self::remove(&self.endpoints, id)
    }

    pub fn load_containers(&self) -> io::Result<Vec<ContainerNet>> {
        Self::load_all(&self.endpoints)
    }
}

/// dockerd's MAC scheme: 02:42 followed by the IPv4 address.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `aa:bb:cc:dd:ee:ff`, unicast only (a multicast MAC cannot be an
/// interface address).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        mac[i] = u8::from_str_radix(p, 16).ok()?;
    }
    (mac[0] & 1 == 0).then_some(mac)
}

pub fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(
            mac_string(mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
        assert_eq!(
            parse_mac("02:42:AC:11:00:09"),
            Some([2, 0x42, 0xac, 0x11, 0, 9])
        );
        assert_eq!(parse_mac("01:00:5e:00:00:01"), None, "multicast");
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:zz"), None);
    }
}
