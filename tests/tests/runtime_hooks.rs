//! OCI hooks run at their points in the lifecycle with the state on stdin,
//! their env, and a timeout.

mod runtime_support;

use std::time::{Duration, Instant};

use runtime_support::Bundle;
use serde_json::{json, Value};

fn hook(out: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {out}; echo $HOOK_ENV > {out}.env")], "env": ["HOOK_ENV=set-by-config"]})
}

#[test]
fn hooks_get_the_state_at_each_point() {
    let mut b = Bundle::new();
    let out = b.path().join("hooks-out");
    std::fs::create_dir(&out).unwrap();
    let host = |name: &str| out.join(name).display().to_string();
    // startContainer runs inside the container: give it a bind mount.
    let mut mounts = b.config["mounts"].as_array().unwrap().clone();
    mounts.push(
        json!({"destination": "/hooks", "type": "bind", "source": out, "options": ["rbind", "rw"]}),
    );
    b.config["mounts"] = json!(mounts);
    b.config["hooks"] = json!({
        "prestart": [hook(&host("prestart"))],
        "createRuntime": [hook(&host("createRuntime"))],
        "createContainer": [hook(&host("createContainer"))],
        "startContainer": [hook("/hooks/startContainer")],
        "poststart": [hook(&host("poststart"))],
        "poststop": [hook(&host("poststop"))],
    });
    b.set_args(&["sleep", "1000"]);
    let id = b.start_detached("hooks");
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    assert!(b.rt(&["delete", "--force", &id]).success());
    for (name, status) in [
        ("prestart", "creating"),
        ("createRuntime", "creating"),
        ("createContainer", "created"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let text = std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|e| panic!("{name} did not run: {e}"));
        let state: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
        assert_eq!(state["id"], id.as_str(), "{name}");
        assert_eq!(state["status"], status, "{name}: {state}");
        assert_eq!(
            state["bundle"],
            b.bundle.display().to_string().as_str(),
            "{name}"
        );
        if name != "poststop" {
            assert_eq!(state["pid"], pid, "{name}: {state}");
        }
        let env = std::fs::read_to_string(out.join(format!("{name}.env"))).unwrap();
        assert_eq!(env.trim(), "set-by-config", "{name}");
    }
}

#[test]
fn a_hook_past_its_timeout_fails_create() {
    let mut b = Bundle::new();
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    let id = b.id("timeout");
    b.write_config(&id);
    let bundle = b.bundle.display().to_string();
    let started = Instant::now();
    let out = b.rt_detached(&["create", "--bundle", &bundle, &id]);
    assert!(!out.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
    assert!(!b.container_dir(&id).exists());
    assert!(b.cgroup_leftovers(&id).is_empty());
}
