//! `docker build --cache-from`: an image brought from elsewhere (here
//! saved on one daemon and loaded into a fresh one, as a CI job pulls the
//! last build) stands for the steps its history shows, as with dockerd's
//! classic builder; without it every step runs again.

use std::fs;

use berth_tests::Daemon;

const DOCKERFILE: &str = "FROM busybox
COPY app.txt /app.txt
RUN head -c 16 /dev/urandom | od -An -tx1 > /marker
ENV STAGE=done
";

#[test]
fn cache_from_an_image_loaded_from_another_daemon() {
    let first = Daemon::with_busybox();
    let ctx = first.dir.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(ctx.join("app.txt"), "app\n").unwrap();
    let ctx_s = ctx.display().to_string();
    first.docker_ok(&["build", "-t", "ci/app:last", &ctx_s]);
    let marker = first.docker_ok(&["run", "--rm", "ci/app:last", "cat", "/marker"]);
    let archive = first.dir.path().join("app.tar");
    first.docker_ok(&["save", "-o", &archive.display().to_string(), "ci/app:last"]);

    let fresh = Daemon::with_busybox();
    fresh.docker_ok(&["load", "-i", &archive.display().to_string()]);
    let out = fresh.docker_ok(&[
        "build",
        "--cache-from",
        "ci/app:last",
        "-t",
        "ci/app:next",
        &ctx_s,
    ]);
    assert_eq!(out.matches("Using cache").count(), 3, "{out}");
    assert_eq!(
        fresh.docker_ok(&["run", "--rm", "ci/app:next", "cat", "/marker"]),
        marker,
        "the RUN step ran again"
    );
    let env = fresh.inspect("image", "ci/app:next")["Config"]["Env"].to_string();
    assert!(env.contains("STAGE=done"), "{env}");

    // A changed source breaks the chain at its step; later steps run.
    fs::write(ctx.join("app.txt"), "changed\n").unwrap();
    let out = fresh.docker_ok(&[
        "build",
        "--cache-from",
        "ci/app:last",
        "-t",
        "ci/app:changed",
        &ctx_s,
    ]);
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    assert_ne!(
        fresh.docker_ok(&["run", "--rm", "ci/app:changed", "cat", "/marker"]),
        marker
    );

    // Without --cache-from a fresh daemon runs every step; an unknown
    // cache source is skipped.
    let other = Daemon::with_busybox();
    other.docker_ok(&["load", "-i", &archive.display().to_string()]);
    fs::write(ctx.join("app.txt"), "app\n").unwrap();
    let out = other.docker_ok(&["build", "--cache-from", "no/such:image", "-t", "x", &ctx_s]);
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");

    // As dockerd: with --cache-from, the local cache counts only for
    // images that are a cache source or one of its ancestors.
    let out = other.docker_ok(&["build", "-t", "x2", &ctx_s]);
    assert_eq!(out.matches("Using cache").count(), 3, "{out}");
    let out = other.docker_ok(&["build", "--cache-from", "no/such:image", "-t", "x3", &ctx_s]);
    assert_eq!(out.matches("Using cache").count(), 0, "{out}");
    let out = other.docker_ok(&["build", "--cache-from", "x2", "-t", "x4", &ctx_s]);
    assert_eq!(out.matches("Using cache").count(), 3, "{out}");
}
