//! `docker search` against an index the test serves on 127.0.0.1 (the v1
//! search API, as Docker Hub answers it): the query and limit it gets, the
//! CLI's table, and dockerd's filters applied by the daemon.

use std::process::{Child, Command, Stdio};

use berth_tests::registry::free_port;
use berth_tests::{wait_until, Daemon};

const INDEX: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse, parse_qs

class H(BaseHTTPRequestHandler):
    def do_GET(self):
        u = urlparse(self.path)
        if u.path != "/v1/search":
            self.send_response(404); self.end_headers(); return
        q = parse_qs(u.query)
        term, n = q["q"][0], int(q["n"][0])
        items = [
            {"name": "tools/" + term, "description": "matches " + term, "star_count": 7, "is_official": False, "is_automated": True},
            {"name": term, "description": "the official one", "star_count": 42, "is_official": True},
            {"name": "few/" + term, "description": "few stars", "star_count": 1, "is_official": False},
        ][:n]
        body = json.dumps({"num_results": len(items), "query": term, "results": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

struct Index {
    port: u16,
    child: Child,
}

impl Index {
    fn start() -> Index {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-c", INDEX, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the fake index");
        let up = wait_until(std::time::Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "the fake index did not listen");
        Index { port, child }
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn search_an_index_with_limits_and_filters() {
    let index = Index::start();
    let d = Daemon::start();
    let term = format!("127.0.0.1:{}/redis", index.port);

    let out = d.docker_ok(&[
        "search",
        "--format",
        "{{.Name}}|{{.StarCount}}|{{.IsOfficial}}",
        &term,
    ]);
    assert_eq!(out, "tools/redis|7|\nredis|42|[OK]\nfew/redis|1|\n");

    let out = d.docker_ok(&["search", "--format", "{{.Name}}", "--limit", "1", &term]);
    assert_eq!(out, "tools/redis\n");

    let out = d.docker_ok(&[
        "search",
        "--format",
        "{{.Name}}",
        "--filter",
        "stars=5",
        &term,
    ]);
    assert_eq!(out, "tools/redis\nredis\n");
    let out = d.docker_ok(&[
        "search",
        "--format",
        "{{.Name}}",
        "--filter",
        "is-official=true",
        &term,
    ]);
    assert_eq!(out, "redis\n");

    // The table the CLI prints by default.
    let out = d.docker_ok(&["search", &term]);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains("the official one"), "{out}");

    let bad = d.docker(&["search", "--filter", "nope=1", &term]);
    assert!(!bad.success());
    assert!(
        bad.stderr.contains("invalid filter 'nope'"),
        "{}",
        bad.stderr
    );
}
