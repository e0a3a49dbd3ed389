//! Registry client through the real docker CLI against Debian's
//! `docker-registry` (plain HTTP on 127.0.0.1, insecure by default as in
//! dockerd), populated with skopeo: pull by tag and by digest, run of a
//! missing image, push and pull back, login with htpasswd basic auth, and
//! dockerd's errors for unknown repositories and tags.

use std::fs;
use std::path::Path;

use berth_tests::registry::Registry;
use berth_tests::{Daemon, DaemonOptions};

/// No half-written blob or staged layer is left behind.
fn assert_no_temp_files(d: &Daemon) {
    for sub in ["image/tmp", "overlay/tmp"] {
        let dir = d.data_root.join(sub);
        let left: Vec<_> = fs::read_dir(&dir)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
    }
}

fn image_id(d: &Daemon, name: &str) -> String {
    d.inspect("image", name)["Id"].as_str().unwrap().to_owned()
}

#[test]
fn operations_keep_working_across_a_registry_restart() {
    // berthd keeps its client (and open connections) for a registry between
    // operations: a restarted registry, whose old connections are gone,
    // must not fail the next ones.
    let mut reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let d = Daemon::start();
    let name = reg.image("test/busybox:1");
    d.docker_ok(&["pull", &name]);
    reg.restart();
    d.docker_ok(&["rmi", &name]);
    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    let copy = reg.image("test/copy:1");
    d.docker_ok(&["tag", &name, &copy]);
    reg.restart();
    let out = d.docker_ok(&["push", &copy]);
    let pushed = reg.digest("test/copy:1");
    assert!(out.contains(&format!("1: digest: {pushed}")), "{out}");
}

#[test]
fn pull_by_tag_and_digest_then_run_missing_image() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let digest = reg.digest("test/busybox:1");
    let d = Daemon::start();
    let name = reg.image("test/busybox:1");

    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("1: Pulling from test/busybox"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    let img = d.inspect("image", &name);
    let want_digest = format!("{}@{digest}", reg.image("test/busybox"));
    assert!(
        img["RepoDigests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &serde_json::json!(want_digest)),
        "{img}"
    );
    // The same content as the archive the registry was filled from.
    let loaded = Daemon::with_busybox();
    assert_eq!(image_id(&d, &name), image_id(&loaded, "busybox"));
    drop(loaded);

    let again = d.docker_ok(&["pull", &name]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );
    assert!(!again.contains("Pull complete"), "{again}");

    // By digest, after removing the image entirely.
    d.docker_ok(&["rmi", &name]);
    let out = d.docker_ok(&["pull", &want_digest]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {want_digest}")),
        "{out}"
    );
    d.docker_ok(&["rmi", &want_digest]);

    // docker run of an image the daemon lacks pulls it (the CLI does so
    // after create answers 404).
    let run = d.docker(&["run", "--rm", &name, "echo", "hello from the registry"]);
    assert!(run.success(), "{}\n{}", run.stderr, d.log());
    assert!(
        run.stdout.contains("hello from the registry"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("Unable to find image '{name}' locally")),
        "{}",
        run.stderr
    );
    // --pull never with a missing image fails without pulling.
    let other = reg.image("test/busybox:2");
    reg.push_fixture("test/busybox:2");
    let never = d.docker(&["run", "--rm", "--pull", "never", &other, "true"]);
    assert!(!never.success());
    assert!(never.stderr.contains("No such image"), "{}", never.stderr);
    // A pushed layer pulled from another repository of the same registry
    // is mounted from there, not uploaded again.
    let copy = reg.image("test/mounted:1");
    d.docker_ok(&["tag", &name, &copy]);
    let push = d.docker_ok(&["push", &copy]);
    assert!(push.contains("Mounted from test/busybox"), "{push}");
    assert!(push.contains(&reg.digest("test/mounted:1")), "{push}");
    // The config blob is mounted too; nothing is uploaded, and blobs known
    // only elsewhere are mounted without asking first.
    let log = reg.log();
    for needle in [
        "\"PATCH /v2/test/mounted/blobs/uploads/",
        "\"PUT /v2/test/mounted/blobs/uploads/",
        "\"HEAD /v2/test/mounted/blobs/",
    ] {
        assert!(
            !log.contains(needle),
            "{needle} in the registry log:\n{log}"
        );
    }
    assert!(
        log.contains("\"POST /v2/test/mounted/blobs/uploads/?mount="),
        "{log}"
    );
    // --pull always pulls even though the image is there.
    let always = d.docker_ok(&["create", "--pull", "always", &name, "true"]);
    assert!(!always.trim().is_empty());

    // `--until 0s` is whole seconds (as with dockerd): events of the
    // current second show once it has passed.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let events = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=image",
        "--filter",
        "event=pull",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    assert!(events.lines().any(|l| l == name), "{events}");
    assert_no_temp_files(&d);
}

#[test]
fn push_then_pull_back_gives_the_same_image() {
    let reg = Registry::start();
    let d = Daemon::with_busybox();
    let name = reg.image("pushed/bb:v1");
    d.docker_ok(&["tag", "busybox", &name]);

    let out = d.docker_ok(&["push", &name]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}]",
            reg.image("pushed/bb")
        )),
        "{out}"
    );
    assert!(out.contains("Pushed"), "{out}");
    let digest = reg.digest("pushed/bb:v1");
    assert!(
        out.contains(&format!("v1: digest: {digest} size: ")),
        "{out}\nregistry says {digest}"
    );
    // Layers stored uncompressed are gzipped deterministically: a second
    // push finds every layer and gives the same manifest digest.
    let again = d.docker_ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");
    assert!(
        again.contains(&format!("v1: digest: {digest} size: ")),
        "{again}"
    );
    let img = d.inspect("image", &name);
    assert!(
        img["RepoDigests"].to_string().contains(&digest),
        "push records the digest: {img}"
    );

    // Another daemon pulls it back: the same image ID.
    let other = Daemon::start();
    other.docker_ok(&["pull", &name]);
    assert_eq!(image_id(&other, &name), image_id(&d, "busybox"));
    let run = other.docker_ok(&["run", "--rm", &name, "cat", "/etc/hostname"]);
    assert!(!run.trim().is_empty());

    // Pushing every tag of a repository (no tag given).
    d.docker_ok(&["tag", "busybox", &reg.image("pushed/bb:v2")]);
    let all = d.docker_ok(&["push", "--all-tags", &reg.image("pushed/bb")]);
    assert!(all.contains("v2: digest: "), "{all}");
    assert_eq!(reg.digest("pushed/bb:v2"), digest);

    // `--until 0s` is whole seconds (as with dockerd): events of the
    // current second show once it has passed.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let events = d.docker_ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "event=push",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    assert!(events.lines().any(|l| l == name), "{events}");
    assert_no_temp_files(&d);
    assert_no_temp_files(&other);
}

#[test]
fn unknown_repository_tag_and_registry_errors() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let d = Daemon::start();

    let tag = d.docker(&["pull", &reg.image("test/busybox:nope")]);
    assert!(!tag.success());
    assert!(
        tag.stderr.contains(&format!(
            "Error response from daemon: manifest for {} not found: manifest unknown",
            reg.image("test/busybox:nope")
        )),
        "{}",
        tag.stderr
    );
    let repo = d.docker(&["pull", &reg.image("no/such-repo:1")]);
    assert!(!repo.success());
    assert!(
        repo.stderr.contains(&format!(
            "manifest for {} not found",
            reg.image("no/such-repo:1")
        )),
        "{}",
        repo.stderr
    );
    // The same through the API: a plain 404 JSON error, not a stream.
    let api = d.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        &format!(
            "http://localhost/images/create?fromImage={}&tag=nope",
            reg.image("test/busybox")
        ),
    ]);
    assert_eq!(api.stdout.trim(), "404");

    // Pushing an image the daemon does not have.
    let push = d.docker(&["push", &reg.image("absent/img:1")]);
    assert!(!push.success());
    assert!(
        push.stderr
            .contains("An image does not exist locally with the tag"),
        "{}",
        push.stderr
    );
    // Nothing listens on that port any more.
    let host = reg.host();
    drop(reg);
    let gone = d.docker(&["pull", &format!("{host}/test/busybox:1")]);
    assert!(!gone.success());
    assert!(
        gone.stderr.contains(&format!("\"http://{host}/v2/\"")),
        "{}",
        gone.stderr
    );
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    assert_no_temp_files(&d);
}

#[test]
fn login_with_basic_auth() {
    let reg = Registry::with_basic_auth("alice", "s3cret");
    reg.push_fixture("private/bb:1");
    let d = Daemon::start();
    let host = reg.host();
    let name = reg.image("private/bb:1");

    // Without credentials: dockerd's error, not a 401 (which would make
    // the CLI prompt for a login).
    let anon = d.docker(&["pull", &name]);
    assert!(!anon.success());
    assert!(
        anon.stderr.contains("no basic auth credentials"),
        "{}",
        anon.stderr
    );

    let bad = d.docker(&["login", &host, "-u", "alice", "-p", "wrong"]);
    assert!(!bad.success());
    assert!(
        bad.stderr.contains(&format!(
            "login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"
        )),
        "{}",
        bad.stderr
    );
    let good = d.docker_ok(&["login", &host, "-u", "alice", "-p", "s3cret"]);
    assert!(good.contains("Login Succeeded"), "{good}");

    // The CLI now sends the credentials with pull and push.
    let out = d.docker_ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    d.docker_ok(&["tag", &name, &reg.image("private/copy:2")]);
    let push = d.docker_ok(&["push", &reg.image("private/copy:2")]);
    assert!(push.contains("Mounted from private/bb"), "{push}");
    assert!(push.contains(&reg.digest("private/copy:2")), "{push}");
    assert!(Path::new(&d.data_root).exists());
    assert_no_temp_files(&d);
}

/// A proxy in front of the registry that flips one byte in the middle of
/// every blob body larger than 4 KiB, or (`truncate`) hangs up halfway
/// through it (one request per connection).
struct CorruptingProxy {
    port: u16,
    /// Blob answers still to be spoiled (all of them unless limited).
    spoil: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Requests that asked for a byte range.
    ranges: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: berth_tests::server_thread::ServerThread,
}

impl CorruptingProxy {
    fn start(upstream: u16, truncate: bool) -> CorruptingProxy {
        Self::start_mode(upstream, truncate, false)
    }

    /// `stall`: send half of a blob, then nothing until the proxy stops.
    fn start_mode(upstream: u16, truncate: bool, stall: bool) -> CorruptingProxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spoil = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
        let ranges = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (spoiling, ranged) = (spoil.clone(), ranges.clone());
        let flag = stop.clone();
        let stopping = stop.clone();
        let serve = move |mut c: TcpStream| -> std::io::Result<()> {
            c.set_nonblocking(false)?;
            c.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if c.read(&mut b)? == 0 {
                    return Ok(());
                }
                head.push(b[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let blob = text.lines().next().unwrap_or("").contains("/blobs/sha256:");
            if text.to_ascii_lowercase().contains("\r\nrange: bytes=") {
                ranged.fetch_add(1, Ordering::Relaxed);
            }
            let req: String = text
                .split("\r\n")
                .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
                .map(|l| format!("{l}\r\n"))
                .collect::<String>()
                + "Connection: close\r\n\r\n";
            let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
            up.write_all(req.as_bytes())?;
            let mut resp = Vec::new();
            up.read_to_end(&mut resp)?;
            if let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
                let body_len = resp.len() - split - 4;
                if blob
                    && body_len > 4096
                    && resp.starts_with(b"HTTP/1.1 200")
                    && spoiling
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let i = split + 4 + body_len / 2;
                    if stall {
                        c.write_all(&resp[..i])?;
                        while !stopping.load(Ordering::Relaxed) {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        return Ok(());
                    } else if truncate {
                        resp.truncate(i);
                    } else {
                        resp[i] ^= 0xff;
                    }
                }
            }
            c.write_all(&resp)?;
            Ok(())
        };
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let _ = serve(c);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        CorruptingProxy {
            port,
            spoil,
            ranges,
            _server: berth_tests::server_thread::ServerThread::new(stop, thread),
        }
    }
}

#[test]
fn corrupted_blob_is_refused_and_nothing_is_stored() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let layer = reg.layers("test/busybox:1")[0].clone();
    let proxy = CorruptingProxy::start(reg.port, false);
    let d = Daemon::start();
    let via_proxy = format!("127.0.0.1:{}/test/busybox:1", proxy.port);
    let out = d.docker(&["pull", &via_proxy]);
    assert!(
        !out.success(),
        "{}\n{}",
        out.stdout,
        berth_tests::tail(&d.log(), 30)
    );
    assert!(
        out.stderr.contains(&format!(
            "filesystem layer verification failed for digest {layer}"
        )),
        "{}\n{}",
        out.stderr,
        out.stdout
    );
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    let layers: Vec<_> = fs::read_dir(d.data_root.join("overlay/layers"))
        .unwrap()
        .flatten()
        .collect();
    assert!(layers.is_empty(), "{layers:?}");
    assert!(
        !d.data_root
            .join("image/blobs/sha256")
            .join(layer.trim_start_matches("sha256:"))
            .exists(),
        "the corrupt blob was kept"
    );
    assert_no_temp_files(&d);
    drop(proxy);
    // The registry itself serves the blob intact: the next pull works.
    let ok = d.docker_ok(&["pull", &reg.image("test/busybox:1")]);
    assert!(ok.contains("Pull complete"), "{ok}");
}

#[test]
fn docker_py_pull_run_push() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let d = Daemon::start();
    let script = berth_tests::workspace_root().join("tests/py/registry_dockerpy.py");
    let out = d.python_file(&script, &[&reg.host()]);
    assert!(
        out.success(),
        "{}\n{}\n{}",
        out.stdout,
        out.stderr,
        berth_tests::tail(&d.log(), 30)
    );
    assert_eq!(out.stdout.trim(), "ok");
    assert_no_temp_files(&d);
}

#[test]
fn pull_and_push_over_tls_with_a_test_ca() {
    let reg = Registry::with_tls();
    reg.push_fixture("tls/bb:1");
    let d = Daemon::start();
    // certs.d next to the daemon's config file, as /etc/berth/certs.d.
    let certs = d
        .config_file
        .parent()
        .unwrap()
        .join("certs.d")
        .join(reg.host());
    fs::create_dir_all(&certs).unwrap();
    fs::copy(reg.ca_cert(), certs.join("ca.crt")).unwrap();
    let name = reg.image("tls/bb:1");
    // The registry speaks only TLS: no fallback to plain HTTP could work.
    let out = d.docker_ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Digest: {}", reg.digest("tls/bb:1"))),
        "{out}"
    );
    d.docker_ok(&["tag", &name, &reg.image("tls/copy:1")]);
    let push = d.docker_ok(&["push", &reg.image("tls/copy:1")]);
    assert!(push.contains(&reg.digest("tls/copy:1")), "{push}");
    assert_no_temp_files(&d);
}

#[test]
fn bearer_token_auth() {
    let (reg, _tokens) = Registry::with_token_auth("bob", "t0ken-pw");
    reg.push_fixture("tok/bb:1");
    let d = Daemon::start();
    let host = reg.host();
    let name = reg.image("tok/bb:1");
    let bad = d.docker(&["login", &host, "-u", "bob", "-p", "nope"]);
    assert!(!bad.success());
    assert!(
        bad.stderr.contains("authentication required"),
        "{}",
        bad.stderr
    );
    let good = d.docker_ok(&["login", &host, "-u", "bob", "-p", "t0ken-pw"]);
    assert!(good.contains("Login Succeeded"), "{good}");
    let out = d.docker_ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Digest: {}", reg.digest("tok/bb:1"))),
        "{out}"
    );
    d.docker_ok(&["tag", &name, &reg.image("tok/copy:1")]);
    let push = d.docker_ok(&["push", &reg.image("tok/copy:1")]);
    assert!(push.contains(&reg.digest("tok/copy:1")), "{push}");
    assert_no_temp_files(&d);
}

#[test]
fn registry_hanging_up_mid_blob_leaves_nothing() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let proxy = CorruptingProxy::start(reg.port, true);
    let d = Daemon::start_with(DaemonOptions {
        args: vec!["--max-download-attempts=1".into()],
        ..Default::default()
    });
    let out = d.docker(&["pull", &format!("127.0.0.1:{}/test/busybox:1", proxy.port)]);
    assert!(!out.success(), "{}", out.stdout);
    assert!(out.stderr.contains("error pulling layer"), "{}", out.stderr);
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    let layers = fs::read_dir(d.data_root.join("overlay/layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 0);
    assert_no_temp_files(&d);
    drop(proxy);
    let ok = d.docker_ok(&["pull", &reg.image("test/busybox:1")]);
    assert!(ok.contains("Pull complete"), "{ok}");
}

#[test]
fn concurrent_pulls_of_one_image_both_succeed() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let d = Daemon::start();
    let name = reg.image("test/busybox:1");
    let outs: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| d.docker(&["pull", &name])))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        assert!(o.success(), "{}\n{}", o.stdout, o.stderr);
    }
    assert_eq!(d.docker_ok(&["images", "-q"]).lines().count(), 1);
    let layers = fs::read_dir(d.data_root.join("overlay/layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 1);
    let run = d.docker_ok(&["run", "--rm", &name, "echo", "ok"]);
    assert_eq!(run.trim(), "ok");
    assert_no_temp_files(&d);
}

#[test]
fn kill_9_mid_pull_leaves_nothing_and_the_next_pull_works() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let proxy = CorruptingProxy::start_mode(reg.port, false, true);
    let mut d = Daemon::start();
    let via_proxy = format!("127.0.0.1:{}/test/busybox:1", proxy.port);
    std::thread::scope(|s| {
        let puller = s.spawn(|| d.docker(&["pull", &via_proxy]));
        // Half of the layer has arrived: its blob and staged layer exist.
        let tmp = d.data_root.join("image/tmp");
        let started = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
            fs::read_dir(&tmp).map(|r| r.count() > 0).unwrap_or(false)
        });
        assert!(started, "the pull never started writing");
        let pid = d.pid().expect("berthd pid");
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        let out = puller.join().unwrap();
        assert!(!out.success());
    });
    d.kill9();
    drop(proxy);
    d.start_again();
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    assert_eq!(
        fs::read_dir(d.data_root.join("overlay/layers"))
            .unwrap()
            .count(),
        0
    );
    assert_no_temp_files(&d);
    let ok = d.docker_ok(&["pull", &reg.image("test/busybox:1")]);
    assert!(ok.contains("Pull complete"), "{ok}");
}

/// `docker build` of a Dockerfile whose FROM image the daemon lacks pulls
/// it from the registry first, as dockerd's builder does.
#[test]
fn build_pulls_a_missing_base_image() {
    let reg = Registry::start();
    reg.push_fixture("test/base:1");
    let d = Daemon::start();
    let base = reg.image("test/base:1");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo built > /built\n"),
    )
    .unwrap();
    let out = d.docker_ok(&["build", "-t", "frompull", ctx.path().to_str().unwrap()]);
    assert!(out.contains("Successfully tagged frompull:latest"), "{out}");
    // The pull's progress is part of the build's output, as with dockerd.
    assert!(out.contains("Pulling from test/base"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "frompull", "cat", "/built"]),
        "built\n"
    );
    // The base is now a local image too.
    d.inspect("image", &base);

    // A base no registry has fails the build with the registry's answer.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}\n", reg.image("test/nothere:1")),
    )
    .unwrap();
    let out = d.docker(&["build", ctx.path().to_str().unwrap()]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("manifest unknown") || out.stderr.contains("not found"),
        "{}",
        out.stderr
    );
    assert_no_temp_files(&d);
}

#[test]
fn a_broken_layer_download_is_retried_from_where_it_stopped() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let proxy = CorruptingProxy::start(reg.port, true);
    proxy.spoil.store(1, std::sync::atomic::Ordering::Relaxed);
    let d = Daemon::start();
    let repo = format!("127.0.0.1:{}/test/busybox", proxy.port);
    let out = d.curl(&[
        "-X",
        "POST",
        &format!("http://x/v1.50/images/create?fromImage={repo}&tag=1"),
    ]);
    let out = out.stdout;
    let name = format!("{repo}:1");
    assert!(out.contains("Retrying in 5 seconds"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Downloaded newer image for"), "{out}");
    assert!(
        proxy.ranges.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the retry asked for the whole blob again"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", &name, "echo", "ok"]).trim(),
        "ok"
    );
    assert_no_temp_files(&d);
}

#[test]
fn docker_hub_images_come_from_the_first_mirror_that_has_them() {
    let empty = Registry::start();
    let mirror = Registry::start();
    mirror.push_fixture("library/busybox:latest");
    let d = Daemon::start_with(DaemonOptions {
        config: Some(serde_json::json!({
            "registry-mirrors": [
                format!("http://127.0.0.1:{}", empty.port),
                format!("http://127.0.0.1:{}/", mirror.port),
            ],
            "max-concurrent-downloads": 2,
        })),
        ..Default::default()
    });
    let info = d.docker_ok(&["info", "--format", "{{json .RegistryConfig.Mirrors}}"]);
    assert!(
        info.contains(&format!("127.0.0.1:{}", mirror.port)),
        "{info}"
    );
    let out = d.docker_ok(&["pull", "busybox"]);
    assert!(out.contains("Pulling from library/busybox"), "{out}");
    assert!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
    let img = d.inspect("image", "busybox");
    let digest = mirror.digest("library/busybox:latest");
    assert_eq!(
        img["RepoDigests"],
        serde_json::json!([format!("busybox@{digest}")])
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "busybox", "echo", "ok"])
            .trim(),
        "ok"
    );
    // Only Docker Hub images use mirrors.
    let other = d.docker(&["pull", "127.0.0.1:1/library/busybox"]);
    assert!(!other.success());
}

#[test]
fn a_large_layer_is_pushed_in_chunks_and_pulled_back_whole() {
    let reg = Registry::start();
    let d = Daemon::with_busybox();
    // 20 MiB that gzip cannot shrink: two upload chunks.
    let c = d
        .docker_ok(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "head -c 20971520 /dev/urandom > /big && sleep 1000",
        ])
        .trim()
        .to_string();
    let mut size = String::new();
    for _ in 0..200 {
        let out = d.docker(&["exec", &c, "stat", "-c", "%s", "/big"]);
        size = out.stdout.trim().to_owned();
        if size == "20971520" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(size, "20971520");
    let name = reg.image("big/layer:1");
    d.docker_ok(&["commit", &c, &name]);
    d.docker_ok(&["rm", "-f", &c]);
    let out = d.docker_ok(&["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    let log = reg.log();
    let patches = log.matches("\"PATCH /v2/big/layer/blobs/uploads/").count();
    assert!(
        patches >= 2,
        "expected chunked PATCH uploads; registry log:\n{log}"
    );

    let other = Daemon::start();
    other.docker_ok(&["pull", &name]);
    assert_eq!(image_id(&other, &name), image_id(&d, &name));
    let sum = |dm: &Daemon| dm.docker_ok(&["run", "--rm", &name, "md5sum", "/big"]);
    assert_eq!(sum(&other), sum(&d));
    assert_no_temp_files(&d);
    assert_no_temp_files(&other);
}

#[test]
fn build_pulls_a_private_base_image_with_the_clients_credentials() {
    let reg = Registry::with_basic_auth("alice", "s3cret");
    reg.push_fixture("private/base:1");
    let d = Daemon::start();
    let base = reg.image("private/base:1");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo private > /built\n"),
    )
    .unwrap();
    let ctx_s = ctx.path().to_str().unwrap();
    // Without a login: the registry's refusal is the build's error.
    let out = d.docker(&["build", ctx_s]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("no basic auth credentials"),
        "{}",
        out.stderr
    );
    // After `docker login` the CLI sends X-Registry-Config with the build.
    d.docker_ok(&["login", &reg.host(), "-u", "alice", "-p", "s3cret"]);
    let out = d.docker_ok(&["build", "-t", "private-child", ctx_s]);
    assert!(
        out.contains("Successfully tagged private-child:latest"),
        "{out}"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "private-child", "cat", "/built"]),
        "private\n"
    );
    assert_no_temp_files(&d);
}

#[test]
fn oci_manifests_and_zstd_layers_pull_as_the_same_image() {
    let reg = Registry::start();
    reg.push_fixture_with("formats/oci:1", &["--format", "oci"]);
    reg.push_fixture_with(
        "formats/zstd:1",
        &["--format", "oci", "--dest-compress-format", "zstd"],
    );
    let d = Daemon::start();
    let loaded = Daemon::with_busybox();
    let want = loaded.inspect("image", "busybox")["RootFS"]["Layers"].clone();
    drop(loaded);
    for path in ["formats/oci:1", "formats/zstd:1"] {
        let name = reg.image(path);
        let out = d.docker_ok(&["pull", &name]);
        assert!(
            out.contains(&format!("Digest: {}", reg.digest(path))),
            "{out}"
        );
        // skopeo rewrites the config as OCI's, but the layers are the
        // same however they were compressed.
        assert_eq!(
            d.inspect("image", &name)["RootFS"]["Layers"],
            want,
            "{path}"
        );
        assert_eq!(d.docker_ok(&["run", "--rm", &name, "echo", "ok"]), "ok\n");
        let desc = d.curl(&[&format!("http://x/v1.50/distribution/{name}/json")]);
        assert!(
            desc.stdout
                .contains("application/vnd.oci.image.manifest.v1+json"),
            "{}",
            desc.stdout
        );
    }
    assert_no_temp_files(&d);
}

#[test]
fn a_manifest_naming_absurd_sizes_is_refused_and_stores_nothing() {
    let reg = Registry::start();
    reg.push_fixture("sizes/ok:1");
    // The same blobs under a manifest that claims an exabyte-sized layer
    // and a huge config.
    let base = format!("http://{}/v2/sizes", reg.host());
    let get = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            &format!("{base}/ok/manifests/1"),
        ])
        .output()
        .unwrap();
    assert!(get.status.success());
    let m: serde_json::Value = serde_json::from_slice(&get.stdout).unwrap();
    let d = Daemon::start();
    for (tag, field) in [("layer", "layers"), ("config", "config")] {
        let mut bad = m.clone();
        if field == "layers" {
            bad["layers"][0]["size"] = serde_json::json!(1u64 << 60);
        } else {
            bad["config"]["size"] = serde_json::json!(1u64 << 40);
        }
        let body = serde_json::to_string(&bad).unwrap();
        let put = std::process::Command::new("curl")
            .args([
                "-sf",
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/vnd.docker.distribution.manifest.v2+json",
                "--data-binary",
                &body,
                &format!("{base}/ok/manifests/{tag}"),
            ])
            .output()
            .unwrap();
        assert!(put.status.success(), "{:?}", put);
        let out = d.docker(&["pull", &reg.image(&format!("sizes/ok:{tag}"))]);
        assert!(!out.success(), "{tag}: {}", out.stdout);
        assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "", "{tag}");
        assert_no_temp_files(&d);
    }
    // The real image still pulls.
    d.docker_ok(&["pull", &reg.image("sizes/ok:1")]);
}

/// Standard base64 (what the CLI sends; dockerd also takes base64url).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's JSON decoder matches field names regardless of case, so clients
/// that spell the credentials' keys their own way are understood: a pull
/// with `X-Registry-Auth` and a build with `X-Registry-Config`, by raw HTTP.
#[test]
fn registry_credentials_with_keys_in_any_case() {
    let reg = Registry::with_basic_auth("alice", "s3cret");
    reg.push_fixture("private/bb:1");
    let d = Daemon::start();
    let host = reg.host();
    let url = format!(
        "http://localhost/v1.50/images/create?fromImage={}",
        reg.image("private/bb:1")
    );
    let pull = |auth: &str| {
        let header = format!("X-Registry-Auth: {}", base64(auth.as_bytes()));
        d.curl(&["-X", "POST", "-H", &header, &url]).ok()
    };
    let out = pull(r#"{"USERNAME":"alice","PassWord":"wrong"}"#);
    assert!(out.contains("unauthorized"), "{out}");
    assert!(
        d.docker(&["image", "inspect", &reg.image("private/bb:1")])
            .code()
            != Some(0)
    );
    let out = pull(&format!(
        r#"{{"USERNAME":"alice","PassWord":"s3cret","serverAddress":"{host}"}}"#
    ));
    assert!(!out.contains("errorDetail"), "{out}");
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert!(image_id(&d, &reg.image("private/bb:1")).starts_with("sha256:"));
    // A value of the wrong type is refused as dockerd refuses it.
    let header = format!("X-Registry-Auth: {}", base64(br#"{"Username":7}"#));
    let bad = d
        .curl(&["-X", "POST", "-w", "%{http_code}", "-H", &header, &url])
        .ok();
    assert!(bad.ends_with("400"), "{bad}");

    // Build: credentials by registry, keys in capitals.
    let ctx = tempfile::tempdir().unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo built > /b\n",
            reg.image("private/bb:1").replace(":1", "-missing:1")
        ),
    )
    .unwrap();
    reg.push_fixture("private/bb-missing:1");
    let tar = ctx.path().join("ctx.tar");
    let st = std::process::Command::new("tar")
        .args(["-C", ctx.path().to_str().unwrap(), "-cf"])
        .arg(&tar)
        .arg("Dockerfile")
        .status()
        .unwrap();
    assert!(st.success());
    let config = format!(r#"{{"{host}":{{"USERNAME":"alice","PASSWORD":"s3cret"}}}}"#);
    let header = format!("X-Registry-Config: {}", base64(config.as_bytes()));
    let data = format!("@{}", tar.display());
    let out = d
        .curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-tar",
            "-H",
            &header,
            "--data-binary",
            &data,
            "http://localhost/v1.50/build?t=case-built",
        ])
        .ok();
    assert!(!out.contains("errorDetail"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "case-built", "cat", "/b"]),
        "built\n"
    );
    assert_no_temp_files(&d);
}

/// A client that leaves while the registry sends nothing cancels the pull
/// all the same: the download stops and leaves nothing behind, although no
/// progress message could have failed to reach the client.
#[test]
fn a_client_leaving_a_stalled_pull_cancels_it() {
    let reg = Registry::start();
    reg.push_fixture("test/busybox:1");
    let proxy = CorruptingProxy::start_mode(reg.port, false, true);
    let d = Daemon::start();
    let url = format!(
        "http://localhost/v1.50/images/create?fromImage=127.0.0.1:{}/test/busybox&tag=1",
        proxy.port
    );
    let mut curl = std::process::Command::new("curl")
        .args(["-sS", "-X", "POST", "--unix-socket"])
        .arg(&d.socket)
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Half of the layer has arrived, then the registry goes quiet.
    let tmp = d.data_root.join("image/tmp");
    let started = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
        fs::read_dir(&tmp).map(|r| r.count() > 0).unwrap_or(false)
    });
    assert!(started, "the pull never started writing");
    curl.kill().unwrap();
    curl.wait().unwrap();
    let cancelled = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
        d.log().contains("pull cancelled: the client went away")
    });
    assert!(cancelled, "{}", d.log());
    let cleaned = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
        fs::read_dir(&tmp).map(|r| r.count() == 0).unwrap_or(true)
    });
    assert!(cleaned, "the download was not aborted");
    drop(proxy);
    assert_eq!(d.docker_ok(&["images", "-q"]).trim(), "");
    assert_no_temp_files(&d);
    let ok = d.docker_ok(&["pull", &reg.image("test/busybox:1")]);
    assert!(ok.contains("Pull complete"), "{ok}");
}

/// A registry stand-in that takes a push up to the first blob upload and
/// then never answers it; counts the stalled connections that were closed
/// by the client.
struct StallingUploads {
    port: u16,
    stalled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: berth_tests::server_thread::ServerThread,
}

impl StallingUploads {
    fn start() -> StallingUploads {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (st, cl, halt) = (stalled.clone(), closed.clone(), stop.clone());
        let serve = move |mut c: TcpStream,
                          stalled: Arc<AtomicUsize>,
                          closed: Arc<AtomicUsize>,
                          stop: Arc<AtomicBool>|
              -> std::io::Result<()> {
            c.set_nonblocking(false)?;
            c.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
            let mut b = [0u8; 4096];
            loop {
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    match c.read(&mut b[..1]) {
                        Ok(0) => return Ok(()),
                        Ok(_) => head.push(b[0]),
                        Err(_) if !stop.load(Ordering::Relaxed) => continue,
                        Err(e) => return Err(e),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let answer = if line.starts_with("GET /v2/ ") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
                        .to_owned()
                } else if line.starts_with("HEAD ") || line.starts_with("GET ") {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
                } else if line.starts_with("POST ") && line.contains("/blobs/uploads/") {
                    "HTTP/1.1 202 Accepted\r\nLocation: /v2/stall/blobs/uploads/u1\r\nContent-Length: 0\r\n\r\n"
                        .to_owned()
                } else {
                    // The upload itself: take what comes, answer never.
                    stalled.fetch_add(1, Ordering::Relaxed);
                    loop {
                        match c.read(&mut b) {
                            Ok(0) => {
                                closed.fetch_add(1, Ordering::Relaxed);
                                return Ok(());
                            }
                            Ok(_) => {}
                            Err(_) if !stop.load(Ordering::Relaxed) => {}
                            Err(e) => return Err(e),
                        }
                    }
                };
                c.write_all(answer.as_bytes())?;
            }
        };
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !halt.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (s, cl, h) = (st.clone(), cl.clone(), halt.clone());
                        conns.push(std::thread::spawn(move || {
                            let _ = serve(c, s, cl, h);
                        }));
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
            for t in conns {
                let _ = t.join();
            }
        });
        StallingUploads {
            port,
            stalled,
            closed,
            _server: berth_tests::server_thread::ServerThread::new(stop, thread),
        }
    }
}

/// A client that hangs up while the registry sits on an upload cancels
/// the push: berthd drops the upload (its connection to the registry is
/// closed) and leaves nothing behind.
#[test]
fn a_client_leaving_a_stalled_push_cancels_it() {
    use std::sync::atomic::Ordering;
    let reg = StallingUploads::start();
    let d = Daemon::with_busybox();
    let name = format!("127.0.0.1:{}/stall/bb:1", reg.port);
    d.docker_ok(&["tag", "busybox", &name]);
    let url = format!(
        "http://localhost/v1.50/images/127.0.0.1:{}/stall/bb/push?tag=1",
        reg.port
    );
    let mut curl = std::process::Command::new("curl")
        .args([
            "-sS",
            "-X",
            "POST",
            "-H",
            "X-Registry-Auth: e30=",
            "--unix-socket",
        ])
        .arg(&d.socket)
        .arg(&url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
        reg.stalled.load(Ordering::Relaxed) > 0
    });
    assert!(started, "the push never began uploading: {}", d.log());
    curl.kill().unwrap();
    curl.wait().unwrap();
    let cancelled = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
        d.log().contains("push cancelled: the client went away")
    });
    assert!(cancelled, "{}", d.log());
    let dropped = berth_tests::wait_until(std::time::Duration::from_secs(60), || {
        reg.closed.load(Ordering::Relaxed) >= reg.stalled.load(Ordering::Relaxed)
    });
    assert!(dropped, "the stalled uploads were not abandoned");
    assert!(!d.log().contains("push failed"), "{}", d.log());
    drop(reg);
    // The compressor thread notices the dropped upload at its next write.
    let tmp = d.data_root.join("image/tmp");
    let cleaned = berth_tests::wait_until(std::time::Duration::from_secs(30), || {
        fs::read_dir(&tmp).map(|r| r.count() == 0).unwrap_or(true)
    });
    assert!(cleaned, "the compression was not stopped");
    assert_no_temp_files(&d);
    // The daemon still serves, and the image is untouched.
    let id = image_id(&d, &name);
    assert!(id.starts_with("sha256:"), "{id}");
}

/// The gzip made for a loaded layer is kept with its diff ID: a push after
/// a restart finds it, so the manifest digest is the same and the layers
/// are found on the registry without being compressed again.
#[test]
fn push_after_a_restart_gives_the_same_digest() {
    let reg = Registry::start();
    let mut d = Daemon::with_busybox();
    let name = reg.image("again/bb:1");
    // A committed layer is stored as a plain tar: the push compresses it.
    let c = d.docker_ok(&["create", "busybox", "true"]);
    d.docker_ok(&["commit", c.trim(), &name]);
    d.docker_ok(&["rm", c.trim()]);
    let first = d.docker_ok(&["push", &name]);
    assert!(first.contains("Pushed"), "{first}");
    let digest = reg.digest("again/bb:1");
    let gz = d.data_root.join("image/distribution/gzip");
    let count = |p: &Path| fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    let kept = count(&gz);
    d.stop();
    d.start_again();
    let again = d.docker_ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");
    assert!(!again.contains("Pushed"), "{again}");
    assert!(again.contains(&digest), "{again}");
    assert_eq!(count(&gz), kept);
    assert_no_temp_files(&d);
}
