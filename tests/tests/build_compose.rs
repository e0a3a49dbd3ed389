//! `docker-compose build` (Debian's docker-compose 1.29, through
//! docker-py's build API): build args, a target stage, labels, a
//! non-default Dockerfile and the step cache on a second build.

use std::fs;
use std::process::Command;

use berth_tests::{run_with_timeout, Daemon, DEFAULT_TIMEOUT};

const COMPOSE: &str = "version: '3.8'
services:
  app:
    image: composed/app:1
    build:
      context: ./app
      dockerfile: build/App.dockerfile
      target: final
      args:
        GREETING: hello-from-compose
      labels:
        com.example.built-by: compose
";

const DOCKERFILE: &str = "FROM busybox AS base
ARG GREETING=unset
RUN echo \"$GREETING\" > /greeting
FROM base AS final
COPY message.txt /message.txt
CMD [\"cat\", \"/greeting\", \"/message.txt\"]
FROM final AS never
RUN exit 1
";

#[test]
fn compose_build_with_args_target_labels_and_cache() {
    let d = Daemon::with_busybox();
    let project = d.dir.path().join("proj");
    fs::create_dir_all(project.join("app/build")).unwrap();
    fs::write(project.join("docker-compose.yml"), COMPOSE).unwrap();
    fs::write(project.join("app/build/App.dockerfile"), DOCKERFILE).unwrap();
    fs::write(project.join("app/message.txt"), "the message\n").unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(&project)
            .env("DOCKER_HOST", d.host())
            .env("COMPOSE_PROJECT_NAME", "buildtest")
            .args(args);
        run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT)
    };
    let out = compose(&["build"]);
    assert!(out.success(), "{out:?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("Successfully tagged composed/app:1"), "{all}");

    let run = d.docker_ok(&["run", "--rm", "composed/app:1"]);
    assert_eq!(run, "hello-from-compose\nthe message\n");
    let img = d.inspect("image", "composed/app:1");
    assert_eq!(img["Config"]["Labels"]["com.example.built-by"], "compose");

    // Nothing changed: every step comes from the cache.
    let out = compose(&["build"]);
    assert!(out.success(), "{out:?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("Using cache"), "{all}");
    assert!(!all.contains("Running in"), "{all}");
    assert!(d.docker_ok(&["ps", "-aq"]).trim().is_empty());
}

/// `docker-compose up -d --build` after a source change recreates the
/// service's container: compose 1.29 reads the old image's
/// `ContainerConfig` to carry volumes over (a KeyError against engines
/// that dropped the field), then renames, replaces and removes the old one.
#[test]
fn compose_up_build_recreates_a_changed_service() {
    let d = Daemon::with_busybox();
    let project = d.dir.path().join("recreate");
    fs::create_dir_all(project.join("app")).unwrap();
    fs::write(
        project.join("docker-compose.yml"),
        "version: '3.7'\nservices:\n  web:\n    build: ./app\n    volumes: [data:/data]\nvolumes: {data: {}}\n",
    )
    .unwrap();
    fs::write(
        project.join("app/Dockerfile"),
        "FROM busybox\nCOPY v.txt /v.txt\nCMD [\"sh\", \"-c\", \"cat /v.txt; echo kept >> /data/log; sleep 60\"]\n",
    )
    .unwrap();
    fs::write(project.join("app/v.txt"), "one\n").unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(&project)
            .env("DOCKER_HOST", d.host())
            .env("COMPOSE_PROJECT_NAME", "recreate")
            .args(args);
        let out = run_with_timeout(&mut cmd, None, DEFAULT_TIMEOUT);
        assert!(out.success(), "docker-compose {args:?}: {out:?}");
        out
    };
    compose(&["up", "-d"]);
    let first = d.inspect("container", "recreate_web_1")["Id"].clone();
    fs::write(project.join("app/v.txt"), "two\n").unwrap();
    let out = compose(&["up", "-d", "--build"]);
    assert!(out.stderr.contains("Recreating"), "{out:?}");
    let now = d.inspect("container", "recreate_web_1");
    assert_ne!(now["Id"], first, "not recreated");
    assert_eq!(now["State"]["Running"], true);
    assert_eq!(
        d.docker_ok(&["exec", "recreate_web_1", "cat", "/v.txt"]),
        "two\n"
    );
    let names = d.docker_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(
        names.trim(),
        "recreate_web_1",
        "old container left: {names}"
    );
    compose(&["down", "-v", "-t", "0"]);
}
