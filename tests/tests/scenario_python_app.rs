//! SCENARIOS.md §3 end to end through the docker CLI: containerising a
//! small Flask app from a Python base image (built from Debian packages by
//! rootfs-fixtures/build-python.sh), running it with a published port,
//! exec, commit, tag, push and pull through a local registry, volumes and
//! resource limits.

use std::fs;
use std::path::Path;
use std::time::Duration;

use berth_tests::registry::{free_port, Registry};
use berth_tests::{python_tar, wait_until, Daemon};

const APP: &str = r#"import os
import socket

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return "<h3>Hello {}!</h3><b>Hostname:</b> {}<br/>".format(
        os.getenv("NAME", "world"), socket.gethostname()
    )


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=80)
"#;

const DOCKERFILE: &str = "FROM berth-fixtures/python:3-bookworm
WORKDIR /app
ADD . /app
# Flask is in the base image: pip finds it there and needs no index.
RUN pip install --no-index -r requirements.txt
EXPOSE 80
ENV NAME World
CMD [\"python3\", \"app.py\"]
";

fn write_context(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("app.py"), APP).unwrap();
    fs::write(dir.join("requirements.txt"), "Flask\n").unwrap();
    fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
}

/// The page the app serves on `port`, once it answers.
fn page(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/");
    let mut body = String::new();
    let up = wait_until(Duration::from_secs(60), || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "5", &url])
            .output()
            .unwrap();
        body = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success() && body.contains("Hello")
    });
    assert!(up, "the app never answered on {url}: {body}");
    body
}

#[test]
fn containerise_a_flask_app_run_it_ship_it() {
    let d = Daemon::start();
    let tar = python_tar();
    d.docker_ok(&["load", "-i", &tar.display().to_string()]);
    let ctx = d.dir.path().join("helloworld");
    write_context(&ctx);

    let out = d.docker_ok(&["build", "-t", "helloworld", &ctx.display().to_string()]);
    assert!(out.contains("Step 4/7 : RUN pip install"), "{out}");
    assert!(out.contains("Requirement already satisfied"), "{out}");
    assert!(
        out.contains("Successfully tagged helloworld:latest"),
        "{out}"
    );
    let ls = d.docker_ok(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(ls.lines().any(|l| l == "helloworld:latest"), "{ls}");
    let img = d.inspect("image", "helloworld:latest");
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["python3", "app.py"])
    );
    assert_eq!(img["Config"]["WorkingDir"], "/app");
    assert!(
        img["Config"]["ExposedPorts"].get("80/tcp").is_some(),
        "{img}"
    );
    assert!(
        img["Config"]["Env"].to_string().contains("NAME=World"),
        "{img}"
    );

    // Published on a host port: the page names the container's short ID.
    let port = free_port();
    let c = d
        .docker_ok(&["run", "-d", "-p", &format!("{port}:80"), "helloworld"])
        .trim()
        .to_string();
    let body = page(port);
    assert!(body.contains("<h3>Hello World!</h3>"), "{body}");
    assert!(
        body.contains(&format!("<b>Hostname:</b> {}<br/>", &c[..12])),
        "{body}"
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Image}} {{.Ports}}"]);
    assert!(
        ps.contains(&format!("helloworld 0.0.0.0:{port}->80/tcp")),
        "{ps}"
    );
    let logs = d.docker_ok(&["logs", &c]);
    let logs = logs + &d.docker(&["logs", &c]).stderr;
    assert!(logs.contains("Running on"), "{logs}");
    let ip = d.docker_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &c]);
    assert!(ip.trim().parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    // PID 1 is the app; a file touched through exec stays in the container.
    let cmdline = d.docker_ok(&["exec", &c, "cat", "/proc/1/cmdline"]);
    assert_eq!(cmdline.replace('\0', " ").trim(), "python3 app.py");
    d.docker_ok(&["exec", &c, "touch", "/app/touched"]);

    // Commit, tag, push to a registry, pull back on a fresh daemon.
    d.docker_ok(&["commit", &c, "me/helloworld:v2"]);
    let diff = d.docker_ok(&["run", "--rm", "me/helloworld:v2", "ls", "/app"]);
    assert!(diff.lines().any(|l| l == "touched"), "{diff}");
    d.docker_ok(&["rm", "-f", &c]);
    let reg = Registry::start();
    let remote = reg.image("me/helloworld:v1");
    d.docker_ok(&["tag", "helloworld", &remote]);
    let push = d.docker_ok(&["push", &remote]);
    assert!(push.contains("v1: digest: sha256:"), "{push}");
    let other = Daemon::start();
    other.docker_ok(&["pull", &remote]);
    assert_eq!(
        other.inspect("image", &remote)["Id"],
        d.inspect("image", "helloworld")["Id"]
    );
    drop(other);

    // An anonymous volume: what the app writes shows under its _data.
    let c = d
        .docker_ok(&["run", "-d", "-v", "/test", "helloworld"])
        .trim()
        .to_string();
    d.docker_ok(&["exec", &c, "sh", "-c", "echo from-inside > /test/f"]);
    let mounts = d.inspect("container", &c)["Mounts"].clone();
    assert_eq!(mounts[0]["Type"], "volume", "{mounts}");
    assert_eq!(mounts[0]["Destination"], "/test");
    assert_eq!(mounts[0]["Driver"], "local");
    assert_eq!(mounts[0]["RW"], true);
    let source = mounts[0]["Source"].as_str().unwrap().to_owned();
    assert!(source.ends_with("/_data"), "{source}");
    assert_eq!(
        fs::read_to_string(Path::new(&source).join("f")).unwrap(),
        "from-inside\n"
    );
    let vols = d.docker_ok(&["volume", "ls", "-q"]);
    assert!(vols.contains(mounts[0]["Name"].as_str().unwrap()), "{vols}");
    d.docker_ok(&["rm", "-f", "-v", &c]);

    // A bind mount of a host directory.
    let host_dir = d.dir.path().join("home");
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(host_dir.join("hello"), "host file\n").unwrap();
    let bind = format!("{}:/test", host_dir.display());
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "helloworld",
        "cat",
        "/test/hello",
    ]);
    assert_eq!(out, "host file\n");

    // 20% of a CPU and 300 MB.
    let c = d
        .docker_ok(&[
            "run",
            "-d",
            "--cpu-period=100000",
            "--cpu-quota=20000",
            "-m",
            "300M",
            "helloworld",
        ])
        .trim()
        .to_string();
    let hc = d.inspect("container", &c)["HostConfig"].clone();
    assert_eq!(hc["CpuPeriod"], 100000);
    assert_eq!(hc["CpuQuota"], 20000);
    assert_eq!(hc["Memory"], 300 * 1024 * 1024);
    let state = d.inspect("container", &c)["State"]["Running"].clone();
    assert_eq!(state, true);
    d.docker_ok(&["rm", "-f", &c]);
}
