//! A private registry for a test: Debian's `docker-registry` binary (the
//! CNCF distribution registry) on a free 127.0.0.1 port with its own
//! config and storage dir (never the packaged system service), populated
//! independently of berth with `skopeo`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{busybox_tar, run_with_timeout, spawn_logged, Output};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `user:password` when the registry uses htpasswd basic auth.
    pub credentials: Option<(String, String)>,
    /// The token signing key and certificate, in token mode.
    keys: Option<tempfile::TempDir>,
    child: Option<Child>,
}

/// `docker-registry serve DIR/config.yml`, its output appended to
/// DIR/registry.log.
fn serve(dir: &std::path::Path) -> Child {
    spawn_logged(
        Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.join("config.yml")),
        &dir.join("registry.log"),
    )
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn require(bin: &str, package: &str) {
    assert!(
        std::path::Path::new(bin).exists(),
        "{bin} is missing: install the Debian package {package} (scripts/deps.sh does)"
    );
}

impl Registry {
    /// A plain-HTTP registry without authentication.
    pub fn start() -> Registry {
        Self::start_inner(None, false)
    }

    /// A registry with htpasswd basic auth for one user.
    pub fn with_basic_auth(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user.to_owned(), password.to_owned())), false)
    }

    /// An HTTPS-only registry whose certificate a CA made for the test
    /// signed; the CA is [`Registry::ca_cert`].
    pub fn with_tls() -> Registry {
        Self::start_inner(None, true)
    }

    /// A registry in bearer-token mode, its tokens from a [`TokenServer`]
    /// that accepts `user`/`password`.
    pub fn with_token_auth(user: &str, password: &str) -> (Registry, TokenServer) {
        let keys = tempfile::Builder::new()
            .prefix("berth-token-")
            .tempdir()
            .expect("temp dir");
        let ts = TokenServer::start(keys.path(), user, password);
        let auth = format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
            ts.port,
            keys.path().join("token.crt").display()
        );
        let mut reg = Self::start_with(
            Some((user.to_owned(), password.to_owned())),
            false,
            Some(auth),
        );
        reg.keys = Some(keys);
        (reg, ts)
    }

    /// The test CA's certificate (PEM) of a [`Registry::with_tls`].
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_inner(credentials: Option<(String, String)>, tls: bool) -> Registry {
        Self::start_with(credentials, tls, None)
    }

    fn start_with(
        credentials: Option<(String, String)>,
        tls: bool,
        token_auth: Option<String>,
    ) -> Registry {
        require(REGISTRY_BIN, "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        let mut auth = String::new();
        if let Some(t) = token_auth {
            auth = t;
        } else if let Some((u, p)) = &credentials {
            require("/usr/bin/htpasswd", "apache2-utils");
            let out = Command::new("/usr/bin/htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            fs::write(&file, &out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            );
        }
        let mut tls_conf = String::new();
        if tls {
            make_certs(dir.path());
            tls_conf = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_conf}{auth}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write registry config");
        let child = serve(dir.path());
        let mut reg = Registry {
            dir,
            port,
            credentials,
            keys: None,
            child: Some(child),
        };
        reg.wait_ready();
        reg
    }

    /// Stop the registry and start it again on the same port, storage and
    /// configuration (clients' open connections to it break).
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.child = Some(serve(self.dir.path()));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("docker-registry exited ({st}):\n{}", self.log());
                }
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen within 30s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/repo` for a path such as `test/busybox:1`.
    pub fn image(&self, path: &str) -> String {
        format!("{}/{path}", self.host())
    }

    fn skopeo(&self, args: &[&str]) -> Output {
        require("/usr/bin/skopeo", "skopeo");
        let mut cmd = Command::new("/usr/bin/skopeo");
        cmd.args(args);
        // skopeo keeps no state of its own beyond these.
        cmd.env("HOME", self.dir.path())
            .env("TMPDIR", self.dir.path());
        run_with_timeout(&mut cmd, None, Duration::from_secs(120))
    }

    fn creds_args(&self, flag: &str) -> Vec<String> {
        match &self.credentials {
            Some((u, p)) => vec![flag.to_owned(), format!("{u}:{p}")],
            None => Vec::new(),
        }
    }

    /// Copy the busybox fixture archive into the registry as `path`
    /// (`repo:tag`), with skopeo, not through berth.
    pub fn push_fixture(&self, path: &str) {
        self.push_fixture_with(path, &[]);
    }

    /// As [`Registry::push_fixture`], with more `skopeo copy` options
    /// (e.g. `--format oci`, `--dest-compress-format zstd`).
    pub fn push_fixture_with(&self, path: &str, options: &[&str]) {
        let src = format!("docker-archive:{}", busybox_tar().display());
        let dest = format!("docker://{}", self.image(path));
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        args.extend_from_slice(options);
        let creds = self.creds_args("--dest-creds");
        args.extend(creds.iter().map(String::as_str));
        args.extend([src.as_str(), dest.as_str()]);
        let out = self.skopeo(&args);
        assert!(
            out.success(),
            "skopeo copy failed: {}\n{}",
            out.stderr,
            self.log()
        );
    }

    /// The manifest digest the registry serves for `path`, per skopeo.
    pub fn digest(&self, path: &str) -> String {
        let r = format!("docker://{}", self.image(path));
        let mut args = vec!["inspect", "--tls-verify=false", "--format", "{{.Digest}}"];
        let creds = self.creds_args("--creds");
        args.extend(creds.iter().map(String::as_str));
        args.push(r.as_str());
        let out = self.skopeo(&args);
        assert!(out.success(), "skopeo inspect failed: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// The layer digests the registry serves for `path`, per skopeo.
    pub fn layers(&self, path: &str) -> Vec<String> {
        let r = format!("docker://{}", self.image(path));
        let mut args = vec!["inspect", "--tls-verify=false"];
        let creds = self.creds_args("--creds");
        args.extend(creds.iter().map(String::as_str));
        args.push(r.as_str());
        let out = self.skopeo(&args);
        assert!(out.success(), "skopeo inspect failed: {}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("skopeo JSON");
        v["Layers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }
}

/// A CA and a server certificate for 127.0.0.1 and localhost, with openssl.
fn make_certs(dir: &std::path::Path) {
    require("/usr/bin/openssl", "openssl");
    let run = |args: &[&str]| {
        let out = Command::new("/usr/bin/openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write san.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A token server for a registry in bearer-token mode: answers
/// `GET /token?service=&scope=` with an RS256 JWT (signed with openssl)
/// granting what the scope asks, to `user`/`password` given as basic
/// credentials; anyone else gets 401.
pub struct TokenServer {
    pub port: u16,
    _server: crate::server_thread::ServerThread,
}

fn b64url(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64std(data: &[u8]) -> String {
    let s = b64url(data).replace('-', "+").replace('_', "/");
    let pad = (4 - s.len() % 4) % 4;
    s + &"=".repeat(pad)
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TokenServer {
    /// `dir` holds `token.key` / `token.crt` (made here) for the registry's
    /// `rootcertbundle`.
    pub fn start(dir: &std::path::Path, user: &str, password: &str) -> TokenServer {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        require("/usr/bin/openssl", "openssl");
        let out = Command::new("/usr/bin/openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "2",
                "-subj",
                "/CN=berth test token issuer",
            ])
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let der = Command::new("/usr/bin/openssl")
            .args(["x509", "-in", "token.crt", "-outform", "DER"])
            .current_dir(dir)
            .output()
            .expect("openssl");
        let x5c = b64std(&der.stdout);
        let key = dir.join("token.key");
        let expected = format!("Basic {}", b64std(format!("{user}:{password}").as_bytes()));
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let sign = move |input: &str| -> Vec<u8> {
            let mut child = Command::new("/usr/bin/openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&key)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("openssl dgst");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
            child.wait_with_output().expect("openssl dgst").stdout
        };
        let serve = move |mut c: std::net::TcpStream| -> std::io::Result<()> {
            c.set_nonblocking(false)?;
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if c.read(&mut b)? == 0 {
                    return Ok(());
                }
                head.push(b[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let target = text.split_whitespace().nth(1).unwrap_or("").to_owned();
            let authorized = text.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("authorization") && v.trim() == expected
                })
            });
            if !authorized {
                let body =
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
                write!(
                    c,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                return Ok(());
            }
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
            let mut service = String::new();
            let mut access = Vec::new();
            for kv in query.split('&') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let v = url_decode(v);
                match k {
                    "service" => service = v,
                    "scope" => {
                        let parts: Vec<&str> = v.split(':').collect();
                        if parts.len() == 3 {
                            let actions: Vec<&str> = parts[2].split(',').collect();
                            access.push(serde_json::json!({
                                "type": parts[0], "name": parts[1], "actions": actions,
                            }));
                        }
                    }
                    _ => {}
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": "berth-test-issuer", "sub": "alice", "aud": service,
                "exp": now + 600, "nbf": now - 10, "iat": now - 10,
                "jti": format!("{now}-{}", access.len()), "access": access,
            });
            let input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let token = format!("{input}.{}", b64url(&sign(&input)));
            let body = serde_json::json!({"token": token, "expires_in": 600}).to_string();
            write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            Ok(())
        };
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = serve(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenServer {
            port,
            _server: crate::server_thread::ServerThread::new(stop, thread),
        }
    }
}
