//! What a build fetches over the network, from a static HTTP server the
//! test starts on 127.0.0.1: `remote=` contexts (a tarball, a lone
//! Dockerfile, a git repository with `#ref:subdir`, through the API and
//! docker-py) and `ADD` of URLs with `--checksum`.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use berth_tests::registry::free_port;
use berth_tests::{wait_until, Daemon};

/// `python3 -m http.server` on a directory; killed on drop.
struct StaticServer {
    port: u16,
    child: Child,
}

impl StaticServer {
    fn start(dir: &Path) -> StaticServer {
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m http.server");
        let up = wait_until(std::time::Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "the static server did not listen");
        StaticServer { port, child }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Serves: ctx.tar.gz (a context), Dockerfile (alone), repo.git (a bare
/// repository for git's dumb HTTP transport), data.txt.
fn serve(root: &Path) -> StaticServer {
    let www = root.join("www");
    let src = root.join("src");
    fs::create_dir_all(&www).unwrap();
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("Dockerfile"), "FROM busybox\nCOPY hello /hello\n").unwrap();
    fs::write(src.join("hello"), "from the tarball\n").unwrap();
    fs::write(src.join("sub/Dockerfile"), "FROM busybox\nCOPY . /sub/\n").unwrap();
    fs::write(src.join("sub/inner"), "from the git subdir\n").unwrap();
    sh(root, "tar -C src -czf www/ctx.tar.gz Dockerfile hello");
    fs::write(
        www.join("Dockerfile"),
        "FROM busybox\nRUN echo lone-dockerfile > /lone\n",
    )
    .unwrap();
    fs::write(www.join("data.txt"), "downloaded\n").unwrap();
    sh(
        root,
        "git -C src init -q -b main && git -C src add -A && \
         git -C src -c user.name=t -c user.email=t@t commit -q -m one && \
         git clone -q --bare src www/repo.git && git -C www/repo.git update-server-info",
    );
    StaticServer::start(&www)
}

fn api_build(d: &Daemon, query: &str) -> String {
    let out = d.curl(&["-X", "POST", &format!("http://x/v1.50/build?{query}")]);
    assert!(out.success(), "{out:?}");
    out.stdout
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

#[test]
fn remote_contexts_tarball_dockerfile_and_git() {
    let d = Daemon::with_busybox();
    let server = serve(d.dir.path());

    let out = api_build(
        &d,
        &format!("t=r1&remote={}", urlencode(&server.url("ctx.tar.gz"))),
    );
    assert!(out.contains("Successfully tagged r1:latest"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "r1", "cat", "/hello"]),
        "from the tarball\n"
    );

    let out = api_build(
        &d,
        &format!("t=r2&remote={}", urlencode(&server.url("Dockerfile"))),
    );
    assert!(out.contains("Successfully tagged r2:latest"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "r2", "cat", "/lone"]),
        "lone-dockerfile\n"
    );

    let git = format!("{}#main:sub", server.url("repo.git"));
    let out = api_build(&d, &format!("t=r3&remote={}", urlencode(&git)));
    assert!(out.contains("Successfully tagged r3:latest"), "{out}");
    let ls = d.docker_ok(&["run", "--rm", "r3", "ls", "/sub"]);
    assert_eq!(ls, "Dockerfile\ninner\n");

    // docker-py sends a URL path as remote= (so does docker-compose).
    let script = format!(
        "import docker\nc = docker.from_env()\nimg, _ = c.images.build(path={:?}, tag='r4')\nprint(img.tags)\n",
        server.url("repo.git")
    );
    let out = d.python(&script);
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("r4:latest"), "{out:?}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "r4", "cat", "/hello"]),
        "from the tarball\n"
    );

    // A ref the repository lacks and a server that is not there: errors.
    let bad = format!("{}#nope", server.url("repo.git"));
    let out = d.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        &format!("http://x/v1.50/build?remote={}", urlencode(&bad)),
    ]);
    assert_eq!(out.stdout, "400", "{out:?}");
    let gone = format!("http://127.0.0.1:{}/ctx.tar.gz", free_port());
    let out = d.curl(&[
        "-X",
        "POST",
        &format!("http://x/v1.50/build?remote={}", urlencode(&gone)),
    ]);
    assert!(out.stdout.contains("unable to prepare context"), "{out:?}");
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn add_downloads_urls_with_dockerds_rules() {
    let d = Daemon::with_busybox();
    let server = serve(d.dir.path());
    let sum = Command::new("sha256sum")
        .arg(d.dir.path().join("www/data.txt"))
        .output()
        .unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let ctx = d.dir.path().join("addurl");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM busybox\nADD {u} /d/\nADD --checksum=sha256:{sum} {u} /e\nADD {t} /t/\n",
            u = server.url("data.txt"),
            t = server.url("ctx.tar.gz"),
        ),
    )
    .unwrap();
    d.docker_ok(&["build", "-t", "addurl", &ctx.display().to_string()]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "addurl",
        "sh",
        "-c",
        "cat /d/data.txt /e; stat -c %a /e; ls /t",
    ]);
    // A downloaded archive is not extracted; the file is 0600.
    assert_eq!(out, "downloaded\ndownloaded\n600\nctx.tar.gz\n");

    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM busybox\nADD --checksum=sha256:{} {} /x\n",
            "0".repeat(64),
            server.url("data.txt")
        ),
    )
    .unwrap();
    let out = d.docker(&["build", &ctx.display().to_string()]);
    assert!(!out.success());
    assert!(out.stderr.contains("digest mismatch"), "{out:?}");

    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nCOPY {} /x\n", server.url("data.txt")),
    )
    .unwrap();
    let out = d.docker(&["build", &ctx.display().to_string()]);
    assert!(
        out.stderr.contains("source can't be a URL for COPY"),
        "{out:?}"
    );
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}
