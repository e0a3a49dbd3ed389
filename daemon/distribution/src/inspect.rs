//! `GET /distribution/{name}/json` and the tag list `docker pull -a` uses.

use std::sync::Arc;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use berth_images::Reference;

use crate::auth::AuthConfig;
use crate::client::{read_small, Session};
use crate::error::{Error, Result};
use crate::fetch::Repo;
use crate::manifest::{self, Parsed};
use crate::progress::Progress;
use crate::pull::{PullOptions, PullOutcome};
use crate::Distribution;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Distribution {
    async fn repo(&self, r: &Reference, auth: &AuthConfig) -> Result<Repo> {
        let sess =
            Session::connect(&self.config(), &self.endpoints, r.domain(), auth.clone()).await?;
        Ok(Repo {
            sess,
            path: r.path().to_owned(),
            scopes: vec![format!("repository:{}:pull", r.path())],
        })
    }

    /// The manifest descriptor of a reference and the platforms it offers.
    pub async fn inspect(&self, r: &Reference, auth: &AuthConfig) -> Result<Value> {
        let repo = self.repo(r, auth).await?;
        let reference = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, t) => t.unwrap_or("latest").to_owned(),
        };
        let familiar = r.familiar();
        let m = repo
            .manifest(&reference, |text| {
                Error::NotFound(format!("manifest for {familiar} not found: {text}"))
            })
            .await?;
        let parsed = manifest::parse(&m.bytes, &m.content_type)?;
        let doc: Value = serde_json::from_slice(&m.bytes).unwrap_or(Value::Null);
        let media_type = doc
            .get("mediaType")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| m.content_type.split(';').next().unwrap_or("").to_owned());
        let platforms: Vec<Value> = match parsed {
            Parsed::List { manifests } => manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| json!(p))
                .collect(),
            Parsed::Image { config, .. } => {
                let bytes = repo.small_blob(&config, 16 << 20).await?;
                let c: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Upstream(format!("invalid image config: {e}")))?;
                let mut p = json!({
                    "architecture": c.get("architecture").cloned().unwrap_or(json!("")),
                    "os": c.get("os").cloned().unwrap_or(json!("")),
                });
                if let Some(v) = c.get("variant") {
                    p["variant"] = v.clone();
                }
                vec![p]
            }
        };
        Ok(json!({
            "Descriptor": {
                "mediaType": media_type,
                "digest": m.digest.to_string(),
                "size": m.bytes.len(),
            },
            "Platforms": platforms,
        }))
    }

    /// `docker pull -a`: every tag the registry lists.
    pub async fn pull_all_tags(
        &self,
        opts: &PullOptions,
        out: &Progress,
    ) -> Result<Vec<(Reference, PullOutcome)>> {
        let r = &opts.reference;
        let repo = Arc::new(self.repo(r, &opts.auth).await?);
        let url = repo.sess.url(&format!("/v2/{}/tags/list", repo.path));
        let resp = repo
            .sess
            .send(Method::GET, &url, &repo.scopes, |r| r)
            .await?;
        let status = resp.status();
        if !status.is_success() {
            return Err(repo.status_error(status, &url, resp).await);
        }
        let list: TagList = serde_json::from_slice(&read_small(resp).await?)
            .map_err(|e| Error::Upstream(format!("invalid tag list from {url}: {e}")))?;
        let mut tags = list.tags.unwrap_or_default();
        tags.sort();
        if tags.is_empty() {
            return Err(Error::NotFound(format!(
                "no tags found for {}",
                r.familiar_name()
            )));
        }
        let mut out_refs = Vec::new();
        for t in tags {
            let tr = r.clone().with_tag(&t)?;
            let o = PullOptions {
                reference: tr.clone(),
                ..opts.clone()
            };
            let res = self.pull(&o, out).await?;
            out_refs.push((tr, res));
        }
        Ok(out_refs)
    }
}
