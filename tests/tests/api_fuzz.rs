//! API fuzzer: request bodies and query strings generated from the Engine
//! API spec's schemas (property-based, seeded, bounded), plus raw HTTP
//! abuse over the unix socket. Fails on any 5xx, a connection closed
//! without an answer, a hang, a daemon crash, or a change of containers,
//! images, volumes or networks caused by a request the daemon refused.
//!
//! `BERTH_FUZZ_CASES` sets the cases per endpoint (the CI form is small),
//! `BERTH_FUZZ_SEED` the seed (fixed by default, so CI runs are repeatable;
//! scripts/fuzz.sh passes a fresh one and prints it).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::Daemon;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Map, Value};

/// Longest any single request may take before it counts as a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- HTTP

#[derive(Debug)]
enum Outcome {
    Reply {
        status: u16,
        body: Vec<u8>,
    },
    /// Closed (or reset) before a complete status line and headers.
    NoAnswer(String),
    Hang,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where a chunked body ends in `b`, if it is complete.
fn chunked_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    loop {
        let line_end = i + find(&b[i..], b"\r\n")?;
        let size_hex = std::str::from_utf8(&b[i..line_end]).ok()?;
        let size = usize::from_str_radix(size_hex.split(';').next()?.trim(), 16).ok()?;
        i = line_end + 2;
        if size == 0 {
            // Trailers end with an empty line.
            return Some(i + find(&b[i..], b"\r\n")? + 2);
        }
        i += size + 2;
        if i > b.len() {
            return None;
        }
    }
}

/// Sends `raw`, optionally half-closes, and reads one response.
fn exchange(socket: &Path, raw: &[u8], head: bool, half_close: bool) -> Outcome {
    let mut s = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => return Outcome::NoAnswer(format!("connect: {e}")),
    };
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let _ = s.set_write_timeout(Some(REQUEST_TIMEOUT));
    // A server that answers early (431, 400) may close before we finish
    // writing: the answer is what counts.
    let _ = s.write_all(raw);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(h) = find(&buf, b"\r\n\r\n") {
            let head_text = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
            let status: u16 = head_text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body = &buf[h + 4..];
            let header = |name: &str| {
                head_text.lines().find_map(|l| {
                    l.strip_prefix(&format!("{name}:"))
                        .map(|v| v.trim().to_string())
                })
            };
            let done = if head || status == 101 || status == 204 || status == 304 {
                Some(0)
            } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
                (body.len() >= n).then_some(n)
            } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                chunked_end(body)
            } else {
                None // until EOF
            };
            if let Some(n) = done {
                return Outcome::Reply {
                    status,
                    body: body[..n.min(body.len())].to_vec(),
                };
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::Hang;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => {
                return match find(&buf, b"\r\n\r\n") {
                    Some(h) => Outcome::Reply {
                        status: String::from_utf8_lossy(&buf[..h])
                            .split_whitespace()
                            .nth(1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        body: buf[h + 4..].to_vec(),
                    },
                    None => Outcome::NoAnswer(format!(
                        "EOF after {:?}",
                        String::from_utf8_lossy(&buf[..buf.len().min(200)])
                    )),
                }
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A signal to the test process, not an answer.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Outcome::Hang
            }
            Err(e) => return Outcome::NoAnswer(format!("read: {e}")),
        }
    }
}

fn request_bytes(method: &str, target: &str, body: Option<&[u8]>) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n");
    if let Some(b) = body {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    r.push_str("\r\n");
    let mut out = r.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    out
}

/// A well-formed request that must succeed; its JSON answer.
fn api(d: &Daemon, method: &str, target: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string().into_bytes());
    match exchange(
        &d.socket,
        &request_bytes(method, target, body.as_deref()),
        false,
        false,
    ) {
        Outcome::Reply { status, body } if status < 300 => {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        }
        other => panic!("{method} {target}: {other:?}"),
    }
}

fn percent_encode(s: &[u8]) -> String {
    let mut out = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------- the world

/// The objects the fuzzer works on, made before it starts.
struct World {
    /// The container `fz` (running `sleep`).
    fz: String,
}

fn make_fz(d: &Daemon) -> String {
    d.docker_ok(&["run", "-d", "--name", "fz", "busybox", "sleep", "1000000"])
        .trim()
        .to_string()
}

impl World {
    fn new(d: &Daemon) -> World {
        d.docker_ok(&["volume", "create", "fzvol"]);
        d.docker_ok(&["network", "create", "fznet"]);
        d.docker_ok(&["tag", "busybox", "fzimg:1"]);
        d.docker_ok(&["create", "--name", "fzstopped", "busybox", "true"]);
        World { fz: make_fz(d) }
    }
}

/// Everything a refused request must leave as it was.
fn snapshot(d: &Daemon, w: &World) -> Value {
    let mut containers: Vec<Value> = api(d, "GET", "/containers/json?all=1", None)
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            let nets: Vec<&String> = c["NetworkSettings"]["Networks"]
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            json!([c["Id"], c["Names"], c["Image"], nets])
        })
        .collect();
    containers.sort_by_key(|v| v.to_string());
    let mut images: Vec<Value> = api(d, "GET", "/images/json?all=1", None)
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|i| json!([i["Id"], i["RepoTags"]]))
        .collect();
    images.sort_by_key(|v| v.to_string());
    let mut volumes: Vec<Value> = api(d, "GET", "/volumes", None)["Volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|v| json!([v["Name"], v["Driver"], v["Options"], v["Labels"]]))
        .collect();
    volumes.sort_by_key(|v| v.to_string());
    let mut networks: Vec<Value> = api(d, "GET", "/networks", None)
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|n| json!([n["Id"], n["Name"], n["IPAM"], n["Options"], n["Labels"]]))
        .collect();
    networks.sort_by_key(|v| v.to_string());
    let fz = api(d, "GET", &format!("/containers/{}/json", w.fz), None);
    json!({
        "containers": containers,
        "images": images,
        "volumes": volumes,
        "networks": networks,
        "fz": [fz["Name"], fz["State"]["Status"], fz["HostConfig"], fz["Config"]],
    })
}

/// After an accepted request: back to the world as it was made (new
/// objects removed, `fz` made anew if the request changed it).
fn restore_world(d: &Daemon, w: &mut World, baseline: &Value) {
    let now = snapshot(d, w);
    if now == *baseline {
        return;
    }
    let ids = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e[0].as_str().unwrap_or("").to_string())
            .collect()
    };
    for c in ids(&now, "containers") {
        if !ids(baseline, "containers").contains(&c) && c != w.fz {
            api(d, "DELETE", &format!("/containers/{c}?force=1&v=1"), None);
        }
    }
    if now["fz"] != baseline["fz"] || now["containers"] != baseline["containers"] {
        api(d, "DELETE", &format!("/containers/{}?force=1", w.fz), None);
        w.fz = make_fz(d);
    }
    for v in ids(&now, "volumes") {
        if !ids(baseline, "volumes").contains(&v) {
            api(
                d,
                "DELETE",
                &format!("/volumes/{}?force=1", percent_encode(v.as_bytes())),
                None,
            );
        }
    }
    for n in ids(&now, "networks") {
        if !ids(baseline, "networks").contains(&n) {
            api(d, "DELETE", &format!("/networks/{n}"), None);
        }
    }
    let base_images: Vec<Value> = baseline["images"].as_array().cloned().unwrap_or_default();
    for img in now["images"].as_array().into_iter().flatten() {
        if base_images.contains(img) {
            continue;
        }
        let id = img[0].as_str().unwrap_or("");
        let known = base_images.iter().find(|b| b[0] == img[0]);
        match known {
            // A tag added to a kept image: untag it.
            Some(b) => {
                for t in img[1].as_array().into_iter().flatten() {
                    if !b[1].as_array().is_some_and(|a| a.contains(t)) {
                        let t = t.as_str().unwrap_or("");
                        api(
                            d,
                            "DELETE",
                            &format!("/images/{}", percent_encode(t.as_bytes())),
                            None,
                        );
                    }
                }
            }
            None => {
                api(d, "DELETE", &format!("/images/{id}?force=1"), None);
            }
        }
    }
}

// ------------------------------------------------------------ strategies

/// A value of any type, often one a field does not expect.
fn wild() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(json!(1e308)),
        Just(json!(-0.5)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        wild_string().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["", null, 1])),
        // Nesting deeper than any parser should follow (see `deep`).
        (1usize..=3).prop_map(|k| Value::from(format!("\u{1}DEEP{}", [100, 5000, 100_000][k - 1]))),
    ]
    .boxed()
}

/// Strings that break assumptions: empty, NUL, huge, traversal, unicode,
/// numbers that do not fit, format look-alikes.
fn wild_string() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9]{0,12}",
        2 => any::<String>(),
        1 => "\\PC{0,40}",
        1 => prop::sample::select(vec![
            "", " ", "\0", "a\0b", "../../../../etc/passwd", "/", "//", "/..", ".", "..",
            "-1", "0", "99999999999999999999999", "1e400", "0x10", "NaN", "-9223372036854775809",
            "🙂", "\u{202e}", "%00", "%2e%2e%2f", "\\", "C:\\x", "a:b:c:d", ":", "=", "==",
            "10.0.0.1/33", "::/0", "256.1.1.1", "1:2:3", "sha256:", "sha256:zz",
            "busybox:latest", "fz", "fzvol", "fznet", "\r\nX-Injected: 1", "${HOME}", "$(id)",
            "ctrl-p,ctrl-q", "SIGKILL", "SIGRTMAX+1", "rw,z,Z,rshared", "tmpfs", "none",
        ])
        .prop_map(str::to_string),
        1 => (0usize..3).prop_map(|k| "a".repeat([300, 5000, 70_000][k])),
    ]
    .boxed()
}

fn integer() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (-5i64..5000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => prop::sample::select(vec![
            json!(i64::MAX), json!(i64::MIN), json!(u64::MAX), json!(1i64 << 31),
            json!(1i64 << 32), json!(-1), json!(0), json!(1.5), json!(1e30),
        ]),
    ]
    .boxed()
}

/// The schema behind `$ref`s (by name in `definitions`).
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    for _ in 0..16 {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or("");
                s = &spec["definitions"][name];
            }
            None => break,
        }
    }
    s
}

/// Values shaped by `schema` (with a small share of wild ones at every
/// level), at most `depth` levels of objects deep.
fn from_schema(spec: &Value, schema: &Value, depth: u32) -> BoxedStrategy<Value> {
    let s = resolve(spec, schema);
    let typed = typed_from_schema(spec, s, depth);
    prop_oneof![12 => typed, 1 => wild()].boxed()
}

fn typed_from_schema(spec: &Value, s: &Value, depth: u32) -> BoxedStrategy<Value> {
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        let parts: Vec<BoxedStrategy<Value>> = all
            .iter()
            .map(|p| typed_from_schema(spec, resolve(spec, p), depth))
            .collect();
        return parts
            .prop_map(|vals| {
                let mut m = Map::new();
                for v in vals {
                    if let Value::Object(o) = v {
                        m.extend(o);
                    }
                }
                Value::Object(m)
            })
            .boxed();
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let values = values.clone();
        return prop_oneof![4 => prop::sample::select(values), 1 => wild()].boxed();
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or(
        if s.get("properties").is_some() || s.get("additionalProperties").is_some() {
            "object"
        } else {
            "string"
        },
    );
    match ty {
        "object" if depth == 0 => Just(json!({})).boxed(),
        "object" => object_from_schema(spec, s, depth),
        "array" => {
            let items = s.get("items").cloned().unwrap_or(json!({"type": "string"}));
            prop::collection::vec(from_schema(spec, &items, depth.saturating_sub(1)), 0..4)
                .prop_map(Value::from)
                .boxed()
        }
        "integer" => integer(),
        "number" => prop_oneof![integer(), any::<f64>().prop_map(|f| json!(f))].boxed(),
        "boolean" => any::<bool>().prop_map(Value::from).boxed(),
        _ => wild_string().prop_map(Value::from).boxed(),
    }
}

fn object_from_schema(spec: &Value, s: &Value, depth: u32) -> BoxedStrategy<Value> {
    let mut fields: Vec<BoxedStrategy<Option<(String, Value)>>> = Vec::new();
    for (k, sub) in s
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let key = k.clone();
        let lower = k.to_ascii_lowercase();
        // dockerd matches field names case-insensitively: so must we.
        let name = prop_oneof![9 => Just(key), 1 => Just(lower)];
        fields
            .push(prop::option::weighted(0.35, (name, from_schema(spec, sub, depth - 1))).boxed());
    }
    let extra = match s.get("additionalProperties") {
        Some(Value::Object(_)) | Some(Value::Bool(true)) => {
            let sub = match s.get("additionalProperties") {
                Some(v @ Value::Object(_)) => v.clone(),
                _ => json!({"type": "string"}),
            };
            prop::collection::vec((wild_string(), from_schema(spec, &sub, depth - 1)), 0..3).boxed()
        }
        // Unknown fields, which dockerd ignores.
        _ => prop::collection::vec(("[A-Za-z]{1,10}", wild()), 0..2).boxed(),
    };
    (fields, extra)
        .prop_map(|(fields, extra)| {
            let mut m = Map::new();
            for (k, v) in fields.into_iter().flatten() {
                m.insert(k, v);
            }
            for (k, v) in extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// Every leaf of `v`, depth first, as JSON pointers.
fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                leaves(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// The spec's example body with a few leaves replaced: gets past the
/// first checks (an image, a command) to the deeper ones.
fn mutated_example(example: Value) -> BoxedStrategy<Value> {
    let mut paths = Vec::new();
    leaves(&example, String::new(), &mut paths);
    if paths.is_empty() {
        return Just(example).boxed();
    }
    prop::collection::vec((prop::sample::select(paths), wild()), 1..4)
        .prop_map(move |edits| {
            let mut v = example.clone();
            for (p, x) in edits {
                if let Some(slot) = v.pointer_mut(&p) {
                    *slot = x;
                }
            }
            v
        })
        .boxed()
}

/// A serialized body; placeholders from [`wild`] become deep nesting.
fn render(v: &Value) -> Vec<u8> {
    let mut s = v.to_string();
    for n in [100usize, 5000, 100_000] {
        let token = format!("\"\\u0001DEEP{n}\"");
        if s.contains(&token) {
            let deep = format!("{}{}", "[".repeat(n), "]".repeat(n));
            s = s.replace(&token, &deep);
        }
    }
    s.into_bytes()
}

/// A request body: mostly schema-shaped, sometimes not JSON at all.
fn body_strategy(spec: &Value, schema: &Value, example: Option<Value>) -> BoxedStrategy<Vec<u8>> {
    let shaped = from_schema(spec, schema, 5).prop_map(|v| render(&v));
    let garbage = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"{".to_vec()),
        Just(b"null".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"\"x\"".to_vec()),
        Just(b"\xef\xbb\xbf{}".to_vec()),
        Just(b"{\"a\":1,\"a\":2}".to_vec()),
        Just(b"{\"Image\":\"\xff\xfe\"}".to_vec()),
    ];
    match example {
        Some(ex) => prop_oneof![
            5 => shaped,
            5 => mutated_example(ex).prop_map(|v| render(&v)),
            1 => garbage,
        ]
        .boxed(),
        None => prop_oneof![8 => shaped, 1 => garbage].boxed(),
    }
}

/// A value for a query parameter of the spec's `type`.
fn query_value(param: &Value) -> BoxedStrategy<String> {
    let ty = param
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let name = param.get("name").and_then(Value::as_str).unwrap_or("");
    let typed: BoxedStrategy<String> = match ty {
        "boolean" => prop::sample::select(vec!["true", "false", "1", "0", "yes", "", "TRUE"])
            .prop_map(str::to_string)
            .boxed(),
        "integer" => integer().prop_map(|v| v.to_string()).boxed(),
        _ if name == "filters" => prop_oneof![
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "label",
                    "name",
                    "id",
                    "status",
                    "dangling",
                    "before",
                    "since",
                    "driver",
                    "reference",
                    "until",
                    "ancestor",
                    "network",
                    "volume",
                    "health",
                    "expose",
                    "publish",
                    "exited",
                    "is-task",
                    "scope",
                    "type",
                    "x",
                ]),
                prop_oneof![
                    prop::collection::vec(wild_string(), 0..3).prop_map(|v| json!(v)),
                    prop::collection::btree_map(wild_string(), Just(true), 0..3)
                        .prop_map(|m| json!(m)),
                    wild(),
                ],
                0..3,
            )
            .prop_map(|m| Value::from(Map::from_iter(
                m.into_iter().map(|(k, v)| (k.to_string(), v))
            ))
            .to_string()),
            wild_string(),
        ]
        .boxed(),
        _ => wild_string(),
    };
    prop_oneof![5 => typed, 1 => wild_string()].boxed()
}

/// `?a=..&b=..` from the operation's query parameters, some left out;
/// `fixed` pins parameters (e.g. `follow=false`) that would make an
/// endpoint stream forever.
fn query_strategy(
    op: &Value,
    fixed: &'static [(&'static str, &'static str)],
) -> BoxedStrategy<String> {
    let params: Vec<Value> = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter(|p| !fixed.iter().any(|(k, _)| p["name"] == *k))
        .cloned()
        .collect();
    let parts: Vec<BoxedStrategy<Option<String>>> = params
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("").to_string();
            prop::option::weighted(
                0.5,
                query_value(p).prop_map(move |v| {
                    format!(
                        "{}={}",
                        percent_encode(name.as_bytes()),
                        percent_encode(v.as_bytes())
                    )
                }),
            )
            .boxed()
        })
        .collect();
    parts
        .prop_map(move |parts| {
            let mut q: Vec<String> = parts.into_iter().flatten().collect();
            q.extend(fixed.iter().map(|(k, v)| format!("{k}={v}")));
            if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            }
        })
        .boxed()
}

/// What to put in for `{id}`/`{name}`: the fixtures, often, or names
/// that exist nowhere or try to climb out.
fn path_id(w_fz: &str) -> BoxedStrategy<String> {
    let known = vec![
        w_fz.to_string(),
        w_fz[..12].to_string(),
        "fz".into(),
        "fzstopped".into(),
        "busybox".into(),
        "fzimg:1".into(),
        "fzvol".into(),
        "fznet".into(),
    ];
    prop_oneof![
        4 => prop::sample::select(known),
        1 => wild_string().prop_map(|s| percent_encode(s.as_bytes())),
        1 => prop::sample::select(vec![
            "..%2F..%2Fetc", "%2e%2e", "..", "%00", "%ff%fe", "a%2Fb", "sha256%3A", "x%20y",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

/// Only the well-known private range of this test for any address or
/// subnet a network body names, so no generated network can take over a
/// route of the host (a bridge on 0.0.0.0/1 would).
fn confine_addresses(v: &mut Value, slot: u8) {
    match v {
        Value::String(s) => {
            let addr_like = !s.is_empty()
                && s.chars().any(|c| c.is_ascii_digit())
                && s.chars()
                    .all(|c| c.is_ascii_hexdigit() || ".:/".contains(c))
                && (s.contains('.') || s.contains(':'));
            if addr_like {
                *s = if s.contains(':') {
                    format!("fd12:3456:{slot:x}::/64")
                } else if s.contains('/') {
                    format!("10.124.{slot}.0/24")
                } else {
                    format!("10.124.{slot}.7")
                };
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| confine_addresses(x, slot)),
        Value::Object(m) => {
            // A bridge name of the host's (or another test's) is never
            // named: fuzzed names get a prefix of their own.
            for (k, x) in m.iter_mut() {
                if k.to_ascii_lowercase().contains("bridge.name") {
                    if let Value::String(s) = x {
                        *s = format!("fz{s}");
                    }
                }
                confine_addresses(x, slot);
            }
        }
        _ => {}
    }
}

// --------------------------------------------------------------- checks

struct Fuzz {
    d: Daemon,
    w: World,
    baseline: Value,
    statuses: BTreeMap<u16, u64>,
    requests: u64,
    /// An accepted request may end `fz` a moment later (a signal): make
    /// it anew after every accepted request, before comparing.
    renew_fz_after_accept: bool,
}

impl Fuzz {
    fn new() -> Fuzz {
        let d = Daemon::with_busybox();
        let w = World::new(&d);
        let baseline = snapshot(&d, &w);
        Fuzz {
            d,
            w,
            baseline,
            statuses: BTreeMap::new(),
            requests: 0,
            renew_fz_after_accept: false,
        }
    }

    /// Sends one request and checks the answer and the world after it.
    fn check(&mut self, what: &str, raw: &[u8], head: bool) -> Result<u16, String> {
        self.requests += 1;
        let outcome = exchange(&self.d.socket, raw, head, false);
        if self.d.exited() {
            let log = berth_tests::tail(&self.d.log(), 40);
            self.d.start_again();
            return Err(format!("berthd died on {what}:\n{log}"));
        }
        let (status, body) = match outcome {
            Outcome::Reply { status, body } => (status, body),
            Outcome::Hang => return Err(format!("no answer within {REQUEST_TIMEOUT:?}: {what}")),
            Outcome::NoAnswer(e) => return Err(format!("closed without an answer ({e}): {what}")),
        };
        *self.statuses.entry(status).or_default() += 1;
        let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        // dockerd's own answer to swarm features on a node without swarm.
        let swarm = status == 503 && text.contains("not a swarm manager");
        if (status >= 500 && !swarm) || status < 100 {
            return Err(format!("{status} for {what}: {text}"));
        }
        // 414 and 431 come from the HTTP layer, before any handler, with
        // no body (Go's net/http, under dockerd, does the same).
        if (400..500).contains(&status) && !head && status != 414 && status != 431 {
            let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if !msg["message"].is_string() {
                return Err(format!(
                    "{status} without a JSON message for {what}: {text}"
                ));
            }
        }
        if status < 300 && self.renew_fz_after_accept {
            api(
                &self.d,
                "DELETE",
                &format!("/containers/{}?force=1", self.w.fz),
                None,
            );
            self.w.fz = make_fz(&self.d);
            self.baseline = snapshot(&self.d, &self.w);
        }
        let now = snapshot(&self.d, &self.w);
        if now != self.baseline {
            if (400..500).contains(&status) {
                let diff = describe_diff(&self.baseline, &now);
                restore_world(&self.d, &mut self.w, &self.baseline.clone());
                self.baseline = snapshot(&self.d, &self.w);
                return Err(format!(
                    "refused ({status}: {text}) but changed {diff}: {what}"
                ));
            }
            restore_world(&self.d, &mut self.w, &self.baseline.clone());
            self.baseline = snapshot(&self.d, &self.w);
        }
        Ok(status)
    }

    fn runner(&self, name: &str) -> TestRunner {
        let cases: u32 = std::env::var("BERTH_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40);
        let seed: u64 = std::env::var("BERTH_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0x6265_7274_6866_7a7a);
        // One stream per endpoint, so adding one does not change the others.
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        for (i, b) in name.bytes().enumerate() {
            bytes[8 + i % 24] ^= b;
        }
        let config = Config {
            cases,
            max_shrink_iters: 64,
            failure_persistence: None,
            ..Config::default()
        };
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
    }
}

fn describe_diff(a: &Value, b: &Value) -> String {
    let mut out = Vec::new();
    for k in ["containers", "images", "volumes", "networks", "fz"] {
        if a[k] != b[k] {
            out.push(format!("{k}: {} -> {}", a[k], b[k]));
        }
    }
    out.join("; ")
}

fn spec() -> Value {
    let text = std::fs::read_to_string(berth_tests::api_spec()).expect("read the API spec");
    serde_yaml::from_str(&text).expect("parse the API spec")
}

fn operation<'a>(spec: &'a Value, path: &str, method: &str) -> &'a Value {
    let op = &spec["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not in the spec");
    op
}

fn body_schema(op: &Value) -> (Value, Option<Value>) {
    let p = op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["in"] == "body")
        .expect("a body parameter");
    (p["schema"].clone(), p["schema"].get("example").cloned())
}

/// A request body, shown as text in failure reports.
#[derive(Clone)]
struct Body(Vec<u8>);

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = &self.0;
        write!(f, "{:?}", String::from_utf8_lossy(&b[..b.len().min(600)]))
    }
}

fn run(
    f: &RefCell<Fuzz>,
    name: &str,
    strategy: BoxedStrategy<(String, String, Vec<u8>)>,
) -> String {
    let mut runner = f.borrow().runner(name);
    let before = f.borrow().requests;
    let strategy = strategy.prop_map(|(m, t, b)| (m, Body(t.into_bytes()), Body(b)));
    let result = runner.run(&strategy, |(method, Body(target), Body(body))| {
        let target = String::from_utf8_lossy(&target).into_owned();
        let raw = if method == "GET" || method == "HEAD" || body.is_empty() && method == "DELETE" {
            request_bytes(&method, &target, None)
        } else {
            request_bytes(&method, &target, Some(&body))
        };
        let what = format!(
            "{method} {} {}",
            &target.chars().take(300).collect::<String>(),
            String::from_utf8_lossy(&body[..body.len().min(600)])
        );
        f.borrow_mut()
            .check(&what, &raw, method == "HEAD")
            .map(|_| ())
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    format!("{name}: {}", f.borrow().requests - before)
}

#[test]
fn generated_requests_never_fail_the_daemon() {
    let spec = spec();
    let f = RefCell::new(Fuzz::new());
    let fz = f.borrow().w.fz.clone();
    let slot = f.borrow().d.network.as_ref().map(|n| n.slot).unwrap_or(1);
    let mut figures = Vec::new();
    let t0 = Instant::now();

    // Bodies of the main write endpoints.
    let bodies: Vec<(&str, &str, &str, BoxedStrategy<String>)> = vec![
        (
            "/containers/create",
            "post",
            "containers create",
            prop_oneof![
                3 => Just(String::new()),
                1 => wild_string().prop_map(|n| format!("?name={}", percent_encode(n.as_bytes()))),
            ]
            .prop_map(|q| format!("/v1.50/containers/create{q}"))
            .boxed(),
        ),
        (
            "/containers/{id}/update",
            "post",
            "containers update",
            Just(format!("/v1.50/containers/{fz}/update")).boxed(),
        ),
        (
            "/containers/{id}/exec",
            "post",
            "exec create",
            Just("/v1.50/containers/fz/exec".to_string()).boxed(),
        ),
        (
            "/networks/create",
            "post",
            "networks create",
            Just("/v1.50/networks/create".to_string()).boxed(),
        ),
        (
            "/networks/{id}/connect",
            "post",
            "networks connect",
            Just("/v1.50/networks/fznet/connect".to_string()).boxed(),
        ),
        (
            "/networks/{id}/disconnect",
            "post",
            "networks disconnect",
            Just("/v1.50/networks/fznet/disconnect".to_string()).boxed(),
        ),
        (
            "/volumes/create",
            "post",
            "volumes create",
            Just("/v1.50/volumes/create".to_string()).boxed(),
        ),
    ];
    for (path, method, name, target) in bodies {
        let op = operation(&spec, path, method);
        let (schema, example) = body_schema(op);
        let net = path.starts_with("/networks/create");
        // Mostly name what exists, so the checks past the lookup run too.
        let known_field = match path {
            "/containers/create" => Some(("Image", "busybox")),
            "/networks/{id}/connect" | "/networks/{id}/disconnect" => Some(("Container", "fz")),
            _ => None,
        };
        let strategy = (
            target,
            body_strategy(&spec, &schema, example),
            prop::bool::weighted(0.8),
        )
            .prop_map(move |(t, mut b, use_known)| {
                if let Ok(mut v) = serde_json::from_slice::<Value>(&b) {
                    if net {
                        confine_addresses(&mut v, slot);
                    }
                    if let (Some((k, known)), Value::Object(m)) = (known_field, &mut v) {
                        if use_known {
                            m.insert(k.to_string(), json!(known));
                        }
                    }
                    b = render(&v);
                }
                ("POST".to_string(), t, b)
            })
            .boxed();
        figures.push(run(&f, name, strategy));
    }

    // Query strings (and a config body) of commit and tag.
    let commit = operation(&spec, "/commit", "post");
    let (schema, _) = body_schema(commit);
    let strategy = (
        query_strategy(commit, &[]),
        body_strategy(&spec, &schema, None),
    )
        .prop_map(|(q, b)| ("POST".to_string(), format!("/v1.50/commit{q}"), b))
        .boxed();
    figures.push(run(&f, "commit", strategy));
    let tag = operation(&spec, "/images/{name}/tag", "post");
    let strategy = (path_id(&fz), query_strategy(tag, &[]))
        .prop_map(|(id, q)| {
            (
                "POST".to_string(),
                format!("/v1.50/images/{id}/tag{q}"),
                Vec::new(),
            )
        })
        .boxed();
    figures.push(run(&f, "images tag", strategy));

    // Every read endpoint of the resources berth serves, with generated
    // query strings and IDs (streams pinned to end).
    let reads: &[(&str, &[(&str, &str)])] = &[
        ("/containers/json", &[]),
        ("/containers/{id}/json", &[]),
        ("/containers/{id}/top", &[]),
        ("/containers/{id}/logs", &[("follow", "false")]),
        ("/containers/{id}/changes", &[]),
        ("/containers/{id}/stats", &[("stream", "false")]),
        ("/containers/{id}/archive", &[]),
        ("/images/json", &[]),
        ("/images/{name}/json", &[]),
        ("/images/{name}/history", &[]),
        ("/system/df", &[]),
        ("/volumes", &[]),
        ("/volumes/{name}", &[]),
        ("/networks", &[]),
        ("/networks/{id}", &[]),
        ("/exec/{id}/json", &[]),
    ];
    for (path, fixed) in reads {
        let op = operation(&spec, path, "get");
        let name = format!("GET {path}");
        let path = path.to_string();
        let strategy = (path_id(&fz), query_strategy(op, fixed))
            .prop_map(move |(id, q)| {
                let p = path.replace("{id}", &id).replace("{name}", &id);
                ("GET".to_string(), format!("/v1.50{p}{q}"), Vec::new())
            })
            .boxed();
        figures.push(run(&f, &name, strategy));
    }
    // Container operations whose query strings are checked: a refusal
    // must leave `fz` as it was; an accepted one is undone.
    let ops: &[(&str, &str)] = &[
        ("/containers/{id}/resize", "post"),
        ("/containers/{id}/kill", "post"),
        ("/containers/{id}/rename", "post"),
        ("/containers/{id}/restart", "post"),
        ("/containers/{id}/wait", "post"),
        ("/images/{name}", "delete"),
        ("/volumes/{name}", "delete"),
    ];
    for (path, method) in ops {
        let op = operation(&spec, path, method);
        let is_kill = path.ends_with("/kill");
        let path = path.to_string();
        let m = method.to_ascii_uppercase();
        // wait on a running container would (rightly) wait: only on the
        // exited one.
        let ids = if path.ends_with("/wait") {
            Just("fzstopped".to_string()).boxed()
        } else {
            path_id(&fz)
        };
        let fixed: &'static [(&str, &str)] = if path.ends_with("/restart") {
            &[("t", "0")]
        } else {
            &[]
        };
        let strategy = (ids, query_strategy(op, fixed))
            .prop_map(move |(id, q)| {
                let p = path.replace("{id}", &id).replace("{name}", &id);
                (m.clone(), format!("/v1.50{p}{q}"), Vec::new())
            })
            .boxed();
        f.borrow_mut().renew_fz_after_accept = is_kill;
        figures.push(run(&f, &format!("{method} {}", op_name(op)), strategy));
        f.borrow_mut().renew_fz_after_accept = false;
    }

    let f = f.into_inner();
    eprintln!("api fuzz: requests per endpoint: {}", figures.join(", "));
    berth_tests::report_figures(&format!(
        "api fuzz: {} generated requests to {} endpoints in {:.0?}, answers by status {:?}: no 5xx, crash, hang or change from a refused request",
        f.requests,
        figures.len(),
        t0.elapsed(),
        f.statuses
    ));
}

fn op_name(op: &Value) -> String {
    op["operationId"].as_str().unwrap_or("?").to_string()
}

// ------------------------------------------------------------ raw abuse

/// One malformed or hostile exchange and what must come of it.
struct Abuse {
    what: &'static str,
    raw: Vec<u8>,
    half_close: bool,
    /// None: any 4xx answer, or a close (the request was not complete).
    /// Some(true): a 4xx answer is due.
    answer_due: bool,
}

fn abuse_cases() -> Vec<Abuse> {
    let mut v = Vec::new();
    let mut add = |what: &'static str, raw: Vec<u8>, half_close: bool, answer_due: bool| {
        v.push(Abuse {
            what,
            raw,
            half_close,
            answer_due,
        })
    };
    let plain = |s: &str| s.as_bytes().to_vec();
    add(
        "garbage request line",
        plain("GARBAGE\r\n\r\n"),
        false,
        true,
    );
    add(
        "binary noise",
        (0..=255u8).cycle().take(4096).collect(),
        false,
        true,
    );
    add(
        "unknown HTTP version",
        plain("GET /_ping HTTP/9.9\r\nHost: x\r\n\r\n"),
        false,
        true,
    );
    add(
        "no Host, HTTP/1.0",
        plain("GET /_ping HTTP/1.0\r\n\r\n"),
        false,
        true,
    );
    add(
        "huge header value",
        format!(
            "GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(1 << 20)
        )
        .into_bytes(),
        false,
        true,
    );
    add(
        "ten thousand headers",
        format!(
            "GET /_ping HTTP/1.1\r\nHost: x\r\n{}\r\n",
            (0..10_000)
                .map(|i| format!("X-{i}: v\r\n"))
                .collect::<String>()
        )
        .into_bytes(),
        false,
        true,
    );
    add(
        "very long URI",
        format!(
            "GET /containers/{}/json HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(200_000)
        )
        .into_bytes(),
        false,
        true,
    );
    add(
        "header with NUL and invalid UTF-8",
        b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-A: a\x00\xff\xfe\r\n\r\n".to_vec(),
        false,
        true,
    );
    add(
        "bad chunk size",
        plain("POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n"),
        false,
        true,
    );
    add(
        "chunk longer than announced",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"Name\":\"chunky\"}\r\n0\r\n\r\n"),
        true,
        false,
    );
    add(
        "chunked body cut off",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"Na"),
        true,
        false,
    );
    add(
        "truncated body",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Name\":\"cut\""),
        true,
        false,
    );
    add(
        "Content-Length not a number",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}"),
        false,
        true,
    );
    add(
        "negative Content-Length",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}"),
        false,
        true,
    );
    add(
        "two different Content-Lengths",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\n{}"),
        false,
        true,
    );
    add(
        "Content-Length and chunked",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        false,
        false,
    );
    add(
        "invalid UTF-8 in the path",
        b"GET /containers/\xff\xfe/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        false,
        true,
    );
    add(
        "percent-encoded invalid UTF-8",
        plain("GET /containers/%ff%fe/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        false,
        true,
    );
    add(
        "NUL in an ID",
        plain("GET /containers/fz%00/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        false,
        true,
    );
    add("traversal in a container ID", plain("GET /containers/..%2F..%2F..%2Fetc/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false, true);
    add(
        "traversal in a volume name",
        plain(
            "DELETE /volumes/..%2F..%2F..%2Ftmp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        false,
        true,
    );
    add(
        "traversal in a volume name (dots)",
        plain("GET /volumes/.. HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        false,
        true,
    );
    add("traversal in an image name", plain("GET /images/..%2F..%2Fimage%2Freferences.json/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false, true);
    add(
        "traversal in an exec ID",
        plain("GET /exec/..%2F..%2Fshims/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        false,
        true,
    );
    add(
        "traversal in a network ID",
        plain(
            "DELETE /networks/..%2F..%2Fnetworks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        false,
        true,
    );
    add("absurd limit", plain("GET /containers/json?all=1&limit=99999999999999999999999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false, true);
    add("broken filters JSON", plain("GET /containers/json?filters=%7B%7B%7B HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false, true);
    add("absurd log window", plain("GET /containers/fz/logs?stdout=1&tail=-99999999999&since=1e400&until=-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false, true);
    add("absurd resize", plain("POST /containers/fz/resize?h=-1&w=999999999999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false, true);
    add("absurd stop timeout", plain("POST /containers/fzstopped/stop?t=99999999999999999999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), false, true);
    add(
        "bad API version",
        plain("GET /v0.1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        false,
        true,
    );
    add(
        "huge API version",
        plain(
            "GET /v99999999999999999999.1/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ),
        false,
        true,
    );
    add(
        "unknown method",
        plain("BREW /containers/json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        false,
        true,
    );
    add("upgrade on a plain endpoint", plain("POST /containers/fz/stop?t=0x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"), false, true);
    add(
        "form body for a JSON endpoint",
        plain("POST /volumes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nName=x"),
        false,
        true,
    );
    add(
        "JSON with invalid UTF-8",
        request_bytes("POST", "/volumes/create", Some(b"{\"Name\":\"\xff\xfe\"}")),
        false,
        true,
    );
    let deep = format!(
        "{{\"Image\":\"busybox\",\"Labels\":{}{}}}",
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    add(
        "200,000 levels of nesting",
        format!(
            "POST /containers/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{deep}",
            deep.len()
        )
        .into_bytes(),
        false,
        true,
    );
    let big = format!(
        "{{\"Name\":\"big\",\"Labels\":{{\"a\":\"{}\"}},\"Driver\":\"nope\"}}",
        "x".repeat(8 << 20)
    );
    add(
        "8 MiB JSON body",
        format!(
            "POST /volumes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        )
        .into_bytes(),
        false,
        true,
    );
    add(
        "pipelined requests",
        plain("GET /containers/nosuch/json HTTP/1.1\r\nHost: x\r\n\r\nGET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        false,
        true,
    );
    v
}

#[test]
fn raw_http_abuse_is_refused_cleanly() {
    let mut f = Fuzz::new();
    let mut failures = Vec::new();
    for case in abuse_cases() {
        f.requests += 1;
        let t = Instant::now();
        let outcome = exchange(&f.d.socket, &case.raw, false, case.half_close);
        if t.elapsed() > Duration::from_secs(2) {
            eprintln!("raw http abuse: {} took {:.1?}", case.what, t.elapsed());
        }
        if f.d.exited() {
            let log = berth_tests::tail(&f.d.log(), 40);
            f.d.start_again();
            failures.push(format!("{}: berthd died:\n{log}", case.what));
            continue;
        }
        let mut accepted = false;
        match outcome {
            Outcome::Reply { status, body } => {
                *f.statuses.entry(status).or_default() += 1;
                accepted = status < 300;
                if !(200..500).contains(&status) {
                    failures.push(format!(
                        "{}: {status} {}",
                        case.what,
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
            }
            Outcome::Hang => failures.push(format!(
                "{}: no answer within {REQUEST_TIMEOUT:?}",
                case.what
            )),
            Outcome::NoAnswer(e) if case.answer_due => {
                failures.push(format!("{}: closed without an answer ({e})", case.what))
            }
            Outcome::NoAnswer(_) => {}
        }
        let now = snapshot(&f.d, &f.w);
        if now != f.baseline {
            if !accepted {
                failures.push(format!(
                    "{}: refused but changed {}",
                    case.what,
                    describe_diff(&f.baseline, &now)
                ));
            }
            restore_world(&f.d, &mut f.w, &f.baseline.clone());
            f.baseline = snapshot(&f.d, &f.w);
        }
    }
    // Still serving.
    assert!(f.d.ping(), "berthd stopped answering");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    berth_tests::report_figures(&format!(
        "raw http abuse: {} exchanges, answers by status {:?}, all refused cleanly",
        f.requests, f.statuses
    ));
}
