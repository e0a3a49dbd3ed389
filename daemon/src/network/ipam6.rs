//! IPv6 address management for one network: a subnet (usually a /64), the
//! gateway (the subnet's ::1 unless given) and the lowest free address for
//! each endpoint.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use super::ipam::IpamError;

/// `addr/prefix` of an IPv6 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr6 {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Cidr6 {
    pub fn parse(s: &str) -> Result<Cidr6, IpamError> {
        let bad = || IpamError::BadCidr(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 128 {
            return Err(bad());
        }
        Ok(Cidr6 { addr, prefix }.network())
    }

    fn mask(&self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        }
    }

    pub fn network(&self) -> Cidr6 {
        Cidr6 {
            addr: Ipv6Addr::from(u128::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.addr) & self.mask()
    }

    pub fn overlaps(&self, other: &Cidr6) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    fn last(&self) -> u128 {
        u128::from(self.addr) | !self.mask()
    }
}

impl std::fmt::Display for Cidr6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A random unique-local /64 (fd00::/8), for `EnableIPv6` without a subnet.
pub fn random_ula() -> Cidr6 {
    let r: [u8; 7] = rand::random();
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..8].copy_from_slice(&r);
    Cidr6 {
        addr: Ipv6Addr::from(b),
        prefix: 64,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool6 {
    pub subnet: Cidr6,
    pub gateway: Ipv6Addr,
    /// Address → owner (container ID).
    pub allocated: BTreeMap<Ipv6Addr, String>,
}

impl Pool6 {
    pub fn new(subnet: Cidr6, gateway: Option<Ipv6Addr>) -> Result<Pool6, IpamError> {
        let subnet = subnet.network();
        if subnet.prefix > 126 {
            return Err(IpamError::BadCidr(format!(
                "{subnet}: an IPv6 subnet needs room for a gateway and containers"
            )));
        }
        let gateway = gateway.unwrap_or_else(|| Ipv6Addr::from(u128::from(subnet.addr) + 1));
        if !subnet.contains(gateway) || gateway == subnet.addr {
            return Err(IpamError::BadCidr(format!(
                "gateway {gateway} is not a host address of {subnet}"
            )));
        }
        Ok(Pool6 {
            subnet,
            gateway,
            allocated: BTreeMap::new(),
        })
    }

    pub fn allocate(
        &mut self,
        owner: &str,
        requested: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, IpamError> {
        if let Some(ip) = requested {
            if !self.subnet.contains(ip) {
                return Err(IpamError::BadCidr(format!(
                    "requested address {ip} is not in the network's subnet {}",
                    self.subnet
                )));
            }
            if ip == self.gateway || ip == self.subnet.addr || self.allocated.contains_key(&ip) {
                return Err(IpamError::InUse);
            }
            self.allocated.insert(ip, owner.to_string());
            return Ok(ip);
        }
        // The lowest free host address: at most len+2 candidates are taken.
        let first = u128::from(self.subnet.addr) + 1;
        let last = self.subnet.last();
        let mut n = first;
        while n <= last {
            let ip = Ipv6Addr::from(n);
            if ip != self.gateway && !self.allocated.contains_key(&ip) {
                self.allocated.insert(ip, owner.to_string());
                return Ok(ip);
            }
            n += 1;
        }
        Err(IpamError::Exhausted(self.subnet.to_string()))
    }

    pub fn release(&mut self, ip: Ipv6Addr, owner: &str) {
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
    use super::*;

    #[test]
    fn allocates_after_the_gateway_and_reuses() {
        let mut p = Pool6::new(Cidr6::parse("fd00:1:2:3::/64").unwrap(), None).unwrap();
        assert_eq!(p.gateway, "fd00:1:2:3::1".parse::<Ipv6Addr>().unwrap());
        let a = p.allocate("a", None).unwrap();
        let b = p.allocate("b", None).unwrap();
        assert_eq!(a, "fd00:1:2:3::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(b, "fd00:1:2:3::3".parse::<Ipv6Addr>().unwrap());
        p.release_owner("a");
        assert_eq!(p.allocate("c", None).unwrap(), a);
        let fixed = "fd00:1:2:3::99".parse().unwrap();
        assert_eq!(p.allocate("d", Some(fixed)).unwrap(), fixed);
        assert_eq!(p.allocate("e", Some(fixed)), Err(IpamError::InUse));
        assert!(p.allocate("f", Some("fd00:9::1".parse().unwrap())).is_err());
    }

    #[test]
    fn subnets_parse_and_overlap() {
        let s = Cidr6::parse("fd00:1:2:3::77/64").unwrap();
        assert_eq!(s.to_string(), "fd00:1:2:3::/64");
        assert!(s.overlaps(&Cidr6::parse("fd00:1::/32").unwrap()));
        assert!(!s.overlaps(&Cidr6::parse("fd00:2::/32").unwrap()));
        assert!(Cidr6::parse("10.0.0.0/8").is_err());
        assert!(Pool6::new(Cidr6::parse("fd00::/127").unwrap(), None).is_err());
        assert!(random_ula().to_string().starts_with("fd"));
    }
}
