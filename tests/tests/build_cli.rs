//! `docker build` through the real CLI (classic builder API): the step
//! output, the resulting image (files, config, history), multi-stage
//! builds with `COPY --from` and `--target`, build args, `-q`,
//! `--iidfile`, the step cache (hits, changed sources, `--no-cache`, a
//! daemon restart), failures and parse errors with dockerd's texts, and
//! that no container, mount or cgroup outlives a build.

use std::fs;
use std::path::{Path, PathBuf};

use berth_tests::{cleanup, wait_until, Daemon};

/// A build context directory inside the daemon's temp dir.
fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = d.dir.path().join(name);
    for (path, content) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Nothing of a build may remain: containers, mounts, step directories,
/// container cgroups.
#[track_caller]
fn assert_nothing_left(d: &Daemon) {
    let ps = d.docker_ok(&["ps", "-aq"]);
    assert!(ps.trim().is_empty(), "containers left: {ps}");
    let gone = wait_until(std::time::Duration::from_secs(10), || {
        cleanup::mounts_under(d.dir.path()).is_empty()
    });
    assert!(
        gone,
        "mounts left: {:?}",
        cleanup::mounts_under(d.dir.path())
    );
    let tmp = d.data_root.join("build/tmp");
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().flatten().collect();
    assert!(left.is_empty(), "build directories left: {left:?}");
    for cg in cleanup::cgroup_dirs(&d.cgroup_parent) {
        let kids: Vec<_> = fs::read_dir(&cg)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir() && e.file_name().len() == 64)
            .collect();
        assert!(
            kids.is_empty(),
            "container cgroups left in {}: {kids:?}",
            cg.display()
        );
    }
}

const APP_DOCKERFILE: &str = "\
# a comment
FROM busybox
ENV GREETING=hello \\
    TARGET=\"the world\"
WORKDIR /app
COPY msg.txt ./
COPY conf /etc/app/
RUN echo \"$GREETING $TARGET\" > /app/out.txt && echo built-on-stdout && echo warn >&2
CMD [\"cat\", \"/app/out.txt\", \"/app/msg.txt\"]
";

#[test]
fn build_run_copy_env_workdir_cmd() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "app",
        &[
            ("Dockerfile", APP_DOCKERFILE),
            ("msg.txt", "from the context\n"),
            ("conf/a.conf", "a=1\n"),
            ("conf/sub/b.conf", "b=2\n"),
        ],
    );
    let out = d.docker(&["build", "-t", "app:v1", &s(&ctx)]);
    assert!(out.success(), "{}\n{}\n{}", out.stdout, out.stderr, d.log());
    let text = &out.stdout;
    for want in [
        "Step 1/7 : FROM busybox\n ---> ",
        "Step 2/7 : ENV GREETING=hello     TARGET=\"the world\"\n",
        "Step 6/7 : RUN echo",
        " ---> Running in ",
        "built-on-stdout\n",
        "Removing intermediate container ",
        "Successfully built ",
        "Successfully tagged app:v1\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("Using cache"), "{text}");

    // The image runs its CMD in its WORKDIR with the ENV.
    assert_eq!(
        d.docker_ok(&["run", "--rm", "app:v1"]),
        "hello the world\nfrom the context\n"
    );
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "app:v1",
            "sh",
            "-c",
            "pwd; cat /etc/app/a.conf /etc/app/sub/b.conf; stat -c %u:%g /app/msg.txt"
        ]),
        "/app\na=1\nb=2\n0:0\n"
    );
    let img = d.inspect("image", "app:v1");
    assert_eq!(img["Config"]["WorkingDir"], "/app");
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["cat", "/app/out.txt", "/app/msg.txt"])
    );
    let env = img["Config"]["Env"].as_array().unwrap();
    assert!(
        env.contains(&serde_json::json!("TARGET=the world")),
        "{env:?}"
    );

    // History: dockerd's CreatedBy texts, one entry per step.
    let hist = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "app:v1",
    ]);
    let lines: Vec<&str> = hist.lines().collect();
    assert_eq!(
        lines[0],
        "/bin/sh -c #(nop)  CMD [\"cat\" \"/app/out.txt\" \"/app/msg.txt\"]"
    );
    assert!(
        lines[1].starts_with("/bin/sh -c echo \"$GREETING $TARGET\""),
        "{hist}"
    );
    assert!(
        lines[2].starts_with("/bin/sh -c #(nop) COPY dir:") && lines[2].ends_with(" in /etc/app/ "),
        "{hist}"
    );
    assert!(
        lines[3].starts_with("/bin/sh -c #(nop) COPY file:"),
        "{hist}"
    );
    assert_eq!(lines[4], "/bin/sh -c #(nop) WORKDIR /app");
    assert_eq!(
        lines[5],
        "/bin/sh -c #(nop)  ENV GREETING=hello TARGET=the world"
    );
    assert_eq!(lines.len(), 7, "{hist}");
    assert_nothing_left(&d);
}

#[test]
fn build_cache_hits_changes_no_cache_and_restart() {
    let mut d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "cached",
        &[
            ("Dockerfile", "FROM busybox\nARG V=1\nRUN echo run-$V > /r\nCOPY f.txt /f.txt\nRUN cat /f.txt /r\n"),
            ("f.txt", "one\n"),
        ],
    );
    let first = d.docker_ok(&["build", "-q", &s(&ctx)]);
    let again = d.docker_ok(&["build", &s(&ctx)]);
    assert_eq!(again.matches(" ---> Using cache").count(), 4, "{again}");
    assert!(!again.contains("Running in"), "{again}");
    assert!(
        again.contains(&format!("Successfully built {}", &first.trim()[7..19])),
        "{first} {again}"
    );

    // Same content with a new mtime: still cached.
    fs::write(ctx.join("f.txt"), "one\n").unwrap();
    let touched = d.docker_ok(&["build", "-q", &s(&ctx)]);
    assert_eq!(touched, first);

    // Changed content: the steps from the COPY on run again.
    fs::write(ctx.join("f.txt"), "two\n").unwrap();
    let changed = d.docker_ok(&["build", &s(&ctx)]);
    assert_eq!(changed.matches(" ---> Using cache").count(), 2, "{changed}");
    assert!(changed.contains("two\nrun-1\n"), "{changed}");

    // Proxy args reach RUN without an ARG, and stay out of the history.
    let proxy = context(
        &d,
        "proxy",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo \"proxy=$HTTP_PROXY\"\n",
        )],
    );
    let out = d.docker_ok(&[
        "build",
        "--build-arg",
        "HTTP_PROXY=http://proxy.test:3128",
        "-t",
        "proxied",
        &s(&proxy),
    ]);
    assert!(out.contains("proxy=http://proxy.test:3128\n"), "{out}");
    assert!(!out.contains("were not consumed"), "{out}");
    let hist = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "proxied",
    ]);
    assert!(!hist.contains("proxy.test"), "{hist}");
    d.docker_ok(&["rmi", "proxied"]);

    // A build arg the RUN uses is part of its key.
    let arg = d.docker_ok(&["build", "--build-arg", "V=2", &s(&ctx)]);
    assert_eq!(arg.matches(" ---> Using cache").count(), 1, "{arg}");
    assert!(arg.contains("two\nrun-2\n"), "{arg}");

    // --no-cache runs everything.
    let fresh = d.docker_ok(&["build", "--no-cache", &s(&ctx)]);
    assert!(!fresh.contains("Using cache"), "{fresh}");

    // The cache survives a daemon restart.
    d.stop();
    d.start_again();
    let after = d.docker_ok(&["build", &s(&ctx)]);
    assert_eq!(after.matches(" ---> Using cache").count(), 4, "{after}");
    assert_nothing_left(&d);
}

#[test]
fn build_failing_run_reports_the_code_and_leaves_nothing() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "fail",
        &[("Dockerfile", "FROM busybox\nRUN echo before; exit 3\n")],
    );
    let out = d.docker(&["build", "-t", "never", &s(&ctx)]);
    // As with dockerd, the CLI exits with the errorDetail code.
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("before\n"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"),
        "{}",
        out.stderr
    );
    assert!(!d.docker(&["image", "inspect", "never"]).success());
    assert_nothing_left(&d);

    // The same through the API: the errorDetail line.
    let tar = d.dir.path().join("fail.tar");
    berth_tests::tarball::create(&ctx, &tar, ".");
    let body = d
        .curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-tar",
            "--data-binary",
            &format!("@{}", tar.display()),
            "http://localhost/v1.41/build",
        ])
        .ok();
    let last = body.trim_end().lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(last).expect(last);
    assert_eq!(v["errorDetail"]["code"], 3, "{body}");
    assert_eq!(
        v["error"],
        "The command '/bin/sh -c echo before; exit 3' returned a non-zero code: 3"
    );
    assert!(
        body.contains("{\"stream\":\"Step 1/2 : FROM busybox\"}\r\n"),
        "{body}"
    );
    assert_nothing_left(&d);
}

#[test]
fn build_bad_dockerfiles_and_sources() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "bad",
        &[
            ("Dockerfile", "FROM busybox\nRUN true\nRUNN x\n"),
            ("Dockerfile.missing", "FROM busybox\nCOPY nothere /x\n"),
            ("Dockerfile.outside", "FROM busybox\nCOPY ../x /x\n"),
            ("Dockerfile.ignored", "FROM busybox\nCOPY secret.txt /x\n"),
            ("Dockerfile.empty", "# only a comment\n"),
            ("secret.txt", "s\n"),
            (".dockerignore", "secret.txt\n"),
        ],
    );
    let out = d.docker(&["build", &s(&ctx)]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr
            .contains("dockerfile parse error line 3: unknown instruction: RUNN"),
        "{}",
        out.stderr
    );
    for (file, msg) in [
        ("Dockerfile.missing", "COPY failed: file not found in build context or excluded by .dockerignore: stat nothere: file does not exist"),
        ("Dockerfile.outside", "COPY failed: forbidden path outside the build context: ../x ()"),
        ("Dockerfile.ignored", "COPY failed: file not found in build context or excluded by .dockerignore"),
        ("Dockerfile.empty", "the Dockerfile (Dockerfile.empty) cannot be empty"),
    ] {
        let out = d.docker(&["build", "-f", &s(&ctx.join(file)), &s(&ctx)]);
        assert!(!out.success(), "{file}: {}", out.stdout);
        assert!(out.stderr.contains(msg), "{file}: {}", out.stderr);
    }
    // The CLI checks the -f path itself; the API answers dockerd's 500.
    let tar = d.dir.path().join("bad.tar");
    berth_tests::tarball::create(&ctx, &tar, ".");
    let out = d
        .curl(&[
            "-i",
            "-X",
            "POST",
            "--data-binary",
            &format!("@{}", tar.display()),
            "http://localhost/v1.41/build?dockerfile=nonexist",
        ])
        .ok();
    assert!(out.starts_with("HTTP/1.1 500"), "{out}");
    assert!(
        out.ends_with("{\"message\":\"Cannot locate specified Dockerfile: nonexist\"}"),
        "{out}"
    );
    assert_nothing_left(&d);
}

#[test]
fn build_multi_stage_target_args_quiet_iidfile() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "multi",
        &[(
            "build.Dockerfile",
            "ARG BASE=busybox\n\
             FROM $BASE AS builder\n\
             ARG FLAVOUR=plain\n\
             RUN mkdir /out && echo \"artefact $FLAVOUR\" > /out/a.txt\n\
             FROM busybox AS unused\n\
             RUN echo this stage is never needed && exit 1\n\
             FROM scratch\n\
             COPY --from=builder /out/a.txt /a.txt\n\
             COPY --from=builder /bin/busybox /bin/cat\n\
             ENTRYPOINT [\"/bin/cat\"]\n\
             CMD [\"/a.txt\"]\n",
        )],
    );
    let iid = d.dir.path().join("iid");
    let out = d.docker_ok(&[
        "build",
        "-f",
        &s(&ctx.join("build.Dockerfile")),
        "--build-arg",
        "FLAVOUR=spicy",
        "--iidfile",
        &s(&iid),
        "-t",
        "final:1",
        "-t",
        "final:2",
        &s(&ctx),
    ]);
    assert!(
        !out.contains("never needed"),
        "the unused stage ran:\n{out}"
    );
    assert!(
        out.contains("Successfully tagged final:1\n")
            && out.contains("Successfully tagged final:2\n"),
        "{out}"
    );
    let id = fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(d.inspect("image", "final:2")["Id"], id.trim());
    assert_eq!(d.docker_ok(&["run", "--rm", "final:1"]), "artefact spicy\n");
    // Only the two COPY layers: nothing of busybox.
    let layers = d.inspect("image", "final:1")["RootFS"]["Layers"].clone();
    assert_eq!(layers.as_array().unwrap().len(), 2, "{layers}");

    // --target builds the stage and what it needs; -q prints the ID only.
    let q = d.docker_ok(&[
        "build",
        "-q",
        "-f",
        &s(&ctx.join("build.Dockerfile")),
        "--target",
        "builder",
        "-t",
        "builder:t",
        &s(&ctx),
    ]);
    assert!(
        q.trim().starts_with("sha256:") && q.lines().count() == 1,
        "{q}"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "builder:t", "cat", "/out/a.txt"]),
        "artefact plain\n"
    );
    let bad = d.docker(&[
        "build",
        "-f",
        &s(&ctx.join("build.Dockerfile")),
        "--target",
        "nope",
        &s(&ctx),
    ]);
    assert!(!bad.success());
    assert!(
        bad.stderr
            .contains("failed to reach build target nope in Dockerfile"),
        "{}",
        bad.stderr
    );

    // -f - : the Dockerfile from stdin.
    let out = d.docker_stdin(
        &["build", "-t", "stdin:1", "-f", "-", &s(&ctx)],
        Some(b"FROM busybox\nLABEL from=stdin\n"),
    );
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(
        d.inspect("image", "stdin:1")["Config"]["Labels"]["from"],
        "stdin"
    );
    assert_nothing_left(&d);
}

#[test]
fn build_metadata_instructions_and_config() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "meta",
        &[(
            "Dockerfile",
            "FROM busybox\n\
                 LABEL a=1 \"b c\"=\"d e\"\n\
                 EXPOSE 80 53/udp\n\
                 ENV P=/opt\n\
                 ENV Q=${P:-x}/bin R=${UNSET:-dflt} S=${P:+set}\n\
                 USER nobody\n\
                 WORKDIR $P/work\n\
                 VOLUME [\"/data\"]\n\
                 STOPSIGNAL SIGTERM\n\
                 HEALTHCHECK --interval=5s --retries=2 CMD true\n\
                 ONBUILD RUN echo child\n\
                 MAINTAINER someone\n\
                 SHELL [\"/bin/sh\", \"-c\"]\n\
                 ENTRYPOINT [\"/bin/echo\"]\n\
                 CMD [\"hi\"]\n",
        )],
    );
    d.docker_ok(&["build", "--label", "extra=yes", "-t", "meta", &s(&ctx)]);
    let img = d.inspect("image", "meta");
    let c = &img["Config"];
    assert_eq!(
        c["Labels"],
        serde_json::json!({"a": "1", "b c": "d e", "extra": "yes"})
    );
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    let env = c["Env"].as_array().unwrap();
    for want in ["P=/opt", "Q=/opt/bin", "R=dflt", "S=set"] {
        assert!(env.contains(&serde_json::json!(want)), "{want}: {env:?}");
    }
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["WorkingDir"], "/opt/work");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 2);
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert_eq!(c["Cmd"], serde_json::json!(["hi"]));
    assert_eq!(img["Author"], "someone");
    assert_eq!(d.docker_ok(&["run", "--rm", "meta"]), "hi\n");
    // WORKDIR created the directory (owned by root, as dockerd does).
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "--entrypoint",
            "stat",
            "meta",
            "-c",
            "%U",
            "/opt/work"
        ]),
        "root\n"
    );

    // ONBUILD triggers run in a child build and are not inherited.
    let child = context(&d, "child", &[("Dockerfile", "FROM meta\nRUN true\n")]);
    let out = d.docker_ok(&["build", "-t", "child", &s(&child)]);
    assert!(out.contains("# Executing 1 build trigger\n"), "{out}");
    assert!(out.contains("child\n"), "{out}");
    assert!(d.inspect("image", "child")["Config"]["OnBuild"].is_null());
    assert_nothing_left(&d);
}

#[test]
fn build_cache_prune_and_system_df() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "prune",
        &[("Dockerfile", "FROM busybox\nRUN echo x > /x\nENV A=1\n")],
    );
    d.docker_ok(&["build", "-t", "pruned", &s(&ctx)]);
    let df: serde_json::Value =
        serde_json::from_str(&d.curl(&["http://localhost/v1.50/system/df"]).ok()).unwrap();
    assert_eq!(df["BuildCache"].as_array().map(Vec::len), Some(2), "{df}");
    assert_eq!(df["BuildCache"][0]["Type"], "regular");
    let verbose = d.docker_ok(&["system", "df", "-v"]);
    assert!(verbose.contains("Build cache usage"), "{verbose}");

    let out = d.docker_ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space"), "{out}");
    let df: serde_json::Value =
        serde_json::from_str(&d.curl(&["http://localhost/v1.50/system/df"]).ok()).unwrap();
    assert_eq!(df["BuildCache"], serde_json::json!([]), "{df}");
    // The tagged image stays; the next build runs its steps again.
    assert_eq!(d.docker_ok(&["run", "--rm", "pruned", "cat", "/x"]), "x\n");
    let again = d.docker_ok(&["build", "-t", "pruned", &s(&ctx)]);
    assert!(!again.contains("Using cache"), "{again}");

    d.docker_ok(&["system", "prune", "-a", "-f"]);
    assert!(!d.docker(&["image", "inspect", "pruned"]).success());
    assert_nothing_left(&d);
}

/// A context tar whose one RUN step prints `started`, then runs 5 minutes.
fn long_step_context(d: &Daemon, name: &str) -> PathBuf {
    let ctx = context(
        d,
        name,
        &[("Dockerfile", "FROM busybox\nRUN echo started; sleep 300\n")],
    );
    let tar = d.dir.path().join(format!("{name}.tar"));
    berth_tests::tarball::create(&ctx, &tar, ".");
    tar
}

#[test]
fn build_client_disconnect_kills_the_step() {
    let d = Daemon::with_busybox();
    let tar = long_step_context(&d, "cancel");
    // curl gives up after 3 s, in the middle of the RUN.
    let out = d.curl(&[
        "--max-time",
        "3",
        "-X",
        "POST",
        "-H",
        "Content-Type: application/x-tar",
        "--data-binary",
        &format!("@{}", tar.display()),
        "http://localhost/v1.41/build",
    ]);
    assert!(out.stdout.contains("started"), "{}", out.stdout);
    let gone = wait_until(std::time::Duration::from_secs(30), || {
        d.docker_ok(&["ps", "-aq"]).trim().is_empty()
    });
    assert!(
        gone,
        "the step container outlived the client: {}",
        d.docker_ok(&["ps", "-a"])
    );
    let clean = wait_until(std::time::Duration::from_secs(10), || {
        fs::read_dir(d.data_root.join("build/tmp"))
            .map(|r| r.count() == 0)
            .unwrap_or(false)
    });
    assert!(clean);
    assert_nothing_left(&d);
}

#[test]
fn build_add_archives_chown_chmod_globs_heredoc() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "files",
        &[
            (
                "Dockerfile",
                "FROM busybox\n\
                 ADD bundle.tar.gz /opt/\n\
                 COPY --chown=nobody:nogroup --chmod=640 *.txt /texts/\n\
                 COPY docs /docs\n\
                 RUN <<EOF\n\
                 echo from-heredoc > /heredoc\n\
                 EOF\n\
                 ARG WHO=builder\n\
                 COPY <<CONF /etc/inline.conf\n\
                 key=\"value ${WHO}\" \\$HOME\n\
                 CONF\n\
                 COPY <<\"RAW\" /etc/raw.conf\n\
                 kept=${WHO}\n\
                 RAW\n",
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.md", "c\n"),
            ("docs/keep.md", "k\n"),
            ("docs/drop.md", "d\n"),
            ("docs/README.md", "r\n"),
            ("bundle/inner/file", "packed\n"),
            (".dockerignore", "docs/*.md\n!docs/keep.md\nbundle\n"),
        ],
    );
    berth_tests::tarball::create(&ctx.join("bundle"), &ctx.join("bundle.tar.gz"), "inner");
    fs::remove_dir_all(ctx.join("bundle")).unwrap();
    d.docker_ok(&["build", "-t", "files", &s(&ctx)]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "files",
        "sh",
        "-c",
        "cat /opt/inner/file; ls /texts; stat -c '%U:%G %a' /texts/a.txt; ls /docs; cat /heredoc /etc/inline.conf /etc/raw.conf",
    ]);
    assert_eq!(
        out,
        "packed\na.txt\nb.txt\nnobody:nogroup 640\nkeep.md\nfrom-heredoc\nkey=\"value builder\" $HOME\nkept=${WHO}\n"
    );
    assert_nothing_left(&d);
}

#[test]
fn build_independent_stages_run_together_output_in_order() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "parallel",
        &[(
            "Dockerfile",
            "FROM busybox AS one\n\
             RUN echo one-start; while [ ! -e /stop ]; do sleep 0.2; done; echo one > /one\n\
             FROM busybox AS two\n\
             RUN echo two-start; while [ ! -e /stop ]; do sleep 0.2; done; echo two > /two\n\
             FROM busybox\n\
             COPY --from=one /one /one\n\
             COPY --from=two /two /two\n\
             CMD [\"cat\", \"/one\", \"/two\"]\n",
        )],
    );
    let ctx_s = s(&ctx);
    std::thread::scope(|scope| {
        let build = scope.spawn(|| d.docker(&["build", "-t", "par", &ctx_s]));
        // Both stages' RUN containers must be up at the same time; each
        // waits for /stop, which the test then creates in both.
        let both = wait_until(std::time::Duration::from_secs(60), || {
            d.docker_ok(&["ps", "-q"]).lines().count() == 2
        });
        let running = d.docker_ok(&["ps", "-q"]);
        for id in running.lines() {
            let _ = d.docker(&["exec", id, "touch", "/stop"]);
        }
        let out = build.join().unwrap();
        assert!(both, "the two independent stages did not run together");
        assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
        // The output reads as a sequential build.
        let text = &out.stdout;
        let pos = |s: &str| {
            text.find(s)
                .unwrap_or_else(|| panic!("{s} missing:\n{text}"))
        };
        assert!(pos("Step 2/8 : RUN echo one-start") < pos("one-start\n"));
        assert!(pos("one-start\n") < pos("Step 3/8 : FROM busybox AS two"));
        assert!(pos("Step 4/8 : RUN echo two-start") < pos("two-start\n"));
        assert!(pos("two-start\n") < pos("Step 5/8 : FROM busybox\n"));
    });
    assert_eq!(d.docker_ok(&["run", "--rm", "par"]), "one\ntwo\n");
    assert_nothing_left(&d);
}

#[test]
fn build_dockerignore_applies_to_raw_api_contexts() {
    let d = Daemon::with_busybox();
    // curl sends everything: the daemon itself must honour .dockerignore.
    let ctx = context(
        &d,
        "ignore",
        &[
            ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            ("keep.txt", "k\n"),
            ("secret.key", "s\n"),
            ("secret-ok.txt", "o\n"),
            ("logs/a.log", "l\n"),
            (".dockerignore", "secret*\n!secret-ok.txt\nlogs\n"),
        ],
    );
    let tar = d.dir.path().join("ignore.tar.gz");
    berth_tests::tarball::create(&ctx, &tar, ".");
    let body = d
        .curl(&[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-tar",
            "--data-binary",
            &format!("@{}", tar.display()),
            "http://localhost/v1.41/build?t=ignored",
        ])
        .ok();
    assert!(
        body.contains("Successfully tagged ignored:latest"),
        "{body}"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "ignored", "ls", "-A", "/ctx"]),
        ".dockerignore\nDockerfile\nkeep.txt\nsecret-ok.txt\n"
    );
    assert_nothing_left(&d);
}

#[test]
fn build_context_symlinks_stay_in_the_context() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "links",
        &[
            ("Dockerfile", "FROM busybox\nCOPY abs-link /x\n"),
            (
                "Dockerfile.dir",
                "FROM busybox\nCOPY . /ctx/\nRUN readlink /ctx/abs-link; readlink /ctx/up-link\n",
            ),
            (
                "Dockerfile.up",
                "FROM busybox\nCOPY up-link/etc/hostname /h\n",
            ),
        ],
    );
    std::os::unix::fs::symlink("/etc/hostname", ctx.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../../../..", ctx.join("up-link")).unwrap();
    // A link to a host path resolves inside the context, where it is not.
    let out = d.docker(&["build", &s(&ctx)]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("COPY failed: file not found in build context"),
        "{}",
        out.stderr
    );
    let out = d.docker(&["build", "-f", &s(&ctx.join("Dockerfile.up")), &s(&ctx)]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("COPY failed: file not found in build context"),
        "{}",
        out.stderr
    );
    // Copied as links, never followed.
    let out = d.docker_ok(&["build", "-f", &s(&ctx.join("Dockerfile.dir")), &s(&ctx)]);
    assert!(out.contains("/etc/hostname\n../../../../..\n"), "{out}");
    assert_nothing_left(&d);
}

/// A 2 GiB context goes to disk as it arrives: berthd's peak RSS during the
/// build stays within about 64 MiB of what it was before.
#[test]
fn build_of_a_2gib_context_keeps_daemon_memory_flat() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "big",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY small.txt /\nRUN wc -c /small.txt\n",
            ),
            ("small.txt", "tiny\n"),
        ],
    );
    // Sparse on the host; the CLI still sends 2 GiB of tar through the socket.
    let big = fs::File::create(ctx.join("big.bin")).unwrap();
    big.set_len(2 << 30).unwrap();
    drop(big);
    let pid = d.pid().expect("berthd pid");
    let status = |key: &str| -> u64 {
        let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    // Resets VmHWM to the current RSS.
    fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status("VmRSS:");
    d.docker_ok(&["build", "-q", "-t", "big", &s(&ctx)]);
    let peak = status("VmHWM:");
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!("berthd RSS {before} KiB before, peak {peak} KiB during a 2 GiB context build");
    assert!(
        grown_mib <= 64,
        "berthd grew by {grown_mib} MiB during a 2 GiB context build"
    );
    let out = d.docker_ok(&["run", "--rm", "big", "ls", "/"]);
    assert!(!out.contains("big.bin"), "{out}");
    assert_nothing_left(&d);
}

/// `--add-host` given several times (repeated `extrahosts` parameters) and
/// `--network` naming a user network reach every RUN step.
#[test]
fn build_extra_hosts_and_user_network() {
    let d = Daemon::with_busybox();
    let net = format!("bnet{}", std::process::id());
    d.docker_ok(&["network", "create", &net]);
    let ctx = context(
        &d,
        "hosts",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN grep -E '10.1.2.3[[:space:]]+a.test' /etc/hosts && grep -E '10.1.2.4[[:space:]]+b.test' /etc/hosts\n\
             RUN ip -4 -o addr show eth0 > /addr\n",
        )],
    );
    d.docker_ok(&[
        "build",
        "--add-host",
        "a.test:10.1.2.3",
        "--add-host",
        "b.test:10.1.2.4",
        "--network",
        &net,
        "-t",
        "hosts",
        &s(&ctx),
    ]);
    let subnet = d.inspect("network", &net)["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = subnet.rsplit_once('.').unwrap().0.to_owned();
    let addr = d.docker_ok(&["run", "--rm", "hosts", "cat", "/addr"]);
    assert!(
        addr.contains(&format!("inet {prefix}.")),
        "{addr} not in {subnet}"
    );
    let out = d.docker(&["build", "--network", "no-such-net", &s(&ctx)]);
    let err = &out.stderr;
    assert!(!out.status.success());
    assert!(err.contains("network no-such-net not found"), "{err}");
    assert_nothing_left(&d);
    d.docker_ok(&["network", "rm", &net]);
}

/// `POST /build/cancel?id=` ends the build started with that `buildid`:
/// the client gets `context canceled` and the step's container goes.
#[test]
fn build_cancel_by_id_ends_the_build() {
    let d = Daemon::with_busybox();
    let tar = long_step_context(&d, "cancel-id");
    let build = std::process::Command::new("curl")
        .args(["-sS", "-N", "--max-time", "120", "--unix-socket"])
        .arg(&d.socket)
        .args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-tar",
            "--data-binary",
            &format!("@{}", tar.display()),
            "http://localhost/v1.44/build?buildid=job-42",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = wait_until(std::time::Duration::from_secs(30), || {
        !d.docker_ok(&["ps", "-q"]).trim().is_empty()
    });
    assert!(running, "the RUN step never started");
    let out = d.curl(&[
        "-s",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "http://localhost/build/cancel?id=job-42",
    ]);
    assert_eq!(out.stdout, "200");
    let output = build.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("context canceled"), "{text}");
    let gone = wait_until(std::time::Duration::from_secs(30), || {
        d.docker_ok(&["ps", "-aq"]).trim().is_empty()
    });
    assert!(gone, "the step container outlived the cancel");
    // Unknown IDs are fine (the build may have ended); none is a 400.
    let out = d.curl(&[
        "-s",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "http://localhost/build/cancel?id=nope",
    ]);
    assert_eq!(out.stdout, "200");
    let out = d.curl(&[
        "-s",
        "-w",
        "%{http_code}",
        "-X",
        "POST",
        "http://localhost/build/cancel",
    ]);
    assert!(out.stdout.ends_with("400"), "{}", out.stdout);
    assert_nothing_left(&d);
}

/// A single file copied to a path without a trailing slash lands inside it
/// when the base image has a directory there, and is that path otherwise;
/// both stay right on a cached rebuild (the cache check of a directory copy
/// does not look at the target, a single file's does).
#[test]
fn build_copy_destination_follows_the_base_image_on_rebuild() {
    let d = Daemon::with_busybox();
    let ctx = context(
        &d,
        "dest",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY a.txt /etc\nCOPY a.txt /renamed\nCOPY docs /etc\n\
                 COPY --chown=nobody a.txt /owned\n",
            ),
            ("a.txt", "alpha\n"),
            ("docs/readme", "docs\n"),
        ],
    );
    let check = |d: &Daemon| {
        let out = d.docker_ok(&[
            "run",
            "--rm",
            "dest",
            "sh",
            "-c",
            "cat /etc/a.txt /renamed /etc/readme; stat -c %U /owned; test -f /renamed && echo file",
        ]);
        assert_eq!(out, "alpha\nalpha\ndocs\nnobody\nfile\n");
    };
    d.docker_ok(&["build", "-q", "-t", "dest", &s(&ctx)]);
    check(&d);
    let again = d.docker_ok(&["build", "-t", "dest", &s(&ctx)]);
    assert_eq!(again.matches("Using cache").count(), 4, "{again}");
    check(&d);
    assert_nothing_left(&d);
}
