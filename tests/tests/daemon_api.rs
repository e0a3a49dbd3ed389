//! berthd's server core through the docker CLI and curl: version, info,
//! system df, /_ping headers, version prefixes, 404/501/400 errors, and the
//! response shapes against the Engine API spec.

use berth_tests::{assert_matches_spec, py, Daemon, Output};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// curl `-i` output split into (status line, lower-cased headers, body).
fn http(out: Output) -> (String, Vec<(String, String)>, String) {
    assert!(out.success(), "curl failed: {}", out.stderr);
    let text = out.stdout.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn docker_version_and_info_print_real_figures() {
    let d = Daemon::start();
    let out = d.docker_ok(&["version"]);
    assert!(out.contains("Server: berth"), "{out}");
    assert!(
        out.contains("API version:      1.50 (minimum version 1.24)"),
        "{out}"
    );

    let v = json(&d.docker_ok(&["version", "--format", "{{json .Server}}"]));
    assert_eq!(v["ApiVersion"], "1.50");
    assert_eq!(v["MinAPIVersion"], "1.24");
    assert_eq!(v["Os"], "linux");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["KernelVersion"], kernel.trim());
    assert_eq!(v["Components"][0]["Name"], "Engine");

    let info = d.docker(&["info"]);
    assert!(info.success(), "{}", info.stderr);
    assert!(!info.stderr.contains("ERROR"), "{}", info.stderr);
    let info = json(&d.docker_ok(&["info", "--format", "{{json .}}"]));
    let ncpu = std::thread::available_parallelism().unwrap().get();
    assert_eq!(info["NCPU"], ncpu as u64);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert_eq!(info["MemTotal"], mem_kb * 1024);
    assert_eq!(info["Driver"], "overlay2");
    assert_eq!(info["CgroupDriver"], "cgroupfs");
    let expect_cgroup = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    assert_eq!(info["CgroupVersion"], expect_cgroup);
    assert_eq!(info["DockerRootDir"], d.data_root.display().to_string());
    assert_eq!(info["Images"], 0);
    assert_eq!(info["Containers"], 0);
    assert_eq!(info["DefaultRuntime"], "berth");
    assert!(info["Runtimes"]["berth"]["path"]
        .as_str()
        .unwrap()
        .ends_with("/berth-runtime"));
    // dockerd's default runtime names are listed as aliases of berth's.
    assert_eq!(info["Runtimes"]["runc"], info["Runtimes"]["berth"]);
    assert_eq!(
        info["Runtimes"]["io.containerd.runc.v2"],
        info["Runtimes"]["berth"]
    );
    assert!(info["Warnings"].is_array());
    assert!(info["SecurityOptions"].is_array());

    // The engine ID survives a restart.
    let id = info["ID"].as_str().unwrap().to_string();
    let mut d = d;
    d.stop();
    d.start_again();
    let info2 = json(&d.docker_ok(&["info", "--format", "{{json .}}"]));
    assert_eq!(info2["ID"], id.as_str());
}

#[test]
fn counts_follow_images_and_df_prints() {
    let d = Daemon::start();
    d.load_busybox();
    let info = json(&d.docker_ok(&["info", "--format", "{{json .}}"]));
    assert_eq!(info["Images"], 1);
    let df = d.docker_ok(&["system", "df"]);
    let images_line = df.lines().find(|l| l.starts_with("Images")).unwrap_or("");
    assert!(
        images_line.split_whitespace().nth(1) == Some("1"),
        "system df: {df}"
    );
    d.docker_ok(&["create", "--name", "df-user", "busybox", "true"]);
    let info = json(&d.docker_ok(&["info", "--format", "{{json .}}"]));
    assert_eq!(info["Containers"], 1);
    assert_eq!(info["ContainersStopped"], 1);
    assert_eq!(info["ContainersRunning"], 0);
    let raw = d.curl(&["http://localhost/v1.50/system/df"]).ok();
    let v = json(&raw);
    assert_eq!(v["Images"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["Images"][0]["Containers"], 1, "{raw}");
    assert_eq!(v["Containers"].as_array().map(Vec::len), Some(1));
    assert!(v["LayersSize"].as_u64().unwrap() > 0);
    assert!(v["Containers"].is_array() && v["Volumes"].is_array());
    // The container entries are the container store's ContainerSummary
    // (checked by its own tests); the rest of the document is ours.
    let c = &v["Containers"][0];
    assert!(
        c["Id"].is_string() && c["SizeRw"].is_i64() && c["SizeRootFs"].is_i64(),
        "{c}"
    );
    assert_eq!(c["ImageID"], v["Images"][0]["Id"]);
    let mut ours = v.clone();
    ours["Containers"] = serde_json::json!([]);
    assert_matches_spec("GET", "/system/df", &ours.to_string());
    let only = json(&d.curl(&["http://localhost/system/df?type=volume"]).ok());
    assert!(only.get("Images").is_none() && only["Volumes"].is_array());
    let (status, _, body) = http(d.curl(&["-i", "http://localhost/system/df?type=bogus"]));
    assert!(status.contains(" 400"), "{status}");
    assert!(body.contains("unknown object type: bogus"), "{body}");
    d.docker_ok(&["rm", "df-user"]);
}

#[test]
fn version_and_info_match_the_spec() {
    let d = Daemon::start();
    assert_matches_spec(
        "GET",
        "/version",
        &d.curl(&["http://localhost/version"]).ok(),
    );
    assert_matches_spec(
        "GET",
        "/info",
        &d.curl(&["http://localhost/v1.44/info"]).ok(),
    );
}

#[test]
fn ping_get_and_head_headers() {
    let d = Daemon::start();
    for (args, body) in [(vec!["-i"], "OK"), (vec!["-I"], "")] {
        let mut all = args.clone();
        all.push("http://localhost/_ping");
        let (status, headers, got) = http(d.curl(&all));
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        assert_eq!(got, body);
        assert_eq!(header(&headers, "api-version"), Some("1.50"));
        assert_eq!(header(&headers, "ostype"), Some("linux"));
        assert_eq!(header(&headers, "docker-experimental"), Some("false"));
        assert_eq!(header(&headers, "builder-version"), Some("1"));
        assert_eq!(header(&headers, "pragma"), Some("no-cache"));
        assert!(header(&headers, "cache-control")
            .unwrap_or("")
            .contains("no-cache"));
        assert!(header(&headers, "server")
            .unwrap_or("")
            .starts_with("berth/"));
    }
    let (status, headers, _) = http(d.curl(&["-I", "http://localhost/v1.24/_ping"]));
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(header(&headers, "content-length"), Some("0"));
}

#[test]
fn version_prefixes_and_unknown_paths() {
    let d = Daemon::start();
    let cases = [
        ("GET", "/v1.51/info", "400", "client version 1.51 is too new. Maximum supported API version is 1.50"),
        ("GET", "/v1.23/version", "400", "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"),
        ("GET", "/v2.0/_ping", "400", "client version 2.0 is too new. Maximum supported API version is 1.50"),
        ("GET", "/nothing/here", "404", "page not found"),
        ("GET", "/v1.50/nothing", "404", "page not found"),
        ("POST", "/session", "501", "not implemented: POST /session"),
        ("POST", "/v1.41/swarm/init", "501", "not implemented: POST /swarm/init"),
        ("GET", "/v1.50/plugins/privileges", "501", "not implemented: GET /plugins/privileges"),
    ];
    for (method, path, status, message) in cases {
        let url = format!("http://localhost{path}");
        let (got_status, headers, body) = http(d.curl(&["-i", "-X", method, &url]));
        assert!(
            got_status.contains(&format!(" {status}")),
            "{method} {path}: {got_status}"
        );
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/json"),
            "{path}"
        );
        // Every response, errors included, advertises the API version.
        assert_eq!(header(&headers, "api-version"), Some("1.50"), "{path}");
        assert_eq!(header(&headers, "ostype"), Some("linux"), "{path}");
        assert_eq!(json(&body)["message"], message, "{method} {path}");
    }
    // Old but supported versions route normally.
    for v in ["1.24", "1.41", "1.50"] {
        let out = d.curl(&[&format!("http://localhost/v{v}/version")]).ok();
        assert_eq!(json(&out)["ApiVersion"], "1.50");
    }
    // The CLI pinned to an old API version works; a too-new one is refused.
    let mut cmd = d.docker_command();
    cmd.env("DOCKER_API_VERSION", "1.41")
        .args(["version", "--format", "{{.Server.APIVersion}}"]);
    let out = berth_tests::run_with_timeout(&mut cmd, None, berth_tests::DEFAULT_TIMEOUT);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "1.50");
    let mut cmd = d.docker_command();
    cmd.env("DOCKER_API_VERSION", "1.99").args(["info"]);
    let out = berth_tests::run_with_timeout(&mut cmd, None, berth_tests::DEFAULT_TIMEOUT);
    assert!(!out.success());
    assert!(
        out.stderr.contains("client version 1.99 is too new"),
        "{}",
        out.stderr
    );
}

#[test]
fn malformed_json_and_bad_queries_are_400s() {
    let d = Daemon::start();
    let (status, _, body) = http(d.curl(&[
        "-i",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"Image\": ",
        "http://localhost/containers/create",
    ]));
    assert!(status.contains(" 400"), "{status} {body}");
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{body}"
    );

    let (status, _, body) = http(d.curl(&[
        "-i",
        "-X",
        "POST",
        "-H",
        "Content-Type: text/plain",
        "-d",
        "{}",
        "http://localhost/containers/create",
    ]));
    assert!(status.contains(" 400"), "{status}");
    assert!(
        body.contains("unsupported Content-Type header (text/plain)"),
        "{body}"
    );

    let (status, _, body) = http(d.curl(&["-i", "http://localhost/events?filters=%7Bnope"]));
    assert!(status.contains(" 400"), "{status}");
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid filter"),
        "{body}"
    );
    let (status, _, body) = http(d.curl(&[
        "-i",
        "http://localhost/events?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
    ]));
    assert!(status.contains(" 400"), "{status}");
    assert_eq!(json(&body)["message"], "invalid filter 'colour'");
    let (status, _, body) = http(d.curl(&["-i", "http://localhost/events?since=yesterday"]));
    assert!(status.contains(" 400"), "{status}");
    assert!(body.contains("invalid timestamp"), "{body}");
}

#[test]
fn docker_py_system_calls() {
    let d = Daemon::start();
    let out = py::run_ok(&d, "daemon_system.py");
    assert!(out.stdout.contains("daemon_system ok"), "{}", out.stdout);
}

/// `GET /containers/{id}/json` without a query is answered before the
/// router; with any query it goes through it. Both must answer alike:
/// status, headers that matter and bytes, for every API shape, the
/// unversioned path, a percent-escaped name and the errors.
#[test]
fn hot_inspect_answers_as_the_router_does() {
    let d = Daemon::start();
    d.load_busybox();
    let id = d.docker_ok(&["create", "--name", "hot1", "busybox", "true"]);
    let id = id.trim();
    // A second container sharing the first's leading hex digit makes that
    // digit an ambiguous prefix whichever it is.
    let mut other = String::new();
    for _ in 0..64 {
        let c = d.docker_ok(&["create", "busybox", "true"]);
        if c.trim().as_bytes()[0] == id.as_bytes()[0] {
            other = c.trim().to_string();
            break;
        }
        d.docker_ok(&["rm", c.trim()]);
    }
    assert!(!other.is_empty(), "no second container starting like {id}");
    let ambiguous = &id[..1];
    for (hot, routed) in [
        (
            "/v1.50/containers/hot1/json",
            "/v1.50/containers/hot1/json?size=0",
        ),
        (
            "/v1.44/containers/hot1/json",
            "/v1.44/containers/hot1/json?size=0",
        ),
        (
            "/v1.41/containers/hot1/json",
            "/v1.41/containers/hot1/json?size=0",
        ),
        ("/containers/hot1/json", "/containers/hot1/json?size=0"),
        (
            &format!("/v1.50/containers/{id}/json"),
            "/v1.50/containers/%68ot1/json",
        ),
        (
            "/v1.50/containers/nope/json",
            "/v1.50/containers/nope/json?size=0",
        ),
        (
            &format!("/v1.50/containers/{ambiguous}/json"),
            &format!("/v1.50/containers/{ambiguous}/json?size=0"),
        ),
    ] {
        let (hs, hh, hb) = http(d.curl(&["-i", &format!("http://localhost{hot}")]));
        let (rs, rh, rb) = http(d.curl(&["-i", &format!("http://localhost{routed}")]));
        assert_eq!(hs, rs, "{hot} against {routed}");
        assert_eq!(hb, rb, "{hot} against {routed}");
        for name in ["content-type", "api-version", "server", "ostype"] {
            assert_eq!(header(&hh, name), header(&rh, name), "{name}: {hot}");
        }
    }
    let (status, _, body) = http(d.curl(&["-i", "http://localhost/v1.50/containers/hot1/json"]));
    assert!(status.contains(" 200"), "{status}");
    assert_eq!(json(&body)["Id"], id);
    let (status, _, body) = http(d.curl(&[
        "-i",
        &format!("http://localhost/v1.50/containers/{ambiguous}/json"),
    ]));
    assert!(status.contains(" 400"), "{status} {body}");
    assert!(
        body.contains("multiple IDs found with provided prefix"),
        "{body}"
    );
    let (status, _, body) = http(d.curl(&["-i", "http://localhost/v1.50/containers/nope/json"]));
    assert!(status.contains(" 404"), "{status}");
    assert_eq!(json(&body)["message"], "No such container: nope");
    d.docker_ok(&["rm", "hot1", &other]);
}
