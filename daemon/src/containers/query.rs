//! Read-only views: inspect (ContainerJSON), list (ContainerSummary with
//! filters), sizes, and `wait`.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::core::{Container, Containers, Progress};
use super::error::{ContainerError, Result};
use super::record::{ContainerRecord, MountPoint, State, Status};
use super::{rootfs, timefmt};
use crate::api::extract::Filters;

/// The filters `GET /containers/json` knows.
pub const LIST_FILTERS: &[&str] = &[
    "id", "name", "label", "status", "ancestor", "exited", "before", "since", "volume", "network",
    "health", "is-task", "publish", "expose",
];

/// Parsed list filters (see `Containers::list_criteria`).
struct ListCriteria {
    exited: Vec<i32>,
    before: Option<String>,
    since: Option<String>,
    ancestors: Vec<String>,
}

const STATUSES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Network IDs of the predefined networks until berth has a network store:
/// stable per name so clients can correlate them.
pub fn network_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        format!("berth-predefined-network:{name}").as_bytes(),
    ))
}

fn mount_json(m: &MountPoint) -> Value {
    let mut o = Map::new();
    o.insert("Type".into(), json!(m.kind));
    if !m.name.is_empty() {
        o.insert("Name".into(), json!(m.name));
    }
    o.insert("Source".into(), json!(m.source));
    o.insert("Destination".into(), json!(m.destination));
    if !m.driver.is_empty() {
        o.insert("Driver".into(), json!(m.driver));
    }
    o.insert("Mode".into(), json!(m.mode));
    o.insert("RW".into(), json!(m.rw));
    o.insert("Propagation".into(), json!(m.propagation));
    Value::Object(o)
}

fn network_name(rec: &ContainerRecord) -> String {
    let mode = rec.host_config.network_mode();
    if mode.starts_with("container:") {
        String::new()
    } else {
        mode.to_string()
    }
}

fn endpoint_json(rec: &ContainerRecord, name: &str) -> Value {
    let aliases = rec
        .networking_config
        .get("EndpointsConfig")
        .and_then(|e| e.get(name))
        .and_then(|e| e.get("Aliases"))
        .filter(|a| a.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({
        "IPAMConfig": null,
        "Links": [],
        "Aliases": aliases,
        "MacAddress": "",
        "DriverOpts": null,
        "GwPriority": 0,
        "NetworkID": network_id(name),
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": [],
    })
}

fn networks_json(rec: &ContainerRecord) -> Value {
    let name = network_name(rec);
    let mut nets = Map::new();
    if !name.is_empty() {
        nets.insert(name.clone(), endpoint_json(rec, &name));
    }
    Value::Object(nets)
}

/// dockerd's `Status` column text.
pub fn status_text(rec: &ContainerRecord) -> String {
    state_text(&rec.state)
}

/// [`status_text`] from the state alone.
pub fn state_text(s: &State) -> String {
    match s.status {
        Status::Running => match &s.health {
            Some(h) => format!(
                "Up {} ({})",
                timefmt::since(&s.started_at),
                h.status.ps_text()
            ),
            None => format!("Up {}", timefmt::since(&s.started_at)),
        },
        Status::Paused => format!("Up {} (Paused)", timefmt::since(&s.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            s.exit_code,
            timefmt::since(&s.finished_at)
        ),
        Status::Created => "Created".into(),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            s.exit_code,
            timefmt::since(&s.finished_at)
        ),
        Status::Dead => "Dead".into(),
    }
}

/// Bytes used by the files under `dir` (not following symlinks or mounts).
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = root.dev();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                if m.dev() == dev {
                    stack.push(e.path());
                }
            } else {
                total += m.len();
            }
        }
    }
    total
}

impl Containers {
    fn sizes(&self, rec: &ContainerRecord) -> (u64, u64) {
        let rw = dir_size(&rootfs::layer_dir(&self.settings.data_root, &rec.id).join("upper"));
        let image: u64 = rec.layers.iter().map(|l| dir_size(l)).sum();
        (rw, rw + image)
    }

    pub fn inspect(&self, reference: &str, size: bool) -> Result<Value> {
        let rec = self.get(reference)?.snapshot();
        Ok(self.inspect_record(&rec, size))
    }

    /// Inspect without sizes, serialised, from the kept view.
    pub fn inspect_json(
        &self,
        reference: &str,
        shape: super::views::InspectShape,
    ) -> Result<bytes::Bytes> {
        let c = self.get(reference)?;
        Ok(self.inspect_view(&c, shape))
    }

    pub fn inspect_record(&self, rec: &ContainerRecord, size: bool) -> Value {
        let s = &rec.state;
        let dir = self.container_dir(&rec.id);
        let layer = rootfs::layer_dir(&self.settings.data_root, &rec.id);
        let lower: Vec<String> = rec
            .layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect();
        let merged = self.settings.bundle_dir(&rec.id).join("rootfs");
        let log_path = if rec.host_config.log_config.kind == "none" {
            String::new()
        } else {
            self.settings.log_path(&rec.id).display().to_string()
        };
        let mut v = json!({
            "Id": rec.id,
            "Created": rec.created,
            "Path": rec.path,
            "Args": rec.args,
            "State": {
                "Status": s.status.as_str(),
                "Running": s.status.is_live(),
                "Paused": s.status == Status::Paused,
                "Restarting": s.status == Status::Restarting,
                "OOMKilled": s.oom_killed,
                "Dead": s.status == Status::Dead,
                "Pid": s.pid,
                "ExitCode": s.exit_code,
                "Error": s.error,
                "StartedAt": s.started_at,
                "FinishedAt": s.finished_at,
            },
            "Image": rec.image_id,
            "ResolvConfPath": dir.join("resolv.conf"),
            "HostnamePath": dir.join("hostname"),
            "HostsPath": dir.join("hosts"),
            "LogPath": log_path,
            "Name": rec.name,
            "RestartCount": rec.restart_count,
            "Driver": "overlay2",
            "Platform": rec.platform,
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": [],
            "HostConfig": rec.host_config,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {
                    "LowerDir": lower.join(":"),
                    "MergedDir": merged,
                    "UpperDir": layer.join("upper"),
                    "WorkDir": layer.join("work"),
                },
            },
            "Mounts": rec.mounts.iter().map(mount_json).collect::<Vec<_>>(),
            "Config": rec.config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "",
                "SandboxKey": if s.pid > 0 { format!("/proc/{}/ns/net", s.pid) } else { String::new() },
                "Ports": {},
                "HairpinMode": false,
                "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "SecondaryIPAddresses": null,
                "SecondaryIPv6Addresses": null,
                "EndpointID": "",
                "Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "MacAddress": "",
                "Networks": networks_json(rec),
            },
        });
        if let Some(h) = &s.health {
            v["State"]["Health"] = json!(h);
        }
        if let Some(n) = self.networks.get() {
            v["NetworkSettings"] = n.settings(rec);
        }
        if size {
            let (rw, root) = self.sizes(rec);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(root);
        }
        v
    }

    pub(super) fn summary(&self, rec: &ContainerRecord, size: bool) -> Value {
        let mut command = rec.path.clone();
        for a in &rec.args {
            command.push(' ');
            command.push_str(a);
        }
        let mut v = json!({
            "Id": rec.id,
            "Names": [rec.name],
            "Image": rec.config.image,
            "ImageID": rec.image_id,
            "Command": command,
            "Created": timefmt::unix(&rec.created),
            "Ports": [],
            "Labels": rec.config.labels.clone().unwrap_or_default(),
            "State": rec.state.status.as_str(),
            "Status": status_text(rec),
            "HostConfig": { "NetworkMode": rec.host_config.network_mode() },
            "NetworkSettings": { "Networks": networks_json(rec) },
            "Mounts": rec.mounts.iter().map(mount_json).collect::<Vec<_>>(),
        });
        if let Some(n) = self.networks.get() {
            let (ports, networks) = n.summary(rec);
            v["Ports"] = ports;
            v["NetworkSettings"]["Networks"] = networks;
        }
        if size {
            let (rw, root) = self.sizes(rec);
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(root);
        }
        v
    }

    /// `GET /containers/json`, newest first, as the JSON array's bytes.
    /// Entries come from the kept views (see `views`); only filters and
    /// sizes look at the records themselves.
    pub fn list(
        &self,
        all: bool,
        limit: Option<i64>,
        size: bool,
        filters: &Filters,
    ) -> Result<Vec<u8>> {
        let criteria = if filters.is_empty() {
            None
        } else {
            Some(self.list_criteria(filters)?)
        };
        let mut entries: Vec<_> = self
            .all()
            .into_iter()
            .map(|c| {
                let s = self.summary_view(&c);
                (c, s)
            })
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.1.created));
        // `all` is implied by filters that select stopped containers.
        let all = all
            || limit.is_some_and(|l| l > 0)
            || filters.contains("exited")
            || filters.get("status").iter().any(|s| s != "running");
        let limit = limit.filter(|l| *l > 0).map(|l| l as usize);
        let mut out = Vec::with_capacity(64 + entries.len() * 1024);
        out.push(b'[');
        let mut n = 0;
        for (c, summary) in entries {
            if !all && !summary.status().is_live() {
                continue;
            }
            let rec = (criteria.is_some() || size).then(|| c.snapshot());
            if let (Some(criteria), Some(rec)) = (&criteria, &rec) {
                if !self.list_matches(rec, filters, criteria) {
                    continue;
                }
            }
            if n > 0 {
                out.push(b',');
            }
            match &rec {
                // Sizes walk the layers: never kept.
                Some(rec) if size => {
                    let v = self.summary(rec, true);
                    serde_json::to_writer(&mut out, &v)
                        .map_err(|e| ContainerError::internal("encoding the list", e))?;
                }
                _ => summary.write(&mut out),
            }
            n += 1;
            if limit.is_some_and(|l| n >= l) {
                break;
            }
        }
        out.push(b']');
        Ok(out)
    }

    /// The filter values that need a look-up or parsing, done once.
    fn list_criteria(&self, filters: &Filters) -> Result<ListCriteria> {
        for s in filters.get("status") {
            if !STATUSES.contains(&s.as_str()) {
                return Err(ContainerError::InvalidParameter(format!(
                    "invalid filter 'status={s}'"
                )));
            }
        }
        for h in filters.get("health") {
            if !crate::health::FILTER_VALUES.contains(&h.as_str()) {
                return Err(ContainerError::InvalidParameter(format!(
                    "Unrecognised filter value for health: {h}"
                )));
            }
        }
        let mut exited = Vec::new();
        for e in filters.get("exited") {
            exited.push(e.parse::<i32>().map_err(|_| {
                ContainerError::InvalidParameter(format!("invalid filter 'exited={e}'"))
            })?);
        }
        let created_of = |r: &str| -> Result<String> { Ok(self.get(r)?.snapshot().created) };
        let before = match filters.get("before").first() {
            Some(r) => Some(created_of(r)?),
            None => None,
        };
        let since = match filters.get("since").first() {
            Some(r) => Some(created_of(r)?),
            None => None,
        };
        let ancestors = filters
            .get("ancestor")
            .iter()
            .filter_map(|a| self.images.lookup(a).ok().map(|i| i.id))
            .collect();
        Ok(ListCriteria {
            exited,
            before,
            since,
            ancestors,
        })
    }

    fn list_matches(&self, rec: &ContainerRecord, filters: &Filters, c: &ListCriteria) -> bool {
        let status = rec.state.status;
        let name = rec.name.trim_start_matches('/');
        filters.matches_any("id", |v| rec.id.starts_with(v))
            && filters.matches_any("name", |v| {
                let v = v.trim_start_matches('/');
                name.contains(v) || rec.name == v
            })
            && filters.matches_labels("label", |k| {
                rec.config.labels.as_ref().and_then(|l| l.get(k)).map(String::as_str)
            })
            && filters.matches_any("status", |v| v == status.as_str())
            && (c.exited.is_empty()
                || (status == Status::Exited && c.exited.contains(&rec.state.exit_code)))
            && filters.matches_any("ancestor", |v| {
                rec.config.image == v
                    || rec.image_id == v
                    || rec.image_id.trim_start_matches("sha256:").starts_with(v.trim_start_matches("sha256:"))
                    || c.ancestors.contains(&rec.image_id)
            })
            && c.before.as_ref().is_none_or(|b| timefmt::parse(&rec.created) < timefmt::parse(b))
            && c.since.as_ref().is_none_or(|s| timefmt::parse(&rec.created) > timefmt::parse(s))
            && filters.matches_any("volume", |v| {
                rec.mounts.iter().any(|m| m.name == v || m.destination == v || m.source == v)
            })
            && filters.matches_any("network", |v| {
                // Names and IDs of the networks the container is on.
                let nets = match self.networks.get() {
                    Some(n) => n.summary(rec).1,
                    None => networks_json(rec),
                };
                nets.as_object().is_some_and(|m| {
                    m.iter().any(|(name, ep)| {
                        name == v
                            || ep["NetworkID"].as_str().is_some_and(|id| !v.is_empty() && id.starts_with(v))
                    })
                })
            })
            && filters.matches_any("health", |v| v == crate::health::filter_value(rec))
            && filters.matches_any("is-task", |v| v == "false")
            // Port publishing arrives with networking: nothing matches yet.
            && !filters.contains("publish")
            && filters.matches_any("expose", |v| {
                rec.config
                    .exposed_ports
                    .as_ref()
                    .is_some_and(|p| p.contains_key(v) || p.contains_key(&format!("{v}/tcp")))
            })
    }

    /// Register a wait now; the returned future gives `(StatusCode, Error)`.
    pub fn wait(
        &self,
        reference: &str,
        condition: &str,
    ) -> Result<impl std::future::Future<Output = (i32, String)> + Send + 'static> {
        let c: Arc<Container> = self.get(reference)?;
        let mut rx = c.progress.subscribe();
        let start: Progress = rx.borrow().clone();
        let live = c.status().is_live();
        enum Until {
            Now(i32, String),
            NextExit,
            Removed,
        }
        let until = match condition {
            "" | "not-running" => {
                if live {
                    Until::NextExit
                } else {
                    let r = c.snapshot();
                    Until::Now(r.state.exit_code, r.state.error)
                }
            }
            "next-exit" => Until::NextExit,
            "removed" => Until::Removed,
            other => {
                return Err(ContainerError::InvalidParameter(format!(
                    "invalid condition: \"{other}\""
                )))
            }
        };
        Ok(async move {
            let _keep = c;
            let done = match until {
                Until::Now(code, err) => return (code, err),
                Until::NextExit => rx
                    .wait_for(|p| p.exits > start.exits)
                    .await
                    .map(|p| p.clone()),
                Until::Removed => rx.wait_for(|p| p.removed).await.map(|p| p.clone()),
            };
            match done {
                Ok(p) => (p.exit_code, p.error),
                Err(_) => (-1, "daemon is shutting down".into()),
            }
        })
    }

    /// Counts by state, for /info.
    pub fn counts(&self) -> (u64, u64, u64) {
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        for c in self.all() {
            match c.status() {
                Status::Running | Status::Restarting => running += 1,
                Status::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        (running, paused, stopped)
    }

    /// `/system/df` entries.
    pub fn disk_usage(&self) -> Vec<Value> {
        self.all()
            .iter()
            .map(|c| self.summary(&c.snapshot(), true))
            .collect()
    }

    /// Containers using an image (by ID), for `docker rmi` checks:
    /// (container ID, running).
    pub fn users_of_image(&self, image_id: &str) -> Vec<(String, bool)> {
        self.all()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| r.image_id == image_id)
            .map(|r| (r.id.clone(), r.state.status.is_live()))
            .collect()
    }
}
