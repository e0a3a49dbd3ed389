//! Requests dockerd refuses are refused by berth too, with a 400 and
//! dockerd's message, before anything is created: bad container settings at
//! `POST /containers/create` (nothing may fail only at start), bad names,
//! paths and archives elsewhere. No input may give a 500.

use std::fs;
use std::path::Path;
use std::process::Command;

use berth_tests::Daemon;
use serde_json::{json, Value};

/// `curl -w` with the status on the last line; the body goes through a file
/// so that large bodies are fine.
fn call(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let url = format!("http://localhost/v1.50{path}");
    let file = d.dir.path().join("request-body");
    let mut args = vec!["-X", method, "-w", "\n%{http_code}"];
    let data = format!("@{}", file.display());
    if let Some(b) = body {
        fs::write(&file, b).expect("write request body");
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &data,
        ]);
    }
    args.push(&url);
    let out = d.curl(&args);
    assert!(out.success(), "curl failed: {}", out.stderr);
    let (body, code) = out.stdout.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

fn message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["message"].as_str().expect("message").to_string()
}

fn container_count(d: &Daemon) -> usize {
    let records = fs::read_dir(d.data_root.join("containers"))
        .map(|r| r.count())
        .unwrap_or(0);
    let listed = d.docker_ok(&["ps", "-aq"]).lines().count();
    assert_eq!(records, listed, "records on disk and `ps -a` disagree");
    listed
}

/// A create body: busybox running `true`, with `extra` merged in.
fn create_body(extra: Value) -> String {
    let mut body = json!({"Image": "busybox", "Cmd": ["true"]});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    body.to_string()
}

/// (what is sent, expected message; a trailing `*` means "starts with").
fn bad_creates() -> Vec<(Value, String)> {
    let hc = |v: Value| json!({ "HostConfig": v });
    let long_host = "h".repeat(65);
    let long_volume = "v".repeat(5000);
    let mut cases = vec![
        (
            hc(json!({"CpusetCpus": "abc"})),
            "Invalid value abc for cpuset cpus: invalid format: abc".to_string(),
        ),
        (
            hc(json!({"CpusetCpus": "0-999"})),
            "Requested CPUs are not available - requested 0-999, available: *".into(),
        ),
        (
            hc(json!({"CpusetCpus": "1-9223372036854775807"})),
            "Invalid value 1-9223372036854775807 for cpuset cpus: value of out range, maximum is 8192".into(),
        ),
        (
            hc(json!({"CpusetMems": "x"})),
            "Invalid value x for cpuset mems: invalid format: x".into(),
        ),
        (
            hc(json!({"CpusetMems": "4000"})),
            "Requested memory nodes are not available - requested 4000, available: *".into(),
        ),
        (
            json!({"WorkingDir": "rel/dir"}),
            "the working directory 'rel/dir' is invalid, it needs to be an absolute path".into(),
        ),
        (
            hc(json!({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 2}]})),
            "invalid ulimit type: bogus".into(),
        ),
        (
            hc(json!({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 2}]})),
            "ulimit soft limit must be less than or equal to hard limit: 10 > 2".into(),
        ),
        (
            hc(json!({"Ulimits": [{"Name": "nofile", "Soft": -1, "Hard": 2}]})),
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 2".into(),
        ),
        (
            json!({ "Hostname": long_host }),
            format!("hostname \"{long_host}\" is too long (maximum 64 bytes)"),
        ),
        (
            hc(json!({"Tmpfs": {"/t": "bogus=1"}})),
            "invalid tmpfs option \"bogus\"".into(),
        ),
        (
            hc(json!({"Tmpfs": {"/t": "size=abc"}})),
            "invalid tmpfs option \"size=abc\": bad value for size".into(),
        ),
        (
            hc(json!({"Mounts": [{"Type": "tmpfs", "Target": "/t",
                                 "TmpfsOptions": {"Options": [["suid"]]}}]})),
            "invalid mount config for type \"tmpfs\": invalid option: suid".into(),
        ),
        (
            hc(json!({"Mounts": [{"Type": "tmpfs", "Target": "/t",
                                 "TmpfsOptions": {"SizeBytes": -5}}]})),
            "invalid mount config for type \"tmpfs\": invalid tmpfs size".into(),
        ),
        (
            hc(json!({"CgroupParent": "../escape"})),
            "invalid CgroupParent \"../escape\": \"..\" is not allowed".into(),
        ),
        (
            hc(json!({"CpuShares": -1})),
            "invalid CPU shares (-1): value must be a positive integer".into(),
        ),
        (hc(json!({"ShmSize": -1})), "SHM size can not be less than 0".into()),
        (
            hc(json!({"PidsLimit": -2})),
            "invalid PidsLimit (-2): use a positive number, or 0 or -1 for unlimited".into(),
        ),
        (json!({"StopTimeout": -5}), "invalid StopTimeout (-5)*".into()),
        (json!({"StopSignal": "SIGFOO"}), "Invalid signal: SIGFOO".into()),
        (
            hc(json!({"CpuQuota": 99_999_999_999_999_i64})),
            "CPU cfs quota can not be larger than 17592186044415 (the kernel's maximum)".into(),
        ),
        (
            json!({"Env": ["=oops"]}),
            "invalid environment variable: =oops".into(),
        ),
        (
            json!({"Cmd": ["echo", "a\u{0}b"]}),
            "invalid Cmd: a value contains a NUL byte".into(),
        ),
        (
            json!({"ExposedPorts": {"abc/tcp": {}}}),
            "invalid port specification: \"abc/tcp\"".into(),
        ),
        (
            json!({"ExposedPorts": {"0/tcp": {}}}),
            "invalid port specification: \"0/tcp\"".into(),
        ),
        (
            hc(json!({"PortBindings": {"80/tcp": [{"HostPort": "abc"}]}})),
            "invalid port specification: \"abc\"".into(),
        ),
        (
            hc(json!({"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}})),
            "invalid port specification: \"70000\"".into(),
        ),
        (
            hc(json!({"PortBindings": {"xx/tcp": [{"HostPort": "80"}]}})),
            "invalid port specification: \"xx/tcp\"".into(),
        ),
        (
            hc(json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n",
                                  "CgroupPermissions": "rwx"}]})),
            "invalid device mode: rwx".into(),
        ),
        (
            hc(json!({"Devices": [{"PathOnHost": "/dev/berth-nosuch", "PathInContainer": "/dev/n",
                                  "CgroupPermissions": "rwm"}]})),
            "error gathering device information while adding custom device \"/dev/berth-nosuch\": no such file or directory".into(),
        ),
        (
            hc(json!({ "Binds": [format!("{long_volume}:/data")] })),
            "invalid volume name: 5000 bytes long, the maximum is 255".into(),
        ),
        (
            hc(json!({"Mounts": [{"Type": "volume", "Source": long_volume, "Target": "/data"}]})),
            "invalid volume name: 5000 bytes long, the maximum is 255".into(),
        ),
    ];
    cases.extend([
        (
            hc(json!({"Memory": 16 << 20, "MemorySwap": -5})),
            "invalid MemorySwap (-5): use -1 for unlimited swap".to_string(),
        ),
        (
            json!({"MacAddress": "zz"}),
            "invalid MAC address: zz".into(),
        ),
        (
            hc(json!({"LogConfig": {"Type": "json-file", "Config": {"max-size": "abc"}}})),
            "invalid max-size \"abc\"".into(),
        ),
        (
            hc(json!({"SecurityOpt": ["bogus"]})),
            "invalid --security-opt: \"bogus\"".into(),
        ),
        (
            hc(json!({"SecurityOpt": ["seccomp=not json"]})),
            "Decoding seccomp profile failed*".into(),
        ),
        (
            hc(json!({"Sysctls": {"kernel.foo": "1"}})),
            "sysctl 'kernel.foo' is not whitelisted".into(),
        ),
    ]);
    for key in ["Interval", "Timeout", "StartPeriod", "StartInterval"] {
        cases.push((
            json!({"Healthcheck": {"Test": ["CMD", "true"], key: 999_999}}),
            format!("{key} in Healthcheck cannot be less than 1ms"),
        ));
    }
    cases.push((
        json!({"Healthcheck": {"Test": ["CMD", "true"], "Retries": -1}}),
        "Retries in Healthcheck cannot be negative".into(),
    ));
    cases
}

fn assert_message(got: &str, want: &str, what: &str) {
    match want.strip_suffix('*') {
        Some(prefix) => assert!(got.starts_with(prefix), "{what}: {got:?} !~ {want:?}"),
        None => assert_eq!(got, want, "{what}"),
    }
}

#[test]
fn bad_create_requests_are_refused_up_front() {
    let d = Daemon::with_busybox();
    let volumes_before = d.docker_ok(&["volume", "ls", "-q"]);
    for (extra, want) in bad_creates() {
        let what = extra.to_string();
        let what = &what[..what.len().min(200)];
        let (code, body) = call(
            &d,
            "POST",
            "/containers/create?name=refused",
            Some(&create_body(extra)),
        );
        assert_eq!(code, 400, "{what}: {body}");
        assert_message(&message(&body), &want, what);
        assert_eq!(container_count(&d), 0, "{what} left a container");
    }
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), volumes_before);
    // The name was never taken.
    let (code, body) = call(
        &d,
        "POST",
        "/containers/create?name=refused",
        Some(&create_body(json!({}))),
    );
    assert_eq!(code, 201, "{body}");
}

#[test]
fn edge_values_dockerd_accepts_still_work() {
    let d = Daemon::with_busybox();
    for extra in [
        json!({"HostConfig": {"PidsLimit": -1}}),
        json!({"HostConfig": {"PidsLimit": 0}}),
        json!({"StopTimeout": -1}),
        json!({"Hostname": "h".repeat(64)}),
        json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 0, "Timeout": 1_000_000}}),
        json!({"HostConfig": {"CpusetCpus": "0", "CpusetMems": "0", "CpuShares": 0,
                              "Tmpfs": {"/t": "size=1m,mode=1777,uid=0,noexec"},
                              "Ulimits": [{"Name": "core", "Soft": -1, "Hard": -1}]}}),
        json!({"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}),
    ] {
        let (code, body) = call(
            &d,
            "POST",
            "/containers/create",
            Some(&create_body(extra.clone())),
        );
        assert_eq!(code, 201, "{extra}: {body}");
        let id = serde_json::from_str::<Value>(&body).unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, body) = call(&d, "POST", &format!("/containers/{id}/start"), None);
        assert_eq!(code, 204, "{extra}: start: {body}");
        d.docker_ok(&["wait", &id]);
        d.docker_ok(&["rm", &id]);
    }
}

#[test]
fn devices_are_mapped_with_their_access() {
    let d = Daemon::with_busybox();
    // /dev/kmsg is not among the devices every container may use; opening
    // it for writing (without writing) tests the access.
    let out = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/kmsg:/dev/k:r",
        "busybox",
        "sh",
        "-c",
        "ls -l /dev/k && exec 3>/dev/k",
    ]);
    assert!(!out.success(), "a read-only device was writable: {out:?}");
    assert!(out.stdout.contains("/dev/k"), "{out:?}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/kmsg:/dev/k:rw",
        "busybox",
        "sh",
        "-c",
        "exec 3>/dev/k && echo wrote",
    ]);
    assert!(out.contains("wrote"), "{out}");
}

#[test]
fn cli_shows_the_messages() {
    let d = Daemon::with_busybox();
    for (args, want) in [
        (
            vec!["run", "--cpuset-cpus", "0-999", "busybox", "true"],
            "Requested CPUs are not available",
        ),
        (
            vec!["create", "--device", "/dev/berth-nosuch", "busybox", "true"],
            "error gathering device information while adding custom device \"/dev/berth-nosuch\"",
        ),
        (
            vec!["create", "--tmpfs", "/t:bogus=1", "busybox", "true"],
            "invalid tmpfs option \"bogus\"",
        ),
        (
            vec!["create", "--stop-signal", "SIGFOO", "busybox", "true"],
            "Invalid signal: SIGFOO",
        ),
        (
            vec!["create", "--cgroup-parent", "../x", "busybox", "true"],
            "\"..\" is not allowed",
        ),
        (
            vec!["create", "-w", "rel", "busybox", "true"],
            "the working directory 'rel' is invalid",
        ),
    ] {
        let out = d.docker(&args);
        assert!(!out.success(), "{args:?} succeeded");
        assert!(out.stderr.contains(want), "{args:?}: {}", out.stderr);
    }
    assert_eq!(container_count(&d), 0);
    let out = d.docker(&["network", "create", ".."]);
    assert!(
        out.stderr.contains("invalid network name \"..\""),
        "{}",
        out.stderr
    );
    let long = "v".repeat(5000);
    let out = d.docker(&["volume", "create", &long]);
    assert!(
        out.stderr.contains("invalid volume name: 5000 bytes long"),
        "{}",
        out.stderr
    );
}

#[test]
fn network_volume_archive_update_resize() {
    let d = Daemon::with_busybox();
    for name in [".", ".."] {
        let (code, body) = call(
            &d,
            "POST",
            "/networks/create",
            Some(&json!({ "Name": name }).to_string()),
        );
        assert_eq!(code, 400, "{name}: {body}");
        assert_eq!(
            message(&body),
            format!("invalid network name {name:?}: \".\" and \"..\" are not allowed")
        );
    }
    let (code, body) = call(&d, "GET", "/networks", None);
    assert_eq!(code, 200);
    assert!(!body.contains("\"Name\":\".\""), "{body}");

    let long = "v".repeat(5000);
    let (code, body) = call(
        &d,
        "POST",
        "/volumes/create",
        Some(&json!({ "Name": long }).to_string()),
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (
            400,
            "invalid volume name: 5000 bytes long, the maximum is 255"
        )
    );
    for method in ["GET", "DELETE"] {
        let (code, body) = call(&d, method, &format!("/volumes/{long}"), None);
        assert_eq!(code, 404, "{method}: {body}");
    }

    d.docker_ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let too_long = format!("/{}", "a/".repeat(2100));
    let long_name = format!("/tmp/{}", "n".repeat(300));
    let empty_tar = d.dir.path().join("empty.tar");
    fs::write(&empty_tar, [0u8; 1024]).unwrap();
    for (path, want) in [
        ("/etc%00x", "invalid path: contains a NUL byte".to_string()),
        (
            too_long.as_str(),
            format!(
                "invalid path: {} bytes long, the maximum is 4095",
                too_long.len()
            ),
        ),
        (
            long_name.as_str(),
            "invalid path: a file name is longer than 255 bytes".to_string(),
        ),
    ] {
        let url = format!("/containers/box/archive?path={path}");
        let (code, body) = call(&d, "GET", &url, None);
        assert_eq!(
            (code, message(&body)),
            (400, want.clone()),
            "GET {}",
            &path[..20.min(path.len())]
        );
        let out = d.curl(&[
            "-I",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://localhost/v1.50{url}"),
        ]);
        assert_eq!(out.stdout.trim(), "400", "HEAD");
        let out = d.curl(&[
            "-X",
            "PUT",
            "-w",
            "\n%{http_code}",
            "--data-binary",
            &format!("@{}", empty_tar.display()),
            &format!("http://localhost/v1.50{url}"),
        ]);
        let (body, code) = out.stdout.rsplit_once('\n').unwrap();
        assert_eq!((code, message(body)), ("400", want), "PUT");
    }
    d.docker_ok(&["exec", "box", "ln", "-s", "loop", "/tmp/loop"]);
    let (code, body) = call(&d, "GET", "/containers/box/archive?path=/tmp/loop/x", None);
    assert_eq!(code, 400, "{body}");

    let (code, body) = call(
        &d,
        "POST",
        "/containers/box/update",
        Some(r#"{"CpuQuota":99999999999999}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(message(&body).starts_with("CPU cfs quota can not be larger than"));
    for (update, want) in [
        (
            r#"{"CpuShares":-5}"#,
            "invalid CPU shares (-5): value must be a positive integer",
        ),
        (
            r#"{"CpusetCpus":"0-999"}"#,
            "Requested CPUs are not available - requested 0-999",
        ),
        (r#"{"PidsLimit":-5}"#, "invalid PidsLimit (-5)"),
        (r#"{"MemorySwap":-7}"#, "invalid MemorySwap (-7)"),
        (
            r#"{"RestartPolicy":{"Name":"bogus"}}"#,
            "invalid restart policy: unknown policy 'bogus'",
        ),
    ] {
        let (code, body) = call(&d, "POST", "/containers/box/update", Some(update));
        assert_eq!(code, 400, "{update}: {body}");
        assert!(message(&body).starts_with(want), "{update}: {body}");
    }
    let hc = d.inspect("container", "box")["HostConfig"].clone();
    assert_eq!(
        (hc["CpuQuota"].as_i64(), hc["CpuShares"].as_i64()),
        (Some(0), Some(0))
    );

    let (code, body) = call(&d, "GET", "/containers/box/top?ps_args=-o%00x", None);
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "invalid ps_args: contains a NUL byte")
    );
    let (code, body) = call(
        &d,
        "POST",
        "/containers/box/exec",
        Some(r#"{"Cmd":["tr\u0000ue"]}"#),
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = call(
        &d,
        "POST",
        "/volumes/create",
        Some(r#"{"Name":"t1","DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=abc"}}"#),
    );
    assert_eq!(
        (code, message(&body).as_str()),
        (400, "invalid tmpfs option \"size=abc\": bad value for size")
    );

    // No TTY: nothing to resize, and dockerd answers 200.
    let (code, body) = call(&d, "POST", "/containers/box/resize?h=10&w=80", None);
    assert_eq!(code, 200, "{body}");
    d.docker_ok(&["rm", "-f", "box"]);
}

/// A 512-byte ustar header followed by the data, padded.
fn tar_entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mode = if kind == b'5' { "0000755" } else { "0000644" };
    h[100..107].copy_from_slice(mode.as_bytes());
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn finish_tar(mut entries: Vec<u8>) -> Vec<u8> {
    entries.extend_from_slice(&[0u8; 1024]);
    entries
}

fn sha256(data: &[u8], dir: &Path) -> String {
    let f = dir.join("to-hash");
    fs::write(&f, data).unwrap();
    let out = Command::new("sha256sum")
        .arg(&f)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

#[test]
fn load_refuses_a_layer_written_through_a_symlinked_parent() {
    let d = Daemon::with_busybox();
    let dir = d.dir.path();
    // `link` points outside the layer (to a directory it does not have);
    // `link/file` would have to be written through it.
    let mut layer = tar_entry("link", b'2', "/etc", b"");
    layer.extend(tar_entry("link/file", b'0', "", b"hello"));
    let layer = finish_tar(layer);
    let layer_digest = sha256(&layer, dir);
    let config = json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    })
    .to_string();
    let config_digest = sha256(config.as_bytes(), dir);
    let manifest = json!([{
        "Config": format!("{config_digest}.json"),
        "RepoTags": ["linked:parent"],
        "Layers": [format!("{layer_digest}/layer.tar")],
    }])
    .to_string();
    let mut archive = tar_entry(&format!("{layer_digest}/layer.tar"), b'0', "", &layer);
    archive.extend(tar_entry(
        &format!("{config_digest}.json"),
        b'0',
        "",
        config.as_bytes(),
    ));
    archive.extend(tar_entry("manifest.json", b'0', "", manifest.as_bytes()));
    let archive_path = dir.join("linked.tar");
    fs::write(&archive_path, finish_tar(archive)).unwrap();

    let images_before = d.docker_ok(&["images", "-aq"]);
    let layers = || {
        fs::read_dir(d.data_root.join("overlay/layers"))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    let layers_before = layers();
    let out = d.curl(&[
        "-X",
        "POST",
        "-w",
        "\n%{http_code}",
        "--data-binary",
        &format!("@{}", archive_path.display()),
        "http://localhost/v1.50/images/load?quiet=1",
    ]);
    // As dockerd: 200, the error in the stream.
    let (body, code) = out.stdout.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{body}");
    let last: serde_json::Value =
        serde_json::from_str(body.trim().lines().last().unwrap_or("")).expect("a JSON line");
    assert_eq!(
        last["error"],
        "invalid tar entry \"link\": as a parent directory it passes through a symbolic link or file that does not lead to a directory inside the layer"
    );
    let out = d.docker(&["load", "-i", &archive_path.display().to_string()]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("invalid tar entry \"link\""),
        "{}",
        out.stderr
    );
    assert_eq!(d.docker_ok(&["images", "-aq"]), images_before);
    assert_eq!(layers(), layers_before, "a refused load left a layer");
}
