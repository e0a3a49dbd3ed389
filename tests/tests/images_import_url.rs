//! `docker import URL`: the archive is downloaded by the daemon (here from
//! a static server the test runs on 127.0.0.1), with `--change` and a tag.

use std::process::{Child, Command, Stdio};

use berth_tests::registry::free_port;
use berth_tests::{fixtures_dir, wait_until, Daemon};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn import_a_rootfs_tarball_from_a_url() {
    let d = Daemon::start();
    let www = d.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let rootfs = fixtures_dir().join("busybox/rootfs");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-czf")
        .arg(www.join("rootfs.tar.gz"))
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let port = free_port();
    let _server = Server(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(std::time::Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let url = format!("http://127.0.0.1:{port}/rootfs.tar.gz");
    let out = d.docker_ok(&[
        "import",
        "--change",
        "CMD [\"echo\", \"imported\"]",
        &url,
        "from/url:1",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(d.docker_ok(&["run", "--rm", "from/url:1"]), "imported\n");
    let history = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        "from/url:1",
    ]);
    assert!(history.contains(&url), "{history}");

    let missing = d.docker(&["import", &format!("http://127.0.0.1:{port}/nothere.tar")]);
    assert!(!missing.success());
    assert!(missing.stderr.contains("404"), "{}", missing.stderr);
}
