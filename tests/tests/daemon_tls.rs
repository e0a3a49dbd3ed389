//! TLS on the API's TCP listeners: with --tlsverify only clients holding a
//! certificate signed by the CA get in (docker CLI, docker-py); clients
//! without one, with another CA's, or speaking plain HTTP are refused; plain
//! TCP on a non-loopback address is refused at start unless --tls=false.
//! Certificates are made here with openssl.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_tests::{bin_path, run_with_timeout, venv_python, Daemon, DaemonOptions, Output};

const TIMEOUT: Duration = Duration::from_secs(60);

fn openssl(dir: &Path, args: &[&str]) {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir).args(args);
    let out = run_with_timeout(&mut cmd, None, TIMEOUT);
    assert!(out.success(), "openssl {args:?}: {}", out.stderr);
}

/// A CA in `dir` (ca.pem, ca-key.pem).
fn make_ca(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=berth-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// `dir/cert.pem` + `dir/key.pem` signed by the CA in `ca_dir`, for
/// `usage` serverAuth or clientAuth; `dir/ca.pem` is the CA (the layout
/// DOCKER_CERT_PATH wants).
fn make_leaf(ca_dir: &Path, dir: &Path, usage: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("ext.cnf"),
        format!(
            "basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.csr",
            "-subj",
            "/CN=berth-test",
        ],
    );
    let ca = ca_dir.join("ca.pem");
    let ca_key = ca_dir.join("ca-key.pem");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "req.csr",
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-set_serial",
            "0x4242",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    );
    std::fs::copy(&ca, dir.join("ca.pem")).unwrap();
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server: PathBuf,
    client: PathBuf,
    /// A client certificate from a CA berthd does not trust.
    stranger: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let other_ca = dir.path().join("other-ca");
    make_ca(&ca);
    make_ca(&other_ca);
    let server = dir.path().join("server");
    let client = dir.path().join("client");
    let stranger = dir.path().join("stranger");
    make_leaf(&ca, &server, "serverAuth");
    make_leaf(&ca, &client, "clientAuth");
    make_leaf(&other_ca, &stranger, "clientAuth");
    Pki {
        _dir: dir,
        ca,
        server,
        client,
        stranger,
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

fn tls_daemon(pki: &Pki, port: u16) -> Daemon {
    let d = Daemon::start_with(DaemonOptions {
        args: vec![
            "-H".into(),
            format!("tcp://127.0.0.1:{port}"),
            "--tlsverify".into(),
            "--tlscacert".into(),
            path(pki.ca.join("ca.pem")),
            "--tlscert".into(),
            path(pki.server.join("cert.pem")),
            "--tlskey".into(),
            path(pki.server.join("key.pem")),
        ],
        ..Default::default()
    });
    d.load_busybox();
    d
}

/// The docker CLI over TCP with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
fn docker_tls(d: &Daemon, port: u16, certs: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = d.docker_command();
    cmd.env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", certs)
        .args(args);
    run_with_timeout(&mut cmd, stdin, TIMEOUT)
}

fn curl(args: &[&str]) -> Output {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]).args(args);
    run_with_timeout(&mut cmd, None, TIMEOUT)
}

#[test]
fn tlsverify_admits_clients_with_a_ca_signed_certificate() {
    let pki = pki();
    let port = free_port();
    let d = tls_daemon(&pki, port);

    let out = docker_tls(
        &d,
        port,
        &pki.client,
        &["version", "--format", "{{.Server.APIVersion}}"],
        None,
    );
    assert!(
        out.success(),
        "{}\n{}",
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
    assert_eq!(out.stdout.trim(), "1.50");

    // A hijacked stream over TLS: stdin reaches the container, its EOF
    // (the client's half-close) ends it and the output comes back.
    let out = docker_tls(
        &d,
        port,
        &pki.client,
        &["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"],
        Some(b"over tls\n"),
    );
    assert!(
        out.success(),
        "{}\n{}",
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
    assert_eq!(out.stdout, "over tls\ndone\n");

    // docker-py with TLSConfig.
    let script = r#"
import os, docker
from docker.tls import TLSConfig
c = os.environ["CERTS"]
tls = TLSConfig(client_cert=(c + "/cert.pem", c + "/key.pem"), ca_cert=c + "/ca.pem", verify=True)
client = docker.DockerClient(base_url="https://127.0.0.1:" + os.environ["PORT"], tls=tls)
assert client.ping()
print(client.containers.run("busybox", ["echo", "py-tls"], remove=True).decode().strip())
"#;
    let mut cmd = Command::new(venv_python());
    cmd.env("CERTS", &pki.client)
        .env("PORT", port.to_string())
        .env_remove("DOCKER_HOST")
        // requests lets these override the session's CA (TLSConfig's).
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .arg("-c")
        .arg(script);
    let out = run_with_timeout(&mut cmd, None, TIMEOUT);
    assert!(
        out.success(),
        "{}\n{}",
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
    assert_eq!(out.stdout.trim(), "py-tls");

    // curl with the client certificate works too: the refusals below are
    // about the certificate, not the tool.
    let url = format!("https://127.0.0.1:{port}/_ping");
    let ca = path(pki.ca.join("ca.pem"));
    let cert = path(pki.client.join("cert.pem"));
    let key = path(pki.client.join("key.pem"));
    let out = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]);
    assert_eq!(out.stdout, "OK", "{}", out.stderr);
}

#[test]
fn tlsverify_refuses_other_clients_before_any_request() {
    let pki = pki();
    let port = free_port();
    let d = tls_daemon(&pki, port);
    let url = format!("https://127.0.0.1:{port}/_ping");
    let ca = path(pki.ca.join("ca.pem"));

    let refused = |what: &str, out: Output| {
        assert!(
            !out.success() && !out.stdout.contains("OK"),
            "{what} got in: {} {}",
            out.stdout,
            out.stderr
        );
    };
    refused("no certificate", curl(&["--cacert", &ca, &url]));
    let cert = path(pki.stranger.join("cert.pem"));
    let key = path(pki.stranger.join("key.pem"));
    refused(
        "another CA's certificate",
        curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]),
    );
    refused(
        "plain HTTP",
        curl(&[&format!("http://127.0.0.1:{port}/_ping")]),
    );
    // The docker CLI with the stranger's certificate is refused as well.
    let out = docker_tls(&d, port, &pki.stranger, &["version"], None);
    assert!(!out.success(), "{}", out.stdout);
    assert!(
        out.stdout.contains("Client:") && !out.stdout.contains("Server:"),
        "{}",
        out.stdout
    );

    // Each was turned away in the handshake, before HTTP.
    let log = d.log();
    assert!(log.matches("TLS handshake refused").count() >= 4, "{log}");
    // The daemon keeps serving.
    assert!(d.ping());
}

/// Runs berthd to completion (it must fail at start).
fn berthd_fails(dir: &Path, extra: &[&str]) -> Output {
    let cfg = dir.join("daemon.json");
    if !cfg.exists() {
        std::fs::write(&cfg, "{}").unwrap();
    }
    let mut cmd = Command::new(bin_path("berthd"));
    cmd.arg("-H")
        .arg(format!("unix://{}", dir.join("s.sock").display()))
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("berthd.pid"))
        .arg("--config-file")
        .arg(&cfg)
        .args(extra);
    let out = run_with_timeout(&mut cmd, None, Duration::from_secs(30));
    assert!(
        !out.success(),
        "berthd started but should not have:\n{}",
        out.stderr
    );
    assert!(
        !dir.join("s.sock").exists(),
        "a failed start left its socket"
    );
    out
}

#[test]
fn plain_tcp_on_a_non_loopback_address_is_refused_unless_tls_false() {
    berth_tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("tcp://0.0.0.0:{port}");
    let out = berthd_fails(dir.path(), &["-H", &addr]);
    assert!(
        out.stderr.contains(&format!(
            "refusing to serve the API on tcp://0.0.0.0:{port} without TLS"
        )),
        "{}",
        out.stderr
    );
    // Nothing was left listening.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // --tls=false accepts the risk, with a warning at start.
    let d = Daemon::start_with(DaemonOptions {
        args: vec!["-H".into(), addr, "--tls=false".into()],
        ..Default::default()
    });
    let out = curl(&[&format!("http://127.0.0.1:{port}/_ping")]);
    assert_eq!(out.stdout, "OK", "{}", out.stderr);
    assert!(d.log().contains("without TLS (--tls=false)"), "{}", d.log());
}

#[test]
fn tls_settings_from_daemon_json_and_bad_files() {
    let pki = pki();
    let port = free_port();
    // The daemon.json keys work as the flags do.
    let d = Daemon::start_with(DaemonOptions {
        config: Some(serde_json::json!({
            "tlsverify": true,
            "tlscacert": pki.ca.join("ca.pem"),
            "tlscert": pki.server.join("cert.pem"),
            "tlskey": pki.server.join("key.pem"),
        })),
        args: vec!["-H".into(), format!("tcp://127.0.0.1:{port}")],
    });
    let out = docker_tls(
        &d,
        port,
        &pki.client,
        &["info", "--format", "{{.ID}}"],
        None,
    );
    assert!(out.success(), "{}", out.stderr);
    let out = curl(&[&format!("http://127.0.0.1:{port}/_ping")]);
    assert!(!out.success() && out.stdout.is_empty(), "{}", out.stdout);
    drop(d);

    // A missing key file is a clear start-up error.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let out = berthd_fails(
        dir.path(),
        &[
            "-H",
            &format!("tcp://127.0.0.1:{}", free_port()),
            "--tlsverify",
            "--tlscacert",
            &path(pki.ca.join("ca.pem")),
            "--tlscert",
            &path(pki.server.join("cert.pem")),
            "--tlskey",
            missing.to_str().unwrap(),
        ],
    );
    assert!(out.stderr.contains("nope.pem"), "{}", out.stderr);
}

#[test]
fn metrics_endpoint_follows_the_tls_rules() {
    berth_tests::require_root();
    // Without TLS, only loopback.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = berthd_fails(dir.path(), &["--metrics-addr", &format!("0.0.0.0:{port}")]);
    assert!(
        out.stderr.contains(&format!(
            "refusing to serve metrics on 0.0.0.0:{port} without TLS"
        )),
        "{}",
        out.stderr
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // With --tlsverify, any address, and only clients of the CA get in.
    let pki = pki();
    let (api_port, metrics_port) = (free_port(), free_port());
    let d = Daemon::start_with(DaemonOptions {
        args: vec![
            "-H".into(),
            format!("tcp://127.0.0.1:{api_port}"),
            "--tlsverify".into(),
            "--tlscacert".into(),
            path(pki.ca.join("ca.pem")),
            "--tlscert".into(),
            path(pki.server.join("cert.pem")),
            "--tlskey".into(),
            path(pki.server.join("key.pem")),
            "--metrics-addr".into(),
            format!("0.0.0.0:{metrics_port}"),
        ],
        ..Default::default()
    });
    let url = format!("https://127.0.0.1:{metrics_port}/metrics");
    let ca = path(pki.ca.join("ca.pem"));
    let cert = path(pki.client.join("cert.pem"));
    let key = path(pki.client.join("key.pem"));
    let out = curl(&["--cacert", &ca, "--cert", &cert, "--key", &key, &url]);
    assert!(
        out.stdout
            .contains("engine_daemon_container_states_containers{state=\"running\"} 0"),
        "{}\n{}",
        out.stderr,
        berth_tests::tail(&d.log(), 20)
    );
    let out = curl(&["--cacert", &ca, &url]);
    assert!(
        !out.success() && !out.stdout.contains("engine_"),
        "{}",
        out.stdout
    );
    let out = curl(&[&format!("http://127.0.0.1:{metrics_port}/metrics")]);
    assert!(!out.stdout.contains("engine_"), "{}", out.stdout);
}
