//! `docker search`: the v1 search API of an index (Docker Hub's, or the
//! registry a term names), as dockerd queries it.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::AuthConfig;
use crate::client::{build_client, read_bounded, status_text};
use crate::error::{transport, Error, Result};
use crate::Distribution;

/// Largest search answer read.
const ANSWER_MAX: usize = 8 << 20;

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    star_count: i64,
    #[serde(default)]
    is_official: bool,
}

/// dockerd's split of a search term: a first component that looks like a
/// host (has `.` or `:`, or is `localhost`) names the index; anything else
/// is searched on Docker Hub.
fn split_term(term: &str) -> (Option<&str>, &str) {
    if let Some((first, rest)) = term.split_once('/') {
        if first.contains(['.', ':']) || first == "localhost" {
            if matches!(first, "docker.io" | "index.docker.io") {
                return (None, rest);
            }
            return (Some(first), rest);
        }
    }
    (None, term)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Distribution {
    /// Up to `limit` (1–100) repositories matching `term`, as the index
    /// answers them (`is_automated` is always false, as in dockerd 25+).
    pub async fn search(&self, term: &str, limit: usize, auth: &AuthConfig) -> Result<Vec<Value>> {
        if !(1..=100).contains(&limit) {
            return Err(Error::Invalid(format!(
                "limit {limit} is outside the range of [1, 100]"
            )));
        }
        let (index, query) = split_term(term);
        let host = index.unwrap_or("index.docker.io");
        let config = self.config();
        let insecure = index.is_some() && config.is_insecure(host).await;
        let http = build_client(&config, host, insecure)?;
        let schemes: &[&str] = if insecure {
            &["https", "http"]
        } else {
            &["https"]
        };
        let mut last = None;
        for scheme in schemes {
            let url = format!(
                "{scheme}://{host}/v1/search?q={}&n={limit}",
                urlencode(query)
            );
            let mut req = http.get(&url);
            if let Some((u, p)) = auth.basic() {
                req = req.basic_auth(u, Some(p));
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(transport("GET", &url, &e));
                    continue;
                }
            };
            let status = resp.status();
            if !status.is_success() {
                return Err(Error::Upstream(format!(
                    "Unexpected status code {} from {url}: {}",
                    status.as_u16(),
                    status_text(status)
                )));
            }
            let body = read_bounded(resp, ANSWER_MAX).await?;
            let answer: Answer = serde_json::from_slice(&body)
                .map_err(|e| Error::Upstream(format!("invalid search answer from {url}: {e}")))?;
            return Ok(answer
                .results
                .into_iter()
                .map(|i| {
                    json!({
                        "name": i.name,
                        "description": i.description,
                        "star_count": i.star_count,
                        "is_official": i.is_official,
                        "is_automated": false,
                    })
                })
                .collect());
        }
        Err(last.unwrap_or_else(|| Error::Internal("no search endpoint to try".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::split_term;

    #[test]
    fn terms_name_their_index_as_in_dockerd() {
        assert_eq!(split_term("busybox"), (None, "busybox"));
        assert_eq!(split_term("library/busybox"), (None, "library/busybox"));
        assert_eq!(split_term("docker.io/busybox"), (None, "busybox"));
        assert_eq!(
            split_term("127.0.0.1:5000/bb"),
            (Some("127.0.0.1:5000"), "bb")
        );
        assert_eq!(split_term("localhost/x/y"), (Some("localhost"), "x/y"));
    }
}
