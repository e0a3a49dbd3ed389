use super::*;
use serde_json::json;

fn body(v: Value) -> (ContainerConfig, HostConfig) {
    let b: crate::containers::config::CreateBody = serde_json::from_value(v).expect("create body");
    (b.config, b.host_config.unwrap_or_default())
}

fn msg(v: Value) -> String {
    let (c, hc) = body(v);
    match create_request(&c, &hc) {
        Err(ContainerError::InvalidParameter(m)) => m,
        other => panic!("expected a 400, got {other:?}"),
    }
}

fn ok(v: Value) {
    let (c, hc) = body(v);
    create_request(&c, &hc).unwrap_or_else(|e| panic!("refused: {e}"));
}

#[test]
fn config_checks() {
    assert_eq!(
        msg(json!({"WorkingDir": "rel/dir"})),
        "the working directory 'rel/dir' is invalid, it needs to be an absolute path"
    );
    assert_eq!(
        msg(json!({"StopSignal": "SIGFOO"})),
        "Invalid signal: SIGFOO"
    );
    ok(json!({"StopSignal": "SIGUSR1", "StopTimeout": -1, "WorkingDir": "/a"}));
    assert!(msg(json!({"StopTimeout": -2})).starts_with("invalid StopTimeout (-2)"));
    let long = "a".repeat(65);
    assert_eq!(
        msg(json!({ "Hostname": long })),
        format!("hostname \"{long}\" is too long (maximum 64 bytes)")
    );
    ok(json!({ "Hostname": "a".repeat(64) }));
    assert!(msg(json!({ "Domainname": long })).starts_with("domainname"));
    assert_eq!(
        msg(json!({"Env": ["=x"]})),
        "invalid environment variable: =x"
    );
    assert!(msg(json!({"Cmd": ["a\u{0}b"]})).contains("NUL"));
}

#[test]
fn healthcheck_durations() {
    for key in ["Interval", "Timeout", "StartPeriod", "StartInterval"] {
        assert_eq!(
            msg(json!({"Healthcheck": {"Test": ["CMD", "true"], key: 5}})),
            format!("{key} in Healthcheck cannot be less than 1ms")
        );
        assert!(msg(json!({"Healthcheck": { key: -1 }})).contains("less than 1ms"));
        ok(json!({"Healthcheck": { key: 0 }}));
        ok(json!({"Healthcheck": { key: 1_000_000 }}));
    }
    assert_eq!(
        msg(json!({"Healthcheck": {"Retries": -1}})),
        "Retries in Healthcheck cannot be negative"
    );
    assert!(msg(json!({"Healthcheck": {"Interval": "5s"}})).contains("integer"));
}

#[test]
fn host_config_checks() {
    assert_eq!(
        msg(json!({"HostConfig": {"ShmSize": -1}})),
        "SHM size can not be less than 0"
    );
    assert_eq!(
        msg(json!({"HostConfig": {"CgroupParent": "a/../b"}})),
        "invalid CgroupParent \"a/../b\": \"..\" is not allowed"
    );
    ok(json!({"HostConfig": {"CgroupParent": "/my/parent"}}));
    assert_eq!(
        msg(json!({"HostConfig": {"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 2}]}})),
        "invalid ulimit type: bogus"
    );
    assert_eq!(
        msg(json!({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 2}]}})),
        "ulimit soft limit must be less than or equal to hard limit: 10 > 2"
    );
    assert!(
        msg(json!({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": -1, "Hard": 2}]}}))
            .contains("soft: -1 (unlimited), hard: 2")
    );
    assert!(msg(
        json!({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1_i64 << 40}]}})
    )
    .contains("fs.nr_open"));
    ok(json!({"HostConfig": {"Ulimits": [{"Name": "core", "Soft": -1, "Hard": -1}]}}));
    assert_eq!(
        msg(
            json!({"HostConfig": {"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]}})
        ),
        "invalid device mode: rwx"
    );
}

#[test]
fn port_checks() {
    assert_eq!(
        msg(json!({"ExposedPorts": {"abc/tcp": {}}})),
        "invalid port specification: \"abc/tcp\""
    );
    assert_eq!(
        msg(json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "abc"}]}}})),
        "invalid port specification: \"abc\""
    );
    assert_eq!(
        msg(json!({"HostConfig": {"PortBindings": {"xx/tcp": [{"HostPort": "80"}]}}})),
        "invalid port specification: \"xx/tcp\""
    );
    assert!(
        msg(json!({"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "nope"}]}}}))
            .contains("invalid host IP address")
    );
    ok(json!({"ExposedPorts": {"80/tcp": {}, "53/udp": {}},
              "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": ""}, {"HostIp": "127.0.0.1", "HostPort": "8080"}]}}}));
}
