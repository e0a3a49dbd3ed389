//! A private registry for a test: Debian's `docker-registry` binary (the
//! CNCF distribution registry) on a free 127.0.0.1 port with its own
//! config and storage dir (never the packaged system service), populated
//! independently of berth with `skopeo`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{busybox_tar, run_with_timeout, Output};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// `user:password` when the registry uses htpasswd basic auth.
    pub credentials: Option<(String, String)>,
    child: Option<Child>,
}

fn free_port() -> u16 {
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

    /// The test CA's certificate (PEM) of a [`Registry::with_tls`].
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_inner(credentials: Option<(String, String)>, tls: bool) -> Registry {
        require(REGISTRY_BIN, "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        let mut auth = String::new();
        if let Some((u, p)) = &credentials {
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
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{tls_conf}{auth}",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn docker-registry");
        let mut reg = Registry {
            dir,
            port,
            credentials,
            child: Some(child),
        };
        reg.wait_ready();
        reg
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
        let src = format!("docker-archive:{}", busybox_tar().display());
        let dest = format!("docker://{}", self.image(path));
        let mut args = vec!["copy", "--dest-tls-verify=false"];
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
