//! Container inspect and list conform to the Engine API spec and have
//! dockerd's shapes: the same HostConfig created on Debian's dockerd and on
//! berthd gives the same keys with the same JSON types.

use berth_tests::dockerd::PrivateDockerd;
use berth_tests::{assert_matches_spec, busybox_tar, Daemon};
use serde_json::Value;

/// The create body both daemons get: the HostConfig fields whose shapes
/// clients trip over, set, next to one left to defaults.
const CREATE: &str = r#"{
  "Image": "busybox",
  "Cmd": ["true"],
  "HostConfig": {
    "NetworkMode": "none",
    "DeviceCgroupRules": ["c 1:3 rwm", "b 7:* r"],
    "DeviceRequests": [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]], "Options": {"k": "v"}}],
    "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": "rwm"}],
    "MemorySwappiness": 10,
    "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
    "Tmpfs": {"/run/t": "size=1m"},
    "Sysctls": {"net.ipv4.ip_forward": "1"},
    "CapAdd": ["NET_ADMIN"],
    "BlkioWeight": 300,
    "PidsLimit": 50,
    "OomScoreAdj": 5,
    "ExtraHosts": ["h:10.0.0.1"],
    "Dns": ["10.0.0.2"],
    "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}
  }
}"#;

const DEFAULTS: &str =
    r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}"#;

const ODD: &str = r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none", "MemorySwappiness": -1, "DeviceCgroupRules": [], "DeviceRequests": [{"Count": 1}], "Devices": [], "PidsLimit": 0, "OomKillDisable": true, "ConsoleSize": [3, 4], "Ulimits": [], "CapAdd": [], "Dns": [], "Binds": [], "PortBindings": {}, "ContainerIDFile": "/x"}}"#;

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences in keys and JSON types between dockerd's value and ours,
/// recursively (array items by position).
fn shape_diff(path: &str, theirs: &Value, ours: &Value, out: &mut Vec<String>) {
    if json_type(theirs) != json_type(ours) {
        out.push(format!("{path}: dockerd {theirs}, berth {ours}"));
        return;
    }
    match (theirs, ours) {
        (Value::Object(t), Value::Object(o)) => {
            for (k, tv) in t {
                match o.get(k) {
                    Some(ov) => shape_diff(&format!("{path}.{k}"), tv, ov, out),
                    None => out.push(format!("{path}.{k}: missing (dockerd {tv})")),
                }
            }
        }
        (Value::Array(t), Value::Array(o)) => {
            for (i, (tv, ov)) in t.iter().zip(o).enumerate() {
                shape_diff(&format!("{path}[{i}]"), tv, ov, out);
            }
        }
        _ => {}
    }
}

fn create(curl: impl Fn(&[&str]) -> String, name: &str, body: &str) {
    let out = curl(&[
        "-X",
        "POST",
        "--fail-with-body",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
        &format!("http://localhost/v1.41/containers/create?name={name}"),
    ]);
    assert!(out.contains("\"Id\""), "create {name}: {out}");
}

fn get(curl: impl Fn(&[&str]) -> String, path: &str) -> String {
    curl(&["--fail-with-body", &format!("http://localhost/v1.41{path}")])
}

#[test]
fn host_config_matches_the_spec_and_dockerds_shapes() {
    let berth = Daemon::with_busybox();
    let dockerd = PrivateDockerd::start();
    let tar = busybox_tar();
    dockerd.docker_ok(&["load", "-i", tar.to_str().unwrap()]);
    let b = |args: &[&str]| berth.curl(args).ok();
    let k = |args: &[&str]| dockerd.curl(args).ok();
    for (name, body) in [("full", CREATE), ("defaults", DEFAULTS), ("odd", ODD)] {
        create(b, name, body);
        create(k, name, body);
        let ours = get(b, &format!("/containers/{name}/json"));
        assert_matches_spec("GET", "/containers/{id}/json", &ours);
        let theirs = get(k, &format!("/containers/{name}/json"));
        let ours: Value = serde_json::from_str(&ours).unwrap();
        let theirs: Value = serde_json::from_str(&theirs).unwrap();
        let mut diff = Vec::new();
        shape_diff(
            "HostConfig",
            &theirs["HostConfig"],
            &ours["HostConfig"],
            &mut diff,
        );
        assert!(diff.is_empty(), "{name}:\n{}", diff.join("\n"));
    }
    let list = get(b, "/containers/json?all=1&size=1");
    assert_matches_spec("GET", "/containers/json", &list);
    berth.docker_ok(&["rm", "full", "defaults"]);
    dockerd.docker_ok(&["rm", "full", "defaults"]);
}
