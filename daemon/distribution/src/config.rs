//! Which registries may be reached over plain HTTP or unverified TLS, and
//! where per-registry certificates live.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// `insecure-registries` of daemon.json: `host[:port]` or CIDRs.
    pub insecure: Vec<String>,
    /// Directories holding `HOST[:PORT]/{*.crt,*.cert,*.key}`, searched in order.
    pub cert_dirs: Vec<PathBuf>,
    /// `registry-mirrors` of daemon.json: `http(s)://host[:port][/]` tried
    /// in order before Docker Hub for pulls of Docker Hub images.
    pub mirrors: Vec<String>,
    /// Layer downloads running at once.
    pub max_concurrent_downloads: usize,
    /// Layer uploads running at once.
    pub max_concurrent_uploads: usize,
    /// Tries of each layer download before the pull fails.
    pub max_download_attempts: usize,
    /// Where push remembers the gzip blob made for each uncompressed layer.
    pub data_dir: PathBuf,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            cert_dirs: vec![
                PathBuf::from("/etc/berth/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ],
            mirrors: Vec::new(),
            max_concurrent_downloads: 8,
            max_concurrent_uploads: 5,
            max_download_attempts: 5,
            data_dir: PathBuf::from("/var/lib/berth/image/distribution"),
        }
    }
}

/// An `insecure-registries` entry that is a network.
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(*a) & mask
            }
            _ => false,
        }
    }
}

impl RegistryConfig {
    /// Check the `insecure-registries` and `registry-mirrors` entries (as
    /// dockerd does at start).
    pub fn validate(&self) -> Result<()> {
        for m in &self.mirrors {
            parse_mirror(m)?;
        }
        for e in &self.insecure {
            if e.contains("://") {
                return Err(Error::Invalid(format!(
                    "insecure registry {e} should not contain '://'"
                )));
            }
            if e.contains('/') && Cidr::parse(e).is_none() {
                return Err(Error::Invalid(format!(
                    "insecure registry {e} is not valid: invalid CIDR or host name"
                )));
            }
        }
        Ok(())
    }

    /// dockerd's rule: listed by name, or any address the host resolves to
    /// is in a listed network or in 127.0.0.0/8 (or ::1).
    pub(crate) async fn is_insecure(&self, host: &str) -> bool {
        if self.insecure.iter().any(|e| e == host) {
            return true;
        }
        let hostname = host_part(host);
        if self.insecure.iter().any(|e| e == hostname) {
            return true;
        }
        let mut nets: Vec<Cidr> = self
            .insecure
            .iter()
            .filter_map(|e| Cidr::parse(e))
            .collect();
        nets.push(Cidr {
            addr: IpAddr::from([127, 0, 0, 0]),
            prefix: 8,
        });
        nets.push(Cidr {
            addr: "::1".parse().expect("valid literal"),
            prefix: 128,
        });
        let ips: Vec<IpAddr> = match hostname.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((hostname, 0)).await {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                Err(_) => Vec::new(),
            },
        };
        ips.iter().any(|ip| nets.iter().any(|n| n.contains(ip)))
    }
}

/// A `registry-mirrors` entry: its base URL without the trailing `/` and
/// its `host[:port]`. Checked as dockerd checks it at start: an http(s)
/// URL, optionally with a path, without query, fragment or user info.
pub(crate) fn parse_mirror(mirror: &str) -> Result<(String, String)> {
    let invalid = |why: String| Error::Invalid(format!("invalid mirror: {why}"));
    let Some((scheme, rest)) = mirror.split_once("://").filter(|(s, _)| !s.is_empty()) else {
        return Err(invalid(format!(
            "no scheme specified for \"{mirror}\": must use either 'https://' or 'http://'"
        )));
    };
    if scheme != "http" && scheme != "https" {
        return Err(invalid(format!(
            "unsupported scheme \"{scheme}\" in \"{mirror}\": must use either 'https://' or 'http://'"
        )));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid(format!(
            "query or fragment at end of the URI \"{mirror}\""
        )));
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.contains('@') {
        return Err(invalid(format!(
            "username/password not allowed in URI \"{mirror}\""
        )));
    }
    if host.is_empty() {
        return Err(invalid(format!("\"{mirror}\" is not a valid URI")));
    }
    Ok((mirror.trim_end_matches('/').to_owned(), host.to_owned()))
}

/// `host` of `host:port`, `[v6]:port` or `[v6]`.
fn host_part(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_is_insecure_by_default() {
        let c = RegistryConfig::default();
        assert!(c.is_insecure("127.0.0.1:5000").await);
        assert!(c.is_insecure("127.8.0.1").await);
        assert!(c.is_insecure("[::1]:5000").await);
        assert!(!c.is_insecure("192.0.2.1:5000").await);
        let c = RegistryConfig {
            insecure: vec!["192.0.2.0/24".into(), "reg.test:5000".into()],
            ..Default::default()
        };
        c.validate().unwrap();
        assert!(c.is_insecure("192.0.2.77:443").await);
        assert!(c.is_insecure("reg.test:5000").await);
        assert!(!c.is_insecure("198.51.100.1").await);
        let bad = RegistryConfig {
            insecure: vec!["http://x".into()],
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn mirrors_are_checked_like_dockerd() {
        let (base, host) = parse_mirror("https://m.test/").unwrap();
        assert_eq!((base.as_str(), host.as_str()), ("https://m.test", "m.test"));
        let (base, host) = parse_mirror("http://127.0.0.1:5000/cache/").unwrap();
        assert_eq!(base, "http://127.0.0.1:5000/cache");
        assert_eq!(host, "127.0.0.1:5000");
        for bad in [
            "m.test:5000",
            "ftp://m.test",
            "https://",
            "https://m.test/?q",
            "https://u@m.test",
        ] {
            let c = RegistryConfig {
                mirrors: vec![bad.into()],
                ..Default::default()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }
}
