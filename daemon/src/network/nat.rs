//! Outbound NAT and isolation rules through iptables (what this host has;
//! dockerd uses the same binary). Every rule is looked up with `-C` first so
//! adding is idempotent and removal deletes exactly what was added.

use std::path::PathBuf;
use std::process::Command;

use super::ipam::Cidr;

#[derive(Debug, Clone)]
pub struct Nat {
    iptables: Option<PathBuf>,
}

pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The rules a bridge network needs: masquerade outbound traffic (not for
/// internal networks) or drop everything that leaves the bridge (internal).
fn rules(bridge: &str, subnet: &Cidr, internal: bool) -> Vec<(&'static str, Vec<String>)> {
    let s = subnet.network().to_string();
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    if internal {
        vec![
            (
                "filter",
                v(&["FORWARD", "-i", bridge, "!", "-o", bridge, "-j", "DROP"]),
            ),
            (
                "filter",
                v(&["FORWARD", "-o", bridge, "!", "-i", bridge, "-j", "DROP"]),
            ),
        ]
    } else {
        vec![(
            "nat",
            v(&[
                "POSTROUTING",
                "-s",
                &s,
                "!",
                "-o",
                bridge,
                "-j",
                "MASQUERADE",
            ]),
        )]
    }
}

impl Nat {
    /// With `enabled` false (daemon.json `"iptables": false`) no rule is
    /// touched. Without an iptables binary berthd says so once.
    pub fn detect(enabled: bool) -> Nat {
        if !enabled {
            return Nat { iptables: None };
        }
        let iptables = find_in_path("iptables");
        if iptables.is_none() {
            tracing::warn!("no iptables on this host: containers reach each other and the host, but not outside networks (no NAT)");
        }
        Nat { iptables }
    }

    fn run(&self, table: &str, op: &str, rule: &[String]) -> Result<bool, String> {
        let Some(bin) = &self.iptables else {
            return Ok(false);
        };
        let out = Command::new(bin)
            .args(["-w", "-t", table, op])
            .args(rule)
            .output()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        if op == "-C" {
            return Ok(out.status.success());
        }
        if !out.status.success() {
            return Err(format!(
                "iptables -t {table} {op} {}: {}",
                rule.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(true)
    }

    pub fn add(&self, bridge: &str, subnet: &Cidr, internal: bool) -> Result<(), String> {
        if self.iptables.is_none() {
            return Ok(());
        }
        enable_forwarding();
        for (table, rule) in rules(bridge, subnet, internal) {
            if !self.run(table, "-C", &rule)? {
                let op = if table == "filter" { "-I" } else { "-A" };
                self.run(table, op, &rule)?;
            }
        }
        Ok(())
    }

    pub fn remove(&self, bridge: &str, subnet: &Cidr, internal: bool) {
        for (table, rule) in rules(bridge, subnet, internal) {
            while let Ok(true) = self.run(table, "-C", &rule) {
                if let Err(e) = self.run(table, "-D", &rule) {
                    tracing::warn!(error = %e, "removing a NAT rule");
                    break;
                }
            }
        }
    }
}

fn enable_forwarding() {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path)
        .map(|s| s.trim() != "1")
        .unwrap_or(true)
    {
        if let Err(e) = std::fs::write(path, "1") {
            tracing::warn!(error = %e, "enabling IPv4 forwarding; containers may not reach outside networks");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerade_or_isolate() {
        let c = Cidr::parse("10.77.0.1/16").unwrap();
        let r = rules("bt0", &c, false);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].1.join(" "),
            "POSTROUTING -s 10.77.0.0/16 ! -o bt0 -j MASQUERADE"
        );
        let r = rules("bt0", &c, true);
        assert!(r
            .iter()
            .all(|(t, rule)| *t == "filter" && rule.last().map(String::as_str) == Some("DROP")));
    }
}
