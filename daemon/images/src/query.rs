//! Read-only views in dockerd's shapes: list, inspect, history.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::Result;
use crate::filters::{self, Filters};
use crate::image::{format_time, Image};
use crate::reference::Reference;
use crate::store::{split_refs, ImageStore};

/// One entry of `GET /images/json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub size: i64,
    pub shared_size: i64,
    pub labels: serde_json::Map<String, Value>,
    pub containers: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    pub shared_size: bool,
    pub filters: Filters,
}

/// One entry of `GET /images/{name}/history`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

const LIST_FILTERS: &[&str] = &["dangling", "label", "before", "since", "reference", "until"];

impl ImageStore {
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<ImageSummary>> {
        filters::validate(&opts.filters, LIST_FILTERS)?;
        let dangling = filters::bool_filter(&opts.filters, "dangling")?;
        let before = self.time_bound(&opts.filters, "before")?;
        let since = self.time_bound(&opts.filters, "since")?;
        let until = match opts.filters.get("until").and_then(|v| v.first()) {
            Some(u) => Some(filters::parse_until(u)?),
            None => None,
        };
        let ref_patterns = opts.filters.get("reference").cloned().unwrap_or_default();
        let labels = opts.filters.get("label").cloned().unwrap_or_default();

        let (images, refs_by_id, child_count) = {
            let st = self.lock()?;
            let mut refs_by_id: HashMap<_, Vec<Reference>> = HashMap::new();
            for (r, id) in st.refs.iter() {
                refs_by_id.entry(id.clone()).or_default().push(r.clone());
            }
            let mut child_count: HashMap<_, usize> = HashMap::new();
            for img in st.images.values() {
                if let Some(p) = &img.meta.parent {
                    *child_count.entry(p.clone()).or_default() += 1;
                }
            }
            (
                st.images.values().cloned().collect::<Vec<_>>(),
                refs_by_id,
                child_count,
            )
        };

        let mut layer_users: HashMap<_, usize> = HashMap::new();
        if opts.shared_size {
            for img in &images {
                for c in &img.chain_ids {
                    *layer_users.entry(c.clone()).or_default() += 1;
                }
            }
        }

        let mut out = Vec::new();
        for img in images {
            let refs = refs_by_id.get(&img.id).cloned().unwrap_or_default();
            let (mut tags, digests) = split_refs(&refs);
            let is_dangling = refs.is_empty();
            if let Some(d) = dangling {
                if d != is_dangling {
                    continue;
                }
            }
            if !opts.all && is_dangling && child_count.get(&img.id).copied().unwrap_or(0) > 0 {
                continue;
            }
            let created = img.created;
            if let Some(b) = before {
                if !matches!(created, Some(c) if c < b) {
                    continue;
                }
            }
            if let Some(s) = since {
                if !matches!(created, Some(c) if c > s) {
                    continue;
                }
            }
            if let Some(u) = until {
                if !matches!(created, Some(c) if c < u) {
                    continue;
                }
            }
            if !filters::labels_match(&labels, &img.labels()) {
                continue;
            }
            if !ref_patterns.is_empty() {
                let matching: Vec<&Reference> = refs
                    .iter()
                    .filter(|r| {
                        ref_patterns
                            .iter()
                            .any(|p| filters::reference_matches(p, r))
                    })
                    .collect();
                if matching.is_empty() {
                    continue;
                }
                tags = split_refs(&matching.into_iter().cloned().collect::<Vec<_>>()).0;
            }
            let layers = self.layers_of(&img)?;
            let size: u64 = layers.iter().map(|l| l.record.size).sum();
            let shared_size = if opts.shared_size {
                layers
                    .iter()
                    .filter(|l| layer_users.get(&l.record.chain_id).copied().unwrap_or(0) > 1)
                    .map(|l| l.record.size as i64)
                    .sum()
            } else {
                -1
            };
            out.push(ImageSummary {
                id: img.id.to_string(),
                parent_id: img
                    .meta
                    .parent
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
                repo_tags: tags,
                repo_digests: digests,
                created: img.created_unix(),
                size: size as i64,
                shared_size,
                labels: img.labels(),
                containers: -1,
            });
        }
        // Newest first, as dockerd sorts.
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    fn time_bound(&self, f: &Filters, key: &str) -> Result<Option<DateTime<Utc>>> {
        let Some(name) = f.get(key).and_then(|v| v.first()) else {
            return Ok(None);
        };
        let img = self.resolve(name)?;
        Ok(Some(img.created.unwrap_or_default()))
    }

    /// `GET /images/{name}/json` in dockerd's shape (API 1.50).
    pub fn inspect(&self, name: &str) -> Result<Value> {
        let img = self.resolve(name)?;
        self.inspect_image(&img)
    }

    pub fn inspect_image(&self, img: &Image) -> Result<Value> {
        let (tags, digests) = self.repo_tags_digests(&img.id)?;
        let layers = self.layers_of(img)?;
        let size: u64 = layers.iter().map(|l| l.record.size).sum();
        let mut graph = serde_json::Map::new();
        if let Some((top, lower)) = layers.split_last() {
            if !lower.is_empty() {
                let lowers: Vec<String> = lower
                    .iter()
                    .rev()
                    .map(|l| l.diff_dir.display().to_string())
                    .collect();
                graph.insert("LowerDir".into(), json!(lowers.join(":")));
            }
            graph.insert(
                "MergedDir".into(),
                json!(top.dir.join("merged").display().to_string()),
            );
            graph.insert("UpperDir".into(), json!(top.diff_dir.display().to_string()));
            graph.insert(
                "WorkDir".into(),
                json!(top.dir.join("work").display().to_string()),
            );
        }
        let created = img.created.as_ref().map(format_time).unwrap_or_default();
        let mut v = json!({
            "Id": img.id.to_string(),
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": img.meta.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
            "Comment": img.str_field("comment"),
            "Created": created,
            "DockerVersion": img.str_field("docker_version"),
            "Author": img.str_field("author"),
            "Config": img.container_config(),
            // Gone from dockerd's answer since API 1.45, but kept at every
            // version: docker-compose 1.29 negotiates the daemon's newest
            // version and then reads ContainerConfig.Volumes when it
            // recreates a container (its KeyError on Docker 25+).
            "Container": img.str_field("container"),
            "ContainerConfig": match img.config.get("container_config") {
                Some(c) if c.is_object() => c.clone(),
                _ => empty_container_config(),
            },
            "Architecture": img.str_field("architecture"),
            "Os": img.str_field("os"),
            "Size": size,
            "GraphDriver": {"Data": graph, "Name": "overlay2"},
            "RootFS": {
                "Type": "layers",
                "Layers": img.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            },
            "Metadata": {
                "LastTagTime": img.meta.last_tag_time.as_ref().map(format_time).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            },
        });
        let variant = img.str_field("variant");
        if !variant.is_empty() {
            v["Variant"] = json!(variant);
        }
        let os_version = img.str_field("os.version");
        if !os_version.is_empty() {
            v["OsVersion"] = json!(os_version);
        }
        Ok(v)
    }

    /// `GET /images/{name}/history`: newest first.
    pub fn history(&self, name: &str) -> Result<Vec<HistoryItem>> {
        let img = self.resolve(name)?;
        let layers = self.layers_of(&img)?;
        let history = img.history();
        let mut layer_iter = layers.iter();
        let mut rows = Vec::with_capacity(history.len());
        for h in &history {
            let empty = h
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let size = if empty {
                0
            } else {
                layer_iter.next().map(|l| l.record.size as i64).unwrap_or(0)
            };
            let created = h
                .get("created")
                .and_then(Value::as_str)
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|d| d.timestamp())
                .unwrap_or(0);
            let s = |k: &str| {
                h.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            rows.push(HistoryItem {
                id: "<missing>".into(),
                created,
                created_by: s("created_by"),
                tags: Vec::new(),
                size,
                comment: s("comment"),
            });
        }
        rows.reverse();
        // The newest row is the image itself; walk parents for older rows.
        let st = self.lock()?;
        let mut cur = Some(img.clone());
        let mut idx = 0usize;
        while let Some(i) = cur {
            if idx >= rows.len() {
                break;
            }
            rows[idx].id = i.id.to_string();
            rows[idx].tags = split_refs(&st.refs.references_to(&i.id)).0;
            // The parent's history is a prefix of ours: skip our own rows.
            let ours = i.history().len();
            let parent = i
                .meta
                .parent
                .as_ref()
                .and_then(|p| st.images.get(p))
                .cloned();
            let theirs = parent.as_ref().map(|p| p.history().len()).unwrap_or(ours);
            idx += ours.saturating_sub(theirs).max(1);
            cur = parent;
        }
        Ok(rows)
    }
}

/// A zero `container.Config` as dockerd prints it for images that carry
/// none (imported, or built without a build container).
fn empty_container_config() -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
        "AttachStdout": false, "AttachStderr": false, "Tty": false, "OpenStdin": false,
        "StdinOnce": false, "Env": null, "Cmd": null, "Image": "", "Volumes": null,
        "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": null,
    })
}
