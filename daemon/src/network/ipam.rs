//! IPv4 address management for one network: the pool (subnet, optional
//! narrower range, gateway) and round-robin allocation, so a released
//! address is not handed out again until the pool has cycled.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IpamError {
    #[error("invalid CIDR address: {0}")]
    BadCidr(String),
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    Exhausted(String),
    #[error("Address already in use")]
    InUse,
    #[error("requested address {0} is not in the network's subnet {1}")]
    OutOfPool(Ipv4Addr, String),
}

/// `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, IpamError> {
        let bad = || IpamError::BadCidr(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Cidr {
        Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    pub fn first(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == self.first()
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A network's addresses and who holds them (container ID per address).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub subnet: Cidr,
    pub gateway: Ipv4Addr,
    /// `--ip-range` / `fixed-cidr`: where automatic addresses come from.
    pub range: Option<Cidr>,
    #[serde(default)]
    pub allocated: BTreeMap<Ipv4Addr, String>,
    /// The last automatic allocation; the next search starts after it.
    #[serde(default)]
    pub last: Option<Ipv4Addr>,
    /// Reserved addresses with their names (IPAM `AuxiliaryAddresses`).
    #[serde(default)]
    pub aux: BTreeMap<String, Ipv4Addr>,
}

impl Pool {
    pub fn new(
        subnet: Cidr,
        gateway: Option<Ipv4Addr>,
        range: Option<Cidr>,
    ) -> Result<Pool, IpamError> {
        let subnet = subnet.network();
        if subnet.prefix > 30 {
            return Err(IpamError::BadCidr(format!("{subnet}: subnet too small")));
        }
        let gateway = gateway.unwrap_or_else(|| Ipv4Addr::from(subnet.first() + 1));
        if !subnet.contains(gateway) {
            return Err(IpamError::OutOfPool(gateway, subnet.to_string()));
        }
        if let Some(r) = range {
            if !(subnet.contains(r.network().addr) && r.prefix >= subnet.prefix) {
                return Err(IpamError::BadCidr(format!(
                    "ip-range {r} is not inside subnet {subnet}"
                )));
            }
        }
        Ok(Pool {
            subnet,
            gateway,
            range: range.map(|r| r.network()),
            allocated: BTreeMap::new(),
            last: None,
            aux: BTreeMap::new(),
        })
    }

    fn usable(&self, ip: u32) -> bool {
        ip > self.subnet.first()
            && ip < self.subnet.last()
            && ip != u32::from(self.gateway)
            && !self.aux.values().any(|a| u32::from(*a) == ip)
    }

    /// Reserve `requested`, or the next free address after the last one.
    pub fn allocate(
        &mut self,
        owner: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = requested {
            let reserved = self.aux.values().any(|a| *a == ip);
            if !self.subnet.contains(ip) || (!reserved && !self.usable(u32::from(ip))) {
                return Err(IpamError::OutOfPool(ip, self.subnet.to_string()));
            }
            if reserved || self.allocated.contains_key(&ip) {
                return Err(IpamError::InUse);
            }
            self.allocated.insert(ip, owner.to_string());
            return Ok(ip);
        }
        let range = self.range.unwrap_or(self.subnet);
        let (lo, hi) = (range.first(), range.last());
        let start = self
            .last
            .map(u32::from)
            .filter(|l| *l >= lo && *l <= hi)
            .map_or(lo, |l| l + 1);
        let span = u64::from(hi - lo) + 1;
        for i in 0..span {
            let ip = lo + ((u64::from(start.wrapping_sub(lo)) + i) % span) as u32;
            let addr = Ipv4Addr::from(ip);
            if self.usable(ip) && !self.allocated.contains_key(&addr) {
                self.allocated.insert(addr, owner.to_string());
                self.last = Some(addr);
                return Ok(addr);
            }
        }
        Err(IpamError::Exhausted(range.to_string()))
    }

    pub fn release(&mut self, ip: Ipv4Addr, owner: &str) {
        if self.allocated.get(&ip).is_some_and(|o| o == owner) {
            self.allocated.remove(&ip);
        }
    }

    pub fn release_owner(&mut self, owner: &str) {
        self.allocated.retain(|_, o| o != owner);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn auxiliary_addresses_are_never_handed_out() {
        let subnet = Cidr::parse("10.9.0.0/29").unwrap();
        let mut p = Pool::new(subnet, None, None).unwrap();
        p.aux.insert("a".into(), "10.9.0.2".parse().unwrap());
        let got: Vec<_> = (0..4)
            .map(|i| p.allocate(&i.to_string(), None).unwrap())
            .collect();
        assert!(!got.contains(&"10.9.0.2".parse().unwrap()), "{got:?}");
        assert!(matches!(
            p.allocate("x", Some("10.9.0.2".parse().unwrap())),
            Err(IpamError::InUse)
        ));
    }

    use super::*;

    fn pool(s: &str) -> Pool {
        Pool::new(Cidr::parse(s).unwrap(), None, None).unwrap()
    }

    #[test]
    fn skips_network_gateway_and_broadcast() {
        let mut p = pool("10.9.0.0/30");
        assert_eq!(p.gateway, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(p.allocate("a", None).unwrap(), Ipv4Addr::new(10, 9, 0, 2));
        assert!(matches!(
            p.allocate("b", None),
            Err(IpamError::Exhausted(_))
        ));
    }

    #[test]
    fn released_addresses_come_back_after_a_cycle() {
        let mut p = pool("10.9.0.0/29"); // .2 .. .6 usable
        let a = p.allocate("a", None).unwrap();
        p.release(a, "a");
        let b = p.allocate("b", None).unwrap();
        assert_ne!(a, b, "a just-released address is not reused at once");
        let mut seen = vec![b];
        for i in 0..3 {
            seen.push(p.allocate(&format!("x{i}"), None).unwrap());
        }
        // .2 was free again and is now the only address left.
        assert_eq!(p.allocate("y", None).unwrap(), a);
        assert!(p.allocate("z", None).is_err());
        for ip in seen {
            p.release(ip, "nobody");
        }
        assert_eq!(p.allocated.len(), 5, "release by a non-owner does nothing");
    }

    #[test]
    fn requested_and_ranged_addresses() {
        let mut p = Pool::new(
            Cidr::parse("10.8.0.0/24").unwrap(),
            Some(Ipv4Addr::new(10, 8, 0, 254)),
            Some(Cidr::parse("10.8.0.128/25").unwrap()),
        )
        .unwrap();
        assert_eq!(p.allocate("a", None).unwrap(), Ipv4Addr::new(10, 8, 0, 128));
        assert_eq!(
            p.allocate("b", Some(Ipv4Addr::new(10, 8, 0, 5))).unwrap(),
            Ipv4Addr::new(10, 8, 0, 5)
        );
        assert_eq!(
            p.allocate("c", Some(Ipv4Addr::new(10, 8, 0, 5))),
            Err(IpamError::InUse)
        );
        assert!(p.allocate("c", Some(Ipv4Addr::new(10, 9, 0, 5))).is_err());
        assert!(p.allocate("c", Some(Ipv4Addr::new(10, 8, 0, 254))).is_err());
        p.release_owner("b");
        assert!(!p.allocated.values().any(|o| o == "b"));
    }

    #[test]
    fn cidr_parsing_and_overlap() {
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        let a = Cidr::parse("172.17.0.1/16").unwrap();
        assert_eq!(a.network().to_string(), "172.17.0.0/16");
        assert!(a.overlaps(&Cidr::parse("172.17.5.0/24").unwrap()));
        assert!(!a.overlaps(&Cidr::parse("172.18.0.0/16").unwrap()));
    }
}
