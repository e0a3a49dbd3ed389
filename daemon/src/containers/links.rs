//! Legacy links (`--link name:alias`) on the default bridge: checked at
//! create and kept as dockerd shows them (`/child:/parent/alias`); at each
//! start the linked containers' addresses go into /etc/hosts and their
//! ports, name and environment into `ALIAS_*` variables; `DELETE
//! /containers/parent/alias?link=1` drops one.

use std::io::Write;
use std::path::Path;

use super::core::Containers;
use super::error::{ContainerError, Result};
use super::record::ContainerRecord;

/// `name:alias`, `name` or dockerd's own `/name:/parent/alias`: the linked
/// container's name and the alias (its last path element).
pub fn parse(link: &str) -> Result<(String, String)> {
    let (name, alias) = match link.split_once(':') {
        Some((n, a)) => (n, a),
        None => (link, link),
    };
    let name = name.trim_start_matches('/');
    let alias = alias.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || alias.is_empty() {
        return Err(ContainerError::InvalidParameter(format!(
            "invalid link format: {link}"
        )));
    }
    Ok((name.to_string(), alias.to_string()))
}

/// Links only take part on the default bridge (dockerd ignores them on
/// user-defined networks, where they live in EndpointSettings.Links).
fn legacy_mode(rec: &ContainerRecord) -> bool {
    rec.host_config.network_mode() == "bridge"
}

/// dockerd's `ALIAS_*` variables for one link.
pub fn env_vars(
    alias: &str,
    full_name: &str,
    child_ip: &str,
    child_env: &[String],
    exposed: &[(u16, String)],
) -> Vec<String> {
    let a = alias.to_ascii_uppercase().replace('-', "_");
    let mut ports = exposed.to_vec();
    // TCP first, then by protocol name; by number within a protocol.
    ports.sort_by(|x, y| (x.1 != "tcp", &x.1, x.0).cmp(&(y.1 != "tcp", &y.1, y.0)));
    let mut env = Vec::new();
    if let Some(first) = ports.first() {
        env.push(format!("{a}_PORT={}://{child_ip}:{}", first.1, first.0));
        // A run of consecutive ports also gets _START/_END variables,
        // written once the run ends (after the next port's own ones, as
        // dockerd does).
        let (mut start, mut end) = (first.clone(), first.clone());
        for (i, (num, proto)) in ports.iter().enumerate() {
            let prefix = format!("{a}_PORT_{num}_{}", proto.to_ascii_uppercase());
            env.push(format!("{prefix}={proto}://{child_ip}:{num}"));
            env.push(format!("{prefix}_ADDR={child_ip}"));
            env.push(format!("{prefix}_PORT={num}"));
            env.push(format!("{prefix}_PROTO={proto}"));
            if end.0.checked_add(1) == Some(*num) && *proto == end.1 {
                end = (*num, proto.clone());
                if i < ports.len() - 1 {
                    continue;
                }
            }
            if start != end {
                push_range(&mut env, &a, child_ip, &start, &end);
            }
            start = (*num, proto.clone());
            end = start.clone();
        }
    }
    env.push(format!("{a}_NAME={full_name}"));
    env.extend(child_vars(&a, child_env));
    env
}

/// `ALIAS_ENV_*`: the linked container's variables but HOME and PATH.
fn child_vars(a: &str, child_env: &[String]) -> Vec<String> {
    child_env
        .iter()
        .filter_map(|v| v.split_once('='))
        .filter(|(k, _)| *k != "HOME" && *k != "PATH")
        .map(|(k, val)| format!("{a}_ENV_{k}={val}"))
        .collect()
}

fn push_range(
    env: &mut Vec<String>,
    a: &str,
    ip: &str,
    start: &(u16, String),
    end: &(u16, String),
) {
    let prefix = format!("{a}_PORT_{}_{}", start.0, start.1.to_ascii_uppercase());
    env.push(format!("{prefix}_START={}://{ip}:{}", start.1, start.0));
    env.push(format!("{prefix}_PORT_START={}", start.0));
    env.push(format!("{prefix}_END={}://{ip}:{}", end.1, end.0));
    env.push(format!("{prefix}_PORT_END={}", end.0));
}

fn exposed_ports(rec: &ContainerRecord) -> Vec<(u16, String)> {
    rec.config
        .exposed_ports
        .as_ref()
        .map(|m| {
            m.keys()
                .filter_map(|k| {
                    let (n, p) = k.split_once('/').unwrap_or((k.as_str(), "tcp"));
                    Some((n.parse().ok()?, p.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl Containers {
    /// At create: every link names an existing container that has a
    /// network of its own; returned as dockerd shows them.
    pub(super) fn canonical_links(&self, parent: &str, links: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for l in links {
            let (name, alias) = parse(l)?;
            let child = self.get(&name).map_err(|e| {
                ContainerError::InvalidParameter(format!("could not get container for {name}: {e}"))
            })?;
            let child = child.snapshot();
            if child.host_config.network_mode() == "host" {
                return Err(ContainerError::InvalidParameter("conflicting options: host type networking can't be used with links. This would result in undefined behavior".into()));
            }
            out.push(format!(
                "{}:/{}/{alias}",
                child.name,
                parent.trim_start_matches('/')
            ));
        }
        Ok(out)
    }

    /// At start, after the addresses are allocated: /etc/hosts lines for
    /// the linked containers; returns their `ALIAS_*` variables.
    pub(super) fn setup_links(
        &self,
        rec: &ContainerRecord,
        container_dir: &Path,
    ) -> Result<Vec<String>> {
        let links = rec.host_config.links.as_deref().unwrap_or_default();
        if links.is_empty() || !legacy_mode(rec) {
            return Ok(Vec::new());
        }
        let Some(networks) = self.networks.get() else {
            return Ok(Vec::new());
        };
        let mut env = Vec::new();
        let mut hosts = String::new();
        for l in links {
            let (name, alias) = parse(l)?;
            let full = format!("/{}/{alias}", rec.name.trim_start_matches('/'));
            let child = self
                .get(&name)
                .map_err(|_| {
                    ContainerError::InvalidParameter(format!(
                        "Cannot link to a non running container: /{name} AS {full}"
                    ))
                })?
                .snapshot();
            if !child.state.status.is_live() {
                return Err(ContainerError::Conflict(format!(
                    "Cannot link to a non running container: {} AS {full}",
                    child.name
                )));
            }
            let ip = networks.default_bridge_ip(&child.id).ok_or_else(|| {
                ContainerError::InvalidParameter(format!(
                    "Cannot link to {}, as it does not belong to the default network",
                    child.name
                ))
            })?;
            let child_name = child.name.trim_start_matches('/');
            let mut names = format!("{alias} {}", super::spec::hostname(&child));
            if alias != child_name {
                names.push(' ');
                names.push_str(child_name);
            }
            hosts.push_str(&format!("{ip}\t{names}\n"));
            env.extend(env_vars(
                &alias,
                &full,
                &ip.to_string(),
                child.config.env.as_deref().unwrap_or_default(),
                &exposed_ports(&child),
            ));
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(container_dir.join("hosts"))
            .map_err(|e| ContainerError::internal("opening /etc/hosts", e))?;
        f.write_all(hosts.as_bytes())
            .map_err(|e| ContainerError::internal("writing the links to /etc/hosts", e))?;
        Ok(env)
    }

    /// `DELETE /containers/parent/alias?link=1`.
    pub fn remove_link(&self, reference: &str) -> Result<()> {
        let full = format!("/{}", reference.trim_start_matches('/'));
        let Some((parent, alias)) = full.rsplit_once('/').filter(|(p, _)| !p.is_empty()) else {
            return Err(ContainerError::Conflict(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        };
        let c = self.get(parent)?;
        let mut r = c.lock();
        let wanted = format!("/{}/{alias}", r.name.trim_start_matches('/'));
        let links = r.host_config.links.clone().unwrap_or_default();
        let kept: Vec<String> = links
            .iter()
            .filter(|l| l.split_once(':').map(|(_, a)| a) != Some(wanted.as_str()))
            .cloned()
            .collect();
        if kept.len() == links.len() {
            return Err(ContainerError::NotFoundOther(format!(
                "Could not find entity for {full}"
            )));
        }
        r.host_config.links = Some(kept);
        self.save(&r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_parse_in_every_form() {
        assert_eq!(parse("web:w").unwrap(), ("web".into(), "w".into()));
        assert_eq!(parse("web").unwrap(), ("web".into(), "web".into()));
        assert_eq!(parse("/web:/app/w").unwrap(), ("web".into(), "w".into()));
        assert!(parse(":x").is_err());
    }

    #[test]
    fn env_like_dockerd() {
        let env = env_vars(
            "db-1",
            "/app/db-1",
            "172.17.0.5",
            &["PASSWORD=x".into(), "PATH=/bin".into()],
            &[
                (5432, "tcp".into()),
                (53, "udp".into()),
                (8000, "tcp".into()),
                (8001, "tcp".into()),
            ],
        );
        let want = [
            "DB_1_PORT=tcp://172.17.0.5:5432",
            "DB_1_PORT_5432_TCP=tcp://172.17.0.5:5432",
            "DB_1_PORT_5432_TCP_ADDR=172.17.0.5",
            "DB_1_PORT_5432_TCP_PORT=5432",
            "DB_1_PORT_5432_TCP_PROTO=tcp",
            "DB_1_PORT_8000_TCP=tcp://172.17.0.5:8000",
            "DB_1_PORT_8000_TCP_ADDR=172.17.0.5",
            "DB_1_PORT_8000_TCP_PORT=8000",
            "DB_1_PORT_8000_TCP_PROTO=tcp",
            "DB_1_PORT_8001_TCP=tcp://172.17.0.5:8001",
            "DB_1_PORT_8001_TCP_ADDR=172.17.0.5",
            "DB_1_PORT_8001_TCP_PORT=8001",
            "DB_1_PORT_8001_TCP_PROTO=tcp",
            "DB_1_PORT_53_UDP=udp://172.17.0.5:53",
            "DB_1_PORT_53_UDP_ADDR=172.17.0.5",
            "DB_1_PORT_53_UDP_PORT=53",
            "DB_1_PORT_53_UDP_PROTO=udp",
            "DB_1_PORT_8000_TCP_START=tcp://172.17.0.5:8000",
            "DB_1_PORT_8000_TCP_PORT_START=8000",
            "DB_1_PORT_8000_TCP_END=tcp://172.17.0.5:8001",
            "DB_1_PORT_8000_TCP_PORT_END=8001",
            "DB_1_NAME=/app/db-1",
            "DB_1_ENV_PASSWORD=x",
        ];
        assert_eq!(env, want);
    }
}
