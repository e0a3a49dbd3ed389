//! Every endpoint of Engine API v1.50 (from reference/engine-api-v1.50.yaml),
//! so the fallback can tell "not implemented yet" (501) from "no such path" (404).

/// `(method, path template)`; `{param}` matches one path segment, except the
/// `{name}` of images, distribution and plugins, which may contain slashes.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/containers/json"),
    ("POST", "/containers/create"),
    ("GET", "/containers/{id}/json"),
    ("GET", "/containers/{id}/top"),
    ("GET", "/containers/{id}/logs"),
    ("GET", "/containers/{id}/changes"),
    ("GET", "/containers/{id}/export"),
    ("GET", "/containers/{id}/stats"),
    ("POST", "/containers/{id}/resize"),
    ("POST", "/containers/{id}/start"),
    ("POST", "/containers/{id}/stop"),
    ("POST", "/containers/{id}/restart"),
    ("POST", "/containers/{id}/kill"),
    ("POST", "/containers/{id}/update"),
    ("POST", "/containers/{id}/rename"),
    ("POST", "/containers/{id}/pause"),
    ("POST", "/containers/{id}/unpause"),
    ("POST", "/containers/{id}/attach"),
    ("GET", "/containers/{id}/attach/ws"),
    ("POST", "/containers/{id}/wait"),
    ("DELETE", "/containers/{id}"),
    ("HEAD", "/containers/{id}/archive"),
    ("GET", "/containers/{id}/archive"),
    ("PUT", "/containers/{id}/archive"),
    ("POST", "/containers/prune"),
    ("GET", "/images/json"),
    ("POST", "/build"),
    ("POST", "/build/prune"),
    ("POST", "/images/create"),
    ("GET", "/images/{name}/json"),
    ("GET", "/images/{name}/history"),
    ("POST", "/images/{name}/push"),
    ("POST", "/images/{name}/tag"),
    ("DELETE", "/images/{name}"),
    ("GET", "/images/search"),
    ("POST", "/images/prune"),
    ("POST", "/auth"),
    ("GET", "/info"),
    ("GET", "/version"),
    ("GET", "/_ping"),
    ("HEAD", "/_ping"),
    ("POST", "/commit"),
    ("GET", "/events"),
    ("GET", "/system/df"),
    ("GET", "/images/{name}/get"),
    ("GET", "/images/get"),
    ("POST", "/images/load"),
    ("POST", "/containers/{id}/exec"),
    ("POST", "/exec/{id}/start"),
    ("POST", "/exec/{id}/resize"),
    ("GET", "/exec/{id}/json"),
    ("GET", "/volumes"),
    ("POST", "/volumes/create"),
    ("GET", "/volumes/{name}"),
    ("PUT", "/volumes/{name}"),
    ("DELETE", "/volumes/{name}"),
    ("POST", "/volumes/prune"),
    ("GET", "/networks"),
    ("GET", "/networks/{id}"),
    ("DELETE", "/networks/{id}"),
    ("POST", "/networks/create"),
    ("POST", "/networks/{id}/connect"),
    ("POST", "/networks/{id}/disconnect"),
    ("POST", "/networks/prune"),
    ("GET", "/plugins"),
    ("GET", "/plugins/privileges"),
    ("POST", "/plugins/pull"),
    ("GET", "/plugins/{name}/json"),
    ("DELETE", "/plugins/{name}"),
    ("POST", "/plugins/{name}/enable"),
    ("POST", "/plugins/{name}/disable"),
    ("POST", "/plugins/{name}/upgrade"),
    ("POST", "/plugins/create"),
    ("POST", "/plugins/{name}/push"),
    ("POST", "/plugins/{name}/set"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{id}"),
    ("DELETE", "/nodes/{id}"),
    ("POST", "/nodes/{id}/update"),
    ("GET", "/swarm"),
    ("POST", "/swarm/init"),
    ("POST", "/swarm/join"),
    ("POST", "/swarm/leave"),
    ("POST", "/swarm/update"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"),
    ("POST", "/services/{id}/update"),
    ("GET", "/services/{id}/logs"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{id}"),
    ("GET", "/tasks/{id}/logs"),
    ("GET", "/secrets"),
    ("POST", "/secrets/create"),
    ("GET", "/secrets/{id}"),
    ("DELETE", "/secrets/{id}"),
    ("POST", "/secrets/{id}/update"),
    ("GET", "/configs"),
    ("POST", "/configs/create"),
    ("GET", "/configs/{id}"),
    ("DELETE", "/configs/{id}"),
    ("POST", "/configs/{id}/update"),
    ("GET", "/distribution/{name}/json"),
    ("POST", "/session"),
];

/// The spec template `method path` matches, if any.
pub fn find(method: &str, path: &str) -> Option<&'static str> {
    // A trailing slash is a segment of its own (an empty name): dockerd's
    // router matches `/networks/` to nothing, not to `/networks`.
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    ENDPOINTS
        .iter()
        .find(|(m, template)| {
            (*m == method || (method == "HEAD" && *m == "GET")) && matches(template, &segments)
        })
        .map(|(_, template)| *template)
}

fn matches(template: &str, segments: &[&str]) -> bool {
    let parts: Vec<&str> = template.trim_matches('/').split('/').collect();
    let multi = ["images", "distribution", "plugins"].contains(&parts[0]);
    match_parts(&parts, segments, multi)
}

fn match_parts(parts: &[&str], segments: &[&str], multi: bool) -> bool {
    match (parts.first(), segments.first()) {
        (None, None) => true,
        (None, _) | (_, None) => false,
        (Some(part), Some(segment)) if part.starts_with('{') => {
            if segment.is_empty() {
                return false;
            }
            if !multi {
                return match_parts(&parts[1..], &segments[1..], multi);
            }
            // A name may swallow several segments; try every split.
            (1..=segments.len()).any(|n| {
                segments[..n].iter().all(|s| !s.is_empty())
                    && match_parts(&parts[1..], &segments[n..], multi)
            })
        }
        (Some(part), Some(segment)) => {
            part == segment && match_parts(&parts[1..], &segments[1..], multi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn matches_templates() {
        assert_eq!(find("POST", "/build"), Some("/build"));
        assert_eq!(find("GET", "/networks/"), None);
        assert_eq!(find("GET", "/swarm/"), None);
        assert_eq!(
            find("GET", "/containers/abc/json"),
            Some("/containers/{id}/json")
        );
        assert_eq!(
            find("GET", "/images/library/busybox/json"),
            Some("/images/{name}/json")
        );
        assert_eq!(
            find("DELETE", "/images/localhost:5000/a/b:tag"),
            Some("/images/{name}")
        );
        assert_eq!(find("HEAD", "/_ping"), Some("/_ping"));
        assert_eq!(find("GET", "/containers/a/b/json"), None);
        assert_eq!(find("GET", "/nope"), None);
        assert_eq!(find("PATCH", "/build"), None);
        assert_eq!(find("GET", "/containers//json"), None);
    }
}
