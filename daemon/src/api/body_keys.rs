//! Case-insensitive JSON field names, as dockerd has them from Go's
//! encoding/json: a request body's object keys are rewritten to the spec's
//! names (`detachKeys` → `DetachKeys`, `CPURealtimePeriod` →
//! `CpuRealtimePeriod`) before anything reads the body, nested objects
//! included. Keys of maps (labels, options, endpoint names) are kept.

use serde_json::{Map, Value};

use super::body_fields::{BODIES, SHAPES};
use super::spec_paths;

/// What the spec says about a JSON value, as far as names go.
pub enum Shape {
    /// Nothing beneath with names to match.
    Leaf,
    /// An object: its fields (name, shape index), and the shape of the
    /// values under any other key when it is also a map.
    Object {
        fields: &'static [(&'static str, u16)],
        rest: Option<u16>,
    },
    /// An array of the given shape.
    Array(u16),
}

/// Rewrites the keys of the body of `method path` (no version prefix) to
/// the spec's field names; bodies the spec does not describe are left as
/// they are.
pub fn canonicalize(method: &str, path: &str, body: &mut Value) {
    let Some(template) = spec_paths::find(method, path) else {
        return;
    };
    let Some(&(_, _, root)) = BODIES
        .iter()
        .find(|(m, t, _)| *m == method && *t == template)
    else {
        return;
    };
    rewrite(body, root);
}

fn rewrite(body: &mut Value, root: u16) {
    // Iterative: a body's depth is the client's choice.
    let mut stack = vec![(body, root)];
    while let Some((value, shape)) = stack.pop() {
        match (shape_at(shape), value) {
            (Shape::Array(item), Value::Array(items)) => {
                stack.extend(items.iter_mut().map(|v| (v, *item)));
            }
            (Shape::Object { fields, rest }, Value::Object(map)) => {
                rename_keys(map, fields);
                for (key, v) in map.iter_mut() {
                    let sub = match fields.iter().find(|(name, _)| name == key) {
                        Some(&(_, sub)) => sub,
                        None => rest.unwrap_or(0),
                    };
                    if sub != 0 {
                        stack.push((v, sub));
                    }
                }
            }
            _ => {}
        }
    }
}

fn shape_at(index: u16) -> &'static Shape {
    SHAPES.get(usize::from(index)).unwrap_or(&Shape::Leaf)
}

/// As Go: a key names the field it equals, or else one it equals ignoring
/// case. When a body has both, the exact key wins.
fn rename_keys(map: &mut Map<String, Value>, fields: &[(&'static str, u16)]) {
    let canonical = |key: &str| -> Option<&'static str> {
        if fields.iter().any(|(name, _)| *name == key) {
            return None;
        }
        fields
            .iter()
            .map(|(name, _)| *name)
            .find(|name| fold_eq(name, key))
    };
    if !map.keys().any(|k| canonical(k).is_some()) {
        return;
    }
    let old = std::mem::take(map);
    let mut renamed = Vec::new();
    for (key, value) in old {
        match canonical(&key) {
            Some(name) => renamed.push((name, value)),
            None => {
                map.insert(key, value);
            }
        }
    }
    for (name, value) in renamed {
        map.entry(name).or_insert(value);
    }
}

fn fold_eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(method: &str, path: &str, mut v: Value) -> Value {
        canonicalize(method, path, &mut v);
        v
    }

    #[test]
    fn nested_bodies_get_the_spec_names() {
        let body = json!({
            "image": "busybox",
            "cmd": ["true"],
            "labels": {"lower.key": "v"},
            "healthcheck": {"test": ["CMD", "true"], "startperiod": 1},
            "hostConfig": {
                "CPURealtimePeriod": 5,
                "restartPolicy": {"name": "always"},
                "mounts": [{"type": "volume", "target": "/d", "volumeOptions": {"subpath": "x"}}],
                "portBindings": {"80/tcp": [{"hostPort": "8080"}]},
                "logConfig": {"type": "json-file", "config": {"max-size": "1m"}},
            },
            "networkingConfig": {"endpointsConfig": {"mynet": {"aliases": ["a"], "ipamConfig": {"ipv4address": "10.0.0.2"}}}},
            "NoSuchField": 1,
        });
        let got = canon("POST", "/containers/create", body);
        assert_eq!(
            got,
            json!({
                "Image": "busybox",
                "Cmd": ["true"],
                "Labels": {"lower.key": "v"},
                "Healthcheck": {"Test": ["CMD", "true"], "StartPeriod": 1},
                "HostConfig": {
                    "CpuRealtimePeriod": 5,
                    "RestartPolicy": {"Name": "always"},
                    "Mounts": [{"Type": "volume", "Target": "/d", "VolumeOptions": {"Subpath": "x"}}],
                    "PortBindings": {"80/tcp": [{"HostPort": "8080"}]},
                    "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
                },
                "NetworkingConfig": {"EndpointsConfig": {"mynet": {"Aliases": ["a"], "IPAMConfig": {"IPv4Address": "10.0.0.2"}}}},
                "NoSuchField": 1,
            })
        );
    }

    #[test]
    fn exact_key_wins_and_other_bodies() {
        let got = canon(
            "POST",
            "/exec/abc/start",
            json!({"detach": true, "Detach": false, "tty": true}),
        );
        assert_eq!(got, json!({"Detach": false, "Tty": true}));
        let got = canon(
            "POST",
            "/containers/abc/exec",
            json!({"detachKeys": "ctrl-x", "cmd": ["sh"]}),
        );
        assert_eq!(got, json!({"DetachKeys": "ctrl-x", "Cmd": ["sh"]}));
        let got = canon(
            "POST",
            "/networks/n/connect",
            json!({"container": "c", "endpointConfig": {"aliases": ["x"]}}),
        );
        assert_eq!(
            got,
            json!({"Container": "c", "EndpointConfig": {"Aliases": ["x"]}})
        );
        let got = canon(
            "POST",
            "/volumes/create",
            json!({"name": "v", "driverOpts": {"o": "x"}}),
        );
        assert_eq!(got, json!({"Name": "v", "DriverOpts": {"o": "x"}}));
        // Not a described body: untouched.
        let got = canon("POST", "/containers/abc/start", json!({"detach": 1}));
        assert_eq!(got, json!({"detach": 1}));
    }
}
